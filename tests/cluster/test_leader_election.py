"""The watcher's leader election: a coordination.k8s.io/v1 Lease in kubesim, client-go's algorithm.

Two `watch_cluster` loops run in threads against kubesim with short durations: one leads and watches, the
other waits; when the leader dies without releasing, the standby takes over once the lease duration has
passed on its own clock; on a clean stop the Lease is released and the standby takes over at once."""

from __future__ import annotations

import threading
import time

import pytest

from triggers.cluster import kube
from triggers.cluster.leader import LeaderElector, micro_time, run_elected
from triggers.cluster.watcher import Watcher

SHORT = dict(lease_duration=2.0, renew_deadline=1.5, retry_period=0.25)


@pytest.fixture
def lease_name(request):
    return "watcher-" + request.node.name.replace("_", "-")[-40:].strip("-")


def elector(cluster: kube.Cluster, name: str, identity: str, **durations) -> LeaderElector:
    return LeaderElector(cluster, name=name, namespace="default", identity=identity, **{**SHORT, **durations})


def test_the_first_candidate_creates_the_lease_and_the_second_waits(cluster, lease_name):
    a, b = elector(cluster, lease_name, "a"), elector(cluster, lease_name, "b")
    assert a.try_acquire_or_renew() and a.leading
    assert not b.try_acquire_or_renew() and not b.leading
    spec = cluster.get_lease("default", lease_name)["spec"]
    assert spec["holderIdentity"] == "a" and spec["leaseDurationSeconds"] == 2 and spec["leaseTransitions"] == 0
    assert spec["acquireTime"] == spec["renewTime"] and spec["renewTime"].endswith("Z")
    assert len(spec["renewTime"].split(".")[1]) == 7  # MicroTime: six digits and Z
    first_renew = spec["renewTime"]
    time.sleep(0.01)
    assert a.try_acquire_or_renew()  # a renewal keeps acquireTime and transitions
    spec = cluster.get_lease("default", lease_name)["spec"]
    assert spec["renewTime"] > first_renew and spec["acquireTime"] == first_renew and spec["leaseTransitions"] == 0


def test_an_expired_lease_is_taken_over_on_the_candidates_own_clock(cluster, lease_name):
    a, b = elector(cluster, lease_name, "a"), elector(cluster, lease_name, "b")
    assert a.try_acquire_or_renew()
    assert not b.try_acquire_or_renew()
    started = time.monotonic()
    while not b.try_acquire_or_renew():  # a has died: it renews no more
        assert time.monotonic() - started < 4, "not taken over"
        time.sleep(0.1)
    waited = time.monotonic() - started
    assert 1.8 <= waited <= 3.0, waited  # the lease duration (2 s) after b first saw the record
    spec = cluster.get_lease("default", lease_name)["spec"]
    assert spec["holderIdentity"] == "b" and spec["leaseTransitions"] == 1
    assert not a.try_acquire_or_renew()  # a, back, finds b's fresh lease


def test_a_stale_resource_version_is_a_conflict(cluster, lease_name):
    a = elector(cluster, lease_name, "a")
    assert a.try_acquire_or_renew()
    stale = cluster.get_lease("default", lease_name)
    assert a.try_acquire_or_renew()
    stale["spec"]["holderIdentity"] = "intruder"
    with pytest.raises(kube.KubeError) as e:
        cluster.replace_lease(stale)
    assert e.value.status == 409 and "the object has been modified" in e.value.message


def test_leases_are_watched_like_any_object(cluster, k8s, lease_name):
    from kubernetes import client, watch

    coordination = client.CoordinationV1Api(k8s.api)
    rv = coordination.list_namespaced_lease("default").metadata.resource_version
    a = elector(cluster, lease_name, "a")
    assert a.try_acquire_or_renew() and a.try_acquire_or_renew()
    seen = [(e["type"], e["object"].spec.holder_identity) for e in watch.Watch().stream(
        coordination.list_namespaced_lease, "default", resource_version=rv, timeout_seconds=1)
        if e["object"].metadata.name == lease_name]
    assert seen == [("ADDED", "a"), ("MODIFIED", "a")]


def test_durations_are_checked_as_client_go_does(cluster):
    with pytest.raises(ValueError, match="leaseDuration must be greater than renewDeadline"):
        LeaderElector(cluster, name="x", namespace="default", lease_duration=5, renew_deadline=5, retry_period=1)
    with pytest.raises(ValueError, match="renewDeadline must be greater than retryPeriod"):
        LeaderElector(cluster, name="x", namespace="default", lease_duration=5, renew_deadline=1.1, retry_period=1)


class Candidate:
    """One watch_cluster loop (run_elected with a real Watcher) in a thread, recording when it led."""

    def __init__(self, name: str, identity: str):
        self.stop = threading.Event()
        self.elector = elector(kube.Cluster(), name, identity)
        self.led_at: float | None = None
        self.thread = threading.Thread(target=self._run, name=f"candidate-{identity}", daemon=True)

    def _run(self) -> None:
        run_elected(lambda: Watcher(self.elector.cluster, watch_timeout=5), self.elector, stop=self.stop,
                    on_lead=self._led)

    def _led(self) -> None:
        self.led_at = time.monotonic()

    def start(self) -> Candidate:
        self.thread.start()
        return self

    def crash(self) -> None:
        """The process dies: it stops renewing and never releases the Lease."""
        self.elector.release = lambda: None
        self.stop.set()
        self.thread.join(10)


def wait_until(predicate, timeout: float) -> float:
    started = time.monotonic()
    while not predicate():
        assert time.monotonic() - started < timeout, "timed out"
        time.sleep(0.05)
    return time.monotonic() - started


@pytest.mark.django_db(transaction=True)
def test_two_watchers_one_leads_and_the_other_takes_over_when_it_dies(cluster, kubesim, lease_name):
    first = Candidate(lease_name, "first").start()
    wait_until(lambda: first.led_at is not None, 5)
    second = Candidate(lease_name, "second").start()
    try:
        time.sleep(1.0)  # several retry periods: the standby keeps waiting while the leader renews
        assert first.elector.leading and second.led_at is None
        assert cluster.get_lease("default", lease_name)["spec"]["holderIdentity"] == "first"
        crashed = time.monotonic()
        first.crash()
        wait_until(lambda: second.led_at is not None, 6)
        failover = second.led_at - crashed
        # within the lease duration (2 s) plus a retry period or two; with the defaults (15 s lease,
        # 2 s retry period) the same bound is about 17 s, inside 30 s.
        assert failover < SHORT["lease_duration"] + 3 * SHORT["retry_period"] + 1.0, failover
        spec = cluster.get_lease("default", lease_name)["spec"]
        assert spec["holderIdentity"] == "second" and spec["leaseTransitions"] == 1
    finally:
        first.stop.set()
        second.stop.set()
        first.thread.join(10)
        second.thread.join(10)


@pytest.mark.django_db(transaction=True)
def test_a_clean_stop_releases_the_lease_so_the_standby_leads_at_once(cluster, kubesim, lease_name):
    first = Candidate(lease_name, "first").start()
    wait_until(lambda: first.led_at is not None, 5)
    second = Candidate(lease_name, "second").start()
    try:
        time.sleep(0.6)
        assert second.led_at is None
        stopped = time.monotonic()
        first.stop.set()
        first.thread.join(10)
        wait_until(lambda: second.led_at is not None, 3)
        assert second.led_at - stopped < SHORT["lease_duration"], second.led_at - stopped
    finally:
        second.stop.set()
        second.thread.join(10)
    spec = cluster.get_lease("default", lease_name)["spec"]
    assert spec["holderIdentity"] == "" and spec["leaseDurationSeconds"] == 1  # released by the last one too


def test_micro_time_is_utc_with_six_digits():
    from datetime import datetime, timedelta, timezone

    when = datetime(2026, 1, 2, 4, 5, 6, 7, tzinfo=timezone(timedelta(hours=2)))
    assert micro_time(when) == "2026-01-02T02:05:06.000007Z"


def test_the_watch_cluster_command_leads_and_releases_its_lease_on_sigterm(kubesim, worker_env, cluster, lease_name):
    import os
    import signal
    import subprocess
    import sys

    from tests.cluster import REPO

    env = {**worker_env, "RELAY_LEADER_LEASE_NAME": lease_name, "RELAY_LEADER_LEASE_NAMESPACE": "default"}
    proc = subprocess.Popen([sys.executable, "manage.py", "watch_cluster"], cwd=REPO, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        first = proc.stdout.readline()
        assert f"standing for lease default/{lease_name}" in first, first
        lines = [proc.stdout.readline() for _ in range(2)]  # its log line and its own, in either order
        assert any("leads; watching" in line for line in lines), lines
        holder = cluster.get_lease("default", lease_name)["spec"]["holderIdentity"]
        assert holder and holder in first
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=15)
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
    assert proc.returncode == 0, out
    assert cluster.get_lease("default", lease_name)["spec"]["holderIdentity"] == ""
