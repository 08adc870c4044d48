"""The one seam to Kubernetes: pure render_*() functions and a thin client wrapper.

Render functions turn our models into manifests (no I/O, unit-tested against expected documents
and the real Knative CRD schema). `Cluster` wraps the official `kubernetes` client, counts the API
calls it makes, and maps `ApiException` to `KubeError` with `transient` set for what a retry may fix
(connection, timeout, 5xx, 429, 409 Conflict) and unset for what it will not (400/403/404/422),
always keeping the API server's own message.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import threading
from contextlib import contextmanager

import urllib3
from django.conf import settings
from kubernetes import client as k8s
from kubernetes import config as k8s_config
from kubernetes.client.exceptions import ApiException

log = logging.getLogger(__name__)

MANAGED_BY = "app.kubernetes.io/managed-by"
MANAGED = {MANAGED_BY: "relayweb"}
MANAGED_SELECTOR = f"{MANAGED_BY}=relayweb"
TENANT_LABEL = "relayweb.io/tenant"
TRIGGER_LABEL = "relayweb.io/trigger"
SPEC_HASH = "relayweb.io/spec-hash"
REDEPLOY = "relayweb.io/redeploy"
SECRET_VERSION = "relayweb.io/secret-version"
# The trigger's spec version a revision was made from: Knative copies the template's annotations onto each
# Revision, so the revision history can say which spec (and image) each one came from.
SPEC_VERSION = "relayweb.io/spec-version"
AMBASSADOR_ID = "getambassador.io/ambassador-id"
MIN_SCALE = "autoscaling.knative.dev/min-scale"
MAX_SCALE = "autoscaling.knative.dev/max-scale"
TARGET = "autoscaling.knative.dev/target"
# Knative's per-revision progress deadline (knative/serving knative-v1.23.0 pkg/apis/serving/register.go
# ProgressDeadlineAnnotationKey): the Deployment's progressDeadlineSeconds and the KPA's activation timeout
# (deadline + 30 s). It defaults to config-deployment's 600 s, equal to RELAY_DEPLOY_TIMEOUT, whose clock starts
# earlier (at apply): without it a pull or scheduling failure would always end as our Timeout, never as
# Knative's own reason.
PROGRESS_DEADLINE = "serving.knative.dev/progress-deadline"
# Template annotations we own: a merge patch sends null for the ones a spec no longer sets.
OWNED_TEMPLATE_ANNOTATIONS = (MIN_SCALE, MAX_SCALE, TARGET, REDEPLOY, SECRET_VERSION, PROGRESS_DEADLINE, SPEC_VERSION)
KSVC = {"group": "serving.knative.dev", "version": "v1", "plural": "services"}
REVISIONS = {"group": "serving.knative.dev", "version": "v1", "plural": "revisions"}
SERVICE_LABEL = "serving.knative.dev/service"
# Knative's default traffic for a Service (knative/serving knative-v1.23.0 pkg/apis/serving/v1/route_defaults.go:41-46)
DEFAULT_TRAFFIC = [{"latestRevision": True, "percent": 100}]
NETWORK_POLICY_NAME = "relayweb-default-deny"
LIMIT_RANGE_NAME = "relayweb-defaults"


# ---------------------------------------------------------------- rendering (pure)


def _labels(trigger) -> dict[str, str]:
    return {**MANAGED, TENANT_LABEL: str(trigger.tenant_id), TRIGGER_LABEL: str(trigger.pk)}


def render_ksvc(trigger) -> dict:
    """The cluster-local Knative Service of a trigger (ARCHITECTURE.md, "Rendered ksvc")."""
    template_annotations = {MIN_SCALE: str(trigger.min_scale), MAX_SCALE: str(trigger.max_scale),
                            PROGRESS_DEADLINE: f"{progress_deadline()}s", SPEC_VERSION: str(trigger.spec_version)}
    if trigger.target_concurrency:
        template_annotations[TARGET] = str(trigger.target_concurrency)
    if trigger.redeploy_stamp:
        template_annotations[REDEPLOY] = trigger.redeploy_stamp
    env = [{"name": item["name"], "value": item["value"]} for item in trigger.env]
    if trigger.secret_env:
        # Pods read secretKeyRef at start: a new secret version must roll a new revision. Each variable is
        # read from the immutable Secret of the change that set it, so no later change can reach (or break,
        # by a removed key) the pods an older revision still starts.
        template_annotations[SECRET_VERSION] = str(trigger.secret_version)
        env += [
            {"name": name, "valueFrom": {"secretKeyRef": {"name": secret_name(trigger, meta.get("version")),
                                                          "key": name}}}
            for name, meta in sorted(trigger.secret_env.items())
        ]
    container = {"image": trigger.image, "ports": [{"containerPort": trigger.port}]}
    if env:
        container["env"] = env
    labels = {
        **_labels(trigger),
        "networking.knative.dev/visibility": "cluster-local",  # Knative >= 0.18
        "serving.knative.dev/visibility": "cluster-local",  # Knative <= 0.20
    }
    annotations = {}
    if settings.RELAY_AMBASSADOR_ID:
        annotations[AMBASSADOR_ID] = settings.RELAY_AMBASSADOR_ID
    ksvc = {
        "apiVersion": "serving.knative.dev/v1",
        "kind": "Service",
        "metadata": {
            "name": trigger.name,
            "namespace": trigger.namespace,
            "labels": labels,
            "annotations": annotations,
        },
        "spec": {
            "template": {
                # revisions and pods carry these, so the watcher selects them like the ksvc
                "metadata": {
                    "labels": {**MANAGED, TRIGGER_LABEL: str(trigger.pk)},
                    "annotations": template_annotations,
                },
                "spec": {
                    "containerConcurrency": 0,
                    "timeoutSeconds": trigger.timeout_seconds,
                    "containers": [container],
                },
            }
        },
    }
    traffic = render_traffic(trigger.traffic)
    if traffic:
        ksvc["spec"]["traffic"] = traffic
    annotations[SPEC_HASH] = fingerprint(ksvc)
    return ksvc


def render_traffic(targets: list[dict]) -> list[dict]:
    """Trigger.traffic as Knative TrafficTargets (round2-facts.md §2.1: revisionName or latestRevision,
    percent, tag); [] (Knative's default: 100 % to the latest ready revision) for [] or that default."""
    rendered = []
    for target in targets or []:
        entry = ({"latestRevision": True} if target.get("latest")
                 else {"revisionName": target["revision"], "latestRevision": False})
        entry["percent"] = int(target.get("percent") or 0)
        if target.get("tag"):
            entry["tag"] = target["tag"]
        rendered.append(entry)
    return [] if _normal_traffic(rendered) == _normal_traffic(DEFAULT_TRAFFIC) else rendered


def _normal_traffic(traffic: list[dict] | None) -> list[dict]:
    """spec.traffic with Knative's defaults filled in (route_defaults.go: latestRevision = no revisionName,
    percent 0), so a rendered and a defaulted live list compare equal."""
    return [{"revisionName": t.get("revisionName") or "",
             "latestRevision": t.get("latestRevision", not t.get("revisionName")),
             "percent": t.get("percent") or 0, "tag": t.get("tag") or ""} for t in traffic or []]


def progress_deadline() -> int:
    """Seconds Knative gives a revision to become ready: RELAY_DEPLOY_TIMEOUT less a margin (a tenth of it,
    5 to 60 s) for what happens before Knative's clock starts (our apply, the Revision and its Deployment
    being created, the tag resolved) and for the watcher to see the verdict."""
    timeout = settings.RELAY_DEPLOY_TIMEOUT
    return max(1, timeout - max(5, min(60, timeout // 10)))


def fingerprint(ksvc: dict) -> str:
    """SHA-256 of the fields relayweb owns, read the same way from a rendered or a live ksvc.

    Knative adds defaults (container name, probes, traffic) that are not ours, so drift is judged
    on our fields only: a `kubectl edit` of any of them changes the fingerprint.
    """
    meta = ksvc.get("metadata") or {}
    template = (ksvc.get("spec") or {}).get("template") or {}
    tmeta, tspec = template.get("metadata") or {}, template.get("spec") or {}
    containers = tspec.get("containers") or [{}]
    owned = {
        "labels": {k: v for k, v in (meta.get("labels") or {}).items() if k.startswith(("relayweb.io/", MANAGED_BY))},
        "ambassador_id": (meta.get("annotations") or {}).get(AMBASSADOR_ID),
        "template_labels": {
            k: v for k, v in (tmeta.get("labels") or {}).items() if k.startswith(("relayweb.io/", MANAGED_BY))
        },
        "template_annotations": {
            k: v for k, v in (tmeta.get("annotations") or {}).items() if k in OWNED_TEMPLATE_ANNOTATIONS
        },
        "image": containers[0].get("image"),
        "ports": [p.get("containerPort") for p in containers[0].get("ports") or []],
        "env": containers[0].get("env") or [],
        "containerConcurrency": tspec.get("containerConcurrency"),
        "timeoutSeconds": tspec.get("timeoutSeconds"),
    }
    traffic = _normal_traffic((ksvc.get("spec") or {}).get("traffic"))
    if traffic and traffic != _normal_traffic(DEFAULT_TRAFFIC):  # absent by default: older hashes still match
        owned["traffic"] = traffic
    return hashlib.sha256(json.dumps(owned, sort_keys=True).encode()).hexdigest()


def ksvc_merge_patch(ksvc: dict) -> dict:
    """A JSON merge patch that makes a live ksvc match `ksvc` without touching Knative's annotations."""
    patch = json.loads(json.dumps(ksvc))
    annotations = patch["spec"]["template"]["metadata"]["annotations"]
    for key in OWNED_TEMPLATE_ANNOTATIONS:
        annotations.setdefault(key, None)
    patch["metadata"]["annotations"].setdefault(AMBASSADOR_ID, None)
    # The containers list is replaced whole (RFC 7386), so fields we no longer set simply vanish;
    # keep Knative's default container name so the replacement is not itself a change.
    patch["spec"]["template"]["spec"]["containers"][0]["name"] = "user-container"
    # spec.traffic is a list, replaced whole: no traffic rendered means Knative's default, written out so a
    # pinned split goes back to following the latest revision.
    patch["spec"].setdefault("traffic", [dict(t) for t in DEFAULT_TRAFFIC])
    return patch


def secret_name(trigger, version: int | None) -> str:
    """The Secret holding a secret variable set by the change that made spec version `version`:
    `<trigger>-env-<version>`; `<trigger>-env` for values set before Secrets were per version."""
    return f"{trigger.name}-env-{version}" if version else trigger.secret_name


def is_version_secret(trigger, name: str) -> bool:
    prefix = f"{trigger.name}-env-"
    return name.startswith(prefix) and name[len(prefix):].isdigit()


def render_secret(trigger, values: dict[str, str], version: int) -> dict:
    """The immutable Secret of one secret-variable change (the values it set), for spec version `version`."""
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": secret_name(trigger, version), "namespace": trigger.namespace,
                     "labels": _labels(trigger)},
        "type": "Opaque",
        "immutable": True,
        "stringData": values,
    }


# Pod Security admission (kubernetes.io/docs/concepts/security/pod-security-admission): handler pods
# must meet "baseline" (enforced), and "restricted" violations are warned about, so a cluster whose
# default level is "restricted" still runs them. Knative's queue-proxy meets restricted
# (knative/serving pkg/reconciler/revision/resources/queue.go queueSecurityContext).
POD_SECURITY = {
    "pod-security.kubernetes.io/enforce": "baseline",
    "pod-security.kubernetes.io/enforce-version": "latest",
    "pod-security.kubernetes.io/warn": "restricted",
    "pod-security.kubernetes.io/warn-version": "latest",
}


def revision_owner(revision: dict) -> dict:
    """An ownerReference to a Knative Revision: what it owns is garbage-collected with the last such owner."""
    meta = revision["metadata"]
    return {"apiVersion": "serving.knative.dev/v1", "kind": "Revision", "name": meta["name"], "uid": meta["uid"]}


def revision_secrets(revision: dict) -> set[str]:
    """The Secrets a revision's containers read variables from."""
    return {
        ref["name"]
        for container in (revision.get("spec") or {}).get("containers") or []
        for env in container.get("env") or []
        if (ref := (env.get("valueFrom") or {}).get("secretKeyRef")) and ref.get("name")
    }


def render_namespace(tenant) -> dict:
    return {
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {"name": tenant.namespace,
                     "labels": {**MANAGED, TENANT_LABEL: str(tenant.pk), **POD_SECURITY}},
    }


def render_network_policy(tenant) -> dict:
    """Default deny: only the gateway and Knative's own namespace may reach the tenant's pods."""
    allowed = [settings.RELAY_GATEWAY_NAMESPACE, settings.RELAY_KNATIVE_NAMESPACE]
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {"name": NETWORK_POLICY_NAME, "namespace": tenant.namespace, "labels": dict(MANAGED)},
        "spec": {
            "podSelector": {},
            "policyTypes": ["Ingress"],
            "ingress": [
                {
                    "from": [
                        {
                            "namespaceSelector": {
                                "matchExpressions": [
                                    {"key": "kubernetes.io/metadata.name", "operator": "In", "values": allowed}
                                ]
                            }
                        }
                    ]
                }
            ],
        },
    }


def render_limit_range(tenant) -> dict:
    return {
        "apiVersion": "v1",
        "kind": "LimitRange",
        "metadata": {"name": LIMIT_RANGE_NAME, "namespace": tenant.namespace, "labels": dict(MANAGED)},
        "spec": {
            "limits": [
                {
                    "type": "Container",
                    "defaultRequest": {"cpu": settings.RELAY_DEFAULT_CPU_REQUEST,
                                       "memory": settings.RELAY_DEFAULT_MEMORY_REQUEST},
                    "default": {"cpu": settings.RELAY_DEFAULT_CPU_LIMIT, "memory": settings.RELAY_DEFAULT_MEMORY_LIMIT},
                }
            ]
        },
    }


# ---------------------------------------------------------------- errors


class KubeError(Exception):
    def __init__(self, message: str, *, status: int = 0, reason: str = "", transient: bool = False):
        super().__init__(message)
        self.message, self.status, self.reason, self.transient = message, status, reason, transient


TRANSIENT_STATUSES = {409, 429} | set(range(500, 600))


def error_from_api(e: ApiException) -> KubeError:
    reason, message = e.reason or "", ""
    try:
        body = json.loads(e.body or "")
        reason, message = body.get("reason") or reason, body.get("message") or ""
    except (TypeError, ValueError, AttributeError):
        message = (e.body or "").strip() if isinstance(e.body, str) else ""
    message = message or f"{e.status} {e.reason}"
    # 409 AlreadyExists is a state, handled by the callers; 409 Conflict is a stale write: retry.
    transient = e.status in TRANSIENT_STATUSES and reason != "AlreadyExists"
    return KubeError(message, status=e.status, reason=reason, transient=transient)


@contextmanager
def translated_errors():
    try:
        yield
    except ApiException as e:
        raise error_from_api(e) from None
    except (urllib3.exceptions.HTTPError, OSError) as e:
        raise KubeError(f"cannot reach the Kubernetes API: {e}", transient=True) from None


# ---------------------------------------------------------------- client wrapper


class CountingApiClient(k8s.ApiClient):
    """Counts requests (benchmarks report API calls per deploy and per reconcile)."""

    calls = 0

    def call_api(self, *args, **kwargs):
        CountingApiClient.calls += 1
        return super().call_api(*args, **kwargs)


def _configuration() -> k8s.Configuration:
    configuration = k8s.Configuration()
    path = settings.RELAY_KUBECONFIG
    if path:
        try:
            k8s_config.load_kube_config(config_file=path, context=settings.RELAY_KUBE_CONTEXT or None,
                                        client_configuration=configuration)
        except (k8s_config.ConfigException, OSError) as e:
            # e.g. kubesim is still starting and has not written it yet: worth a retry
            raise KubeError(f"cannot load kubeconfig {path}: {e}", transient=True) from None
    elif os.environ.get("KUBERNETES_SERVICE_HOST"):
        k8s_config.load_incluster_config(client_configuration=configuration)
    else:
        raise KubeError("no cluster configured: set RELAY_KUBECONFIG (or KUBECONFIG), or run in a cluster")
    return configuration


class Cluster:
    """Thin wrapper over the official client: the calls relayweb makes, and nothing else."""

    def __init__(self, api_client: k8s.ApiClient | None = None):
        self.api_client = api_client or CountingApiClient(_configuration())
        self.core = k8s.CoreV1Api(self.api_client)
        self.custom = k8s.CustomObjectsApi(self.api_client)
        self.networking = k8s.NetworkingV1Api(self.api_client)
        self.authorization = k8s.AuthorizationV1Api(self.api_client)
        self.coordination = k8s.CoordinationV1Api(self.api_client)
        self.timeout = settings.RELAY_KUBE_TIMEOUT

    # Knative Services
    def get_ksvc(self, namespace: str, name: str) -> dict | None:
        with translated_errors():
            try:
                return self.custom.get_namespaced_custom_object(
                    namespace=namespace, name=name, _request_timeout=self.timeout, **KSVC)
            except ApiException as e:
                if e.status == 404:
                    return None
                raise

    def get_revision(self, namespace: str, name: str) -> dict | None:
        with translated_errors():
            try:
                return self.custom.get_namespaced_custom_object(
                    namespace=namespace, name=name, group="serving.knative.dev", version="v1", plural="revisions",
                    _request_timeout=self.timeout)
            except ApiException as e:
                if e.status == 404:
                    return None
                raise

    def list_revisions(self, namespace: str, service: str) -> list[dict]:
        """A Knative Service's revisions (label serving.knative.dev/service), those Knative's GC kept."""
        with translated_errors():
            return self.custom.list_namespaced_custom_object(
                namespace=namespace, label_selector=f"{SERVICE_LABEL}={service}", _request_timeout=self.timeout,
                **REVISIONS)["items"]

    def list_revision_pods(self, namespace: str, revision: str) -> list[dict]:
        """A revision's pods (Knative labels them with it), as plain JSON."""
        with translated_errors():
            return json.loads(self.core.list_namespaced_pod(
                namespace, label_selector=f"serving.knative.dev/revision={revision}", _preload_content=False,
                _request_timeout=self.timeout).data)["items"]

    def list_ksvcs(self, namespace: str, label_selector: str = MANAGED_SELECTOR) -> list[dict]:
        with translated_errors():
            return self.custom.list_namespaced_custom_object(
                namespace=namespace, label_selector=label_selector, _request_timeout=self.timeout, **KSVC
            )["items"]

    def list_all_ksvcs(self, label_selector: str = MANAGED_SELECTOR) -> list[dict]:
        """Every managed ksvc in the cluster, in one call."""
        with translated_errors():
            return self.custom.list_cluster_custom_object(
                label_selector=label_selector, _request_timeout=self.timeout, **KSVC)["items"]

    def apply_ksvc(self, ksvc: dict, *, exists: bool) -> dict:
        """Create, or merge-patch an existing ksvc (never a PUT: it would drop Knative's creator
        annotation). `exists` picks the first try, so the usual case is one call."""
        ns, name = ksvc["metadata"]["namespace"], ksvc["metadata"]["name"]
        with translated_errors():
            for attempt in ("patch", "create") if exists else ("create", "patch"):
                try:
                    if attempt == "create":
                        return self.custom.create_namespaced_custom_object(
                            namespace=ns, body=ksvc, field_manager="relayweb", _request_timeout=self.timeout, **KSVC)
                    return self.custom.patch_namespaced_custom_object(
                        namespace=ns, name=name, body=ksvc_merge_patch(ksvc), field_manager="relayweb",
                        _request_timeout=self.timeout, **KSVC)
                except ApiException as e:
                    if attempt == "create" and e.status == 409 and error_from_api(e).reason == "AlreadyExists":
                        continue
                    if attempt == "patch" and e.status == 404:
                        continue
                    raise
        raise KubeError(f"ksvc {ns}/{name} changed while it was applied", transient=True)

    def delete_ksvc(self, namespace: str, name: str) -> bool:
        return self._delete(lambda: self.custom.delete_namespaced_custom_object(
            namespace=namespace, name=name, _request_timeout=self.timeout, **KSVC))

    # Secrets
    def create_secret(self, secret: dict) -> None:
        """Create an immutable Secret; one left by an earlier attempt at the same version (which never
        became part of a spec) is replaced."""
        meta = secret["metadata"]
        with translated_errors():
            try:
                self.core.create_namespaced_secret(meta["namespace"], secret, _request_timeout=self.timeout)
                return
            except ApiException as e:
                if e.status != 409:
                    raise
            self.core.delete_namespaced_secret(meta["name"], meta["namespace"], _request_timeout=self.timeout)
            self.core.create_namespaced_secret(meta["namespace"], secret, _request_timeout=self.timeout)

    def add_secret_owner(self, namespace: str, name: str, owner: dict) -> bool:
        """Add an ownerReference (strategic merge by uid keeps the others). False when the Secret is gone."""
        patch = {"metadata": {"ownerReferences": [owner]}}
        with translated_errors():
            try:
                self.core.patch_namespaced_secret(name, namespace, patch, _request_timeout=self.timeout)
            except ApiException as e:
                if e.status == 404:
                    return False
                raise
        return True

    def delete_secret(self, namespace: str, name: str) -> bool:
        return self._delete(lambda: self.core.delete_namespaced_secret(name, namespace, _request_timeout=self.timeout))

    # Tenant namespaces
    def apply_namespace(self, namespace: dict) -> None:
        self._create_or_patch(self.core.create_namespace, self.core.patch_namespace, namespace, namespaced=False)

    def get_namespace(self, name: str):
        with translated_errors():
            try:
                return self.core.read_namespace(name, _request_timeout=self.timeout)
            except ApiException as e:
                if e.status == 404:
                    return None
                raise

    def list_namespaces(self, label_selector: str) -> list:
        """Namespaces with these labels (V1Namespace objects); reconcile compares their labels."""
        with translated_errors():
            return self.core.list_namespace(label_selector=label_selector, _request_timeout=self.timeout).items

    def label_namespace(self, name: str, labels: dict[str, str]) -> None:
        """Set these labels on a namespace (a strategic merge patch: other labels stay)."""
        with translated_errors():
            self.core.patch_namespace(name, {"metadata": {"labels": labels}}, _request_timeout=self.timeout)

    def delete_namespace(self, name: str) -> bool:
        return self._delete(lambda: self.core.delete_namespace(name, _request_timeout=self.timeout))

    def apply_network_policy(self, policy: dict) -> None:
        self._create_or_patch(self.networking.create_namespaced_network_policy,
                              self.networking.patch_namespaced_network_policy, policy)

    def apply_limit_range(self, limit_range: dict) -> None:
        self._create_or_patch(self.core.create_namespaced_limit_range,
                              self.core.patch_namespaced_limit_range, limit_range)

    # Leases (the watcher's leader election, triggers/cluster/leader.py): plain dicts in the apiserver's JSON form
    def get_lease(self, namespace: str, name: str) -> dict | None:
        with translated_errors():
            try:
                # the wire JSON, so MicroTimes stay as the apiserver wrote them
                response = self.coordination.read_namespaced_lease(
                    name, namespace, _preload_content=False, _request_timeout=self.timeout)
            except ApiException as e:
                if e.status == 404:
                    return None
                raise
        return json.loads(response.data)

    def create_lease(self, lease: dict) -> None:
        with translated_errors():
            self.coordination.create_namespaced_lease(lease["metadata"]["namespace"], lease,
                                                      _request_timeout=self.timeout)

    def replace_lease(self, lease: dict) -> None:
        """PUT with the resourceVersion read: a concurrent writer makes it 409 Conflict."""
        meta = lease["metadata"]
        with translated_errors():
            self.coordination.replace_namespaced_lease(meta["name"], meta["namespace"], lease,
                                                       _request_timeout=self.timeout)

    # What `manage.py check_cluster` reads (triggers/cluster/check.py)
    def server_version(self) -> dict:
        """GET /version: {"major", "minor", "gitVersion", …}."""
        with translated_errors():
            info = k8s.VersionApi(self.api_client).get_code(_request_timeout=self.timeout)
        return {"major": info.major, "minor": info.minor, "gitVersion": info.git_version}

    def served_versions(self, group: str) -> list[str]:
        """The versions of an API group the server serves (discovery), [] when it serves none."""
        with translated_errors():
            groups = k8s.ApisApi(self.api_client).get_api_versions(_request_timeout=self.timeout).groups
        return next(([v.version for v in g.versions] for g in groups if g.name == group), [])

    def served_resources(self, group: str, version: str) -> list[str]:
        """Resource names under /apis/<group>/<version> (discovery)."""
        with translated_errors():
            listing = k8s.CustomObjectsApi(self.api_client).get_api_resources(
                group, version, _request_timeout=self.timeout)
        return [r.name for r in listing.resources]

    def get_config_map(self, namespace: str, name: str) -> dict | None:
        """The data of a ConfigMap, None when it does not exist."""
        with translated_errors():
            try:
                cm = self.core.read_namespaced_config_map(name, namespace, _request_timeout=self.timeout)
            except ApiException as e:
                if e.status == 404:
                    return None
                raise
        return dict(cm.data or {})

    def can_i(self, verb: str, resource: str, group: str = "", namespace: str = "") -> bool:
        """A SelfSubjectAccessReview: may this client's identity do `verb` on `resource` ("pods/log": a subresource,
        sent as resource "pods" and subresource "log", as ResourceAttributes separates them)?"""
        resource, _, subresource = resource.partition("/")
        attributes = {"group": group, "resource": resource, "verb": verb, "namespace": namespace}
        if subresource:
            attributes["subresource"] = subresource
        review = {"apiVersion": "authorization.k8s.io/v1", "kind": "SelfSubjectAccessReview",
                  "spec": {"resourceAttributes": attributes}}
        with translated_errors():
            answer = self.authorization.create_self_subject_access_review(review, _request_timeout=self.timeout)
        return bool(answer.status and answer.status.allowed)

    # helpers
    def _create_or_patch(self, create, patch, obj: dict, namespaced: bool = True) -> None:
        ns_args = (obj["metadata"]["namespace"],) if namespaced else ()
        with translated_errors():
            try:
                create(*ns_args, obj, _request_timeout=self.timeout)
            except ApiException as e:
                if e.status != 409:
                    raise
                patch(obj["metadata"]["name"], *ns_args, obj, _request_timeout=self.timeout)

    @staticmethod
    def _delete(call) -> bool:
        """Delete; False when it was already gone."""
        with translated_errors():
            try:
                call()
                return True
            except ApiException as e:
                if e.status == 404:
                    return False
                raise


_local = threading.local()


def cluster() -> Cluster:
    """The process's client, built on first use (after a Celery worker forks, never before)."""
    current = getattr(_local, "cluster", None)
    if current is None or getattr(_local, "pid", None) != os.getpid():
        _local.cluster, _local.pid = Cluster(), os.getpid()
    return _local.cluster


def reset_cluster() -> None:
    _local.cluster = None
