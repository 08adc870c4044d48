"""The cluster watcher against kubesim: observed state, scale events, resume, relist, outages, writes."""

import os
import signal
import subprocess
import sys
import time

import pytest
import requests
from django.db import connection
from django.test.utils import CaptureQueriesContext

from kubesim.config import SimConfig
from kubesim.sim import SimulatorThread
from tests.cluster import FAST, REPO, wait_for
from triggers import kube
from triggers.models import Delivery, Deployment, ScaleEvent, Trigger
from triggers.watcher import Watcher

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def watcher(cluster):
    w = Watcher(cluster, watch_timeout=30, max_backoff=0.5)
    w.start()
    yield w
    w.stop()


def until(watcher, predicate, timeout=15.0, message="condition"):
    def check():
        watcher.step(timeout=0.05)
        return predicate()

    return wait_for(check, timeout=timeout, interval=0, message=message)


def fresh(trigger):
    return Trigger.objects.get(pk=trigger.pk)


def steps_for(watcher, seconds: float) -> tuple[int, list[str]]:
    """Apply what arrives for `seconds`: (events handled, SQL the watcher ran meanwhile)."""
    deadline = time.monotonic() + seconds
    handled = 0
    with CaptureQueriesContext(connection) as queries:
        while time.monotonic() < deadline:
            handled += watcher.step(timeout=0.1)
    return handled, [q["sql"] for q in queries.captured_queries]


def test_pods_replicas_and_scale_events_through_a_full_cycle(watcher, live_trigger, relay):
    # a pod that takes 800 ms to start, as real ones do: the watcher sees the activator queue the request first
    trigger = live_trigger(image="kubesim/slow-start:800ms", ready_pods=None)  # the watcher writes them

    def event(cause):  # persisted: a short-lived state can be missed by polling, its event cannot
        return ScaleEvent.objects.filter(trigger=trigger, cause=cause).first()

    until(watcher, lambda: event("deploy"), message="first pod ready")
    until(watcher, lambda: event("scaled to zero") and fresh(trigger).active_reason == "NoTraffic",
          message="scaled to zero")
    t = fresh(trigger)
    assert (t.ready_pods, t.active_status, t.active_reason) == (0, "False", "NoTraffic")
    assert requests.post(f"{relay}/hooks/{t.token}", data=b"{}", timeout=30).status_code == 200
    until(watcher, lambda: event("activation"), message="activation recorded")
    events = ScaleEvent.objects.filter(trigger=trigger).order_by("at")
    causes = list(events.values_list("from_pods", "to_pods", "cause"))
    assert causes[:3] == [(0, 1, "deploy"), (1, 0, "scaled to zero"), (0, 1, "activation")]
    activation = ScaleEvent.objects.get(trigger=trigger, cause="activation")
    assert activation.cold_start_ms is not None and 0 < activation.cold_start_ms < 10_000
    delivery = wait_for(lambda: Delivery.objects.filter(trigger=trigger).first(), message="delivery recorded")
    assert delivery.cold_start is True  # the trigger had no ready pod when the webhook arrived


def test_deployment_settles_through_the_watcher_alone(watcher, live_trigger, cluster):
    trigger = live_trigger()
    Trigger.objects.filter(pk=trigger.pk).update(image="kubesim/crash", spec_version=2)
    trigger.refresh_from_db()
    live = cluster.apply_ksvc(kube.render_ksvc(trigger), exists=True)
    deployment = Deployment.objects.create(trigger=trigger, spec_version=2, status="waiting",
                                           generation=live["metadata"]["generation"])
    until(watcher, lambda: Deployment.objects.get(pk=deployment.pk).status == "failed", message="deployment failed")
    deployment.refresh_from_db()
    assert deployment.reason == "ExitCode1"
    assert fresh(trigger).serving_old_revision


def test_writes_happen_only_on_real_changes(watcher, live_trigger, cluster, k8s):
    trigger = live_trigger(min_scale=1)  # never scales to zero: nothing real changes below
    until(watcher, lambda: fresh(trigger).ready_pods == 1 and fresh(trigger).active_status == "True",
          message="steady")
    time.sleep(0.5)
    watcher.step(timeout=0.5)
    (pod,) = fresh(trigger).pods
    assert pod["ready"] and pod["phase"] == "Running" and pod["restarts"] == 0 and pod["name"].startswith("hello-00001")
    before = watcher.writes
    for i in range(5):  # changes the trigger's observed state does not show
        k8s.custom.patch_namespaced_custom_object(
            "serving.knative.dev", "v1", "relay-acme", "services", "hello",
            {"metadata": {"annotations": {"example.com/note": str(i)}}})
    handled, queries = steps_for(watcher, 1.0)
    assert handled >= 5  # the events arrived…
    assert watcher.writes == before  # …and wrote nothing…
    assert queries == []  # …nor even read the trigger

    # a running pod's Kubernetes events (Pulled, Started…) change nothing shown either
    from kubernetes import client as k8s_client

    k8s.core.create_namespaced_event("relay-acme", k8s_client.CoreV1Event(
        metadata=k8s_client.V1ObjectMeta(name=f"{pod['name']}.note"), reason="Pulled", message="again",
        involved_object=k8s_client.V1ObjectReference(kind="Pod", namespace="relay-acme", name=pod["name"])))
    handled, queries = steps_for(watcher, 1.0)
    assert handled >= 1
    assert queries == []


def steady_pod(watcher, trigger) -> str:
    """The one pod of a min-scale-1 trigger, once the watcher shows it ready: a state that lasts (a pod of a
    trigger at min-scale 0 lives only for the stable window, and a loaded run could miss it)."""
    until(watcher, lambda: fresh(trigger).ready_pods == 1, message="the trigger's one pod ready")
    (pod,) = fresh(trigger).pods
    return pod["name"]


def replaced(trigger, old: str) -> bool:
    t = fresh(trigger)
    return t.ready_pods == 1 and [p["name"] for p in t.pods] not in ([old], [])


def test_resumes_after_dropped_watch_streams(watcher, live_trigger, kubesim):
    trigger = live_trigger(min_scale=1)
    old = steady_pod(watcher, trigger)
    dropped = kubesim.call(kubesim.sim.faults.drop_watches)
    assert dropped >= 3
    kubesim.call(kubesim.sim.serving.kill_pod, trigger.namespace, old)  # a change made after the drop
    until(watcher, lambda: replaced(trigger, old), message="the replacement pod seen after the drop")


def test_recovers_from_an_api_outage(watcher, live_trigger, kubesim):
    trigger = live_trigger(min_scale=1)
    old = steady_pod(watcher, trigger)
    kubesim.call(kubesim.sim.faults.add, 503, None, None, None, None)
    kubesim.call(kubesim.sim.faults.drop_watches)
    kubesim.call(kubesim.sim.serving.kill_pod, trigger.namespace, old)  # a change made during the outage
    time.sleep(1.5)  # the watcher retries with backoff while everything fails
    kubesim.call(kubesim.sim.faults.clear)
    until(watcher, lambda: replaced(trigger, old), timeout=20, message="the replacement pod seen after recovery")


def test_relists_after_410_gone(tenant_a, tmp_path, settings):
    sim = SimulatorThread(SimConfig(kubeconfig=str(tmp_path / "kc"), watch_history=20, **FAST)).start()
    try:
        settings.RELAY_KUBECONFIG = sim.kubeconfig_path
        kube.reset_cluster()
        cluster = kube.cluster()
        cluster.apply_namespace(kube.render_namespace(tenant_a))
        # min-scale 1: the relisted state lasts (a min-scale-0 pod may be gone before the relist)
        trigger = Trigger.objects.create(tenant=tenant_a, name="hello", image="kubesim/echo", min_scale=1)
        cluster.apply_ksvc(kube.render_ksvc(trigger), exists=False)
        w = Watcher(cluster, watch_timeout=30, max_backoff=0.5)
        w.resource_versions = dict.fromkeys(w.resource_versions, "1")  # long gone from a 20-event history
        w.start()
        try:
            until(w, lambda: fresh(trigger).ready_pods == 1 and fresh(trigger).ready_status == "True",
                  message="state rebuilt by relisting")
        finally:
            w.stop()
    finally:
        kube.reset_cluster()
        sim.stop()


def test_watch_cluster_command_stops_cleanly_on_sigterm(kubesim, transactional_db, worker_env):
    proc = subprocess.Popen([sys.executable, "manage.py", "watch_cluster"], cwd=REPO, env=worker_env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        assert "watching" in proc.stdout.readline()
        time.sleep(0.5)
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=15)
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
    assert proc.returncode == 0, out
    assert "stopped" in out and "Traceback" not in out


def _revision(trigger, active: str, reason: str, actual: int) -> dict:
    return {"metadata": {"namespace": trigger.namespace, "name": "hello-00001",
                         "labels": {kube.TRIGGER_LABEL: str(trigger.pk)}},
            "status": {"desiredReplicas": 1, "actualReplicas": actual,
                       "conditions": [{"type": "Active", "status": active, "reason": reason},
                                      {"type": "Ready", "status": "True"}]}}


def _pod(trigger, ready: bool) -> dict:
    return {"metadata": {"namespace": trigger.namespace, "name": "hello-00001-deployment-x1",
                         "labels": {kube.TRIGGER_LABEL: str(trigger.pk)}},
            "status": {"phase": "Running", "conditions": [{"type": "Ready", "status": str(ready)}],
                       "containerStatuses": [{"name": "user-container", "restartCount": 0, "state": {}}]}}


@pytest.mark.parametrize("revision_first", [True, False], ids=["active-before-pod", "pod-before-active"])
def test_an_activation_is_one_whichever_stream_reports_first(cluster, tenant_a, revision_first):
    """Knative turns the revision Active when its pod is ready; the two arrive on different watches, in either
    order. The 0 -> 1 is the activation (with its cold-start time) both ways."""
    trigger = Trigger.objects.create(tenant=tenant_a, name="hello", image="kubesim/echo", ready_pods=0,
                                     latest_ready_revision="hello-00001", active_status="False",
                                     active_reason="NoTraffic")
    watcher = Watcher(cluster)
    watcher._on_revisions("MODIFIED", _revision(trigger, "Unknown", "Queued", 0))  # a request waits
    assert fresh(trigger).active_since is not None
    if revision_first:
        watcher._on_revisions("MODIFIED", _revision(trigger, "True", "", 1))
    watcher._on_pods("ADDED", _pod(trigger, ready=True))
    if not revision_first:
        watcher._on_revisions("MODIFIED", _revision(trigger, "True", "", 1))
    (event,) = ScaleEvent.objects.filter(trigger=trigger)
    assert (event.from_pods, event.to_pods, event.cause) == (0, 1, "activation")
    assert event.cold_start_ms is not None and event.cold_start_ms >= 0
    # the next 0 -> 1 without a queued request (a redeploy) is not that activation again
    watcher._on_pods("DELETED", _pod(trigger, ready=True))
    watcher._on_pods("ADDED", _pod(trigger, ready=True))
    assert list(ScaleEvent.objects.filter(trigger=trigger).order_by("at", "pk").values_list("cause", flat=True)) == [
        "activation", "scaled to zero", "deploy"]
