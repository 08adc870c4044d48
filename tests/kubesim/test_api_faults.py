"""Fault injection through /kubesim/… endpoints and the Python API: failing and hanging calls, dropped
watches, killed pods, a stopped gateway."""

from __future__ import annotations

import json
import threading
import time
import urllib.error
import urllib.request

import pytest
from kubernetes import client, watch
from kubernetes.client.exceptions import ApiException

from tests.kubesim.conftest import api_client
from tests.kubesim.helpers import KSVC, G, V, cm, ksvc, raw, wait_for


@pytest.fixture
def fresh(make_sim):
    """A simulator of its own: faults are global to a simulator."""
    st = make_sim()
    return st, api_client(st)


def test_status_fault_with_count_verb_and_resource(fresh):
    st, k8s = fresh
    core, custom = client.CoreV1Api(k8s), client.CustomObjectsApi(k8s)
    code, rule, _ = raw(k8s, "POST", "/kubesim/faults", json.dumps(
        {"status": 503, "count": 2, "verb": "create", "resource": "services.serving.knative.dev"}))
    assert code == 201 and rule["count"] == 2
    core.create_namespaced_config_map("default", cm("unaffected"))  # other resource
    for _ in range(2):
        with pytest.raises(ApiException) as e:
            custom.create_namespaced_custom_object(G, V, "default", KSVC, ksvc("f"))
        body = json.loads(e.value.body)
        assert e.value.status == 503 and body["reason"] == "ServiceUnavailable"
    custom.list_namespaced_custom_object(G, V, "default", KSVC)  # other verb
    assert custom.create_namespaced_custom_object(G, V, "default", KSVC, ksvc("f"))
    _, listing, _ = raw(k8s, "GET", "/kubesim/faults")
    assert listing == {"faults": []}


def test_429_has_retry_after_and_clear_removes_rules(fresh):
    st, k8s = fresh
    raw(k8s, "POST", "/kubesim/faults", json.dumps({"status": 429}))
    code, body, headers = raw(k8s, "GET", "/api/v1/namespaces/default/configmaps")
    assert code == 429 and body["reason"] == "TooManyRequests" and headers["Retry-After"] == "1"
    code, _, _ = raw(k8s, "DELETE", "/kubesim/faults")
    assert code == 200
    assert client.CoreV1Api(k8s).list_namespaced_config_map("default").items == []


def test_hang_delays_the_call(fresh):
    st, k8s = fresh
    st.call(lambda: st.sim.faults.add(hang=0.5, count=1, verb="list"))
    start = time.monotonic()
    client.CoreV1Api(k8s).list_namespaced_config_map("default")
    assert time.monotonic() - start >= 0.45
    st.call(lambda: st.sim.faults.add(hang=1.0, verb="get", resource="namespaces"))
    with pytest.raises(Exception, match="timed out"):  # urllib3's own timeout type
        client.CoreV1Api(k8s).read_namespace("default", _request_timeout=0.2)
    st.call(st.sim.faults.clear)
    assert client.CoreV1Api(k8s).read_namespace("default").metadata.name == "default"


def test_bad_fault_bodies_are_400(fresh):
    st, k8s = fresh
    for body in ({}, {"status": 200}, {"status": 503, "verb": "fly"}, {"nope": 1}):
        code, resp, _ = raw(k8s, "POST", "/kubesim/faults", json.dumps(body))
        assert code == 400 and resp["reason"] == "BadRequest", body
    code, _, _ = raw(k8s, "POST", "/kubesim/faults", b"{broken")
    assert code == 400
    code, _, _ = raw(k8s, "POST", "/kubesim/faults", json.dumps({"status": 503}), auth=False)
    assert code == 401


def test_drop_watches_ends_open_streams(fresh):
    st, k8s = fresh
    core = client.CoreV1Api(k8s)
    done = threading.Event()
    events: list = []

    def run():
        for ev in watch.Watch().stream(core.list_namespaced_config_map, "default",
                                       timeout_seconds=30):
            events.append(ev)
        done.set()

    threading.Thread(target=run, daemon=True).start()
    wait_for(lambda: st.call(lambda: st.sim.faults.open_watches) == 1)
    code, body, _ = raw(k8s, "POST", "/kubesim/watches/drop", b"{}")
    assert code == 200 and body == {"dropped": 1}
    assert done.wait(5), "the watch stream did not end"


def test_drop_watches_reset_aborts_the_connection(fresh):
    st, k8s = fresh
    core = client.CoreV1Api(k8s)
    errors: list = []

    def run():
        try:
            for _ in watch.Watch().stream(core.list_namespaced_config_map, "default",
                                          timeout_seconds=30):
                pass
        except Exception as e:  # the connection was cut mid-stream
            errors.append(e)

    t = threading.Thread(target=run, daemon=True)
    t.start()
    wait_for(lambda: st.call(lambda: st.sim.faults.open_watches) == 1)
    raw(k8s, "POST", "/kubesim/watches/drop", json.dumps({"mode": "reset"}))
    t.join(5)
    assert not t.is_alive() and errors


def test_kill_pod_endpoint(fresh):
    st, k8s = fresh
    custom, core = client.CustomObjectsApi(k8s), client.CoreV1Api(k8s)
    custom.create_namespaced_custom_object(G, V, "default", KSVC, ksvc("victim"))
    sel = "serving.knative.dev/service=victim"
    pods = wait_for(lambda: [p for p in core.list_namespaced_pod("default", label_selector=sel).items
                             if p.status.phase == "Running"], timeout=10)
    name = pods[0].metadata.name
    code, body, _ = raw(k8s, "POST", f"/kubesim/pods/default/{name}/kill")
    assert code == 200 and body == {"killed": f"default/{name}"}

    def replaced() -> bool:
        items = core.list_namespaced_pod("default", label_selector=sel).items
        return any(p.metadata.name != name for p in items) or any(
            (p.status.container_statuses or []) and
            any(c.restart_count for c in p.status.container_statuses) for p in items)

    wait_for(replaced, timeout=10)


def test_gateway_stop_and_start(fresh):
    st, k8s = fresh

    def reachable() -> bool:
        try:
            urllib.request.urlopen(st.gateway_url + "/", timeout=2)
        except urllib.error.HTTPError:
            return True  # answered (404 without a route)
        except OSError:
            return False
        return True

    def check_ready() -> int:
        try:
            return urllib.request.urlopen(st.admin_url + "/ambassador/v0/check_ready", timeout=2).status
        except urllib.error.HTTPError as e:
            return e.code

    assert reachable() and st.sim.gateway_running and check_ready() == 200
    code, body, _ = raw(k8s, "POST", "/kubesim/gateway/stop")
    assert code == 200 and body == {"gateway": "stopped"}
    assert not reachable() and not st.sim.gateway_running and check_ready() == 503
    code, _, _ = raw(k8s, "POST", "/kubesim/gateway/start")
    assert code == 200 and reachable() and st.sim.gateway_running and check_ready() == 200


def test_unknown_kubesim_endpoint_is_404(fresh):
    st, k8s = fresh
    code, body, _ = raw(k8s, "GET", "/kubesim/nothing")
    assert code == 404 and body["kind"] == "Status"
