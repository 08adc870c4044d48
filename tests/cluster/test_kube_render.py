"""The pure render functions of triggers/cluster/kube.py, against expected documents and the real CRD schema."""

import json

import jsonschema
import pytest
import yaml
from kubernetes.client.exceptions import ApiException

from tests.cluster import shared_fixtures
from triggers.cluster import kube
from triggers.models import Trigger

pytestmark = pytest.mark.django_db


@pytest.fixture
def trigger(tenant_a):
    return Trigger.objects.create(
        tenant=tenant_a, name="hello", image="ghcr.io/acme/hook:1.2", port=9000,
        env=[{"name": "MODE", "value": "prod"}], secret_env={"TOKEN": {"set_at": "2026-01-01T00:00:00Z"}},
        secret_version=2, min_scale=0, max_scale=3, target_concurrency=10, timeout_seconds=120,
    )


def test_ksvc_matches_the_expected_document(trigger, settings):
    settings.RELAY_AMBASSADOR_ID = ""
    settings.RELAY_DEPLOY_TIMEOUT = 600  # the default; `make run` lowers it for kubesim
    ksvc = kube.render_ksvc(trigger)
    spec_hash = ksvc["metadata"]["annotations"].pop(kube.SPEC_HASH)
    assert len(spec_hash) == 64
    assert ksvc == {
        "apiVersion": "serving.knative.dev/v1",
        "kind": "Service",
        "metadata": {
            "name": "hello",
            "namespace": "relay-acme",
            "labels": {
                "app.kubernetes.io/managed-by": "relayweb",
                "relayweb.io/tenant": str(trigger.tenant_id),
                "relayweb.io/trigger": str(trigger.pk),
                "networking.knative.dev/visibility": "cluster-local",
                "serving.knative.dev/visibility": "cluster-local",
            },
            "annotations": {},
        },
        "spec": {
            "template": {
                "metadata": {
                    "labels": {"app.kubernetes.io/managed-by": "relayweb", "relayweb.io/trigger": str(trigger.pk)},
                    "annotations": {
                        "autoscaling.knative.dev/min-scale": "0",
                        "autoscaling.knative.dev/max-scale": "3",
                        "autoscaling.knative.dev/target": "10",
                        "relayweb.io/secret-version": "2",
                        "serving.knative.dev/progress-deadline": "540s",
                        "relayweb.io/spec-version": "0",  # revisions carry it: the history names their spec
                    },
                },
                "spec": {
                    "containerConcurrency": 0,
                    "timeoutSeconds": 120,
                    "containers": [{
                        "image": "ghcr.io/acme/hook:1.2",
                        "ports": [{"containerPort": 9000}],
                        "env": [
                            {"name": "MODE", "value": "prod"},
                            {"name": "TOKEN", "valueFrom": {"secretKeyRef": {"name": "hello-env", "key": "TOKEN"}}},
                        ],
                    }],
                },
            }
        },
    }


def test_autoscaling_annotations_are_never_on_the_ksvc_itself(trigger):
    ksvc = kube.render_ksvc(trigger)
    assert not [k for k in ksvc["metadata"]["annotations"] if k.startswith("autoscaling.knative.dev/")]


def test_ambassador_id_is_added_when_configured(trigger, settings):
    settings.RELAY_AMBASSADOR_ID = "knative-gw"
    assert kube.render_ksvc(trigger)["metadata"]["annotations"][kube.AMBASSADOR_ID] == "knative-gw"


def test_fingerprint_changes_with_every_owned_field_and_ignores_knative_defaults(trigger):
    ksvc = kube.render_ksvc(trigger)
    base = kube.fingerprint(ksvc)
    assert ksvc["metadata"]["annotations"][kube.SPEC_HASH] == base
    live = json.loads(json.dumps(ksvc))
    live["metadata"]["annotations"]["serving.knative.dev/creator"] = "someone"
    container = live["spec"]["template"]["spec"]["containers"][0]
    container.update(name="user-container", readinessProbe={"tcpSocket": {"port": 0}}, resources={})
    live["spec"]["traffic"] = [{"latestRevision": True, "percent": 100}]
    assert kube.fingerprint(live) == base
    container["image"] = "ghcr.io/acme/hook:evil"
    assert kube.fingerprint(live) != base
    for field, value in [("image", "x/y:2"), ("port", 9001), ("timeout_seconds", 30), ("max_scale", 4)]:
        setattr(trigger, field, value)
        assert kube.fingerprint(kube.render_ksvc(trigger)) != base


def test_redeploy_stamp_and_secret_version_change_the_template(trigger):
    before = kube.render_ksvc(trigger)["spec"]["template"]
    trigger.redeploy_stamp = "20260101T000000.000000Z"
    assert kube.render_ksvc(trigger)["spec"]["template"] != before
    trigger.secret_version = 3
    assert kube.render_ksvc(trigger)["spec"]["template"]["metadata"]["annotations"][kube.SECRET_VERSION] == "3"


def test_merge_patch_clears_annotations_the_spec_no_longer_sets(trigger):
    trigger.target_concurrency = None
    patch = kube.ksvc_merge_patch(kube.render_ksvc(trigger))
    annotations = patch["spec"]["template"]["metadata"]["annotations"]
    assert annotations[kube.TARGET] is None and annotations[kube.REDEPLOY] is None
    assert "serving.knative.dev/creator" not in patch["metadata"]["annotations"]


def test_ksvc_validates_against_the_real_knative_1_23_schema(trigger):
    crd = yaml.safe_load((shared_fixtures() / "knative/knative-serving-knative-v1.23.0-service-crd.yaml").read_text())
    schema = next(v for v in crd["spec"]["versions"] if v["name"] == "v1")["schema"]["openAPIV3Schema"]
    jsonschema.validate(kube.render_ksvc(trigger), schema)
    broken = kube.render_ksvc(trigger)
    broken["spec"]["template"]["spec"]["timeoutSeconds"] = "300"
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(broken, schema)


def test_secret_namespace_policy_and_limits(trigger, tenant_a, settings):
    secret = kube.render_secret(trigger, {"TOKEN": "s3cr3t"}, 3)
    assert secret["metadata"]["name"] == "hello-env-3" and secret["stringData"] == {"TOKEN": "s3cr3t"}
    assert secret["immutable"] is True
    labels = {"app.kubernetes.io/managed-by": "relayweb", "relayweb.io/tenant": str(tenant_a.pk),
              "pod-security.kubernetes.io/enforce": "baseline", "pod-security.kubernetes.io/enforce-version": "latest",
              "pod-security.kubernetes.io/warn": "restricted", "pod-security.kubernetes.io/warn-version": "latest"}
    assert kube.render_namespace(tenant_a)["metadata"] == {"name": "relay-acme", "labels": labels}
    settings.RELAY_GATEWAY_NAMESPACE, settings.RELAY_KNATIVE_NAMESPACE = "emissary", "knative-serving"
    policy = kube.render_network_policy(tenant_a)
    assert policy["spec"]["podSelector"] == {} and policy["spec"]["policyTypes"] == ["Ingress"]
    expression = policy["spec"]["ingress"][0]["from"][0]["namespaceSelector"]["matchExpressions"][0]
    assert expression == {"key": "kubernetes.io/metadata.name", "operator": "In",
                          "values": ["emissary", "knative-serving"]}
    limits = kube.render_limit_range(tenant_a)["spec"]["limits"][0]
    assert limits["type"] == "Container" and limits["default"]["memory"] == settings.RELAY_DEFAULT_MEMORY_LIMIT


def _api_error(status, reason, message):
    e = ApiException(status=status, reason=reason)
    e.body = json.dumps({"kind": "Status", "reason": reason, "message": message, "code": status})
    return e


@pytest.mark.parametrize(
    "status, reason, transient",
    [(500, "InternalError", True), (503, "ServiceUnavailable", True), (429, "TooManyRequests", True),
     (409, "Conflict", True), (409, "AlreadyExists", False), (400, "BadRequest", False),
     (403, "Forbidden", False), (404, "NotFound", False), (422, "Invalid", False)],
)
def test_api_errors_map_to_transient_or_permanent_keeping_the_message(status, reason, transient):
    error = kube.error_from_api(_api_error(status, reason, f"the API says {status}"))
    assert (error.transient, error.status, error.reason, error.message) == (
        transient, status, reason, f"the API says {status}")


def test_unreachable_api_is_transient(settings, tmp_path):
    (tmp_path / "kubeconfig").write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": "c",
        "clusters": [{"name": "c", "cluster": {"server": "http://127.0.0.1:1"}}],
        "users": [{"name": "u", "user": {"token": "t"}}],
        "contexts": [{"name": "c", "context": {"cluster": "c", "user": "u"}}],
    }))
    settings.RELAY_KUBECONFIG = str(tmp_path / "kubeconfig")
    settings.RELAY_KUBE_TIMEOUT = 2
    cluster = kube.Cluster()
    cluster.api_client.configuration.retries = 0
    with pytest.raises(kube.KubeError) as info:
        cluster.get_ksvc("default", "x")
    assert info.value.transient and "cannot reach the Kubernetes API" in info.value.message


def test_no_cluster_configured_says_what_to_set(settings, monkeypatch):
    settings.RELAY_KUBECONFIG = ""
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    with pytest.raises(kube.KubeError, match="set RELAY_KUBECONFIG"):
        kube.Cluster()



def test_merge_patch_has_no_nulls_inside_replaced_lists(trigger):
    """Lists are replaced as they are (RFC 7386): a null inside one would be stored, not removed."""
    trigger.env = []
    container = kube.ksvc_merge_patch(kube.render_ksvc(trigger))["spec"]["template"]["spec"]["containers"][0]
    assert None not in container.values()


def test_an_event_older_than_the_apply_never_settles_it():
    from triggers.cluster.status import outcome

    old_ready = {"metadata": {"generation": 1}, "status": {"observedGeneration": 1,
                                                           "conditions": [{"type": "Ready", "status": "True"}]}}
    assert outcome(old_ready, 2).state == "waiting"
    assert outcome(old_ready, 1).state == "ready"
    assert outcome(old_ready, None).state == "ready"


def test_tenant_namespaces_enforce_baseline_pod_security_and_warn_restricted(tenant_a, cluster, k8s):
    cluster.apply_namespace(kube.render_namespace(tenant_a))
    labels = k8s.core.read_namespace("relay-acme").metadata.labels
    assert labels["pod-security.kubernetes.io/enforce"] == "baseline"
    assert labels["pod-security.kubernetes.io/warn"] == "restricted"


@pytest.mark.parametrize("deploy_timeout, deadline", [(600, "540s"), (30, "25s"), (3600, "3540s"), (5, "1s")])
def test_knatives_progress_deadline_is_below_the_deploy_timeout(trigger, settings, deploy_timeout, deadline):
    settings.RELAY_DEPLOY_TIMEOUT = deploy_timeout
    annotations = kube.render_ksvc(trigger)["spec"]["template"]["metadata"]["annotations"]
    assert annotations[kube.PROGRESS_DEADLINE] == deadline


def test_no_traffic_renders_nothing_and_the_patch_writes_knatives_default(trigger):
    for follow_latest in ([], [{"revision": None, "latest": True, "percent": 100, "tag": ""}]):
        trigger.traffic = follow_latest
        assert "traffic" not in kube.render_ksvc(trigger)["spec"]
        assert kube.ksvc_merge_patch(kube.render_ksvc(trigger))["spec"]["traffic"] == [
            {"latestRevision": True, "percent": 100}]


def test_traffic_renders_knative_traffic_targets_and_changes_the_fingerprint(trigger):
    base = kube.render_ksvc(trigger)
    trigger.traffic = [{"revision": "hello-00001", "latest": False, "percent": 50, "tag": ""},
                       {"revision": None, "latest": True, "percent": 50, "tag": ""},
                       {"revision": "hello-00003", "latest": False, "percent": 0, "tag": "candidate"}]
    ksvc = kube.render_ksvc(trigger)
    assert ksvc["spec"]["traffic"] == [
        {"revisionName": "hello-00001", "latestRevision": False, "percent": 50},
        {"latestRevision": True, "percent": 50},
        {"revisionName": "hello-00003", "latestRevision": False, "percent": 0, "tag": "candidate"},
    ]
    assert ksvc["spec"]["template"] == base["spec"]["template"]  # traffic alone makes no new revision
    assert kube.fingerprint(ksvc) != kube.fingerprint(base)
    assert kube.ksvc_merge_patch(ksvc)["spec"]["traffic"] == ksvc["spec"]["traffic"]
    live = json.loads(json.dumps(ksvc))  # Knative's defaulting drops nothing we compare
    live["spec"]["traffic"][1]["percent"] = 50
    assert kube.fingerprint(live) == ksvc["metadata"]["annotations"][kube.SPEC_HASH]
    live["spec"]["traffic"][0]["percent"] = 100  # kubectl edit of the split is drift
    assert kube.fingerprint(live) != ksvc["metadata"]["annotations"][kube.SPEC_HASH]
    crd = yaml.safe_load((shared_fixtures() / "knative/knative-serving-knative-v1.23.0-service-crd.yaml").read_text())
    schema = next(v for v in crd["spec"]["versions"] if v["name"] == "v1")["schema"]["openAPIV3Schema"]
    jsonschema.validate(ksvc, schema)


def test_revisions_carry_the_spec_version_they_came_from(trigger):
    trigger.spec_version = 7
    annotations = kube.render_ksvc(trigger)["spec"]["template"]["metadata"]["annotations"]
    assert annotations[kube.SPEC_VERSION] == "7"
