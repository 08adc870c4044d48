"""The resource registry: every kind kubesim serves, with the identity discovery and kubectl need.

One table drives the URL router, discovery, the store's defaults (apiVersion/kind) and the error messages,
so a resource added here is served everywhere at once.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Resource:
    group: str  # "" for core
    version: str
    kind: str
    plural: str
    singular: str
    namespaced: bool
    short_names: tuple[str, ...]
    has_status: bool
    categories: tuple[str, ...] = ()
    # name rule for metadata.name: "subdomain" (DNS-1123 subdomain), "label" (DNS-1123 label),
    # "dns1035" (DNS-1035 label, e.g. core Services).
    name_rule: str = "subdomain"
    # additionalPrinterColumns (name, type, jsonPath) for Table output; the NAME and AGE columns are implicit.
    columns: tuple[tuple[str, str, str], ...] = ()
    # The verbs served, when not all of them (SelfSubjectAccessReview: create only).
    verbs: tuple[str, ...] = ()

    @property
    def key(self) -> str:
        return self.plural if not self.group else f"{self.plural}.{self.group}"

    @property
    def custom(self) -> bool:
        """A CRD-defined resource (no strategic merge, atomic lists, generic Invalid messages)."""
        return self.group not in ("", "apps", "networking.k8s.io")

    @property
    def api_version(self) -> str:
        return self.version if not self.group else f"{self.group}/{self.version}"

    @property
    def list_kind(self) -> str:
        return self.kind + "List"

    @property
    def qualified_kind(self) -> str:
        """`Kind.group` as the apiserver writes it in Invalid messages (`Pod`, `Service.serving.knative.dev`)."""
        return self.kind if not self.group else f"{self.kind}.{self.group}"


_READY = ".status.conditions[?(@.type=='Ready')].status"
_REASON = ".status.conditions[?(@.type=='Ready')].reason"
_KN = ("all", "knative", "serving")

_ALL: tuple[Resource, ...] = (
    Resource("", "v1", "Namespace", "namespaces", "namespace", False, ("ns",), True, (), "label"),
    Resource("", "v1", "Pod", "pods", "pod", True, ("po",), True, ("all",)),
    Resource("", "v1", "Secret", "secrets", "secret", True, (), False),
    Resource("", "v1", "ConfigMap", "configmaps", "configmap", True, ("cm",), False),
    Resource("", "v1", "Service", "services", "service", True, ("svc",), True, ("all",), "dns1035"),
    Resource("", "v1", "Event", "events", "event", True, ("ev",), False),
    Resource("", "v1", "LimitRange", "limitranges", "limitrange", True, ("limits",), False),
    Resource("", "v1", "ResourceQuota", "resourcequotas", "resourcequota", True, ("quota",), True),
    Resource("apps", "v1", "Deployment", "deployments", "deployment", True, ("deploy",), True, ("all",)),
    Resource("networking.k8s.io", "v1", "NetworkPolicy", "networkpolicies", "networkpolicy", True,
             ("netpol",), False),
    Resource("serving.knative.dev", "v1", "Service", "services", "service", True, ("kservice", "ksvc"),
             True, _KN, "dns1035",
             (("URL", "string", ".status.url"),
              ("LatestCreated", "string", ".status.latestCreatedRevisionName"),
              ("LatestReady", "string", ".status.latestReadyRevisionName"),
              ("Ready", "string", _READY), ("Reason", "string", _REASON))),
    Resource("serving.knative.dev", "v1", "Configuration", "configurations", "configuration", True,
             ("config", "cfg"), True, _KN, "dns1035",
             (("LatestCreated", "string", ".status.latestCreatedRevisionName"),
              ("LatestReady", "string", ".status.latestReadyRevisionName"),
              ("Ready", "string", _READY), ("Reason", "string", _REASON))),
    Resource("serving.knative.dev", "v1", "Revision", "revisions", "revision", True, ("rev",), True, _KN,
             "subdomain",
             (("Config Name", "string",
               ".metadata.labels['serving\\.knative\\.dev/configuration']"),
              ("Generation", "string",
               ".metadata.labels['serving\\.knative\\.dev/configurationGeneration']"),
              ("Ready", "string", _READY), ("Reason", "string", _REASON),
              ("Actual Replicas", "integer", ".status.actualReplicas"),
              ("Desired Replicas", "integer", ".status.desiredReplicas"))),
    Resource("serving.knative.dev", "v1", "Route", "routes", "route", True, ("rt",), True, _KN, "dns1035",
             (("URL", "string", ".status.url"), ("Ready", "string", _READY),
              ("Reason", "string", _REASON))),
    # kubernetes/api coordination/v1 types.go: Lease (leader election).
    Resource("coordination.k8s.io", "v1", "Lease", "leases", "lease", True, (), False),
    # kubernetes/api authorization/v1 types.go: SelfSubjectAccessReview, create-only and never stored.
    Resource("authorization.k8s.io", "v1", "SelfSubjectAccessReview", "selfsubjectaccessreviews",
             "selfsubjectaccessreview", False, (), False, verbs=("create",)),
    Resource("networking.internal.knative.dev", "v1alpha1", "Ingress", "ingresses", "ingress", True,
             ("kingress", "king"), True, ("knative-internal", "networking"), "subdomain",
             (("Ready", "string", _READY), ("Reason", "string", _REASON))),
)

RESOURCES: dict[str, Resource] = {r.key: r for r in _ALL}

# (group, version) -> {plural: Resource}, for the URL router and discovery.
BY_GROUP_VERSION: dict[tuple[str, str], dict[str, Resource]] = {}
for _r in _ALL:
    BY_GROUP_VERSION.setdefault((_r.group, _r.version), {})[_r.plural] = _r


def resource(key: str) -> Resource:
    """The registry entry for `key` (KeyError for an unknown key: a programming error, not a client one)."""
    return RESOURCES[key]


def lookup(group: str, version: str, plural: str) -> Resource | None:
    """The resource served at /api(s)/group/version/plural, or None (-> 404 from the API server)."""
    return BY_GROUP_VERSION.get((group, version), {}).get(plural)
