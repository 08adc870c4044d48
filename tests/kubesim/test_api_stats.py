"""Request counting for benchmarks: Simulator.api_requests / api_requests_by_verb and GET /kubesim/stats."""

from __future__ import annotations

import json

import pytest
from kubernetes import client, watch

from tests.kubesim.conftest import api_client
from tests.kubesim.helpers import cm, raw


@pytest.fixture
def fresh(make_sim):
    st = make_sim()
    return st, api_client(st)


def stats(k8s) -> dict:
    code, body, _ = raw(k8s, "GET", "/kubesim/stats")
    assert code == 200
    return body


def delta(before: dict, after: dict) -> dict:
    by = {k: v - before["api_requests_by_verb"].get(k, 0) for k, v in after["api_requests_by_verb"].items()}
    return {"total": after["api_requests"] - before["api_requests"], **{k: v for k, v in by.items() if v}}


def test_every_api_request_is_counted_once_by_verb(fresh):
    st, k8s = fresh
    core = client.CoreV1Api(k8s)
    s0 = stats(k8s)
    assert s0["api_requests"] == 0
    assert s0["api_requests_by_verb"] == {v: 0 for v in ("get", "list", "watch", "create", "update", "patch",
                                                         "delete", "deletecollection")}
    core.create_namespaced_config_map("default", cm("a"))
    core.create_namespaced_config_map("default", cm("b"))
    live = core.read_namespaced_config_map("a", "default")
    core.list_namespaced_config_map("default")
    core.list_config_map_for_all_namespaces()
    core.replace_namespaced_config_map("a", "default", live)
    core.patch_namespaced_config_map("a", "default", {"data": {"x": "y"}})
    core.delete_namespaced_config_map("b", "default")
    core.delete_collection_namespaced_config_map("default")
    for _ in watch.Watch().stream(core.list_namespaced_config_map, "default", timeout_seconds=1):
        pass
    raw(k8s, "GET", "/api/v1/namespaces/default/configmaps/missing")           # a 404 is a request too
    raw(k8s, "GET", "/api/v1")                                                  # discovery: get
    raw(k8s, "GET", "/apis/serving.knative.dev/v1")
    raw(k8s, "GET", "/version")                                                 # not under /api(s)
    raw(k8s, "GET", "/kubesim/faults")                                          # not counted
    s1 = stats(k8s)
    assert delta(s0, s1) == {"total": 13, "create": 2, "get": 4, "list": 2, "patch": 1, "update": 1,
                             "delete": 1, "deletecollection": 1, "watch": 1}
    assert stats(k8s) == s1, "/kubesim/stats itself is not counted"
    total, by_verb = st.call(lambda: (st.sim.api_requests, dict(st.sim.api_requests_by_verb)))
    assert total == 13 and by_verb == s1["api_requests_by_verb"]


def test_unauthenticated_and_failed_requests_count_stats_needs_the_token(fresh):
    st, k8s = fresh
    s0 = stats(k8s)
    code, _, _ = raw(k8s, "GET", "/api/v1/namespaces", auth=False)
    assert code == 401
    code, _, _ = raw(k8s, "POST", "/api/v1/namespaces/default/configmaps", b"{not json")
    assert code == 400
    assert delta(s0, stats(k8s)) == {"total": 2, "list": 1, "create": 1}
    code, body, _ = raw(k8s, "GET", "/kubesim/stats", auth=False)
    assert code == 401 and body["reason"] == "Unauthorized"
    code, _, _ = raw(k8s, "POST", "/kubesim/stats", json.dumps({}))
    assert code == 404
