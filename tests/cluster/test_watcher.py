"""The cluster watcher against kubesim: observed state, scale events, resume, relist, outages, writes."""

import os
import queue
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
from triggers.cluster import kube
from triggers.cluster.watcher import Watcher
from triggers.models import Delivery, Deployment, ScaleEvent, Trigger

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


def until_each(watcher, predicate, timeout=15.0, message="condition"):
    """Like `until`, but applies one change at a time and checks after each: a state that one change makes and
    the next ends is seen even when both are queued together (a test thread slowed under load)."""
    def check():
        try:
            item = watcher.queue.get(timeout=0.05)
        except queue.Empty:
            return predicate()
        watcher._apply(*item)
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


def test_a_relist_after_a_compaction_gap_drops_the_pods_that_went_meanwhile(watcher, live_trigger, kubesim, k8s,
                                                                            cluster):
    """The watches are down while the trigger scales to zero and the history is compacted: the resume gets
    410, and the relist, which no longer lists the pod, is what tells the trigger it has none."""
    from triggers.live.badge import badge

    # min-scale 1 until the watcher has seen the pod (a min-scale-0 pod may be gone before it looks) …
    trigger = live_trigger(min_scale=1)
    Deployment.objects.create(trigger=trigger, spec_version=1, status="ready", generation=1)
    steady_pod(watcher, trigger)
    assert badge(fresh(trigger)) == ("ready", "Ready (1 pod)")
    kubesim.call(lambda: kubesim.sim.faults.add(status=503, verb="watch"))  # every re-watch fails meanwhile
    kubesim.call(kubesim.sim.faults.drop_watches)
    # … then min-scale 0, during the gap: the new revision's pod comes and goes, the old one's goes
    Trigger.objects.filter(pk=trigger.pk).update(min_scale=0)
    cluster.apply_ksvc(kube.render_ksvc(fresh(trigger)), exists=True)
    Deployment.objects.create(trigger=trigger, spec_version=1, status="ready", generation=2)
    wait_for(lambda: not k8s.core.list_namespaced_pod(trigger.namespace).items, message="pods gone in the cluster")
    kubesim.call(kubesim.sim.store.compact)
    kubesim.call(kubesim.sim.faults.clear)
    until(watcher, lambda: fresh(trigger).ready_pods == 0, message="pod dropped by the relist")
    t = fresh(trigger)
    assert t.pods == [] and badge(t) == ("scaled_to_zero", "Scaled to zero")
    assert ScaleEvent.objects.filter(trigger=trigger, from_pods=1, to_pods=0, cause="scaled to zero").exists()
    assert watcher.pod_owner == {} and watcher.pod_events == {}


def test_a_relist_drops_ksvcs_and_revisions_that_went_meanwhile(cluster, tenant_a):
    trigger = Trigger.objects.create(tenant=tenant_a, name="hello", image="kubesim/echo", ready_pods=0,
                                     latest_ready_revision="hello-00001")
    watcher = Watcher(cluster)
    ksvc = {"metadata": {"namespace": trigger.namespace, "name": "hello", "generation": 1,
                         "labels": {kube.TRIGGER_LABEL: str(trigger.pk)}},
            "status": {"observedGeneration": 1, "latestReadyRevisionName": "hello-00001",
                       "conditions": [{"type": "Ready", "status": "True"}]}}
    watcher._apply("ksvcs", "SYNC", [ksvc])
    watcher._apply("revisions", "SYNC", [_revision(trigger, "True", "", 1)])
    assert fresh(trigger).ready_status == "True" and watcher.revisions
    watcher._apply("ksvcs", "SYNC", [])  # deleted while no watch was open
    watcher._apply("revisions", "SYNC", [])
    t = fresh(trigger)
    assert (t.ready_status, t.latest_ready_revision) == ("", "")
    assert watcher.ksvc_seen == {} and watcher.revisions == {}


def test_a_relist_that_finds_a_pod_replaced_records_no_scale_change(cluster, tenant_a):
    trigger = Trigger.objects.create(tenant=tenant_a, name="hello", image="kubesim/echo", ready_pods=0)
    watcher = Watcher(cluster)
    old = _pod(trigger, ready=True)
    watcher._apply("pods", "SYNC", [old])
    new = _pod(trigger, ready=True)
    new["metadata"]["name"] = "hello-00001-deployment-x2"
    watcher._apply("pods", "SYNC", [new])
    assert [p["name"] for p in fresh(trigger).pods] == ["hello-00001-deployment-x2"]
    assert list(ScaleEvent.objects.filter(trigger=trigger).values_list("from_pods", "to_pods")) == [(0, 1)]


def test_a_terminating_pod_is_not_ready_and_its_going_is_a_scale_to_zero(tenant_a, tmp_path, settings):
    """Pods stay a while after their delete (deletionTimestamp set, containers draining): the scale to zero is
    recorded when they start terminating, with the pod shown Terminating, not as failed."""
    sim = SimulatorThread(SimConfig(kubeconfig=str(tmp_path / "kc"), **{**FAST, "termination_grace": 3.0})).start()
    try:
        settings.RELAY_KUBECONFIG = sim.kubeconfig_path
        kube.reset_cluster()
        cluster = kube.cluster()
        cluster.apply_namespace(kube.render_namespace(tenant_a))
        trigger = Trigger.objects.create(tenant=tenant_a, name="hello", image="kubesim/echo")
        cluster.apply_ksvc(kube.render_ksvc(trigger), exists=False)
        w = Watcher(cluster, watch_timeout=30, max_backoff=0.5)
        w.start()
        try:
            # the pod's ready moment lasts a stable window only, its Terminating state a grace period: wait for
            # them change by change, since under load the pod's whole life (ready, scaled, terminating, gone) can
            # be queued together, and one step would apply it all before a wait could look
            until_each(w, lambda: ScaleEvent.objects.filter(trigger=trigger, from_pods=0, to_pods=1).exists(),
                       message="first pod ready (its scale event)")
            (pod,) = until_each(w, lambda: [p for p in fresh(trigger).pods if p["reason"] == "Terminating"],
                                message="the pod shown Terminating")
            assert pod["ready"] is False and fresh(trigger).ready_pods == 0
            assert ScaleEvent.objects.filter(trigger=trigger, from_pods=1, to_pods=0, cause="scaled to zero").exists()
            until(w, lambda: fresh(trigger).pods == [], message="terminated pod gone")
        finally:
            w.stop()
    finally:
        kube.reset_cluster()
        sim.stop()


def test_a_pod_with_a_deletion_timestamp_never_counts_as_ready(cluster, tenant_a):
    trigger = Trigger.objects.create(tenant=tenant_a, name="hello", image="kubesim/echo", ready_pods=0)
    watcher = Watcher(cluster)
    watcher._on_pods("ADDED", _pod(trigger, ready=True))
    assert fresh(trigger).ready_pods == 1
    terminating = _pod(trigger, ready=True)  # the kubelet has not turned it not ready yet
    terminating["metadata"]["deletionTimestamp"] = "2030-01-01T00:00:00Z"
    watcher._on_pods("MODIFIED", terminating)
    t = fresh(trigger)
    assert t.ready_pods == 0 and t.pods[0]["reason"] == "Terminating"
    assert ScaleEvent.objects.filter(trigger=trigger).order_by("pk").last().cause == "scaled to zero"


@pytest.mark.parametrize(("state", "last", "shown"), [
    ({"waiting": {"reason": "CrashLoopBackOff"}}, {"terminated": {"reason": "OOMKilled", "exitCode": 137}},
     "OOMKilled (CrashLoopBackOff)"),
    ({"waiting": {"reason": "CrashLoopBackOff"}}, {"terminated": {"reason": "Error", "exitCode": 1}},
     "Error (CrashLoopBackOff)"),
    ({"terminated": {"reason": "OOMKilled", "exitCode": 137}}, {}, "OOMKilled"),
    ({"running": {}}, {"terminated": {"reason": "OOMKilled", "exitCode": 137}}, "last exit: OOMKilled"),
    ({"running": {}}, {"terminated": {"reason": "Completed", "exitCode": 0}}, ""),
])
def test_a_pods_last_termination_reason_is_shown(state, last, shown):
    from triggers.cluster.watcher import pod_summary

    pod = {"metadata": {"name": "p"}, "status": {"phase": "Running", "containerStatuses": [
        {"name": "user-container", "restartCount": 2, "state": state, "lastState": last}]}}
    assert pod_summary(pod)["reason"] == shown


def test_an_oom_killed_handler_shows_why_it_crash_loops(watcher, live_trigger, cluster):
    trigger = live_trigger()
    Trigger.objects.filter(pk=trigger.pk).update(image="kubesim/oom", spec_version=2)
    trigger.refresh_from_db()
    live = cluster.apply_ksvc(kube.render_ksvc(trigger), exists=True)
    deployment = Deployment.objects.create(trigger=trigger, spec_version=2, status="waiting",
                                           generation=live["metadata"]["generation"])
    # (the crash-looping pod itself lives only until Knative fails the revision: its row in the pods table is
    # covered by test_a_pods_last_termination_reason_is_shown; what lasts is the deployment's reason)
    until(watcher, lambda: Deployment.objects.get(pk=deployment.pk).status == "failed", message="deployment failed")
    assert Deployment.objects.get(pk=deployment.pk).reason == "OOMKilled"  # Knative alone says ExitCode137


def test_the_deploy_poll_also_names_an_oom_kill(live_trigger, cluster):
    from triggers.cluster import deploys

    trigger = live_trigger()
    Trigger.objects.filter(pk=trigger.pk).update(image="kubesim/oom", spec_version=2)
    trigger.refresh_from_db()
    live = cluster.apply_ksvc(kube.render_ksvc(trigger), exists=True)
    deployment = Deployment.objects.create(trigger=trigger, spec_version=2, status="waiting",
                                           generation=live["metadata"]["generation"])

    def settled():
        deploys.deployments_poll()
        return Deployment.objects.get(pk=deployment.pk).status != "waiting"

    wait_for(settled, message="deployment settled by the poll")
    deployment.refresh_from_db()
    assert (deployment.status, deployment.reason) == ("failed", "OOMKilled")


@pytest.mark.parametrize(("reason", "exits", "shown"), [
    ("ExitCode137", {"OOMKilled"}, "OOMKilled"),
    ("ExitCode1", {"Error"}, "ExitCode1"),
    ("ExitCode1", set(), "ExitCode1"),
    ("ContainerMissing", {"OOMKilled"}, "ContainerMissing"),
])
def test_a_crash_is_named_by_the_runtimes_reason_when_it_says_more(reason, exits, shown):
    from triggers.cluster.status import crash_reason

    assert crash_reason(reason, exits) == shown


def test_a_brand_new_revisions_first_pod_is_a_deploy_not_a_cold_start(cluster, tenant_a):
    """Knative marks a new revision Active=Unknown Queued while its first pods start, as it does a cold start;
    its Ready is not True yet, and that tells the two apart."""
    trigger = Trigger.objects.create(tenant=tenant_a, name="hello", image="kubesim/echo", ready_pods=None,
                                     latest_created_revision="hello-00001")
    watcher = Watcher(cluster)
    new = _revision(trigger, "Unknown", "Queued", 0)
    new["status"]["conditions"][1] = {"type": "Ready", "status": "Unknown", "reason": "Deploying"}
    watcher._on_revisions("ADDED", new)
    t = fresh(trigger)
    assert (t.active_reason, t.active_since) == ("Queued", None)
    watcher._on_pods("ADDED", _pod(trigger, ready=True))
    (event,) = ScaleEvent.objects.filter(trigger=trigger)
    assert (event.from_pods, event.to_pods, event.cause, event.cold_start_ms) == (0, 1, "deploy", None)


def test_only_pod_events_are_watched(watcher, live_trigger, k8s):
    from kubernetes import client as k8s_client

    trigger = live_trigger(min_scale=1)
    until(watcher, lambda: fresh(trigger).ready_pods == 1, message="steady")
    steps_for(watcher, 0.5)  # what the start brought
    for kind in ("Service", "Node", "ReplicaSet"):  # the rest of a cluster's events
        k8s.core.create_namespaced_event(trigger.namespace, k8s_client.CoreV1Event(
            metadata=k8s_client.V1ObjectMeta(name=f"other.{kind.lower()}"), reason="Other", message="x",
            involved_object=k8s_client.V1ObjectReference(kind=kind, namespace=trigger.namespace, name="x")))
    handled, _ = steps_for(watcher, 1.0)
    assert handled == 0  # the apiserver never sent them


def test_a_pods_events_are_forgotten_with_the_pod(cluster, tenant_a):
    trigger = Trigger.objects.create(tenant=tenant_a, name="hello", image="kubesim/echo", ready_pods=0)
    watcher = Watcher(cluster)
    pod = _pod(trigger, ready=False)
    watcher._on_pods("ADDED", pod)
    watcher._on_events("ADDED", {"reason": "BackOff", "involvedObject": {
        "kind": "Pod", "namespace": trigger.namespace, "name": pod["metadata"]["name"]}})
    assert fresh(trigger).pods[0]["reason"] == "BackOff" and len(watcher.pod_events) == 1
    watcher._on_pods("DELETED", pod)
    assert watcher.pod_events == {} and watcher.pod_owner == {}


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


def test_a_long_pod_reason_makes_a_scale_event_cut_to_fit(cluster, tenant_a):
    """"pods failed (OOMKilled (CrashLoopBackOff))" is 42 characters: PostgreSQL refused the row (the column
    holds 40) and the watcher's step failed, in a run where the OOM-killed pod's last ready moment was seen."""
    trigger = Trigger.objects.create(tenant=tenant_a, name="hello", image="kubesim/oom", ready_pods=1)
    watcher = Watcher(cluster)
    long_reason = "OOMKilled (CrashLoopBackOff)"
    watcher._scale_event(trigger, 1, 0, [{"name": "hello-00001-x", "ready": False, "reason": long_reason}])
    event = ScaleEvent.objects.get(trigger=trigger)
    assert event.cause == "pods failed (OOMKilled (CrashLoopBackOff))"[:40]
    assert (event.from_pods, event.to_pods) == (1, 0)


@pytest.mark.parametrize("count", [5, 40])
def test_a_relist_reads_its_triggers_in_a_fixed_number_of_queries(tenant_a, count):
    """A relist names every trigger at once; it used to read each one (and its waiting deployments) with its own
    queries, ~4 per trigger: 10,000 triggers took 93-128 s to relist (tests/bench/bench_live.py)."""
    triggers = [Trigger.objects.create(tenant=tenant_a, name=f"t{i}", image="kubesim/echo") for i in range(count)]
    ksvcs = [{"metadata": {"namespace": t.namespace, "name": t.name, "labels": {kube.TRIGGER_LABEL: str(t.pk)}}}
             for t in triggers]  # as observed already: nothing to write
    pods = [{"metadata": {"namespace": t.namespace, "name": f"{t.name}-pod",
                          "labels": {kube.TRIGGER_LABEL: str(t.pk)}}, "status": {"phase": "Running"}}
            for t in triggers]
    watcher = Watcher.__new__(Watcher)
    Watcher.__init__(watcher, cluster=object())
    with CaptureQueriesContext(connection) as queries:
        watcher._sync_ksvcs(ksvcs)
        watcher._sync_pods(pods)
    statements = [q["sql"] for q in queries.captured_queries
                  if not q["sql"].startswith(("SAVEPOINT", "RELEASE SAVEPOINT", "ROLLBACK TO SAVEPOINT"))]
    reads = [sql for sql in statements if sql.lstrip().upper().startswith("SELECT")]
    assert len(reads) <= 4, reads  # the triggers and waiting deployments once, the pods' triggers once
    assert watcher._loaded is None and watcher._waiting is None  # later events read their trigger again
