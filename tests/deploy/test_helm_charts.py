"""The Helm charts in deploy/helm, rendered by the real Helm engine with default and other values:
lint clean, every object valid for Kubernetes 1.34 (Knative 1.23's minimum), the source's specifics, and
refusals of bad values."""

from __future__ import annotations

import copy
import shlex

import helm_python as helm
import pytest

from tests.deploy.charts import CHARTS, KUBE_VERSION, RELAYWEB_REQUIRED, REPO, find, render, render_error, validate
from tests.relayweb.test_readme import settings_read_from_env

AMBASSADOR_CUSTOM = {
    "image": {"repository": "registry.example.com/mirror/ambassador", "tag": "1.14.4-patched"},
    "ambassadorId": "knative-gw",
    "autoscaling": {"enabled": True, "minReplicas": 2, "maxReplicas": 4, "targetCPUUtilizationPercentage": 60},
    "imagePullSecrets": [{"name": "mirror"}],
    "podAnnotations": {"example.com/team": "platform"},
    "nodeSelector": {"kubernetes.io/os": "linux"},
    "tolerations": [{"key": "gateway", "operator": "Exists", "effect": "NoSchedule"}],
}
RELAYWEB_CUSTOM = {
    "image": {"repository": "registry.example.com/relayweb", "tag": "2026.11.0-rc1", "pullPolicy": "Always"},
    "host": "relay.acme.test",
    "extraAllowedHosts": ["relayweb.internal"],
    "existingSecret": "relayweb-prod",
    "relay": {"ambassadorId": "knative-gw", "gatewayNamespace": "emissary", "namespacePrefix": "hooks-",
              "gatewayUrl": "http://gw.emissary.svc.cluster.local:8080"},
    "logLevel": "WARNING",
    "extraEnv": {"RELAY_MAX_TRIGGERS_PER_TENANT": 100, "SECURE_HSTS_PRELOAD": False},
    "web": {"replicas": 3, "autoscaling": {"enabled": False}, "podDisruptionBudget": {"enabled": False}},
    "worker": {"replicas": 0, "concurrency": 8},
    "watcher": {"replicas": 0},
    "migrate": {"enabled": False},
    "ingress": {"className": "nginx", "hooksHost": "hooks.acme.test",
                "annotations": {"nginx.ingress.kubernetes.io/proxy-read-timeout": "660"},
                "tls": {"enabled": False}},
    "imagePullSecrets": [{"name": "registry"}],
    "nodeSelector": {"kubernetes.io/os": "linux"},
}
VARIANTS = {
    "ambassador-defaults": ("ambassador", {}),
    "ambassador-custom": ("ambassador", AMBASSADOR_CUSTOM),
    "relayweb-defaults": ("relayweb", RELAYWEB_REQUIRED),
    "relayweb-custom": ("relayweb", RELAYWEB_CUSTOM),
    "relayweb-existing-secret": ("relayweb", {"existingSecret": "relayweb-prod"}),
}
CLUSTER_SCOPED = {"ClusterRole", "ClusterRoleBinding"}


def deployments(objects):
    return {o["metadata"]["labels"]["app.kubernetes.io/component"]: o for o in objects if o["kind"] == "Deployment"}


def container(workload):
    return workload["spec"]["template"]["spec"]["containers"][0]


def env(c):
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in c.get("env", [])}


# ---------------------------------------------------------------- both charts


@pytest.mark.parametrize("name, values", [("ambassador", {}), ("ambassador", AMBASSADOR_CUSTOM),
                                          ("relayweb", RELAYWEB_REQUIRED), ("relayweb", RELAYWEB_CUSTOM)])
def test_lint_has_no_errors_or_warnings(name, values):
    report = helm.lint(CHARTS / name, values, strict=True, kube_version=f"v{KUBE_VERSION}")
    assert report["errors"] == []
    assert [m for m in report["messages"] if m["severity"] >= 2] == []


@pytest.mark.parametrize("variant", VARIANTS)
def test_every_object_is_valid_kubernetes(variant):
    objects = render(*VARIANTS[variant])
    assert len(objects) >= 6
    for obj in objects:
        validate(obj)


@pytest.mark.parametrize("variant", VARIANTS)
def test_everything_lives_in_the_release_namespace_and_carries_the_usual_labels(variant):
    name, values = VARIANTS[variant]
    objects = render(name, values, namespace="team-gateway")
    for obj in objects:
        meta = obj["metadata"]
        if obj["kind"] in CLUSTER_SCOPED:
            assert "namespace" not in meta
            assert meta["name"].endswith("-team-gateway")  # one per release namespace
        elif obj["kind"] in ("Role", "RoleBinding") and meta["name"].endswith("-check"):
            # manage.py check_cluster reads Knative's config maps in Knative's own namespace
            assert meta["namespace"] == values.get("relay", {}).get("knativeNamespace", "knative-serving")
            assert meta["name"].endswith("-team-gateway-check")  # one per release namespace
        else:
            assert meta["namespace"] == "team-gateway", (obj["kind"], meta["name"])
        labels = meta["labels"]
        assert labels["helm.sh/chart"] == f"{name}-0.1.0"
        assert labels["app.kubernetes.io/name"] == name and labels["app.kubernetes.io/instance"] == name
        assert labels["app.kubernetes.io/managed-by"] == "Helm" and "app.kubernetes.io/version" in labels
    for binding in (o for o in objects if o["kind"] == "ClusterRoleBinding"):
        assert {s["namespace"] for s in binding["subjects"]} == {"team-gateway"}


@pytest.mark.parametrize("variant", VARIANTS)
def test_services_budgets_and_autoscalers_point_at_real_pods(variant):
    objects = render(*VARIANTS[variant])
    pods = {o["metadata"]["name"]: o["spec"]["template"] for o in objects if o["kind"] == "Deployment"}
    for svc in (o for o in objects if o["kind"] == "Service"):
        assert svc["spec"]["type"] == "ClusterIP"
        targets = [t for t in pods.values() if svc["spec"]["selector"].items() <= t["metadata"]["labels"].items()]
        assert len(targets) == 1, svc["metadata"]["name"]
        ports = {p["name"] for p in targets[0]["spec"]["containers"][0]["ports"]}
        assert {p["targetPort"] for p in svc["spec"]["ports"]} <= ports
    for pdb in (o for o in objects if o["kind"] == "PodDisruptionBudget"):
        assert any(pdb["spec"]["selector"]["matchLabels"].items() <= t["metadata"]["labels"].items()
                   for t in pods.values())
    for hpa in (o for o in objects if o["kind"] == "HorizontalPodAutoscaler"):
        target = find(objects, "Deployment", hpa["spec"]["scaleTargetRef"]["name"])
        assert "replicas" not in target["spec"], "the HPA owns the replica count"
    for deployment in (o for o in objects if o["kind"] == "Deployment"):
        labels = deployment["spec"]["template"]["metadata"]["labels"]
        assert deployment["spec"]["selector"]["matchLabels"].items() <= labels.items()


@pytest.mark.parametrize("variant", VARIANTS)
def test_pods_run_as_non_root_without_privilege_and_with_resources(variant):
    objects = render(*VARIANTS[variant])
    workloads = [o for o in objects if o["kind"] in ("Deployment", "Job")]
    assert workloads
    for workload in workloads:
        spec = workload["spec"]["template"]["spec"]
        assert spec["securityContext"]["runAsNonRoot"] is True and spec["securityContext"]["runAsUser"] > 0
        for c in spec["containers"]:
            assert c["securityContext"]["allowPrivilegeEscalation"] is False
            assert c["securityContext"]["capabilities"]["drop"] == ["ALL"]
            assert c["resources"]["requests"], (workload["metadata"]["name"], c["name"])


# ---------------------------------------------------------------- ambassador


def test_ambassador_runs_with_knative_support_and_the_configured_id():
    gateway = container(find(render("ambassador"), "Deployment"))
    assert env(gateway)["AMBASSADOR_KNATIVE_SUPPORT"] == "true"
    assert env(gateway)["AMBASSADOR_ID"] == "default"
    assert env(gateway)["AMBASSADOR_NAMESPACE"] == {"fieldRef": {"fieldPath": "metadata.namespace"}}
    assert gateway["image"] == "docker.io/datawire/ambassador:1.14.4"
    custom = container(find(render("ambassador", AMBASSADOR_CUSTOM), "Deployment"))
    assert env(custom)["AMBASSADOR_ID"] == "knative-gw"
    assert custom["image"] == "registry.example.com/mirror/ambassador:1.14.4-patched"


def test_ambassador_mounts_its_pod_labels_where_emissary_reads_them():
    pod = find(render("ambassador"), "Deployment")["spec"]["template"]["spec"]
    mount = {m["name"]: m for m in container(find(render("ambassador"), "Deployment"))["volumeMounts"]}
    assert mount["ambassador-pod-info"] == {"name": "ambassador-pod-info", "mountPath": "/tmp/ambassador-pod-info",
                                            "readOnly": True}
    volume = {v["name"]: v for v in pod["volumes"]}["ambassador-pod-info"]
    assert volume["downwardAPI"] == {"items": [{"path": "labels", "fieldRef": {"fieldPath": "metadata.labels"}}]}


def test_ambassador_service_is_cluster_ip_80_to_8080_with_the_exact_component_label():
    objects = render("ambassador", namespace="ambassador")
    gateway = container(find(objects, "Deployment"))
    ports = {p["name"]: p["containerPort"] for p in gateway["ports"]}
    assert ports == {"http": 8080, "admin": 8877}
    tagged = [o for o in objects if o["kind"] == "Service"
              and o["metadata"]["labels"].get("app.kubernetes.io/component") == "ambassador-service"]
    assert len(tagged) == 1, "Ambassador must find exactly one Service of its own"
    service = tagged[0]
    assert service["spec"]["type"] == "ClusterIP"
    assert [(p["port"], ports[p["targetPort"]]) for p in service["spec"]["ports"]] == [(80, 8080)]
    admin = find(objects, "Service", "ambassador-admin")
    assert admin["spec"]["type"] == "ClusterIP" and "nodePort" not in admin["spec"]["ports"][0]
    assert [(p["port"], ports[p["targetPort"]]) for p in admin["spec"]["ports"]] == [(8877, 8877)]
    assert not [o for o in objects if o["kind"] == "Ingress"], "the gateway is cluster-internal"


def test_ambassador_probes_use_the_admin_ports_health_checks():
    gateway = container(find(render("ambassador"), "Deployment"))
    assert gateway["livenessProbe"]["httpGet"] == {"path": "/ambassador/v0/check_alive", "port": "admin"}
    assert gateway["readinessProbe"]["httpGet"] == {"path": "/ambassador/v0/check_ready", "port": "admin"}


def test_ambassador_autoscaler_is_optional():
    assert not [o for o in render("ambassador") if o["kind"] == "HorizontalPodAutoscaler"]
    assert find(render("ambassador"), "Deployment")["spec"]["replicas"] == 1
    hpa = find(render("ambassador", AMBASSADOR_CUSTOM), "HorizontalPodAutoscaler")
    assert (hpa["spec"]["minReplicas"], hpa["spec"]["maxReplicas"]) == (2, 4)


# ---------------------------------------------------------------- relayweb


def test_relayweb_runs_the_procfiles_processes_from_one_image():
    procfile = dict(line.split(": ", 1) for line in (REPO / "Procfile").read_text().splitlines() if line)
    workloads = deployments(render("relayweb", RELAYWEB_REQUIRED))
    assert set(workloads) == {"web", "worker", "beat", "watcher", "logs"}
    commands = {name: container(w)["command"] for name, w in workloads.items()}
    for process in ("web", "worker", "beat"):
        assert commands[process][:3] == shlex.split(procfile[process])[:3], process
    assert commands["web"][:2] == ["uvicorn", "relayweb.asgi:application"]
    assert commands["watcher"] == ["python", "manage.py", "watch_cluster"]
    assert commands["logs"] == shlex.split(procfile["logs"]) == ["python", "manage.py", "collect_logs"]
    assert workloads["logs"]["spec"]["replicas"] == 2  # one collects (its Lease), one stands by
    assert {container(w)["image"] for w in workloads.values()} == {"ghcr.io/relayweb/relayweb:0.1.0"}
    beat = workloads["beat"]
    assert beat["spec"]["replicas"] == 1 and beat["spec"]["strategy"] == {"type": "Recreate"}
    assert "replicas" not in workloads["web"]["spec"]  # owned by the HPA by default
    custom = deployments(render("relayweb", RELAYWEB_CUSTOM))
    assert custom["web"]["spec"]["replicas"] == 3 and custom["worker"]["spec"]["replicas"] == 0
    assert container(custom["worker"])["command"][-2:] == ["--concurrency", "8"]


def test_migrations_run_as_a_pre_install_and_pre_upgrade_hook_with_their_own_config():
    objects = render("relayweb", RELAYWEB_REQUIRED)
    job = find(objects, "Job")
    annotations = job["metadata"]["annotations"]
    assert annotations["helm.sh/hook"] == "pre-install,pre-upgrade"
    assert container(job)["command"] == ["python", "manage.py", "migrate", "--noinput"]
    assert job["spec"]["template"]["spec"]["restartPolicy"] == "Never"
    # Hooks run before the release's own objects exist: the Job's ConfigMap and Secret are hooks too, earlier.
    spec = job["spec"]["template"]["spec"]
    config_name = container(job)["envFrom"][0]["configMapRef"]["name"]
    secret_name = spec["volumes"][0]["secret"]["secretName"]
    for kind, name in (("ConfigMap", config_name), ("Secret", secret_name)):
        hook = find(objects, kind, name)["metadata"]["annotations"]
        assert hook["helm.sh/hook"] == annotations["helm.sh/hook"]
        assert int(hook["helm.sh/hook-weight"]) < int(annotations["helm.sh/hook-weight"])
    assert find(objects, "ConfigMap", config_name)["data"] == find(objects, "ConfigMap", "relayweb")["data"]
    assert spec["automountServiceAccountToken"] is False and "serviceAccountName" not in spec
    assert not [o for o in render("relayweb", RELAYWEB_CUSTOM) if o["kind"] == "Job"]


def test_web_probes_use_healthz_and_readyz_with_an_allowed_host():
    objects = render("relayweb", RELAYWEB_REQUIRED)
    web = container(deployments(objects)["web"])
    allowed = find(objects, "ConfigMap", "relayweb")["data"]["ALLOWED_HOSTS"].split(",")
    assert web["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert web["readinessProbe"]["httpGet"]["path"] == "/readyz"
    for probe in ("livenessProbe", "readinessProbe", "startupProbe"):
        (header,) = web[probe]["httpGet"]["httpHeaders"]
        assert header["name"] == "Host" and header["value"] in allowed  # else Django answers 400


def test_settings_come_from_the_configmap_and_secrets_from_mounted_files():
    objects = render("relayweb", RELAYWEB_REQUIRED)
    data = find(objects, "ConfigMap", "relayweb")["data"]
    later = {"RELAY_GATEWAY_URL", "RELAY_AMBASSADOR_ADMIN_URL"}  # read by the ingress and watcher issues
    assert set(data) - later <= settings_read_from_env(), "a ConfigMap key relayweb does not read"
    assert not {"SECRET_KEY", "DATABASE_URL", "REDIS_URL", "KUBECONFIG", "RELAY_KUBECONFIG", "DEBUG"} & set(data)
    assert data["SITE_URL"] == "https://relay.example.com"
    assert data["CSRF_TRUSTED_ORIGINS"] == "https://relay.example.com"
    secret = find(objects, "Secret", "relayweb")
    assert set(secret["data"]) == {"SECRET_KEY", "DATABASE_URL", "REDIS_URL"}
    for workload in (o for o in objects if o["kind"] in ("Deployment", "Job")):
        c, spec = container(workload), workload["spec"]["template"]["spec"]
        mount = next(m for m in c["volumeMounts"] if m["name"] == "secrets")
        assert mount["readOnly"] is True
        items = next(v for v in spec["volumes"] if v["name"] == "secrets")["secret"]["items"]
        for name in ("SECRET_KEY", "DATABASE_URL", "REDIS_URL"):
            assert env(c)[f"{name}_FILE"] == f"{mount['mountPath']}/{name}"
            assert {"key": name, "path": name} in items
        assert not {"KUBECONFIG", "RELAY_KUBECONFIG"} & set(env(c)), "in-cluster credentials only"


def test_an_existing_secret_replaces_the_charts_secret():
    objects = render("relayweb", RELAYWEB_CUSTOM)
    assert not [o for o in objects if o["kind"] == "Secret"]
    for workload in deployments(objects).values():
        volumes = workload["spec"]["template"]["spec"]["volumes"]
        assert next(v for v in volumes if v["name"] == "secrets")["secret"]["secretName"] == "relayweb-prod"


def test_cluster_settings_pass_through_and_point_at_the_ambassador_charts_services():
    data = find(render("relayweb", RELAYWEB_REQUIRED), "ConfigMap", "relayweb")["data"]
    assert data["RELAY_GATEWAY_NAMESPACE"] == "ambassador" and data["RELAY_KNATIVE_NAMESPACE"] == "knative-serving"
    gateway = render("ambassador", namespace="ambassador")  # installed as deploy/README.md says
    service, admin = find(gateway, "Service", "ambassador"), find(gateway, "Service", "ambassador-admin")
    assert data["RELAY_GATEWAY_URL"] == f"http://{service['metadata']['name']}.ambassador.svc.cluster.local"
    assert service["spec"]["ports"][0]["port"] == 80
    assert data["RELAY_AMBASSADOR_ADMIN_URL"] == (
        f"http://{admin['metadata']['name']}.ambassador.svc.cluster.local:{admin['spec']['ports'][0]['port']}")
    assert data["RELAY_AMBASSADOR_ID"] == ""
    custom = find(render("relayweb", RELAYWEB_CUSTOM), "ConfigMap", "relayweb")["data"]
    assert custom["RELAY_GATEWAY_NAMESPACE"] == "emissary" and custom["RELAY_AMBASSADOR_ID"] == "knative-gw"
    assert custom["RELAY_GATEWAY_URL"] == "http://gw.emissary.svc.cluster.local:8080"
    assert custom["RELAY_AMBASSADOR_ADMIN_URL"] == "http://ambassador-admin.emissary.svc.cluster.local:8877"
    assert custom["RELAY_NAMESPACE_PREFIX"] == "hooks-" and custom["LOG_LEVEL"] == "WARNING"
    assert custom["RELAY_MAX_TRIGGERS_PER_TENANT"] == "100" and custom["SECURE_HSTS_PRELOAD"] == "false"
    assert custom["ALLOWED_HOSTS"] == "relay.acme.test,hooks.acme.test,relayweb.internal"


def test_ingress_serves_the_ui_and_hooks_with_tls_from_values():
    objects = render("relayweb", RELAYWEB_REQUIRED)
    ingress = find(objects, "Ingress")
    assert ingress["spec"]["tls"] == [{"secretName": "relayweb-tls", "hosts": ["relay.example.com"]}]
    (rule,) = ingress["spec"]["rules"]
    assert rule["host"] == "relay.example.com"
    assert [(p["path"], p["pathType"]) for p in rule["http"]["paths"]] == [("/", "Prefix")]  # UI, API, /hooks/
    assert rule["http"]["paths"][0]["backend"]["service"] == {"name": "relayweb", "port": {"name": "http"}}
    custom = find(render("relayweb", RELAYWEB_CUSTOM), "Ingress")
    assert "tls" not in custom["spec"] and custom["spec"]["ingressClassName"] == "nginx"
    hooks = custom["spec"]["rules"][1]
    assert hooks["host"] == "hooks.acme.test" and hooks["http"]["paths"][0]["path"] == "/hooks/"
    both = copy.deepcopy(RELAYWEB_REQUIRED) | {"ingress": {"hooksHost": "hooks.example.com"}}
    assert find(render("relayweb", both), "Ingress")["spec"]["tls"][0]["hosts"] == [
        "relay.example.com", "hooks.example.com"]


def test_web_has_an_autoscaler_and_a_disruption_budget():
    objects = render("relayweb", RELAYWEB_REQUIRED)
    hpa = find(objects, "HorizontalPodAutoscaler")
    assert hpa["spec"]["scaleTargetRef"]["name"] == "relayweb-web" and hpa["spec"]["minReplicas"] == 2
    assert find(objects, "PodDisruptionBudget")["spec"]["minAvailable"] == 1
    custom = render("relayweb", RELAYWEB_CUSTOM)
    assert not [o for o in custom if o["kind"] in ("HorizontalPodAutoscaler", "PodDisruptionBudget")]


def test_only_processes_that_talk_to_the_cluster_get_a_token():
    workloads = deployments(render("relayweb", RELAYWEB_REQUIRED))
    tokens = {name: w["spec"]["template"]["spec"]["automountServiceAccountToken"] for name, w in workloads.items()}
    assert tokens == {"web": True, "worker": True, "watcher": True, "logs": True, "beat": False}
    for name in ("web", "worker", "watcher", "logs"):
        assert workloads[name]["spec"]["template"]["spec"]["serviceAccountName"] == "relayweb"


def test_changed_settings_roll_the_pods():
    before = deployments(render("relayweb", RELAYWEB_REQUIRED))["web"]["spec"]["template"]["metadata"]
    changed = copy.deepcopy(RELAYWEB_REQUIRED) | {"logLevel": "DEBUG"}
    after = deployments(render("relayweb", changed))["web"]["spec"]["template"]["metadata"]
    assert before["annotations"]["checksum/config"] != after["annotations"]["checksum/config"]


# ---------------------------------------------------------------- bad values


def without(values: dict, *path: str) -> dict:
    values = copy.deepcopy(values)
    node = values
    for key in path[:-1]:
        node = node[key]
    del node[path[-1]]
    return values


@pytest.mark.parametrize("chart, values, message", [
    ("relayweb", without(RELAYWEB_REQUIRED, "database", "url"), "database.url is required"),
    ("relayweb", without(RELAYWEB_REQUIRED, "redis", "url"), "redis.url is required"),
    ("relayweb", without(RELAYWEB_REQUIRED, "secretKey"), "secretKey is required"),
    ("relayweb", RELAYWEB_REQUIRED | {"secretKey": "short"}, "secretKey must be at least 50 characters"),
    ("relayweb", RELAYWEB_REQUIRED | {"database": {"url": "mysql://u:p@db/r"}}, "/database/url"),
    ("relayweb", RELAYWEB_REQUIRED | {"web": {"replicas": -1}}, "/web/replicas': minimum: got -1, want 0"),
    ("relayweb", RELAYWEB_REQUIRED | {"worker": {"replicas": -2}}, "/worker/replicas': minimum: got -2, want 0"),
    ("relayweb", RELAYWEB_REQUIRED | {"image": {"repository": "r", "tag": "1.0 beta"}}, "/image/tag"),
    ("relayweb", RELAYWEB_REQUIRED | {"image": {"repository": "r", "tag": ":latest"}}, "/image/tag"),
    ("relayweb", RELAYWEB_REQUIRED | {"extraEnv": {"DATABASE_URL": "postgres://x"}},
     "extraEnv.DATABASE_URL: secrets do not go in the ConfigMap"),
    ("relayweb", RELAYWEB_REQUIRED | {"extraEnv": {"RELAY_KUBECONFIG": "/k"}}, "in-cluster ServiceAccount"),
    ("relayweb", RELAYWEB_REQUIRED | {"databse": {"url": "postgres://x"}}, "additional properties 'databse'"),
    ("relayweb", RELAYWEB_REQUIRED | {"web": {"autoscaling": {"enabled": True, "minReplicas": 5, "maxReplicas": 2}}},
     "web.autoscaling.maxReplicas (2) must not be below web.autoscaling.minReplicas (5)"),
    ("ambassador", {"replicaCount": -1}, "/replicaCount': minimum: got -1, want 0"),
    ("ambassador", {"image": {"repository": "r", "tag": "bad tag!"}}, "/image/tag"),
    ("ambassador", {"autoscaling": {"enabled": True, "minReplicas": 3, "maxReplicas": 1}},
     "autoscaling.maxReplicas (1) must not be below autoscaling.minReplicas (3)"),
])
def test_bad_values_fail_rendering_with_a_clear_message(chart, values, message):
    assert message in render_error(chart, values)


def test_the_defaults_alone_ask_for_the_secrets():
    error = render_error("relayweb", {})
    assert "secretKey is required" in error and "existingSecret" in error
    assert render("relayweb", {"existingSecret": "relayweb-prod"})  # nothing else is required then
