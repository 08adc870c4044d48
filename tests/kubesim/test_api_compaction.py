"""Watch history compaction, as etcd's: on demand (`POST /kubesim/compact`) and every `compact_interval`;
a watch from a resourceVersion before the compaction answers 410 Expired, one from after it resumes."""

from __future__ import annotations

import json
import time

import pytest
from kubernetes import client, watch
from kubernetes.client.exceptions import ApiException

from tests.kubesim.conftest import api_client
from tests.kubesim.helpers import cm, raw, wait_for


def _watch_from(core, ns: str, rv: str) -> list:
    return [(e["type"], e["object"].metadata.name) for e in watch.Watch().stream(
        core.list_namespaced_config_map, ns, resource_version=rv, timeout_seconds=1)]


def test_compact_on_demand_expires_every_older_resource_version(k8s, core, ns):
    before = core.create_namespaced_config_map(ns, cm("a")).metadata.resource_version
    core.create_namespaced_config_map(ns, cm("b"))
    assert _watch_from(core, ns, before) == [("ADDED", "b")]  # still in the history

    code, body, _ = raw(k8s, "POST", "/kubesim/compact", b"")
    assert code == 200
    compacted = body["compacted"]
    with pytest.raises(ApiException) as e:
        _watch_from(core, ns, before)
    assert e.value.status == 410 and "too old resource version" in e.value.reason

    # the raw line is the apiserver's ERROR event with a complete Status
    code, line, _ = raw(k8s, "GET", f"/api/v1/namespaces/{ns}/configmaps?watch=true&resourceVersion={before}"
                                    "&timeoutSeconds=1")
    assert code == 200 and line["type"] == "ERROR"
    assert {k: line["object"][k] for k in ("kind", "status", "reason", "code")} == {
        "kind": "Status", "status": "Failure", "reason": "Expired", "code": 410}

    # from the compaction on, history is kept again
    core.create_namespaced_config_map(ns, cm("c"))
    assert _watch_from(core, ns, compacted) == [("ADDED", "c")]


def test_compact_to_a_given_resource_version(k8s, core, ns):
    first = core.create_namespaced_config_map(ns, cm("a")).metadata.resource_version
    second = core.create_namespaced_config_map(ns, cm("b")).metadata.resource_version
    core.create_namespaced_config_map(ns, cm("c"))
    code, body, _ = raw(k8s, "POST", "/kubesim/compact", json.dumps({"resourceVersion": int(second)}))
    assert (code, body["compacted"]) == (200, second)
    assert _watch_from(core, ns, second) == [("ADDED", "c")]
    with pytest.raises(ApiException) as e:
        _watch_from(core, ns, first)
    assert e.value.status == 410


@pytest.mark.parametrize("body", [{"resourceVersion": "x"}, {"resourceVersion": -1}, {"resourceVersion": True}])
def test_compact_refuses_a_bad_resource_version(k8s, body):
    code, status, _ = raw(k8s, "POST", "/kubesim/compact", json.dumps(body))
    assert code == 400 and "resourceVersion" in status["message"]


def test_compact_needs_the_token(k8s):
    code, _, _ = raw(k8s, "POST", "/kubesim/compact", b"", auth=False)
    assert code == 401


def test_periodic_compaction_keeps_one_interval_of_history(make_sim):
    st = make_sim(compact_interval=0.4)
    core = client.CoreV1Api(api_client(st))
    old = core.create_namespaced_config_map("default", cm("old")).metadata.resource_version
    core.create_namespaced_config_map("default", cm("next"))
    # the first tick only records where it is; the second compacts to that: `old` expires within ~2 intervals
    wait_for(lambda: st.call(lambda: st.sim.store.compacted_rv) > int(old), timeout=5, message="compacted")
    with pytest.raises(ApiException) as e:
        _watch_from(core, "default", old)
    assert e.value.status == 410
    recent = core.create_namespaced_config_map("default", cm("recent")).metadata.resource_version
    core.create_namespaced_config_map("default", cm("newer"))
    assert _watch_from(core, "default", recent) == [("ADDED", "newer")]  # written after the last tick


def test_no_periodic_compaction_with_interval_zero(make_sim):
    st = make_sim(compact_interval=0)
    core = client.CoreV1Api(api_client(st))
    old = core.create_namespaced_config_map("default", cm("old")).metadata.resource_version
    core.create_namespaced_config_map("default", cm("b"))
    time.sleep(0.5)
    assert _watch_from(core, "default", old) == [("ADDED", "b")]
