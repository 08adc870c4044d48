"""The Store's own contract (the shared core of the API server and the Knative controllers)."""

from __future__ import annotations

import asyncio

import pytest

from kubesim.errors import ApiError
from kubesim.store import Store

KSVC = "services.serving.knative.dev"


def _ksvc(name: str, ns: str = "default", **meta) -> dict:
    return {"apiVersion": "serving.knative.dev/v1", "kind": "Service",
            "metadata": {"name": name, "namespace": ns, **meta},
            "spec": {"template": {"spec": {"containers": [{"image": "x"}]}}}}


@pytest.fixture
def store() -> Store:
    s = Store(history=50)
    s.create("namespaces", {"metadata": {"name": "default"}})
    return s


def test_create_fills_server_metadata(store):
    obj = store.create(KSVC, _ksvc("hello"))
    meta = obj["metadata"]
    assert isinstance(meta["resourceVersion"], str) and meta["resourceVersion"] == "2"
    assert meta["generation"] == 1 and len(meta["uid"]) == 36
    assert meta["creationTimestamp"].endswith("Z")
    assert obj["apiVersion"] == "serving.knative.dev/v1" and obj["kind"] == "Service"


def test_create_twice_is_already_exists(store):
    store.create(KSVC, _ksvc("hello"))
    with pytest.raises(ApiError) as e:
        store.create(KSVC, _ksvc("hello"))
    assert e.value.code == 409 and e.value.reason == "AlreadyExists"
    assert e.value.message == 'services.serving.knative.dev "hello" already exists'


def test_create_in_missing_namespace_is_not_found(store):
    with pytest.raises(ApiError) as e:
        store.create(KSVC, _ksvc("hello", ns="nope"))
    assert e.value.code == 404 and e.value.message == 'namespaces "nope" not found'


def test_generate_name_adds_five_chars(store):
    obj = store.create("configmaps", {"metadata": {"generateName": "cm-", "namespace": "default"}})
    assert obj["metadata"]["name"].startswith("cm-") and len(obj["metadata"]["name"]) == 8


def test_invalid_name_is_422(store):
    with pytest.raises(ApiError) as e:
        store.create("configmaps", {"metadata": {"name": "Bad_Name", "namespace": "default"}})
    assert e.value.code == 422 and e.value.reason == "Invalid"
    assert e.value.details["causes"][0]["field"] == "metadata.name"


def test_get_returns_a_copy(store):
    store.create(KSVC, _ksvc("hello"))
    store.get(KSVC, "default", "hello")["spec"]["x"] = 1
    assert "x" not in store.get(KSVC, "default", "hello")["spec"]
    with pytest.raises(ApiError) as e:
        store.get(KSVC, "default", "missing")
    assert e.value.message == 'services.serving.knative.dev "missing" not found'
    assert store.try_get(KSVC, "default", "missing") is None


def test_generation_bumps_only_on_spec_change(store):
    obj = store.create(KSVC, _ksvc("hello"))
    obj["metadata"]["labels"] = {"a": "b"}
    obj = store.update(KSVC, obj)
    assert obj["metadata"]["generation"] == 1
    obj["spec"]["template"]["spec"]["containers"][0]["image"] = "y"
    obj = store.update(KSVC, obj)
    assert obj["metadata"]["generation"] == 2
    obj["status"] = {"observedGeneration": 2}
    obj = store.update(KSVC, obj, status=True)
    assert obj["metadata"]["generation"] == 2 and obj["status"] == {"observedGeneration": 2}


def test_update_keeps_status_and_status_update_keeps_spec(store):
    obj = store.create(KSVC, _ksvc("hello"))
    store.update(KSVC, {**obj, "status": {"url": "http://x"}}, status=True)
    obj["status"] = {"url": "ignored"}
    obj["spec"]["template"]["spec"]["containers"][0]["image"] = "z"
    obj["metadata"].pop("resourceVersion")
    got = store.update(KSVC, obj)
    assert got["status"] == {"url": "http://x"}
    got2 = store.update(KSVC, {**got, "spec": {"changed": True}, "status": {"url": "u"}}, status=True)
    assert got2["spec"]["template"]["spec"]["containers"][0]["image"] == "z"


def test_stale_resource_version_is_conflict(store):
    obj = store.create(KSVC, _ksvc("hello"))
    store.update(KSVC, {**obj, "spec": {"a": 1}})
    with pytest.raises(ApiError) as e:
        store.update(KSVC, {**obj, "spec": {"a": 2}})
    assert e.value.code == 409 and e.value.reason == "Conflict"
    assert "the object has been modified" in e.value.message


def test_no_change_means_no_new_resource_version(store):
    events = []
    store.subscribe(lambda t, k, o: events.append(t))
    obj = store.create(KSVC, _ksvc("hello"))
    again = store.update(KSVC, obj)
    assert again["metadata"]["resourceVersion"] == obj["metadata"]["resourceVersion"]
    assert store.mutate(KSVC, "default", "hello", lambda o: None)["metadata"]["resourceVersion"] == \
        obj["metadata"]["resourceVersion"]
    assert events == ["ADDED"]


def test_mutate_status_and_missing(store):
    store.create(KSVC, _ksvc("hello"))
    got = store.mutate(KSVC, "default", "hello", lambda o: o.update(status={"x": 1}), status=True)
    assert got["status"] == {"x": 1}
    assert store.mutate(KSVC, "default", "gone", lambda o: None) is None


def test_finalizers_delay_removal(store):
    events = []
    store.subscribe(lambda t, k, o: events.append((t, o["metadata"]["name"])))
    store.create("configmaps", {"metadata": {"name": "c", "namespace": "default",
                                             "finalizers": ["x/y"]}})
    obj = store.delete("configmaps", "default", "c")
    assert obj["metadata"]["deletionTimestamp"]
    assert store.try_get("configmaps", "default", "c") is not None
    store.mutate("configmaps", "default", "c", lambda o: o["metadata"].update(finalizers=[]))
    assert store.try_get("configmaps", "default", "c") is None
    assert events == [("ADDED", "c"), ("MODIFIED", "c"), ("DELETED", "c")]


def test_owner_references_are_garbage_collected(store):
    owner = store.create(KSVC, _ksvc("hello"))
    ref = {"apiVersion": "serving.knative.dev/v1", "kind": "Service", "name": "hello",
           "uid": owner["metadata"]["uid"], "controller": True}
    store.create("configmaps", {"metadata": {"name": "child", "namespace": "default",
                                             "ownerReferences": [ref]}})
    grand = store.get("configmaps", "default", "child")
    ref2 = {**ref, "kind": "ConfigMap", "name": "child", "uid": grand["metadata"]["uid"]}
    store.create("secrets", {"metadata": {"name": "grandchild", "namespace": "default",
                                          "ownerReferences": [ref2]}})
    store.delete(KSVC, "default", "hello")
    assert store.try_get("configmaps", "default", "child") is None
    assert store.try_get("secrets", "default", "grandchild") is None


def test_a_dependent_with_an_owner_left_loses_only_the_reference_to_the_gone_one(store):
    a, b = store.create(KSVC, _ksvc("a")), store.create(KSVC, _ksvc("b"))
    refs = [{"apiVersion": "serving.knative.dev/v1", "kind": "Service", "name": o["metadata"]["name"],
             "uid": o["metadata"]["uid"]} for o in (a, b)]
    store.create("secrets", {"metadata": {"name": "shared", "namespace": "default", "ownerReferences": refs}})
    store.delete(KSVC, "default", "a")
    assert store.get("secrets", "default", "shared")["metadata"]["ownerReferences"] == refs[1:]
    store.delete(KSVC, "default", "b")
    assert store.try_get("secrets", "default", "shared") is None


def test_a_reference_written_to_an_absent_owner_is_collected_like_a_gone_one(store):
    store.create("secrets", {"metadata": {"name": "s", "namespace": "default"}})
    ghost = {"apiVersion": "serving.knative.dev/v1", "kind": "Revision", "name": "gone", "uid": "no-such-uid"}
    store.mutate("secrets", "default", "s", lambda o: o["metadata"].update(ownerReferences=[ghost]))
    assert store.try_get("secrets", "default", "s") is None


async def test_gc_and_namespace_termination_run_on_the_loop(store):
    store.create("namespaces", {"metadata": {"name": "t1"}})
    store.create(KSVC, _ksvc("a", ns="t1"))
    store.create("configmaps", {"metadata": {"name": "f", "namespace": "t1", "finalizers": ["k/x"]}})
    ns = store.delete("namespaces", None, "t1")
    assert ns["status"]["phase"] == "Terminating"
    with pytest.raises(ApiError) as e:
        store.create("configmaps", {"metadata": {"name": "new", "namespace": "t1"}})
    assert e.value.code == 403 and "being terminated" in e.value.message
    await asyncio.sleep(0.01)
    assert store.try_get(KSVC, "t1", "a") is None
    assert store.try_get("namespaces", None, "t1") is not None  # the finalizer holds it
    store.mutate("configmaps", "t1", "f", lambda o: o["metadata"].update(finalizers=[]))
    await asyncio.sleep(0.01)
    assert store.try_get("namespaces", None, "t1") is None


def test_list_with_selectors(store):
    store.create("namespaces", {"metadata": {"name": "other"}})
    for i, ns in enumerate(["default", "default", "other"]):
        store.create(KSVC, _ksvc(f"s{i}", ns=ns, labels={"app": f"a{i}", "tier": "web"}))
    items, rv = store.list(KSVC)
    assert [o["metadata"]["name"] for o in items] == ["s0", "s1", "s2"] and rv == "5"
    assert len(store.list(KSVC, "default")[0]) == 2
    names = lambda sel: [o["metadata"]["name"] for o in store.list(KSVC, label_selector=sel)[0]]  # noqa: E731
    assert names("app in (a0,a2),tier=web") == ["s0", "s2"]
    assert names("app notin (a0)") == ["s1", "s2"]
    assert names("app!=a1") == ["s0", "s2"]
    assert names("!app") == [] and names("tier") == ["s0", "s1", "s2"]
    assert names("app==a1") == ["s1"]
    sel = store.list(KSVC, field_selector="metadata.name=s2,metadata.namespace=other")[0]
    assert [o["metadata"]["name"] for o in sel] == ["s2"]
    with pytest.raises(ApiError) as e:
        store.list(KSVC, field_selector="spec.foo=1")
    assert e.value.code == 400
    with pytest.raises(ApiError):
        store.list(KSVC, label_selector="app in (a")


def test_subscribers_see_commit_order_even_when_reentrant(store):
    seen = []

    def on_event(t, key, obj):
        seen.append((t, key, obj["metadata"]["name"]))
        if key == KSVC and t == "ADDED":
            store.create("configmaps", {"metadata": {"name": "from-sub", "namespace": "default"}})

    store.subscribe(on_event)
    store.subscribe(lambda t, k, o: seen.append(("second", k, o["metadata"]["name"])))
    store.create(KSVC, _ksvc("hello"))
    assert seen == [("ADDED", KSVC, "hello"), ("second", KSVC, "hello"),
                    ("ADDED", "configmaps", "from-sub"), ("second", "configmaps", "from-sub")]


def test_history_and_compaction(store):
    for i in range(60):
        store.create("configmaps", {"metadata": {"name": f"c{i}", "namespace": "default"}})
    assert store.events_since(1) is None  # compacted
    evs = store.events_since(store.resource_version - 3)
    assert [e.rv for e in evs] == list(range(store.resource_version - 2, store.resource_version + 1))
    assert b'"type":"ADDED"' in evs[0].line()


def test_unsubscribe(store):
    seen = []
    unsub = store.subscribe(lambda t, k, o: seen.append(t))
    unsub()
    store.create(KSVC, _ksvc("hello"))
    assert seen == []
