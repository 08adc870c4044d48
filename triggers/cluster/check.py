"""`manage.py check_cluster`: the operator's proof that an install works.

Each check answers ✓ or ✗ with what was seen and, on ✗, the fix. The checks read the cluster through
the same seam as the rest of relayweb (`triggers.cluster.kube.Cluster`, with relayweb's own credentials), and
Ambassador through its admin port (`triggers.gateway.diag.fetch`). `--probe` also deploys a throw-away
Knative Service in a scratch namespace and sends it one request through RELAY_GATEWAY_URL.

Sources for the expectations:
- Kubernetes minimum: Knative 1.23 exits at start below v1.34.0 (knative/serving knative-v1.23.0
  vendor/knative.dev/pkg/version/version.go DefaultKubernetesMinVersion; sharedmain/main.go
  CheckK8sClientMinimumVersionOrDie).
- Ingress class: knative networking pkg/config/config.go NewConfigFromMap reads `ingress.class`, then
  `ingress-class` (the new key wins); Emissary answers `ambassador.ingress.networking.knative.dev`.
- Ambassador: emissary python/ambassador/fetch/knative.py `_has_required_annotations` ignores every
  KIngress whose `getambassador.io/ambassador-id` differs from its own id (default "default").
"""

from __future__ import annotations

import re
import secrets
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass

import requests
from django.conf import settings

from triggers.gateway import diag

from . import kube, leader

KUBERNETES_MIN = (1, 34)
# The Knative Serving release relayweb supports (deploy/README.md, supported versions): what its
# rendering, the install steps and kubesim are checked against.
KNATIVE_MIN = (1, 23)
# Knative's release manifests label the knative-serving namespace with the release: 1.x
# `app.kubernetes.io/version: "1.23.0"` (config/core/100-namespace.yaml, "devel" rewritten by
# hack/generate-yamls.sh), 0.x `serving.knative.dev/release: "v0.13.0"`.
KNATIVE_NAMESPACE_VERSION_LABEL = "app.kubernetes.io/version"
KNATIVE_LEGACY_RELEASE_LABEL = "serving.knative.dev/release"
AMBASSADOR_CLASS = "ambassador.ingress.networking.knative.dev"
KNATIVE_RESOURCES = ("services", "configurations", "revisions", "routes")
CLUSTER_LOCAL_DOMAIN = "svc.cluster.local"
PROBE_NAME = "relay-check"
PROBE_LABEL = "relayweb.io/check"

def permissions() -> list[tuple[str, str, str, str]]:
    """Every permission relayweb uses: (apiGroup, resource, verb, namespace), "" = every namespace.
    deploy/helm/relayweb/templates/rbac.yaml grants them (tests/cluster/test_cluster_check.py compares)."""
    every = ""
    knative_ns = settings.RELAY_KNATIVE_NAMESPACE
    return [
        ("", "namespaces", verb, every) for verb in ("get", "list", "create", "patch", "delete")
    ] + [
        ("", "secrets", verb, every) for verb in ("create", "patch", "delete")
    ] + [
        ("", "limitranges", verb, every) for verb in ("create", "patch")
    ] + [
        ("", resource, verb, every) for resource in ("pods", "events") for verb in ("get", "list", "watch")
    ] + [
        ("", "pods/log", "get", every),  # the log collector (triggers/cluster/logs.py)
    ] + [
        ("networking.k8s.io", "networkpolicies", verb, every) for verb in ("create", "patch")
    ] + [
        ("serving.knative.dev", "services", verb, every)
        for verb in ("get", "list", "watch", "create", "patch", "delete")
    ] + [
        ("serving.knative.dev", "revisions", verb, every) for verb in ("get", "list", "watch")
    ] + [
        ("", "configmaps", "get", knative_ns),
    ] + [
        ("coordination.k8s.io", "leases", verb, leader.lease_namespace(settings.RELAY_LEADER_LEASE_NAMESPACE))
        for verb in ("get", "create", "update")
    ]


@dataclass
class Result:
    name: str
    ok: bool
    detail: str
    fix: str = ""


class Failed(Exception):
    """A check failed: `detail` is what was seen, `fix` what to do."""

    def __init__(self, detail: str, fix: str):
        super().__init__(detail)
        self.detail, self.fix = detail, fix


def _run(name: str, check: Callable[[], str]) -> Result:
    try:
        return Result(name, True, check())
    except Failed as e:
        return Result(name, False, e.detail, e.fix)
    except kube.KubeError as e:
        return Result(name, False, e.message, _api_fix(e))
    except diag.DiagError as e:
        return Result(name, False, str(e), _admin_fix())


def _api_fix(e: kube.KubeError) -> str:
    if e.status == 401:
        return ("The API server rejected relayweb's credentials: check RELAY_KUBECONFIG / the "
                "ServiceAccount token (in a cluster: the relayweb chart's ServiceAccount).")
    if e.status == 403:
        return "relayweb's identity may not do this: install deploy/helm/relayweb's RBAC (rbac.yaml)."
    if not e.status:
        return ("relayweb cannot reach the Kubernetes API: check RELAY_KUBECONFIG / RELAY_KUBE_CONTEXT "
                "(or the in-cluster service account) and the network path to the API server.")
    return "See the API server's message above."


def _admin_fix() -> str:
    return (f"Ambassador's admin port is not answering at RELAY_AMBASSADOR_ADMIN_URL "
            f"({settings.RELAY_AMBASSADOR_ADMIN_URL}): install deploy/helm/ambassador, and point "
            "RELAY_AMBASSADOR_ADMIN_URL (chart value relay.ambassadorAdminUrl) at its admin Service, port 8877.")


# ---------------------------------------------------------------------------------------- checks
def check_api(cluster: kube.Cluster) -> str:
    version = cluster.server_version()
    # /version is public; a review needs a valid identity, so it proves the credentials.
    cluster.can_i("get", "namespaces")
    return f"{cluster.api_client.configuration.host} answers as {version['gitVersion']}, credentials accepted"


def parse_version(info: dict) -> tuple[int, int]:
    """(major, minor) from /version; providers write minor as "34+", so read its digits."""
    major = re.match(r"\d+", str(info.get("major") or ""))
    minor = re.match(r"\d+", str(info.get("minor") or ""))
    if major and minor:
        return int(major[0]), int(minor[0])
    found = re.match(r"v?(\d+)\.(\d+)", str(info.get("gitVersion") or ""))
    if not found:
        raise Failed(f"cannot read the Kubernetes version from {info}", "Check that the API server is Kubernetes.")
    return int(found[1]), int(found[2])


def check_kubernetes_version(cluster: kube.Cluster) -> str:
    info = cluster.server_version()
    found = parse_version(info)
    want = ".".join(map(str, KUBERNETES_MIN))
    if found < KUBERNETES_MIN:
        raise Failed(f"Kubernetes {info['gitVersion']} is older than {want}",
                     f"Knative Serving 1.23 refuses to start below Kubernetes {want}: upgrade the cluster "
                     "to 1.34 or later (deploy/README.md, supported versions).")
    return f"Kubernetes {info['gitVersion']} (Knative 1.23 needs {want} or later)"


def check_knative(cluster: kube.Cluster) -> str:
    versions = cluster.served_versions("serving.knative.dev")
    install = ("Install Knative Serving 1.23 (deploy/README.md step 2: serving-crds.yaml, then "
               "serving-core.yaml).")
    if "v1" not in versions:
        seen = f"serves only {', '.join(versions)}" if versions else "is not served"
        raise Failed(f"the serving.knative.dev/v1 API {seen}: Knative Serving's CRDs are missing", install)
    resources = set(cluster.served_resources("serving.knative.dev", "v1"))
    missing = [r for r in KNATIVE_RESOURCES if r not in resources]
    if missing:
        raise Failed(f"serving.knative.dev/v1 lacks {', '.join(missing)}", install)
    namespace = cluster.get_namespace(settings.RELAY_KNATIVE_NAMESPACE)
    if namespace is None:
        raise Failed(f"the Knative namespace {settings.RELAY_KNATIVE_NAMESPACE!r} does not exist",
                     "Install serving-core.yaml, or set RELAY_KNATIVE_NAMESPACE (chart value "
                     "relay.knativeNamespace) to where Knative runs.")
    labels = namespace.metadata.labels or {}
    release = labels.get(KNATIVE_NAMESPACE_VERSION_LABEL) or labels.get(KNATIVE_LEGACY_RELEASE_LABEL) or ""
    served = f"serving.knative.dev/v1 {', '.join(KNATIVE_RESOURCES)}"
    found = re.search(r"(\d+)\.(\d+)", release)
    want = ".".join(map(str, KNATIVE_MIN))
    if found is None:  # a build from source ("devel"), or a namespace not made by the release manifest
        return (f"Knative Serving release unknown (namespace label {KNATIVE_NAMESPACE_VERSION_LABEL} is "
                f"{release or 'missing'}; relayweb supports {want}): {served}")
    if (int(found[1]), int(found[2])) < KNATIVE_MIN:
        raise Failed(f"Knative Serving {release} is older than {want}, the release relayweb supports",
                     f"Upgrade Knative Serving to {want}, one minor version at a time, CRDs first "
                     "(deploy/README.md, upgrading; step 2 for the manifests).")
    return f"Knative Serving {release}: {served}"


def check_ingress_class(cluster: kube.Cluster) -> str:
    ns = settings.RELAY_KNATIVE_NAMESPACE
    data = cluster.get_config_map(ns, "config-network")
    fix = (f"kubectl apply -f deploy/knative/config-network.yaml (sets ingress-class to {AMBASSADOR_CLASS} "
           "in knative-serving); Knative hands every route to the ingress class named there.")
    if data is None:
        raise Failed(f"ConfigMap {ns}/config-network does not exist", fix)
    # The new key wins over the legacy one, as in Knative's own parser.
    effective = data.get("ingress-class") or data.get("ingress.class") or "istio.ingress.networking.knative.dev"
    if effective.lower() != AMBASSADOR_CLASS:
        raise Failed(f"config-network's ingress class is {effective!r}, not Ambassador's ({AMBASSADOR_CLASS})", fix)
    return f"config-network ingress class {effective}"


def check_domain(cluster: kube.Cluster) -> str:
    ns = settings.RELAY_KNATIVE_NAMESPACE
    data = cluster.get_config_map(ns, "config-domain")
    fix = ("kubectl apply -f deploy/knative/config-domain.yaml (only svc.cluster.local, so no Knative "
           "Service is published outside the cluster).")
    if data is None:
        raise Failed(f"ConfigMap {ns}/config-domain does not exist", fix)
    domains = {k: v for k, v in data.items() if not k.startswith("_")}
    if CLUSTER_LOCAL_DOMAIN not in domains:
        raise Failed(f"config-domain has no {CLUSTER_LOCAL_DOMAIN} entry (domains: {sorted(domains) or 'none'})",
                     fix)
    public = sorted(k for k, v in domains.items() if k != CLUSTER_LOCAL_DOMAIN and not (v or "").strip())
    if public:
        raise Failed(f"config-domain also publishes every service on {', '.join(public)}", fix)
    return f"config-domain is cluster-local ({CLUSTER_LOCAL_DOMAIN})"


def check_ambassador(raw: dict) -> str:
    system = raw.get("system") if isinstance(raw.get("system"), dict) else {}
    version = system.get("version") or "unknown version"
    if system.get("knative_enabled") is not True:
        raise Failed(f"Ambassador {version} has Knative support off",
                     "Set AMBASSADOR_KNATIVE_SUPPORT=true on Ambassador (deploy/helm/ambassador does).")
    want = settings.RELAY_AMBASSADOR_ID or "default"
    have = system.get("ambassador_id")
    if have != want:
        raise Failed(f"Ambassador's ambassador_id is {have!r}, relayweb's RELAY_AMBASSADOR_ID is {want!r}: "
                     "Ambassador ignores every trigger's route",
                     "Make relay.ambassadorId (RELAY_AMBASSADOR_ID) and the Ambassador chart's ambassadorId equal.")
    return f"Ambassador {version} at {settings.RELAY_AMBASSADOR_ADMIN_URL}, Knative support on, ambassador_id {have!r}"


def check_permissions(cluster: kube.Cluster) -> str:
    denied = []
    for group, resource, verb, namespace in permissions():
        if not cluster.can_i(verb, resource, group, namespace):
            where = f" in {namespace}" if namespace else ""
            denied.append(f"{verb} {resource}{'.' + group if group else ''}{where}")
    wanted = len(permissions())
    if denied:
        raise Failed(f"{len(denied)} of {wanted} permissions denied: {'; '.join(denied)}",
                     "Install the relayweb chart's RBAC (deploy/helm/relayweb/templates/rbac.yaml) for the "
                     "ServiceAccount relayweb runs as.")
    return f"all {wanted} permissions relayweb uses are granted"


# ---------------------------------------------------------------------------------------- probe
def render_probe(namespace: str) -> dict:
    annotations = {kube.AMBASSADOR_ID: settings.RELAY_AMBASSADOR_ID} if settings.RELAY_AMBASSADOR_ID else {}
    return {
        "apiVersion": "serving.knative.dev/v1",
        "kind": "Service",
        "metadata": {"name": PROBE_NAME, "namespace": namespace, "annotations": annotations,
                     "labels": {PROBE_LABEL: "true", "networking.knative.dev/visibility": "cluster-local"}},
        "spec": {"template": {"spec": {"containers": [{"image": settings.RELAY_CHECK_PROBE_IMAGE}]}}},
    }


def _ready(ksvc: dict) -> tuple[bool | None, str]:
    """(True ready / False failed / None not yet, the Ready condition's reason and message)."""
    meta, status = ksvc.get("metadata") or {}, ksvc.get("status") or {}
    ready = next((c for c in status.get("conditions") or [] if c.get("type") == "Ready"), {})
    text = f"{ready.get('reason') or ''} {ready.get('message') or ''}".strip()
    if status.get("observedGeneration") != meta.get("generation"):
        return None, text
    return {"True": True, "False": False}.get(ready.get("status")), text


def probe(cluster: kube.Cluster, timeout: float | None = None, interval: float = 0.5) -> str:
    """Deploy a probe Knative Service, wait until Ready, send one request through the gateway, and
    delete its namespace whatever happened."""
    timeout = settings.RELAY_CHECK_PROBE_TIMEOUT if timeout is None else timeout
    namespace = f"{settings.RELAY_NAMESPACE_PREFIX}check-{secrets.token_hex(3)}"
    started = time.monotonic()
    try:
        cluster.apply_namespace({"apiVersion": "v1", "kind": "Namespace",
                                 "metadata": {"name": namespace, "labels": {PROBE_LABEL: "true"}}})
        cluster.apply_ksvc(render_probe(namespace), exists=False)
        state, text = None, ""
        while time.monotonic() - started < timeout:
            ksvc = cluster.get_ksvc(namespace, PROBE_NAME) or {}
            state, text = _ready(ksvc)
            if state is not None:
                break
            time.sleep(interval)
        if state is not True:
            seen = "failed" if state is False else f"not Ready after {timeout:.0f} s"
            raise Failed(f"probe Knative Service {namespace}/{PROBE_NAME} {seen}: {text or 'no status'}",
                         "Knative cannot run a Service: see `kubectl describe ksvc,revision,pod -n <ns>` of a "
                         f"probe (image {settings.RELAY_CHECK_PROBE_IMAGE}) and the checks above.")
        ready_after = time.monotonic() - started
        host = f"{PROBE_NAME}.{namespace}.svc.cluster.local"
        session = requests.Session()
        session.trust_env = False  # in-cluster: never through an HTTP proxy
        try:
            response = session.get(settings.RELAY_GATEWAY_URL + "/", headers={"Host": host},
                                   timeout=max(5.0, timeout - ready_after))
        except requests.RequestException as e:
            raise Failed(f"request to {settings.RELAY_GATEWAY_URL} (Host {host}) failed: {diag._reason(e)}",
                         "Point RELAY_GATEWAY_URL (chart value relay.gatewayUrl) at Ambassador's Service, "
                         "port 80.") from None
        finally:
            session.close()
        if not 200 <= response.status_code < 300:
            body = response.text.strip()[:120] or "empty body"
            raise Failed(f"the gateway answered {response.status_code} ({body}) for Host {host}",
                         "Ambassador has no working route for the probe: check its ambassador_id and "
                         "Knative support (above) and its diag page for errors.")
        return (f"probe ksvc Ready in {ready_after:.1f} s; {response.status_code} through "
                f"{settings.RELAY_GATEWAY_URL} in {response.elapsed.total_seconds() * 1000:.0f} ms")
    finally:
        try:
            cluster.delete_namespace(namespace)
        except kube.KubeError:
            pass  # reported by the result above; an orphan scratch namespace is labelled relayweb.io/check


# ---------------------------------------------------------------------------------------- run
def run_checks(cluster: kube.Cluster | None = None, *, with_probe: bool = False) -> list[Result]:
    try:
        cluster = cluster or kube.cluster()
    except kube.KubeError as e:
        return [Result("Kubernetes API", False, e.message, _api_fix(e))]
    results = [_run("Kubernetes API", lambda: check_api(cluster))]
    if not results[0].ok:
        return results  # nothing else can be read
    results += [
        _run("Kubernetes version", lambda: check_kubernetes_version(cluster)),
        _run("Knative Serving", lambda: check_knative(cluster)),
        _run("Ingress class", lambda: check_ingress_class(cluster)),
        _run("Cluster-local domain", lambda: check_domain(cluster)),
        _run("Ambassador", lambda: check_ambassador(diag.fetch(settings.RELAY_AMBASSADOR_ADMIN_URL))),
        _run("Permissions", lambda: check_permissions(cluster)),
    ]
    if with_probe:
        results.append(_run("End-to-end probe", lambda: probe(cluster)))
    return results


def table(results: Iterable[Result]) -> str:
    rows = []
    for r in results:
        rows.append(f"{'✓' if r.ok else '✗'} {r.name:<22} {r.detail}")
        if not r.ok and r.fix:
            rows.append(f"  {'':<22} fix: {r.fix}")
    return "\n".join(rows)


def as_dicts(results: Iterable[Result]) -> list[dict]:
    return [asdict(r) for r in results]
