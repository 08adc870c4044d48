"""Pods terminate through a grace period, as the apiserver and the kubelet do: a delete (scale-down or a
client's) sets deletionTimestamp and deletionGracePeriodSeconds, the pod turns not ready at once, and it
vanishes once its containers have exited (`termination_grace`)."""

from __future__ import annotations

import threading
import time

from kubernetes import client, watch

from tests.kubesim.conftest import api_client
from tests.kubesim.kn_helpers import KSVC, G, V, kservice, wait_for, wait_ready


def _ready(pod) -> str:
    return next((c.status for c in pod.status.conditions or [] if c.type == "Ready"), "")


def _record(core, ns: str, seen: list, stop: threading.Event) -> threading.Thread:
    def run() -> None:
        for e in watch.Watch().stream(core.list_namespaced_pod, ns, timeout_seconds=8):
            pod = e["object"]
            seen.append((time.monotonic(), e["type"], pod.metadata.name, pod.metadata.deletion_timestamp,
                         pod.metadata.deletion_grace_period_seconds, _ready(pod)))
            if stop.is_set():
                return
    t = threading.Thread(target=run, daemon=True)
    t.start()
    return t


def test_a_scaled_down_pod_is_terminating_and_not_ready_before_it_vanishes(make_sim):
    st = make_sim(termination_grace=0.6)
    api = api_client(st)
    core, custom = client.CoreV1Api(api), client.CustomObjectsApi(api)
    seen: list = []
    stop = threading.Event()
    recorder = _record(core, "default", seen, stop)
    custom.create_namespaced_custom_object(G, V, "default", KSVC, kservice("hello"))
    wait_ready(custom, "default", "hello")
    # no traffic: the KPA scales it to zero after stable_window + grace
    wait_for(lambda: any(t == "DELETED" for _, t, *_ in seen), timeout=8, message="pod deleted")
    stop.set()
    recorder.join(10)
    marked = [s for s in seen if s[3] is not None]
    assert marked, seen
    first_marked = marked[0]
    assert first_marked[1] == "MODIFIED" and first_marked[4] == 300  # the grace period Knative gives: timeoutSeconds
    assert any(s[5] == "False" for s in marked)  # not ready while terminating
    deleted = next(s for s in seen if s[1] == "DELETED")
    assert deleted[0] - first_marked[0] >= 0.4  # it stayed for the containers' exit


def test_a_client_delete_starts_a_replacement_while_the_old_pod_terminates(make_sim):
    st = make_sim(termination_grace=1.0)
    api = api_client(st)
    core, custom = client.CoreV1Api(api), client.CustomObjectsApi(api)
    custom.create_namespaced_custom_object(G, V, "default", KSVC, kservice(
        "pinned", template_annotations={"autoscaling.knative.dev/min-scale": "1"}))
    wait_ready(custom, "default", "pinned")
    (old,) = wait_for(lambda: [p for p in core.list_namespaced_pod("default").items if _ready(p) == "True"] or None,
                      message="pod ready")
    answer = core.delete_namespaced_pod(old.metadata.name, "default")
    assert answer.metadata.deletion_timestamp is not None and answer.metadata.deletion_grace_period_seconds == 300
    live = core.read_namespaced_pod(old.metadata.name, "default")  # still there, terminating
    assert live.metadata.deletion_timestamp is not None
    wait_for(lambda: _ready(core.read_namespaced_pod(old.metadata.name, "default")) == "False",
             message="terminating pod not ready")
    events = [e.reason for e in core.list_namespaced_event("default").items
              if e.involved_object.name == old.metadata.name]
    assert "Killing" in events
    replacement = wait_for(lambda: [p for p in core.list_namespaced_pod("default").items
                                    if p.metadata.name != old.metadata.name and _ready(p) == "True"] or None,
                           message="replacement ready")
    assert replacement
    wait_for(lambda: old.metadata.name not in {p.metadata.name for p in core.list_namespaced_pod("default").items},
             timeout=5, message="old pod gone after its grace")


def test_a_delete_with_grace_period_zero_removes_at_once(make_sim):
    st = make_sim(termination_grace=5.0)
    api = api_client(st)
    core, custom = client.CoreV1Api(api), client.CustomObjectsApi(api)
    custom.create_namespaced_custom_object(G, V, "default", KSVC, kservice(
        "pinned", template_annotations={"autoscaling.knative.dev/min-scale": "1"}))
    wait_ready(custom, "default", "pinned")
    (pod,) = wait_for(lambda: core.list_namespaced_pod("default").items or None, message="pod")
    core.delete_namespaced_pod(pod.metadata.name, "default", grace_period_seconds=0)
    assert pod.metadata.name not in {p.metadata.name for p in core.list_namespaced_pod("default").items}


def test_an_unscheduled_pod_is_removed_at_once(core, ns):
    core.create_namespaced_pod(ns, {"metadata": {"name": "bare"},
                                    "spec": {"containers": [{"name": "c", "image": "x"}]}})
    core.delete_namespaced_pod("bare", ns)
    assert [p.metadata.name for p in core.list_namespaced_pod(ns).items] == []


def test_a_bad_grace_period_is_400(k8s, core, ns):
    from tests.kubesim.helpers import raw

    core.create_namespaced_pod(ns, {"metadata": {"name": "bare"},
                                    "spec": {"containers": [{"name": "c", "image": "x"}]}})
    code, status, _ = raw(k8s, "DELETE", f"/api/v1/namespaces/{ns}/pods/bare?gracePeriodSeconds=soon")
    assert code == 400 and "gracePeriodSeconds" in status["message"]
    assert [p.metadata.name for p in core.list_namespaced_pod(ns).items] == ["bare"]
