"""Leader election for the watcher: one `watch_cluster` at a time holds a coordination.k8s.io/v1 Lease.

The algorithm is client-go's (kubernetes/client-go v0.34.0 tools/leaderelection/leaderelection.go
`tryAcquireOrRenew`, resourcelock/leaselock.go):
- get the Lease; if absent, create it holding it (acquireTime = renewTime = now, leaseTransitions 0);
- a Lease held by someone else is left alone while `leaseDurationSeconds` have not passed since this
  candidate last *saw the record change* (its own clock, never the holder's renewTime: clocks differ);
- otherwise update it: renewTime = now; on a takeover also acquireTime = now and leaseTransitions + 1.
  The update carries the resourceVersion read, so two candidates racing get one 409 Conflict;
- the leader renews every retry period and gives up leadership when it could not renew for the renew
  deadline; on a clean stop it releases the Lease (holderIdentity "", leaseDurationSeconds 1), so a
  successor takes over at once.
Durations must satisfy leaseDuration > renewDeadline > 1.2 × retryPeriod, as client-go requires.
"""

from __future__ import annotations

import logging
import os
import random
import socket
import time
import uuid
from datetime import UTC, datetime

from . import kube

log = logging.getLogger(__name__)
JITTER = 1.2  # client-go JitterFactor


def micro_time(when: datetime | None = None) -> str:
    """A MicroTime as the apiserver writes it: UTC, six fractional digits (apimachinery micro_time.go)."""
    return (when or datetime.now(UTC)).astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def default_identity() -> str:
    """client-go's convention: hostname (the pod name in a cluster) + "_" + a UUID."""
    return f"{socket.gethostname()}_{uuid.uuid4()}"


class LeaderElector:
    def __init__(self, cluster: kube.Cluster, *, name: str, namespace: str, identity: str | None = None,
                 lease_duration: float = 15.0, renew_deadline: float = 10.0, retry_period: float = 2.0):
        if not lease_duration > renew_deadline:
            raise ValueError("leaseDuration must be greater than renewDeadline")
        if not renew_deadline > JITTER * retry_period:
            raise ValueError("renewDeadline must be greater than retryPeriod*JitterFactor")
        if min(lease_duration, renew_deadline, retry_period) <= 0:
            raise ValueError("leaseDuration, renewDeadline and retryPeriod must be greater than zero")
        self.cluster, self.name, self.namespace = cluster, name, namespace
        self.identity = identity or default_identity()
        self.lease_duration, self.renew_deadline, self.retry_period = lease_duration, renew_deadline, retry_period
        self.observed: tuple | None = None  # the last record seen
        self.observed_at = 0.0  # monotonic time it was seen to change
        self.leading = False

    def _spec(self, lease: dict) -> dict:
        return lease.get("spec") or {}

    def _observe(self, spec: dict) -> None:
        record = tuple(spec.get(k) for k in ("holderIdentity", "leaseDurationSeconds", "acquireTime",
                                              "renewTime", "leaseTransitions"))
        if record != self.observed:
            self.observed, self.observed_at = record, time.monotonic()

    def try_acquire_or_renew(self) -> bool:
        """One attempt; True when this candidate holds the Lease afterwards."""
        now = micro_time()
        mine = {"holderIdentity": self.identity, "leaseDurationSeconds": max(1, round(self.lease_duration)),
                "acquireTime": now, "renewTime": now, "leaseTransitions": 0}
        try:
            lease = self.cluster.get_lease(self.namespace, self.name)
            if lease is None:
                self.cluster.create_lease({"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                                           "metadata": {"name": self.name, "namespace": self.namespace},
                                           "spec": mine})
                self._observe(mine)
                return self._set(True)
            spec = self._spec(lease)
            self._observe(spec)
            holder = spec.get("holderIdentity") or ""
            duration = spec.get("leaseDurationSeconds") or 0
            if holder and holder != self.identity and time.monotonic() < self.observed_at + duration:
                return self._set(False)
            if holder == self.identity:
                mine["acquireTime"] = spec.get("acquireTime") or now
                mine["leaseTransitions"] = spec.get("leaseTransitions") or 0
            else:
                mine["leaseTransitions"] = (spec.get("leaseTransitions") or 0) + 1
            lease["spec"] = {**spec, **mine}
            self.cluster.replace_lease(lease)
            self._observe(mine)
            return self._set(True)
        except kube.KubeError as e:
            # 409: another candidate wrote first; anything else: try again next period
            log.info("lease %s/%s not acquired or renewed: %s", self.namespace, self.name, e.message)
            return self._set(False)

    def _set(self, leading: bool) -> bool:
        if leading != self.leading:
            log.info("%s %s lease %s/%s", self.identity, "holds" if leading else "does not hold",
                     self.namespace, self.name)
        self.leading = leading
        return leading

    def release(self) -> None:
        """Give the Lease up at once (client-go ReleaseOnCancel): a successor need not wait it out."""
        if not self.leading:
            return
        try:
            lease = self.cluster.get_lease(self.namespace, self.name)
            if lease is not None and self._spec(lease).get("holderIdentity") == self.identity:
                now = micro_time()
                lease["spec"] = {**self._spec(lease), "holderIdentity": "", "leaseDurationSeconds": 1,
                                 "renewTime": now, "acquireTime": now}
                self.cluster.replace_lease(lease)
        except kube.KubeError as e:
            log.warning("could not release lease %s/%s: %s", self.namespace, self.name, e.message)
        self.leading = False

    def wait(self) -> float:
        """The pause between attempts: the retry period with client-go's jitter."""
        return self.retry_period * (1 + random.random() * (JITTER - 1))


def lease_namespace(configured: str) -> str:
    """Where the Lease lives: the setting, else the pod's own namespace, else "default"."""
    if configured:
        return configured
    path = "/var/run/secrets/kubernetes.io/serviceaccount/namespace"
    if os.path.exists(path):
        with open(path) as f:
            return f.read().strip() or "default"
    return "default"


def run_elected(make_watcher, elector: LeaderElector, *, stop, diag_poll=None, diag_interval: float = 10.0,
                on_lead=None) -> None:
    """watch_cluster with leader election: wait to hold the Lease, watch while renewing it, stop watching
    when a renewal deadline is missed (and stand again), release it on a clean stop."""
    try:
        while not stop.is_set():
            if not elector.try_acquire_or_renew():
                stop.wait(elector.wait())
                continue
            if on_lead is not None:
                on_lead()
            watcher = make_watcher()
            watcher.start()
            renewed = next_renew = time.monotonic()
            next_diag = 0.0
            try:
                while not stop.is_set():
                    watcher.step(timeout=min(0.5, elector.retry_period / 2))
                    now = time.monotonic()
                    if now >= next_renew:
                        if elector.try_acquire_or_renew():
                            renewed = now
                        elif now - renewed >= elector.renew_deadline or elector.observed and \
                                elector.observed[0] not in ("", elector.identity):
                            log.warning("%s lost the lease %s/%s", elector.identity, elector.namespace, elector.name)
                            elector.leading = False
                            break
                        next_renew = now + elector.retry_period
                    if diag_poll is not None and now >= next_diag:
                        diag_poll()
                        next_diag = time.monotonic() + diag_interval
            finally:
                watcher.stop()
    finally:
        elector.release()
