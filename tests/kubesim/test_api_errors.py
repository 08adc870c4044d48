"""Bad input, auth and discovery: real status codes and Status bodies, never a traceback or a hang."""

from __future__ import annotations

import json

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from tests.kubesim.helpers import KSVC, G, V, cm, ksvc, raw, status_of


def _is_status(body: dict, code: int, reason: str) -> None:
    assert body["kind"] == "Status" and body["apiVersion"] == "v1" and body["status"] == "Failure"
    assert body["code"] == code and body["reason"] == reason and body["message"]


def test_not_found_body_is_the_apiservers(custom, ns):
    with pytest.raises(ApiException) as e:
        custom.get_namespaced_custom_object(G, V, ns, KSVC, "hello")
    body = status_of(e.value)
    _is_status(body, 404, "NotFound")
    assert body["message"] == 'services.serving.knative.dev "hello" not found'
    assert body["details"] == {"name": "hello", "group": "serving.knative.dev", "kind": "services"}


def test_already_exists(custom, ns):
    custom.create_namespaced_custom_object(G, V, ns, KSVC, ksvc("dup"))
    with pytest.raises(ApiException) as e:
        custom.create_namespaced_custom_object(G, V, ns, KSVC, ksvc("dup"))
    body = status_of(e.value)
    _is_status(body, 409, "AlreadyExists")
    assert body["message"] == 'services.serving.knative.dev "dup" already exists'


def test_invalid_name_is_422_with_causes(core, ns):
    with pytest.raises(ApiException) as e:
        core.create_namespaced_config_map(ns, cm("Not_Valid"))
    body = status_of(e.value)
    _is_status(body, 422, "Invalid")
    assert body["message"].startswith('ConfigMap "Not_Valid" is invalid: metadata.name: Invalid value')
    assert body["details"]["causes"][0]["field"] == "metadata.name"


def test_missing_name_is_422(core, ns):
    with pytest.raises(ApiException) as e:
        core.create_namespaced_config_map(ns, {"metadata": {}})
    assert e.value.status == 422
    assert "name or generateName is required" in status_of(e.value)["message"]


def test_create_in_missing_namespace_is_404(core):
    with pytest.raises(ApiException) as e:
        core.create_namespaced_config_map("no-such-ns", cm("x"))
    assert e.value.status == 404 and status_of(e.value)["message"] == 'namespaces "no-such-ns" not found'


def test_malformed_json_is_400(k8s, ns):
    code, body, headers = raw(k8s, "POST", f"/api/v1/namespaces/{ns}/configmaps", b"{not json")
    _is_status(body, 400, "BadRequest")
    assert code == 400 and headers["Content-Type"].startswith("application/json")
    code, body, _ = raw(k8s, "POST", f"/apis/{G}/{V}/namespaces/{ns}/{KSVC}", b"[1, 2]")
    assert code == 400 and body["reason"] == "BadRequest"


def test_wrong_kind_in_body_is_400(k8s, ns):
    code, body, _ = raw(k8s, "POST", f"/api/v1/namespaces/{ns}/configmaps",
                        b'{"apiVersion":"v1","kind":"Secret","metadata":{"name":"x"}}')
    assert code == 400 and "kind" in body["message"]


def test_unknown_resource_is_404_status(k8s):
    for path in ("/api/v1/namespaces/default/widgets", "/apis/nope.example.com/v1/things",
                 "/apis/serving.knative.dev/v9/services", "/nothing/here"):
        code, body, _ = raw(k8s, "GET", path)
        assert code == 404, path
        _is_status(body, 404, "NotFound")
        assert body["message"] == "the server could not find the requested resource"


def test_wrong_method_is_405(k8s, ns):
    code, body, _ = raw(k8s, "PUT", f"/api/v1/namespaces/{ns}/configmaps", b"{}")
    assert code == 405
    _is_status(body, 405, "MethodNotAllowed")
    code, body, _ = raw(k8s, "POST", "/api/v1/pods", b"{}")
    assert code == 405


def test_missing_or_wrong_token_is_401(k8s):
    code, body, _ = raw(k8s, "GET", "/api/v1/namespaces", auth=False)
    assert code == 401
    _is_status(body, 401, "Unauthorized")
    code, _, _ = raw(k8s, "GET", "/api/v1/namespaces", auth=False,
                     headers={"Authorization": "Bearer wrong"})
    assert code == 401


def test_bad_label_selector_is_400(core, ns):
    with pytest.raises(ApiException) as e:
        core.list_namespaced_config_map(ns, label_selector="app in (a")
    assert e.value.status == 400 and status_of(e.value)["reason"] == "BadRequest"


def test_name_mismatch_on_replace_is_400(core, ns):
    core.create_namespaced_config_map(ns, cm("a"))
    with pytest.raises(ApiException) as e:
        core.replace_namespaced_config_map("a", ns, cm("b"))
    assert e.value.status == 400


def test_discovery(k8s):
    version = client.VersionApi(k8s).get_code()
    assert version.major == "1" and version.git_version.startswith("v1.")
    groups = {g.name: g for g in client.ApisApi(k8s).get_api_versions().groups}
    assert {"apps", "networking.k8s.io", "serving.knative.dev",
            "networking.internal.knative.dev"} <= set(groups)
    assert client.CoreApi(k8s).get_api_versions().versions == ["v1"]
    code, body, _ = raw(k8s, "GET", "/apis/serving.knative.dev/v1")
    by_name = {r["name"]: r for r in body["resources"]}
    assert by_name["services"]["shortNames"] == ["kservice", "ksvc"]
    assert by_name["services"]["kind"] == "Service" and by_name["services"]["namespaced"] is True
    assert by_name["services"]["categories"] == ["all", "knative", "serving"]
    assert by_name["revisions"]["shortNames"] == ["rev"]
    assert "services/status" in by_name
    _, body, _ = raw(k8s, "GET", "/apis/networking.internal.knative.dev/v1alpha1")
    assert {r["name"]: r for r in body["resources"]}["ingresses"]["shortNames"] == ["kingress",
                                                                                   "king"]
    _, body, _ = raw(k8s, "GET", "/api/v1")
    short = {r["name"]: r.get("shortNames") for r in body["resources"]}
    assert short["pods"] == ["po"] and short["namespaces"] == ["ns"] and short["services"] == ["svc"]
    code, _, _ = raw(k8s, "GET", "/openapi/v2")
    assert code == 404


def test_table_output_for_ksvc_and_pods(k8s, custom, core, ns):
    custom.create_namespaced_custom_object(G, V, ns, KSVC, ksvc("tbl"))
    accept = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json"
    _, body, _ = raw(k8s, "GET", f"/apis/{G}/{V}/namespaces/{ns}/{KSVC}", headers={"Accept": accept})
    assert body["kind"] == "Table"
    names = [c["name"] for c in body["columnDefinitions"]]
    assert names == ["Name", "URL", "LatestCreated", "LatestReady", "Ready", "Reason", "Age"]
    assert body["rows"][0]["cells"][0] == "tbl"
    assert body["rows"][0]["object"]["metadata"]["name"] == "tbl"
    core.create_namespaced_pod(ns, {"metadata": {"name": "p"},
                                    "spec": {"containers": [{"name": "c", "image": "x"}]}})
    _, body, _ = raw(k8s, "GET", f"/api/v1/namespaces/{ns}/pods/p", headers={"Accept": accept})
    assert [c["name"] for c in body["columnDefinitions"]][:5] == ["Name", "Ready", "Status",
                                                                 "Restarts", "Age"]
    assert body["rows"][0]["cells"][:4] == ["p", "0/1", "Pending", 0]


def test_unexpected_exception_is_a_500_status(sim, k8s, ns):
    def boom(op, obj, old, user):
        raise RuntimeError("kaboom")

    key = "configmaps"
    sim.call(lambda: sim.sim.store.admission.setdefault(key, []).append(boom))
    try:
        code, body, _ = raw(k8s, "POST", f"/api/v1/namespaces/{ns}/configmaps",
                            b'{"metadata":{"name":"x"}}')
    finally:
        sim.call(lambda: sim.sim.store.admission[key].remove(boom))
    assert code == 500
    _is_status(body, 500, "InternalError")
    assert "kaboom" in body["message"]


def test_table_watch_for_kubectl_get_w(k8s, core, ns):
    core.create_namespaced_config_map(ns, cm("w1"))
    accept = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json"
    code, data, _ = raw(k8s, "GET", f"/api/v1/namespaces/{ns}/configmaps?watch=true&timeoutSeconds=1",
                        headers={"Accept": accept})
    assert code == 200
    event = data if isinstance(data, dict) else json.loads(data.splitlines()[0])
    assert event["type"] == "ADDED" and event["object"]["kind"] == "Table"
    assert event["object"]["rows"][0]["cells"][:2] == ["w1", 1]


def test_events_table_has_the_apiservers_columns(k8s, core, ns):
    core.create_namespaced_event(ns, {"metadata": {"name": "e1"}, "type": "Normal", "reason": "Pulled",
                                      "message": "done", "involvedObject": {"kind": "Pod", "name": "p"}})
    accept = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json"
    _, body, _ = raw(k8s, "GET", f"/api/v1/namespaces/{ns}/events", headers={"Accept": accept})
    cols = [(c["name"], c["priority"]) for c in body["columnDefinitions"]]
    assert cols[:5] == [("Last Seen", 0), ("Type", 0), ("Reason", 0), ("Object", 0), ("Message", 0)]
    assert body["rows"][0]["cells"][1:5] == ["Normal", "Pulled", "pod/p", "done"]
