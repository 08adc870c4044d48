"""Every patch type through the official client, with the content types it really sends."""

from __future__ import annotations

import json

import pytest
from kubernetes.client.exceptions import ApiException

from tests.kubesim.helpers import KSVC, G, V, ksvc, raw

POD = {"metadata": {"name": "p", "labels": {"a": "1"}},
       "spec": {"containers": [
           {"name": "app", "image": "img:1", "env": [{"name": "A", "value": "1"}],
            "ports": [{"containerPort": 8080}]},
           {"name": "side", "image": "side:1"}]}}


def test_merge_patch_on_custom_object(custom, ns):
    custom.create_namespaced_custom_object(G, V, ns, KSVC, ksvc("m", labels={"keep": "1",
                                                                           "drop": "1"}))
    out = custom.patch_namespaced_custom_object(
        G, V, ns, KSVC, "m", {"metadata": {"labels": {"drop": None, "new": "2"}}})
    assert out["metadata"]["labels"] == {"keep": "1", "new": "2"}


def test_json_patch_on_custom_object(custom, ns):
    custom.create_namespaced_custom_object(G, V, ns, KSVC, ksvc("j", labels={"a.b/c": "x"}))
    ops = [{"op": "replace", "path": "/metadata/labels/a.b~1c", "value": "y"},
           {"op": "add", "path": "/metadata/annotations/k", "value": "v"},
           {"op": "test", "path": "/metadata/name", "value": "j"}]
    out = custom.patch_namespaced_custom_object(G, V, ns, KSVC, "j", ops,
                                                _content_type="application/json-patch+json")
    assert out["metadata"]["labels"]["a.b/c"] == "y" and out["metadata"]["annotations"]["k"] == "v"
    with pytest.raises(ApiException) as e:
        custom.patch_namespaced_custom_object(
            G, V, ns, KSVC, "j", [{"op": "remove", "path": "/spec/nope"}],
            _content_type="application/json-patch+json")
    assert e.value.status == 422


def test_json_patch_list_sent_as_merge_patch_is_rejected(custom, ns):
    custom.create_namespaced_custom_object(G, V, ns, KSVC, ksvc("l"))
    with pytest.raises(ApiException) as e:
        custom.patch_namespaced_custom_object(
            G, V, ns, KSVC, "l", [{"op": "add", "path": "/metadata/labels", "value": {}}])
    assert e.value.status == 422
    assert json.loads(e.value.body)["kind"] == "Status"


def test_strategic_merge_patch_merges_containers_and_env_by_name(core, ns):
    core.create_namespaced_pod(ns, POD)
    out = core.patch_namespaced_pod("p", ns, {"spec": {"containers": [
        {"name": "app", "image": "img:2", "env": [{"name": "B", "value": "2"}],
         "ports": [{"containerPort": 9090}]}]}})
    app, side = out.spec.containers
    assert (app.name, app.image, side.name) == ("app", "img:2", "side")
    assert [(e.name, e.value) for e in app.env] == [("A", "1"), ("B", "2")]
    assert [p.container_port for p in app.ports] == [8080, 9090]
    out = core.patch_namespaced_pod("p", ns, {"spec": {"containers": [
        {"name": "side", "$patch": "delete"}]}})
    assert [c.name for c in out.spec.containers] == ["app"]


def test_json_patch_on_typed_api(core, ns):
    core.create_namespaced_pod(ns, POD)
    out = core.patch_namespaced_pod("p", ns, [{"op": "add", "path": "/metadata/labels/b",
                                               "value": "2"}])
    assert out.metadata.labels == {"a": "1", "b": "2"}


def test_strategic_merge_is_unsupported_for_custom_resources(custom, ns):
    custom.create_namespaced_custom_object(G, V, ns, KSVC, ksvc("s"))
    with pytest.raises(ApiException) as e:
        custom.patch_namespaced_custom_object(
            G, V, ns, KSVC, "s", {"metadata": {"labels": {"a": "b"}}},
            _content_type="application/strategic-merge-patch+json")
    assert e.value.status == 415
    assert json.loads(e.value.body)["reason"] == "UnsupportedMediaType"


def test_unknown_patch_content_type_is_415(k8s, core, ns):
    core.create_namespaced_config_map(ns, {"metadata": {"name": "c"}})
    code, body, _ = raw(k8s, "PATCH", f"/api/v1/namespaces/{ns}/configmaps/c", b'{"data":{}}',
                        content_type="text/plain")
    assert code == 415 and body["reason"] == "UnsupportedMediaType" and body["code"] == 415


def test_server_side_apply_creates_then_updates(custom, ns):
    body = ksvc("ssa", labels={"a": "1", "b": "2"})
    body["metadata"]["namespace"] = ns
    out = custom.patch_namespaced_custom_object(
        G, V, ns, KSVC, "ssa", body, field_manager="relayweb", force=True,
        _content_type="application/apply-patch+yaml")
    # the client maps only 200 for patch: an apply that creates (201) returns None, like a real cluster
    assert out is None
    got = custom.get_namespaced_custom_object(G, V, ns, KSVC, "ssa")
    assert got["metadata"]["labels"] == {"a": "1", "b": "2"}
    assert any(m["manager"] == "relayweb" for m in got["metadata"]["managedFields"])
    body["metadata"]["labels"] = {"a": "1"}  # the manager stops owning "b": it is removed
    body["spec"]["template"]["spec"]["containers"][0]["image"] = "img:2"
    out = custom.patch_namespaced_custom_object(
        G, V, ns, KSVC, "ssa", body, field_manager="relayweb", force=True,
        _content_type="application/apply-patch+yaml")
    assert out["metadata"]["labels"] == {"a": "1"}
    assert out["spec"]["template"]["spec"]["containers"][0]["image"] == "img:2"
    assert out["metadata"]["generation"] == 2


def test_apply_without_field_manager_is_400(custom, ns):
    with pytest.raises(ApiException) as e:
        custom.patch_namespaced_custom_object(G, V, ns, KSVC, "x", ksvc("x"),
                                              _content_type="application/apply-patch+yaml")
    assert e.value.status == 400 and "fieldManager" in json.loads(e.value.body)["message"]


def test_patch_with_stale_resource_version_conflicts(custom, ns):
    obj = custom.create_namespaced_custom_object(G, V, ns, KSVC, ksvc("rv"))
    custom.patch_namespaced_custom_object(G, V, ns, KSVC, "rv", {"metadata": {"labels": {"x": "1"}}})
    with pytest.raises(ApiException) as e:
        custom.patch_namespaced_custom_object(G, V, ns, KSVC, "rv", {"metadata": {
            "resourceVersion": obj["metadata"]["resourceVersion"], "labels": {"x": "2"}}})
    assert e.value.status == 409


def test_patch_missing_object_is_404(custom, ns):
    with pytest.raises(ApiException) as e:
        custom.patch_namespaced_custom_object(G, V, ns, KSVC, "ghost", {"metadata": {}})
    assert e.value.status == 404
    assert json.loads(e.value.body)["message"] == \
        'services.serving.knative.dev "ghost" not found'
