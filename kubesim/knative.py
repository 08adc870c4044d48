"""Knative Serving (>= 0.19 naming, serving.knative.dev/v1) plus Ambassador's KIngress handling.

`Serving` registers the webhook hooks (knative_admission), subscribes to the store and runs the
reconcilers (knative_controllers, knative_revision, knative_ingress) from one work queue, in one
asyncio task: a store event only enqueues `(kind, namespace, name)`; the worker reconciles each
item against the current objects, so repeated events collapse and the order of writes is the
order a real controller would produce. The KPA (autoscaler tick) and the activator entry points
used by the gateway live here too.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import Any

from .config import SimConfig
from .errors import ApiError, not_found
from .knative_admission import HOOKS
from .knative_controllers import (
    CONFIG,
    CONFIG_LABEL,
    KINGRESS,
    KSVC,
    REVISION,
    ROUTE,
    ROUTE_LABEL,
    SERVICE_LABEL,
    child_name,
    reconcile_configuration,
    reconcile_route,
    reconcile_service,
)
from .knative_ingress import HostRoute, reconcile_kingress
from .knative_revision import reconcile_revision
from .knative_runtime import (
    DEPLOYMENTS,
    PODS,
    PodRuntime,
    RevisionRuntime,
    emit_event,
    mark_pod_terminating,
    reconcile_deployment,
    stop_pod,
)
from .podlogs import PodLogRegistry
from .stats import ClusterStats

log = logging.getLogger("kubesim.knative")

_REVISION_LABEL = "serving.knative.dev/revision"


class Serving:
    """Knative Serving's controllers, the KPA and the activator's bookkeeping."""

    def __init__(self, store: Any, config: SimConfig):
        self.store = store
        self.config = config
        self.revisions: dict[tuple[str, str], RevisionRuntime] = {}
        self.pods: dict[tuple[str, str], PodRuntime] = {}
        self.hosts: dict[str, HostRoute] = {}
        self.kingress_hosts: dict[tuple[str, str], list[str]] = {}
        # Route (ns, name) -> what its traffic resolves through ({("cfg"|"rev", name)}), and the
        # reverse index (ns, dep) -> routes (an ordered set), so that an event on a Configuration or
        # Revision enqueues only the routes that use it.
        self.route_deps: dict[tuple[str, str], set] = {}
        self._dep_routes: dict[tuple[str, tuple[str, str]], dict[str, None]] = {}
        # Revisions (ns, name) that some host routes to with percent > 0; `_routed_refs` counts
        # those (host, split) pairs so that the set is kept current per KIngress change.
        self.routed: set[tuple[str, str]] = set()
        self._routed_refs: dict[tuple[str, str], int] = {}
        self.stats: dict[str, ClusterStats] = {}
        self.boot_time = time.time()
        self._queue: dict[tuple[str, str, str], None] = {}
        self._wake: asyncio.Event | None = None
        self._tasks: list[asyncio.Task] = []
        self._timers: set[asyncio.TimerHandle] = set()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._terminating: dict[tuple[str, str], asyncio.TimerHandle] = {}  # pods in their grace period
        self.pod_logs = PodLogRegistry()   # containers' logs, by pod uid (kubesim.podlogs; pods/log)
        for key, hook in HOOKS.items():
            store.admission.setdefault(key, []).append(hook)
        self._unsubscribe = store.subscribe(self._on_event, copy=False)

    # ------------------------------------------------------------------------- lifecycle
    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._wake = asyncio.Event()
        for key, kind in ((KSVC, "ksvc"), (CONFIG, "config"), (REVISION, "revision"),
                          (ROUTE, "route"), (KINGRESS, "kingress")):
            for obj in self.store.iter_refs(key):
                self.enqueue((kind, obj["metadata"]["namespace"], obj["metadata"]["name"]))
        self._tasks = [self._loop.create_task(self._worker(), name="kubesim-knative-worker"),
                       self._loop.create_task(self._autoscaler(), name="kubesim-kpa")]
        if self._queue:
            self._wake.set()

    async def stop(self) -> None:
        self._unsubscribe()
        self.pod_logs.exit_all()   # open `pods/log?follow=true` streams end, as when the node goes
        for h in list(self._timers) + list(self._terminating.values()):
            h.cancel()
        self._timers.clear()
        self._terminating.clear()
        tasks = list(self._tasks) + [t for p in self.pods.values() for t in (p.task, p.chatter) if t]
        for t in tasks:
            t.cancel()
        for t in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await t
        self._tasks = []

    # ------------------------------------------------------------------------ work queue
    def enqueue(self, item: tuple[str, str, str]) -> None:
        self._queue[item] = None
        if self._wake is not None:
            self._wake.set()

    def enqueue_later(self, delay: float, item: tuple[str, str, str]) -> None:
        if self._loop is None:
            return

        def fire() -> None:
            self._timers.discard(handle)
            self.enqueue(item)

        handle = self._loop.call_later(max(0.0, delay), fire)
        self._timers.add(handle)

    async def _worker(self) -> None:
        assert self._wake is not None
        while True:
            await self._wake.wait()
            self._wake.clear()
            done = 0
            while self._queue:
                item = next(iter(self._queue))
                del self._queue[item]
                try:
                    self._reconcile(item)
                except Exception:
                    log.exception("reconcile %s failed", item)
                done += 1
                if done % 64 == 0:
                    await asyncio.sleep(0)

    def _reconcile(self, item: tuple[str, str, str]) -> None:
        kind, ns, name = item
        if kind == "ksvc":
            reconcile_service(self, ns, name)
        elif kind == "config":
            reconcile_configuration(self, ns, name)
        elif kind == "revision":
            reconcile_revision(self, ns, name)
        elif kind == "route":
            reconcile_route(self, ns, name)
        elif kind == "kingress":
            reconcile_kingress(self, ns, name)
        elif kind == "deployment":
            reconcile_deployment(self, ns, name)

    def _on_event(self, etype: str, key: str, obj: dict) -> None:
        meta = obj.get("metadata") or {}
        ns, name = meta.get("namespace", ""), meta.get("name", "")
        labels = meta.get("labels") or {}
        if key == KSVC:
            self.enqueue(("ksvc", ns, name))
        elif key == CONFIG:
            self.enqueue(("config", ns, name))
            if SERVICE_LABEL in labels:
                self.enqueue(("ksvc", ns, labels[SERVICE_LABEL]))
            self._enqueue_routes(ns, ("cfg", name))
        elif key == REVISION:
            self.enqueue(("revision", ns, name))
            if CONFIG_LABEL in labels:
                self.enqueue(("config", ns, labels[CONFIG_LABEL]))
            self._enqueue_routes(ns, ("rev", name))
        elif key == ROUTE:
            self.enqueue(("route", ns, name))
            if SERVICE_LABEL in labels:
                self.enqueue(("ksvc", ns, labels[SERVICE_LABEL]))
        elif key == KINGRESS:
            self.enqueue(("kingress", ns, name))
            if ROUTE_LABEL in labels:
                self.enqueue(("route", ns, labels[ROUTE_LABEL]))
        elif key == DEPLOYMENTS and _REVISION_LABEL in labels:
            self.enqueue(("deployment", ns, name))
            self.enqueue(("revision", ns, labels[_REVISION_LABEL]))
        elif key == PODS and etype == "MODIFIED" and meta.get("deletionTimestamp"):
            self._pod_terminating(ns, name, meta)
        elif key == PODS and etype == "DELETED":
            self.pod_logs.drop(meta.get("uid", ""))
            pod = self.pods.get((ns, name))
            if pod is not None:   # deleted by a client (kubectl delete pod): the RS replaces it
                stop_pod(self, pod, delete=False)
                self.enqueue(("deployment", ns, child_name(pod.rev.name, "-deployment")))
                self.enqueue(("revision", ns, pod.rev.name))

    def _enqueue_routes(self, ns: str, dep: tuple[str, str]) -> None:
        for rname in list(self._dep_routes.get((ns, dep), ())):
            self.enqueue(("route", ns, rname))

    def set_route_deps(self, ns: str, name: str, deps: set) -> None:
        """Record what route ns/name resolves its traffic through (keeps the reverse index)."""
        old = self.route_deps.get((ns, name), set())
        for dep in old - deps:
            self._unindex_dep(ns, name, dep)
        for dep in deps - old:
            self._dep_routes.setdefault((ns, dep), {})[name] = None
        self.route_deps[(ns, name)] = deps

    def drop_route_deps(self, ns: str, name: str) -> None:
        for dep in self.route_deps.pop((ns, name), ()):
            self._unindex_dep(ns, name, dep)

    def _unindex_dep(self, ns: str, name: str, dep: tuple[str, str]) -> None:
        routes = self._dep_routes.get((ns, dep))
        if routes is not None:
            routes.pop(name, None)
            if not routes:
                del self._dep_routes[(ns, dep)]

    # -------------------------------------------------------------------- routing table
    def set_host(self, host: str, route: HostRoute) -> None:
        """Route `host` (lower case) to `route`, replacing what it routed to before."""
        old = self.hosts.get(host)
        if old is not None:
            self._count_routed(old, -1)
        self.hosts[host] = route
        self._count_routed(route, 1)

    def remove_hosts(self, ns: str, name: str) -> None:
        for h in self.kingress_hosts.pop((ns, name), []):
            r = self.hosts.get(h)
            if r is not None and r.kingress == name and r.namespace == ns:
                del self.hosts[h]
                self._count_routed(r, -1)

    def _count_routed(self, route: HostRoute, delta: int) -> None:
        """Keep `routed` (and each runtime's `.routed`) = revisions some host sends traffic to."""
        refs = self._routed_refs
        for s in route.splits:
            if s.percent <= 0:
                continue
            key = s.key
            n = refs.get(key, 0) + delta
            if n > 0:
                refs[key] = n
                if key not in self.routed:
                    self.routed.add(key)
                    rt = self.revisions.get(key)
                    if rt is not None:
                        rt.routed = True
            else:
                refs.pop(key, None)
                if key in self.routed:
                    self.routed.discard(key)
                    rt = self.revisions.get(key)
                    if rt is not None:
                        rt.routed = False

    def cluster_stats(self, name: str) -> ClusterStats:
        st = self.stats.get(name)
        if st is None:
            st = self.stats[name] = ClusterStats(name)
        return st

    # ------------------------------------------------------------------ revisions / pods
    def drop_revision(self, ns: str, name: str) -> None:
        rt = self.revisions.pop((ns, name), None)
        if rt is None:
            return
        if rt.activation_timer:
            rt.activation_timer.cancel()
        for pod in list(rt.pods.values()):
            stop_pod(self, pod, delete=False)
        rt.state = "gone"
        rt.ready_event.set()   # wake buffered requests; they find no pod and get a 503

    def scale(self, rt: RevisionRuntime, replicas: int) -> None:
        rt.replicas = replicas
        dep = child_name(rt.name, "-deployment")
        self.store.mutate(DEPLOYMENTS, rt.namespace, dep,
                          lambda o: o["spec"].__setitem__("replicas", replicas), ref=True)

    def _pod_terminating(self, ns: str, name: str, meta: dict) -> None:
        """The kubelet's side of a graceful delete: the containers are told to stop (Killing), the pod
        turns not ready at once (queue-proxy fails its readiness probe while it drains) and serves no
        more, and once the containers have exited (`termination_grace`, at most the grace period) the
        kubelet removes the object. A client's delete also makes the ReplicaSet start a replacement:
        terminating pods are not among its active ones (kubernetes pkg/controller/controller_utils.go
        `FilterActivePods`)."""
        if (ns, name) in self._terminating or self._loop is None:
            return
        pod = self.pods.get((ns, name))
        if pod is not None:  # deleted by a client (kubectl delete pod), not by the ReplicaSet
            stop_pod(self, pod, delete=False)
            emit_event(self, pod, "Killing", "Stopping container user-container")
            self.enqueue(("deployment", ns, child_name(pod.rev.name, "-deployment")))
            self.enqueue(("revision", ns, pod.rev.name))
        grace = float(meta.get("deletionGracePeriodSeconds") or 0)
        self._terminating[(ns, name)] = self._loop.call_later(
            min(grace, self.config.termination_grace), self._pod_exited, ns, name)
        mark_pod_terminating(self, ns, name)

    def _pod_exited(self, ns: str, name: str) -> None:
        self._terminating.pop((ns, name), None)
        with contextlib.suppress(ApiError):
            self.store.delete(PODS, ns, name, grace=0)

    def kill_pod(self, namespace: str, name: str) -> None:
        """Fault injection: the pod dies (Killing), its Deployment starts a replacement."""
        pod = self.pods.get((namespace, name))
        if pod is None:
            raise not_found(PODS, name)
        rev = pod.rev
        stop_pod(self, pod)
        self.enqueue(("deployment", namespace, child_name(rev.name, "-deployment")))
        self.enqueue(("revision", namespace, rev.name))

    # ------------------------------------------------------------------------ activator
    def activate(self, rt: RevisionRuntime) -> None:
        """First buffered request for a revision without ready pods: scale it from zero."""
        if rt.state == "queued":
            return
        rt.state = "queued"
        rt.activations += 1
        now = time.monotonic()
        rt.progress_start = now
        timeout = self.config.activation_timeout_for(rt.progress_deadline)
        rt.activation_deadline = now + timeout
        rt.failed = False
        want = max(1, rt.min_scale if rt.routed else 0, rt.replicas)
        if rt.max_scale:
            want = min(want, rt.max_scale)
        if rt.replicas != want:
            self.scale(rt, want)
        self.enqueue(("revision", rt.namespace, rt.name))
        assert self._loop is not None
        rt.activation_timer = self._loop.call_later(timeout, self._activation_timed_out, rt)

    def _activation_timed_out(self, rt: RevisionRuntime) -> None:
        rt.activation_timer = None
        if rt.state == "queued" and not rt.ready_pods:
            rt.state = "timedout"
            self.scale(rt, 0)
            self.enqueue(("revision", rt.namespace, rt.name))

    def touch(self, rt: RevisionRuntime) -> None:
        """A request reached a revision marked inactive while its pods still ran (grace period)."""
        if rt.state == "inactive":
            rt.state = "active"
            self.enqueue(("revision", rt.namespace, rt.name))

    # ------------------------------------------------------------------------ autoscaler
    async def _autoscaler(self) -> None:
        tick = max(0.02, min(2.0, self.config.stable_window / 10))
        while True:
            await asyncio.sleep(tick)
            now = time.monotonic()
            for rt in list(self.revisions.values()):
                try:
                    self._autoscale(rt, now)
                except Exception:
                    log.exception("autoscaler failed for %s/%s", rt.namespace, rt.name)

    def _autoscale(self, rt: RevisionRuntime, now: float) -> None:
        cfg = self.config
        by_load = rt.desired_by_load(now, cfg.stable_window)
        if rt.failed or rt.state not in ("active", "inactive"):
            return
        min_scale = rt.min_scale if rt.routed else 0
        idle = now - rt.last_request if rt.inflight == 0 else 0.0
        if by_load == 0 and min_scale == 0 and idle >= cfg.stable_window:
            if rt.state != "inactive":
                rt.state = "inactive"
                self.enqueue(("revision", rt.namespace, rt.name))
            desired = 0 if idle >= cfg.stable_window + cfg.scale_to_zero_grace else rt.replicas
        else:
            if rt.state == "inactive" and (rt.inflight or by_load):
                rt.state = "active"
                self.enqueue(("revision", rt.namespace, rt.name))
            desired = max(by_load, min_scale, 1 if rt.state == "active" else 0)
        if rt.max_scale:
            desired = min(desired, rt.max_scale)
        if desired != rt.replicas:
            self.scale(rt, desired)
