"""CRUD through the official client: create/get/list/replace/delete, status, generation, RV conflicts."""

from __future__ import annotations

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from tests.kubesim.helpers import KSVC, G, V, cm, gone, ksvc, status_of, wait_for


def test_create_returns_201_and_the_object(custom, ns):
    obj = custom.create_namespaced_custom_object(G, V, ns, KSVC, ksvc("hello"))
    assert obj is not None, "a 200 instead of 201 makes the client return None"
    meta = obj["metadata"]
    assert meta["namespace"] == ns and isinstance(meta["resourceVersion"], str)
    assert meta["generation"] == 1 and meta["uid"]


def test_typed_create_get_list(core, ns):
    core.create_namespaced_config_map(ns, cm("a", labels={"app": "x"}))
    core.create_namespaced_config_map(ns, cm("b", labels={"app": "y"}))
    got = core.read_namespaced_config_map("a", ns)
    assert got.data == {"k": "v"} and got.metadata.labels == {"app": "x"}
    lst = core.list_namespaced_config_map(ns)
    assert [i.metadata.name for i in lst.items] == ["a", "b"]
    assert isinstance(lst.metadata.resource_version, str)


def test_cluster_wide_lists(core, custom, ns):
    core.create_namespaced_pod(ns, {"metadata": {"name": "p"},
                                    "spec": {"containers": [{"name": "c", "image": "busybox"}]}})
    pods = core.list_pod_for_all_namespaces(field_selector=f"metadata.namespace={ns}")
    assert [p.metadata.name for p in pods.items] == ["p"]
    custom.create_namespaced_custom_object(G, V, ns, KSVC, ksvc("cw"))
    allk = custom.list_cluster_custom_object(G, V, KSVC)
    assert any(i["metadata"]["name"] == "cw" and i["metadata"]["namespace"] == ns
               for i in allk["items"])


@pytest.mark.parametrize("selector,expected", [
    ("app=a", ["one"]), ("app==a", ["one"]), ("app!=a", ["three", "two"]),
    ("app in (a,b)", ["one", "two"]), ("app notin (a,b)", ["three"]),
    ("tier", ["one", "two"]), ("!tier", ["three"]), ("app in (a,b),tier=web", ["one"]),
])
def test_label_selectors(core, ns, selector, expected):
    core.create_namespaced_config_map(ns, cm("one", labels={"app": "a", "tier": "web"}))
    core.create_namespaced_config_map(ns, cm("two", labels={"app": "b", "tier": "db"}))
    core.create_namespaced_config_map(ns, cm("three", labels={"app": "c"}))
    got = core.list_namespaced_config_map(ns, label_selector=selector)
    assert sorted(i.metadata.name for i in got.items) == expected


def test_field_selectors(core, ns):
    core.create_namespaced_config_map(ns, cm("one"))
    core.create_namespaced_config_map(ns, cm("two"))
    got = core.list_namespaced_config_map(ns, field_selector="metadata.name=two")
    assert [i.metadata.name for i in got.items] == ["two"]
    got = core.list_config_map_for_all_namespaces(
        field_selector=f"metadata.namespace={ns},metadata.name!=two")
    assert [i.metadata.name for i in got.items] == ["one"]
    with pytest.raises(ApiException) as e:
        core.list_namespaced_config_map(ns, field_selector="spec.nope=1")
    assert e.value.status == 400


def test_replace_and_stale_resource_version(core, ns):
    obj = core.create_namespaced_config_map(ns, cm("a"))
    obj.data = {"k": "v2"}
    new = core.replace_namespaced_config_map("a", ns, obj)
    assert new.data == {"k": "v2"}
    assert int(new.metadata.resource_version) > int(obj.metadata.resource_version)
    obj.data = {"k": "stale"}
    with pytest.raises(ApiException) as e:
        core.replace_namespaced_config_map("a", ns, obj)
    assert e.value.status == 409
    body = status_of(e.value)
    assert body["reason"] == "Conflict"
    assert body["message"] == ('Operation cannot be fulfilled on configmaps "a": the object has been '
                               "modified; please apply your changes to the latest version and try "
                               "again")


def test_replace_custom_with_stale_rv_is_conflict(custom, ns):
    obj = custom.create_namespaced_custom_object(G, V, ns, KSVC, ksvc("c"))
    custom.patch_namespaced_custom_object(G, V, ns, KSVC, "c", {"metadata": {"labels": {"x": "y"}}})
    with pytest.raises(ApiException) as e:
        custom.replace_namespaced_custom_object(G, V, ns, KSVC, "c", obj)
    assert e.value.status == 409 and status_of(e.value)["message"].startswith(
        'Operation cannot be fulfilled on services.serving.knative.dev "c"')


def test_generation_bumps_only_on_spec_change(apps, ns):
    dep = {"metadata": {"name": "d"}, "spec": {
        "replicas": 0, "selector": {"matchLabels": {"app": "d"}},
        "template": {"metadata": {"labels": {"app": "d"}},
                     "spec": {"containers": [{"name": "c", "image": "x"}]}}}}
    d = apps.create_namespaced_deployment(ns, dep)
    assert d.metadata.generation == 1
    d = apps.patch_namespaced_deployment("d", ns, {"metadata": {"labels": {"a": "b"}}})
    assert d.metadata.generation == 1
    d = apps.patch_namespaced_deployment_status("d", ns, {"status": {"observedGeneration": 1}})
    assert d.metadata.generation == 1 and d.status.observed_generation == 1
    d = apps.patch_namespaced_deployment("d", ns, {"spec": {"replicas": 2}})
    assert d.metadata.generation == 2


def test_status_subresource(custom, ns):
    custom.create_namespaced_custom_object(G, V, ns, KSVC, ksvc("s"))

    def put_status():  # the Knative controller writes status too: retry on Conflict like a client would
        obj = custom.get_namespaced_custom_object_status(G, V, ns, KSVC, "s")
        obj["status"] = {"url": "http://changed"}
        obj["spec"]["template"]["spec"]["containers"][0]["image"] = "ignored"
        try:
            return custom.replace_namespaced_custom_object_status(G, V, ns, KSVC, "s", obj)
        except ApiException as e:
            if e.status != 409:
                raise
            return None

    out = wait_for(put_status)
    assert out["status"]["url"] == "http://changed"
    assert out["spec"]["template"]["spec"]["containers"][0]["image"] != "ignored"
    gen = out["metadata"]["generation"]
    out = custom.patch_namespaced_custom_object_status(G, V, ns, KSVC, "s",
                                                       {"status": {"url": "http://p"}})
    assert out["status"]["url"] == "http://p" and out["metadata"]["generation"] == gen
    # a plain update cannot change status
    def put_main():
        cur = custom.get_namespaced_custom_object(G, V, ns, KSVC, "s")
        cur["status"] = {"url": "http://nope"}
        try:
            return custom.replace_namespaced_custom_object(G, V, ns, KSVC, "s", cur)
        except ApiException as e:
            if e.status != 409:
                raise
            return None

    assert wait_for(put_main)["status"].get("url") != "http://nope"


def test_generate_name(core, ns):
    obj = core.create_namespaced_config_map(ns, {"metadata": {"generateName": "gen-"}})
    assert obj.metadata.name.startswith("gen-") and len(obj.metadata.name) == 9


def test_delete_returns_object_or_status(core, custom, ns):
    custom.create_namespaced_custom_object(G, V, ns, KSVC, ksvc("d"))
    out = custom.delete_namespaced_custom_object(G, V, ns, KSVC, "d")
    assert out["metadata"]["name"] == "d"
    core.create_namespaced_config_map(ns, cm("c"))
    st = core.delete_namespaced_config_map("c", ns)
    st = st if isinstance(st, dict) else st.to_dict()
    assert st["status"] == "Success" and st["details"]["name"] == "c"
    with pytest.raises(ApiException) as e:
        core.read_namespaced_config_map("c", ns)
    assert e.value.status == 404


def test_deletecollection(core, ns):
    for n in ("a", "b", "c"):
        core.create_namespaced_config_map(ns, cm(n, labels={"del": "yes" if n != "c" else "no"}))
    core.delete_collection_namespaced_config_map(ns, label_selector="del=yes")
    assert [i.metadata.name for i in core.list_namespaced_config_map(ns).items] == ["c"]


def test_finalizers_hold_deletion(core, ns):
    core.create_namespaced_config_map(ns, cm("f", finalizers=["example.com/hold"]))
    out = core.delete_namespaced_config_map("f", ns)
    out = out if isinstance(out, dict) else out.to_dict()
    got = core.read_namespaced_config_map("f", ns)
    assert got.metadata.deletion_timestamp is not None
    core.patch_namespaced_config_map("f", ns, {"metadata": {"finalizers": None}})
    with pytest.raises(ApiException) as e:
        core.read_namespaced_config_map("f", ns)
    assert e.value.status == 404


def test_owner_reference_garbage_collection(core, ns):
    owner = core.create_namespaced_config_map(ns, cm("owner"))
    ref = {"apiVersion": "v1", "kind": "ConfigMap", "name": "owner", "uid": owner.metadata.uid}
    core.create_namespaced_secret(ns, {"metadata": {"name": "child", "ownerReferences": [ref]}})
    core.delete_namespaced_config_map("owner", ns)
    wait_for(lambda: gone(lambda: core.read_namespaced_secret("child", ns)))


def test_namespace_terminating_then_gone_with_contents(core):
    core.create_namespace({"metadata": {"name": "doomed"}})
    core.create_namespaced_config_map("doomed", cm("held", finalizers=["example.com/x"]))
    core.create_namespaced_secret("doomed", {"metadata": {"name": "s"}})
    core.delete_namespace("doomed")
    assert core.read_namespace("doomed").status.phase == "Terminating"
    wait_for(lambda: gone(lambda: core.read_namespaced_secret("s", "doomed")))
    with pytest.raises(ApiException) as e:
        core.create_namespaced_config_map("doomed", cm("late"))
    assert e.value.status == 403 and "being terminated" in status_of(e.value)["message"]
    assert core.read_namespace("doomed").status.phase == "Terminating"
    core.patch_namespaced_config_map("held", "doomed", {"metadata": {"finalizers": None}})
    wait_for(lambda: gone(lambda: core.read_namespace("doomed")))


def test_seed_namespaces_have_labels(core):
    names = {n.metadata.name: n for n in core.list_namespace().items}
    assert {"default", "kube-system", "kube-public", "knative-serving", "ambassador"} <= set(names)
    assert names["knative-serving"].metadata.labels["app.kubernetes.io/name"] == "knative-serving"
    assert names["ambassador"].metadata.labels["app.kubernetes.io/name"] == "ambassador"


def test_networkpolicy_and_limitrange(k8s, core, ns):
    net = client.NetworkingV1Api(k8s)
    pol = {"metadata": {"name": "deny"}, "spec": {"podSelector": {}, "policyTypes": ["Ingress"]}}
    net.create_namespaced_network_policy(ns, pol)
    assert net.read_namespaced_network_policy("deny", ns).spec.policy_types == ["Ingress"]
    core.create_namespaced_limit_range(ns, {"metadata": {"name": "lr"}, "spec": {"limits": [
        {"type": "Container", "default": {"memory": "256Mi"}}]}})
    assert core.list_namespaced_limit_range(ns).items[0].metadata.name == "lr"
    core.create_namespaced_resource_quota(ns, {"metadata": {"name": "q"},
                                               "spec": {"hard": {"pods": "10"}}})
    assert core.read_namespaced_resource_quota("q", ns).spec.hard == {"pods": "10"}
    core.create_namespaced_event(ns, {"metadata": {"name": "e1"}, "involvedObject": {
        "kind": "Pod", "name": "p", "namespace": ns}, "reason": "Test", "message": "m"})
    evs = core.list_namespaced_event(ns, field_selector="involvedObject.name=p")
    assert [e.reason for e in evs.items] == ["Test"]


def test_custom_resources_need_a_resource_version_to_replace(custom, ns):
    obj = custom.create_namespaced_custom_object(G, V, ns, KSVC, ksvc("u"))
    del obj["metadata"]["resourceVersion"]
    with pytest.raises(ApiException) as e:
        custom.replace_namespaced_custom_object(G, V, ns, KSVC, "u", obj)
    body = status_of(e.value)
    assert e.value.status == 422 and body["reason"] == "Invalid"
    assert "metadata.resourceVersion: Invalid value: 0x0: must be specified for an update" in body["message"]
