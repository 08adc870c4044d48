"""RBAC: the relayweb chart grants exactly what relayweb's code calls, and no chart grants "*".

The calls are read from the code, not from a list kept by hand: every `<x>.core.…`, `<x>.custom.…`
and `<x>.networking.…` method that triggers/ and tenants/ use (called, or passed on as in
`_create_or_patch(self.core.create_namespace, …)`), resolved through the official client's own
request builder (HTTP method and path) to (apiGroup, resource, verb).
"""

from __future__ import annotations

import ast
import functools
import inspect
import re

import pytest
from kubernetes import client as k8s

from tests.deploy.charts import RELAYWEB_REQUIRED, REPO, find, render

# The watcher (a later issue) lists and watches these cluster-wide: read-only, granted ahead of its code.
WATCHER_ALLOWANCE = {
    ("serving.knative.dev", "services", "watch"),
    ("serving.knative.dev", "revisions", "list"),
    ("serving.knative.dev", "revisions", "watch"),
    ("", "pods", "get"), ("", "pods", "list"), ("", "pods", "watch"),
    ("", "events", "get"), ("", "events", "list"), ("", "events", "watch"),
}
# Every authenticated identity may create these (the default system:basic-user ClusterRole).
EVERYONE = {("authorization.k8s.io", "selfsubjectaccessreviews", "create")}
SOURCES = ["triggers", "tenants", "relayweb"]
VERBS = {"POST": "create", "PUT": "update", "PATCH": "patch", "DELETE": "delete"}


def api_classes() -> dict[str, type]:
    """Cluster's attributes and their client classes, read from `self.core = k8s.CoreV1Api(…)` in kube.py."""
    tree = ast.parse((REPO / "triggers" / "cluster" / "kube.py").read_text())
    found = {}
    for node in ast.walk(tree):
        if (isinstance(node, ast.Assign) and isinstance(node.value, ast.Call)
                and isinstance(node.value.func, ast.Attribute) and node.value.func.attr.endswith("Api")):
            for target in node.targets:
                if isinstance(target, ast.Attribute) and isinstance(target.value, ast.Name):
                    found[target.attr] = getattr(k8s, node.value.func.attr)
    return found


@functools.cache
def request_of(cls: type, method: str) -> tuple[str, str]:
    """(HTTP method, resource path) from the client's generated `_<method>_serialize`."""
    source = inspect.getsource(getattr(cls, f"_{method}_serialize"))
    http = re.search(r"method='(\w+)'", source).group(1)
    path = re.search(r"resource_path='([^']+)'", source).group(1)
    return http, path


def to_rule(http: str, path: str, params: dict[str, str], where: str) -> set[tuple[str, str, str]]:
    for key in re.findall(r"\{(\w+)\}", path):
        if key in ("group", "plural") and key not in params:
            raise AssertionError(f"{where}: cannot tell the {key} of this call; pass it as a literal keyword")
        if key in params:
            path = path.replace("{" + key + "}", params[key])
    parts = path.strip("/").split("/")
    if parts[0] == "api":
        group, rest = "", parts[2:]
    else:
        group, rest = parts[1], parts[3:]
    if rest[:2] == ["namespaces", "{namespace}"] and len(rest) > 2:
        rest = rest[2:]
    resource, named = rest[0], len(rest) > 1
    if len(rest) > 2:
        resource += "/" + rest[2]
    if http == "GET":
        verb = "get" if named else "list"
    elif http == "DELETE" and not named:
        verb = "deletecollection"
    else:
        verb = VERBS[http]
    return {(group, resource, verb)}


def module_constants(tree: ast.Module) -> dict[str, dict]:
    constants = {}
    for node in tree.body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
            try:
                constants[node.targets[0].id] = ast.literal_eval(node.value)
            except ValueError:
                pass
    return constants


@functools.cache
def required_permissions() -> dict[tuple[str, str, str], list[str]]:
    """Every (apiGroup, resource, verb) the code needs, with where it is needed."""
    apis = api_classes()
    assert set(apis) >= {"core", "custom", "networking"}, apis
    needed: dict[tuple[str, str, str], list[str]] = {}
    files = [p for package in SOURCES for p in (REPO / package).rglob("*.py") if "migrations" not in p.parts]
    for path in files:
        tree = ast.parse(path.read_text())
        constants = module_constants(tree)
        calls = {id(n.func): n for n in ast.walk(tree) if isinstance(n, ast.Call)}
        # watch.Watch().stream(api.list_…, group=…, plural=…): the stream call carries the arguments.
        streamed = {id(n.args[0]): n for n in ast.walk(tree) if isinstance(n, ast.Call) and n.args
                    and isinstance(n.func, ast.Attribute) and n.func.attr == "stream"}
        for node in ast.walk(tree):
            if not (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Attribute)
                    and node.value.attr in apis):
                continue
            cls, method = apis[node.value.attr], node.attr
            if not hasattr(cls, f"_{method}_serialize"):
                continue
            where = f"{path.relative_to(REPO)}:{node.lineno} {node.value.attr}.{method}"
            params: dict[str, str] = {}
            call = calls.get(id(node)) or streamed.get(id(node))
            if call is not None:
                for kw in call.keywords:
                    if kw.arg is None and isinstance(kw.value, ast.Name):  # **KSVC
                        params.update(constants.get(kw.value.id, {}))
                    elif kw.arg and isinstance(kw.value, ast.Constant):
                        params[kw.arg] = kw.value.value
            rules = to_rule(*request_of(cls, method), params, where)
            if id(node) in streamed:  # a watch needs list and watch
                rules |= {(g, r, "watch") for g, r, _ in rules}
            for rule in rules:
                needed.setdefault(rule, []).append(where)
    return needed


def granted(objects: list[dict], kind: str = "ClusterRole") -> set[tuple[str, str, str]]:
    rules = set()
    for role in (o for o in objects if o["kind"] == kind):
        for rule in role["rules"]:
            for group in rule["apiGroups"]:
                for resource in rule["resources"]:
                    for verb in rule["verbs"]:
                        rules.add((group, resource, verb))
    return rules


@pytest.fixture(scope="module")
def relayweb_objects():
    return render("relayweb", RELAYWEB_REQUIRED)


def test_the_code_reading_finds_the_calls_relayweb_makes():
    needed = required_permissions()
    for rule in [("", "namespaces", "create"), ("", "namespaces", "patch"), ("", "namespaces", "get"),
                 ("", "namespaces", "delete"), ("", "secrets", "create"), ("", "secrets", "patch"),
                 ("", "limitranges", "create"), ("networking.k8s.io", "networkpolicies", "create"),
                 ("serving.knative.dev", "services", "patch"), ("serving.knative.dev", "services", "list"),
                 ("serving.knative.dev", "revisions", "get")]:
        assert rule in needed, rule


def test_every_call_relayweb_makes_is_granted(relayweb_objects):
    needed = required_permissions()
    have = granted(relayweb_objects) | granted(relayweb_objects, "Role") | EVERYONE
    missing = {rule: needed[rule] for rule in set(needed) - have}
    assert not missing, f"grant these in deploy/helm/relayweb/templates/rbac.yaml: {missing}"


def test_nothing_is_granted_beyond_the_calls_and_the_watchers_allowance(relayweb_objects):
    extra = (granted(relayweb_objects) | granted(relayweb_objects, "Role")) - set(required_permissions()) \
        - WATCHER_ALLOWANCE
    assert not extra, f"granted but never used: {sorted(extra)}"


def test_the_knative_config_maps_are_readable_by_name_in_knatives_namespace_only(relayweb_objects):
    role = find(relayweb_objects, "Role", "relayweb-testns-check")
    assert role["metadata"]["namespace"] == "knative-serving"
    assert role["rules"] == [{"apiGroups": [""], "resources": ["configmaps"],
                              "resourceNames": ["config-network", "config-domain"], "verbs": ["get"]}]
    binding = find(relayweb_objects, "RoleBinding", "relayweb-testns-check")
    assert binding["metadata"]["namespace"] == "knative-serving"
    assert binding["roleRef"]["name"] == role["metadata"]["name"]
    assert binding["subjects"][0]["name"] == find(relayweb_objects, "ServiceAccount")["metadata"]["name"]


def test_the_watchers_may_hold_a_lease_in_the_release_namespace_only(relayweb_objects):
    role = find(relayweb_objects, "Role", "relayweb-leader-election")
    assert role["metadata"]["namespace"] == "testns"
    assert role["rules"] == [{"apiGroups": ["coordination.k8s.io"], "resources": ["leases"],
                              "verbs": ["get", "create", "update"]}]
    binding = find(relayweb_objects, "RoleBinding", "relayweb-leader-election")
    assert binding["metadata"]["namespace"] == "testns" and binding["roleRef"]["name"] == role["metadata"]["name"]
    config = find(relayweb_objects, "ConfigMap", "relayweb")["data"]
    assert config["RELAY_LEADER_LEASE_NAMESPACE"] == "testns"
    watcher = find(relayweb_objects, "Deployment", "relayweb-watcher")
    # rolling updates: the Lease makes two watchers overlapping safe
    assert watcher["spec"]["replicas"] == 2 and "strategy" not in watcher["spec"]


def test_the_role_is_bound_to_the_releases_service_account_only(relayweb_objects):
    binding = find(relayweb_objects, "ClusterRoleBinding")
    account = find(relayweb_objects, "ServiceAccount")
    assert binding["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole",
                                  "name": find(relayweb_objects, "ClusterRole")["metadata"]["name"]}
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": account["metadata"]["name"],
                                    "namespace": "testns"}]


@pytest.mark.parametrize("chart, values", [("relayweb", RELAYWEB_REQUIRED), ("ambassador", {})])
def test_no_wildcards_and_no_builtin_admin_roles(chart, values):
    objects = render(chart, values)
    roles = [o for o in objects if o["kind"] in ("ClusterRole", "Role")]
    assert roles
    for role in roles:
        for rule in role["rules"]:
            for field in ("apiGroups", "resources", "verbs", "resourceNames", "nonResourceURLs"):
                assert not any("*" in item for item in rule.get(field, [])), (role["metadata"]["name"], rule)
    for binding in (o for o in objects if o["kind"] in ("ClusterRoleBinding", "RoleBinding")):
        assert binding["roleRef"]["name"] not in ("cluster-admin", "admin", "edit")


def test_ambassador_may_read_knative_ingresses_and_update_their_status():
    rules = granted(render("ambassador"))
    for verb in ("get", "list", "watch"):
        assert ("networking.internal.knative.dev", "ingresses", verb) in rules
    assert ("networking.internal.knative.dev", "ingresses/status", "update") in rules
    # It reads the cluster; it writes nothing but statuses.
    assert {verb for _, resource, verb in rules if not resource.endswith("/status")} == {"get", "list", "watch"}
