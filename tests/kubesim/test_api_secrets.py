"""Secrets' write-only stringData: folded into base64 `data` on every write, never returned."""

from __future__ import annotations

import base64
import json

import pytest
from kubernetes import watch
from kubernetes.client.exceptions import ApiException

from tests.kubesim.helpers import raw


def b64(s: str) -> str:
    return base64.b64encode(s.encode()).decode()


def test_create_folds_string_data_over_data(core, ns):
    created = core.create_namespaced_secret(ns, {
        "metadata": {"name": "s"}, "type": "Opaque",
        "data": {"KEEP": b64("kept"), "BOTH": b64("from data")},
        "stringData": {"BOTH": "from stringData", "NEW": "héllo"}})
    expected = {"KEEP": b64("kept"), "BOTH": b64("from stringData"), "NEW": b64("héllo")}
    assert created.data == expected and created.string_data is None
    got = core.read_namespaced_secret("s", ns)
    assert got.data == expected and got.string_data is None
    listed = core.list_namespaced_secret(ns).items
    assert [(i.data, i.string_data) for i in listed] == [(expected, None)]


def test_string_data_only_creates_data(core, ns):
    core.create_namespaced_secret(ns, {"metadata": {"name": "s"}, "stringData": {"A": "1"}})
    assert core.read_namespaced_secret("s", ns).data == {"A": b64("1")}


def test_strategic_patch_merges_string_data_and_null_removes_data_keys(core, ns):
    core.create_namespaced_secret(ns, {"metadata": {"name": "s"},
                                       "stringData": {"A": "1", "B": "2", "C": "3"}})
    # What relayweb's apply_secret sends: new values as stringData, dropped keys as data: null.
    patched = core.patch_namespaced_secret("s", ns, {"metadata": {"labels": {"x": "y"}},
                                                     "stringData": {"B": "two", "D": "4"},
                                                     "data": {"C": None}})
    expected = {"A": b64("1"), "B": b64("two"), "D": b64("4")}
    assert patched.data == expected and patched.string_data is None
    got = core.read_namespaced_secret("s", ns)
    assert got.data == expected and got.metadata.labels == {"x": "y"}


def test_merge_patch_and_replace_fold_string_data(k8s, core, ns):
    core.create_namespaced_secret(ns, {"metadata": {"name": "s"}, "stringData": {"A": "1", "B": "2"}})
    code, body, _ = raw(k8s, "PATCH", f"/api/v1/namespaces/{ns}/secrets/s",
                        json.dumps({"stringData": {"C": "3"}, "data": {"A": None}}),
                        "application/merge-patch+json")
    assert code == 200 and "stringData" not in body
    assert body["data"] == {"B": b64("2"), "C": b64("3")}
    live = core.read_namespaced_secret("s", ns)
    live.string_data = {"B": "replaced"}
    replaced = core.replace_namespaced_secret("s", ns, live)
    assert replaced.data == {"B": b64("replaced"), "C": b64("3")} and replaced.string_data is None


def test_watch_events_carry_data_not_string_data(core, ns):
    rv = core.list_namespaced_secret(ns).metadata.resource_version
    core.create_namespaced_secret(ns, {"metadata": {"name": "s"}, "stringData": {"A": "1"}})
    w = watch.Watch()
    for ev in w.stream(core.list_namespaced_secret, ns, resource_version=rv, timeout_seconds=5):
        assert ev["type"] == "ADDED"
        assert ev["raw_object"]["data"] == {"A": b64("1")} and "stringData" not in ev["raw_object"]
        w.stop()
        break
    else:
        pytest.fail("no watch event")


def test_non_string_string_data_is_400(k8s, core, ns):
    # The typed client refuses to send this itself; other clients can.
    code, body, _ = raw(k8s, "POST", f"/api/v1/namespaces/{ns}/secrets",
                        json.dumps({"metadata": {"name": "s"}, "stringData": {"A": 1}}))
    assert code == 400 and body["reason"] == "BadRequest" and "stringData" in body["message"]
    with pytest.raises(ApiException) as e:
        core.read_namespaced_secret("s", ns)
    assert e.value.status == 404


def test_an_immutable_secret_keeps_its_data(core, ns):
    core.create_namespaced_secret(ns, {"metadata": {"name": "v1"}, "immutable": True, "stringData": {"K": "a"}})
    for patch in ({"stringData": {"K": "b"}}, {"data": {"K": None}}, {"immutable": False}):
        with pytest.raises(ApiException) as e:
            core.patch_namespaced_secret("v1", ns, patch)
        assert e.value.status == 422
        assert "Forbidden: field is immutable when `immutable` is set" in json.loads(e.value.body)["message"]
    # its metadata may change (an ownerReference, a label)
    core.patch_namespaced_secret("v1", ns, {"metadata": {"labels": {"x": "y"}}})
    assert core.read_namespaced_secret("v1", ns).metadata.labels == {"x": "y"}
