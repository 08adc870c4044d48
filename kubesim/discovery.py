"""Legacy (non-aggregated) discovery documents, enough for kubectl's RESTMapper and short names.

kubectl 1.32 asks for aggregated discovery first; answering plain `application/json` makes it fall back to
these per-group documents, which are simpler and just as complete for our resource set.
"""

from __future__ import annotations

from collections.abc import Callable

from .resources import BY_GROUP_VERSION, RESOURCES, Resource

VERSION = {
    "major": "1", "minor": "34", "gitVersion": "v1.34.0-kubesim", "gitCommit": "kubesim",
    "gitTreeState": "clean", "buildDate": "2025-01-01T00:00:00Z", "goVersion": "go1.24.6",
    "compiler": "gc", "platform": "linux/amd64",
}


def version(kube_version: str) -> dict:
    """The /version document for `kube_version` ("1.34.0"): major, minor and gitVersion as the
    apiserver's version.Info has them (kubernetes/apimachinery pkg/version/types.go)."""
    major, minor = (kube_version.split(".") + ["0", "0"])[:2]
    return {**VERSION, "major": major, "minor": minor, "gitVersion": f"v{kube_version}-kubesim"}

_VERBS = ["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"]


def _groups() -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for r in RESOURCES.values():
        if r.group and r.version not in out.setdefault(r.group, []):
            out[r.group].append(r.version)
    return out


def api_versions(server_address: str) -> dict:
    return {"kind": "APIVersions", "versions": ["v1"],
            "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": server_address}]}


def _group_doc(name: str, versions: list[str]) -> dict:
    vs = [{"groupVersion": f"{name}/{v}", "version": v} for v in versions]
    return {"name": name, "versions": vs, "preferredVersion": vs[0]}


def api_group_list(served: Callable[[str], bool] = lambda group: True) -> dict:
    return {"kind": "APIGroupList", "apiVersion": "v1",
            "groups": [_group_doc(g, vs) for g, vs in sorted(_groups().items()) if served(g)]}


def api_group(group: str) -> dict | None:
    versions = _groups().get(group)
    if not versions:
        return None
    return {"kind": "APIGroup", "apiVersion": "v1", **_group_doc(group, versions)}


def _resource_doc(r: Resource) -> dict:
    doc: dict = {"name": r.plural, "singularName": r.singular, "namespaced": r.namespaced,
                 "kind": r.kind, "verbs": list(r.verbs) if r.verbs else _VERBS}
    if r.short_names:
        doc["shortNames"] = list(r.short_names)
    if r.categories:
        doc["categories"] = list(r.categories)
    return doc


def api_resource_list(group: str, version: str) -> dict | None:
    resources = BY_GROUP_VERSION.get((group, version))
    if resources is None:
        return None
    docs = []
    for r in resources.values():
        docs.append(_resource_doc(r))
        if r.has_status:
            docs.append({"name": f"{r.plural}/status", "singularName": "", "namespaced": r.namespaced,
                         "kind": r.kind, "verbs": ["get", "patch", "update"]})
        if r.key == "pods":
            docs.append({"name": "pods/log", "singularName": "", "namespaced": True, "kind": "Pod",
                         "verbs": ["get"]})
    return {"kind": "APIResourceList", "apiVersion": "v1",
            "groupVersion": version if not group else f"{group}/{version}", "resources": docs}
