"""The cluster watcher: what Knative and Kubernetes report, written to the database and broadcast.

One thread per stream (Knative Services, Revisions, Pods — selected by the managed-by label — and
the Events of those pods) lists, then watches from the list's resourceVersion; a `410 Gone` relists,
an API failure reconnects with backoff. Events land in one queue; `step()` applies them in the
calling thread and writes a trigger only when something it shows changed.
"""

from __future__ import annotations

import json
import logging
import queue
import threading
import time
from dataclasses import dataclass
from typing import Any

import urllib3
from django.db import close_old_connections, transaction
from django.utils import timezone
from kubernetes import watch
from kubernetes.client.exceptions import ApiException

from triggers.live import broadcast
from triggers.models import Deployment, ScaleEvent, Trigger

from . import deploys, kube
from .status import condition, crash_reason, observe_ksvc, revision_ready_reason

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Stream:
    name: str
    selector: str
    fields: str = ""  # a field selector


STREAMS = (
    Stream("ksvcs", kube.MANAGED_SELECTOR),
    Stream("revisions", kube.MANAGED_SELECTOR),
    Stream("pods", kube.MANAGED_SELECTOR),
    # only pods' events (Events carry no labels to select ours by): the apiserver filters, so the rest of
    # the cluster's events are neither sent nor deserialised
    Stream("events", "", "involvedObject.kind=Pod"),
)


def pod_summary(pod: dict, last_event: str = "") -> dict:
    """What the pods table shows of one pod. A pod being deleted (`deletionTimestamp`) is Terminating and
    never ready, whatever its Ready condition still says; a container's last termination (`OOMKilled`,
    `Error`…) is shown with the state it led to, since CrashLoopBackOff alone does not say why."""
    status = pod.get("status") or {}
    containers = [c for c in status.get("containerStatuses") or [] if c.get("name") == "user-container"] or \
        status.get("containerStatuses") or []
    reason = last_exit = ended = ""
    for c in containers:
        state = c.get("state") or {}
        reason = (state.get("waiting") or state.get("terminated") or {}).get("reason", "") or reason
        last_exit = ((c.get("lastState") or {}).get("terminated") or {}).get("reason", "") or last_exit
        ended = (state.get("terminated") or {}).get("reason", "") or last_exit or ended
    if last_exit and last_exit != "Completed":
        reason = f"{last_exit} ({reason})" if reason and reason != last_exit else reason or f"last exit: {last_exit}"
    terminating = bool((pod.get("metadata") or {}).get("deletionTimestamp"))
    return {
        "name": pod["metadata"]["name"],
        "phase": status.get("phase", "Pending"),
        "ready": condition(pod, "Ready").get("status") == "True" and not terminating,
        "restarts": sum(c.get("restartCount", 0) for c in status.get("containerStatuses") or []),
        "reason": TERMINATING if terminating else reason or last_event,
        "last_exit": ended,  # the latest termination's reason, current or last
    }


TERMINATING = "Terminating"  # kubectl's word for a pod with a deletionTimestamp


# An activation that has not brought a pod up within Knative's default progress deadline has failed: a later
# 0 -> N (a redeploy) is not its cold start.
ACTIVATION_WINDOW = 600.0


class Watcher:
    def __init__(self, cluster: kube.Cluster | None = None, *, watch_timeout: int = 300, max_backoff: float = 30.0):
        self.cluster = cluster or kube.cluster()
        self.watch_timeout, self.max_backoff = watch_timeout, max_backoff
        self.queue: queue.Queue = queue.Queue()
        self.stopping = threading.Event()
        self.threads: list[threading.Thread] = []
        self.watches: dict[str, watch.Watch] = {}
        self.resource_versions: dict[str, str | None] = {s.name: None for s in STREAMS}
        self.pods: dict[int, dict[str, dict]] = {}  # trigger id → pod name → summary
        self.pod_owner: dict[tuple[str, str], int] = {}  # (namespace, pod) → trigger id
        self.pod_events: dict[tuple[str, str], str] = {}
        self.revisions: dict[tuple[str, str], dict] = {}  # (namespace, revision) → status
        # (namespace, ksvc) → what of it the trigger shows: a MODIFIED event that changes none of it (a label,
        # an annotation, managedFields) costs no database read; ADDED (lists and relists) always looks
        self.ksvc_seen: dict[tuple[str, str], tuple] = {}
        self.ksvc_trigger: dict[tuple[str, str], str] = {}  # (namespace, ksvc) → its trigger label
        self.writes = 0  # trigger rows written (tests check that only real changes are)
        # trigger id → when its revision went Active=Queued (a request waits for a pod). The revision and pod
        # streams race: the revision may turn Active=True before the watcher sees the pod ready, and the 0 → N
        # that follows is still that activation.
        self.activating: dict[int, float] = {}
        # While a relist is applied: its triggers, loaded in one query (pk → Trigger), and the triggers with a
        # deployment waiting for Knative's verdict; None otherwise (each event reads its trigger). A relist of
        # 10,000 triggers made ~4 queries per trigger (tests/bench/bench_live.py).
        self._loaded: dict[int, Trigger] | None = None
        self._waiting: set[int] | None = None

    # ------------------------------------------------------------ streams (threads)

    def _list(self, stream: Stream, **kwargs):
        custom, core = self.cluster.custom, self.cluster.core
        calls = {
            "ksvcs": lambda **kw: custom.list_cluster_custom_object(**kube.KSVC, **kw),
            "revisions": lambda **kw: custom.list_cluster_custom_object(
                group="serving.knative.dev", version="v1", plural="revisions", **kw),
            "pods": core.list_pod_for_all_namespaces,
            "events": core.list_event_for_all_namespaces,
        }
        return calls[stream.name]

    def start(self) -> None:
        for stream in STREAMS:
            thread = threading.Thread(target=self._run, args=(stream,), name=f"watch-{stream.name}", daemon=True)
            thread.start()
            self.threads.append(thread)

    def stop(self) -> None:
        self.stopping.set()
        for w in list(self.watches.values()):
            w.stop()
        for thread in self.threads:
            thread.join(5)

    def _run(self, stream: Stream) -> None:
        backoff = 0.5
        fn = self._list(stream)
        selector = {"label_selector": stream.selector} if stream.selector else {}
        if stream.fields:
            selector["field_selector"] = stream.fields
        while not self.stopping.is_set():
            try:
                if self.resource_versions[stream.name] is None:  # (re)list: the complete current state
                    raw = json.loads(fn(_preload_content=False, _request_timeout=30, **selector).data)
                    self.resource_versions[stream.name] = raw["metadata"]["resourceVersion"]
                    self.queue.put((stream.name, "SYNC", raw["items"]))
                w = self.watches[stream.name] = watch.Watch()
                for event in w.stream(fn, resource_version=self.resource_versions[stream.name],
                                      timeout_seconds=self.watch_timeout, allow_watch_bookmarks=True,
                                      _request_timeout=self.watch_timeout + 30, **selector):
                    obj = event["raw_object"]
                    self.resource_versions[stream.name] = obj.get("metadata", {}).get("resourceVersion") or \
                        self.resource_versions[stream.name]
                    if event["type"] != "BOOKMARK":
                        self.queue.put((stream.name, event["type"], obj))
                    if self.stopping.is_set():
                        break
                backoff = 0.5
            except ApiException as e:
                if self.stopping.is_set():
                    return
                if e.status == 410:
                    log.info("watch %s: resourceVersion too old, relisting", stream.name)
                    self.resource_versions[stream.name] = None
                    continue
                log.warning("watch %s: API error %s, retrying in %.1fs", stream.name, e.status, backoff)
                backoff = self._pause(backoff)
            except (urllib3.exceptions.HTTPError, OSError, ValueError) as e:
                if self.stopping.is_set():
                    return
                log.warning("watch %s: %s, retrying in %.1fs", stream.name, type(e).__name__, backoff)
                backoff = self._pause(backoff)

    def _pause(self, backoff: float) -> float:
        self.stopping.wait(backoff)
        return min(backoff * 2, self.max_backoff)

    # ------------------------------------------------------------ applying (calling thread)

    def step(self, timeout: float = 1.0) -> int:
        """Apply every queued change (waiting up to `timeout` for the first). Returns how many."""
        handled = 0
        try:
            item = self.queue.get(timeout=timeout)
        except queue.Empty:
            return 0
        while True:
            self._apply(*item)
            handled += 1
            try:
                item = self.queue.get_nowait()
            except queue.Empty:
                return handled

    def _apply(self, stream: str, kind: str, obj: Any) -> None:
        if kind == "SYNC":
            getattr(self, f"_sync_{stream}")(obj)
            return
        getattr(self, f"_on_{stream}")(kind, obj)

    # A (re)list is the complete current state: what is known but not listed went away while no watch was
    # open (a 410 after an apiserver restart or a compaction), so it is dropped as if DELETED had arrived.

    @staticmethod
    def _key(obj: dict) -> tuple[str, str]:
        meta = obj.get("metadata") or {}
        return meta.get("namespace", ""), meta.get("name", "")

    @staticmethod
    def _stub(key: tuple[str, str], trigger_id: int | str | None) -> dict:
        labels = {kube.TRIGGER_LABEL: str(trigger_id)} if trigger_id is not None else {}
        return {"metadata": {"namespace": key[0], "name": key[1], "labels": labels}}

    def _labelled(self, items: list[dict]) -> set[int]:
        ids = (((item.get("metadata") or {}).get("labels") or {}).get(kube.TRIGGER_LABEL, "") for item in items)
        return {int(trigger_id) for trigger_id in ids if trigger_id.isdigit()}

    def _sync_ksvcs(self, items: list[dict]) -> None:
        listed = {self._key(item) for item in items}
        gone = [k for k in self.ksvc_seen if k not in listed]
        ids = self._labelled(items) | {int(t) for k in gone if (t := self.ksvc_trigger.get(k) or "").isdigit()}
        self._loaded = Trigger.objects.select_related("tenant").in_bulk(ids)
        self._waiting = set(Deployment.objects.filter(status=Deployment.Status.WAITING, trigger_id__in=ids)
                            .values_list("trigger_id", flat=True))
        try:
            for item in items:
                self._on_ksvcs("ADDED", item)
            for key in gone:
                self._on_ksvcs("DELETED", self._stub(key, self.ksvc_trigger.get(key)))
        finally:
            self._loaded = self._waiting = None

    def _sync_revisions(self, items: list[dict]) -> None:
        listed = {self._key(item) for item in items}
        for key in [k for k in self.revisions if k not in listed]:
            self.revisions.pop(key, None)
        self._loaded = Trigger.objects.select_related("tenant").in_bulk(self._labelled(items))
        try:
            for item in items:
                self._on_revisions("ADDED", item)
        finally:
            self._loaded = None

    def _sync_pods(self, items: list[dict]) -> None:
        """Rebuild the pods wholesale, then publish each trigger once: a relist that finds one pod replaced
        by another is no 1 -> 0 -> 1, and one that finds none left is the trigger's scale to zero."""
        touched = set(self.pods)
        self.pods, self.pod_owner = {}, {}
        for item in items:
            meta = item.get("metadata") or {}
            trigger_id = (meta.get("labels") or {}).get(kube.TRIGGER_LABEL, "")
            if not trigger_id.isdigit():
                continue
            key = self._key(item)
            self.pod_owner[key] = int(trigger_id)
            self.pods.setdefault(int(trigger_id), {})[key[1]] = pod_summary(item, self.pod_events.get(key, ""))
            touched.add(int(trigger_id))
        for key in [k for k in self.pod_events if k not in self.pod_owner]:
            del self.pod_events[key]
        self._loaded = Trigger.objects.select_related("tenant").in_bulk(touched)
        try:
            for trigger_id in sorted(touched):
                trigger = self._trigger(trigger_id)
                if trigger is None:  # not ours (any more): forget its pods
                    self.pods.pop(trigger_id, None)
                    self.pod_owner = {k: v for k, v in self.pod_owner.items() if v != trigger_id}
                    continue
                self._publish_pods(trigger)
        finally:
            self._loaded = None

    def _sync_events(self, items: list[dict]) -> None:
        for item in items:
            self._on_events("ADDED", item)

    def _trigger(self, pk: int) -> Trigger | None:
        if self._loaded is not None:  # applying a relist: loaded with the others
            return self._loaded.get(pk)
        return Trigger.objects.select_related("tenant").filter(pk=pk).first()

    def _trigger_of(self, obj: dict) -> Trigger | None:
        trigger_id = ((obj.get("metadata") or {}).get("labels") or {}).get(kube.TRIGGER_LABEL, "")
        return self._trigger(int(trigger_id)) if trigger_id.isdigit() else None

    def _on_ksvcs(self, kind: str, obj: dict) -> None:
        meta = obj.get("metadata") or {}
        key = (meta.get("namespace", ""), meta.get("name", ""))
        seen = (meta.get("generation"), json.dumps(obj.get("status"), sort_keys=True))
        if kind == "DELETED":
            self.ksvc_seen.pop(key, None)
            self.ksvc_trigger.pop(key, None)
        else:
            previous, self.ksvc_seen[key] = self.ksvc_seen.get(key), seen
            self.ksvc_trigger[key] = (meta.get("labels") or {}).get(kube.TRIGGER_LABEL, "")
            if kind == "MODIFIED" and previous == seen:
                return
        trigger = self._trigger_of(obj)
        if trigger is None:
            return
        settled: list[Deployment] = []
        with transaction.atomic():
            changed = observe_ksvc(trigger, None if kind == "DELETED" else obj,
                                   revision_reason=self._revision_reason, settled=settled,
                                   waiting=None if self._waiting is None else trigger.pk in self._waiting)
            if changed:
                self.writes += 1
                self._refresh_replicas(trigger)
            if changed or settled:  # a settled deployment changes the badge (Deploying → Ready / Failed)
                broadcast.trigger_status(trigger)
            for deployment in settled:
                broadcast.deployment(deployment, trigger.tenant_id)
        for deployment in settled:  # cluster calls, outside the transaction
            deploys.deployment_own_secrets(self.cluster, deployment)

    def _revision_reason(self, name: str) -> tuple[str, str]:
        """A failed revision's own reason (ExitCode1, ContainerMissing…): from its last event if that
        already says it failed, else asked of the API (failures only, so this is rare)."""
        for (namespace, revision), status in self.revisions.items():
            if revision == name:
                if status.get("ready") == "False":
                    reason = status.get("ready_reason", "")
                    exits = {pod["last_exit"] for (ns, pod_name), owner in self.pod_owner.items()
                             if ns == namespace and pod_name.startswith(f"{name}-deployment-")
                             and (pod := self.pods.get(owner, {}).get(pod_name))}
                    if reason.startswith("ExitCode") and crash_reason(reason, exits) == reason:
                        return revision_ready_reason(self.cluster, namespace, name)  # its pods may be ahead of us
                    return crash_reason(reason, exits), status.get("ready_message", "")
                return revision_ready_reason(self.cluster, namespace, name)
        return "", ""

    def _on_revisions(self, kind: str, obj: dict) -> None:
        meta = obj["metadata"]
        key = (meta["namespace"], meta["name"])
        if kind == "DELETED":
            self.revisions.pop(key, None)
            return
        status = obj.get("status") or {}
        active, ready = condition(obj, "Active"), condition(obj, "Ready")
        previous = self.revisions.get(key)
        self.revisions[key] = {
            "desired": status.get("desiredReplicas"), "actual": status.get("actualReplicas"),
            "active": active.get("status", ""), "active_reason": active.get("reason", ""),
            "ready": ready.get("status", ""), "ready_reason": ready.get("reason", ""),
            "ready_message": ready.get("message", ""),
        }
        if kind == "MODIFIED" and previous == self.revisions[key]:
            return  # nothing shown changed: no database read
        trigger = self._trigger_of(obj)
        if trigger is not None:
            with transaction.atomic():
                if self._refresh_replicas(trigger):
                    broadcast.trigger_status(trigger)

    def _refresh_replicas(self, trigger: Trigger) -> bool:
        """Copy the serving revision's replicas and Active condition onto the trigger, if they changed."""
        serving = trigger.latest_ready_revision or trigger.latest_created_revision
        status = self.revisions.get((trigger.namespace, serving))
        if status is None:
            return False
        values = {"desired_replicas": status["desired"], "actual_replicas": status["actual"],
                  "active_status": status["active"], "active_reason": status["active_reason"]}
        if values["active_reason"] == "Queued" and trigger.active_reason != "Queued":
            if status["ready"] == "True":  # a revision that was serving, scaled to zero: a cold start begins
                values["active_since"] = timezone.now()
                self.activating[trigger.pk] = time.monotonic()
            else:
                # a brand-new revision is Queued too while its first pods start (Knative's KPA marks it
                # Activating until they are ready) but its Ready is not yet True: that is a deploy
                values["active_since"] = None
                self.activating.pop(trigger.pk, None)
        return self._write(trigger, values)

    def _write(self, trigger: Trigger, values: dict) -> bool:
        changed = {k: v for k, v in values.items() if getattr(trigger, k) != v}
        if not changed:
            return False
        for name, value in changed.items():
            setattr(trigger, name, value)
        Trigger.objects.filter(pk=trigger.pk).update(**changed)
        self.writes += 1
        return True

    def _on_pods(self, kind: str, obj: dict) -> None:
        meta = obj["metadata"]
        key = (meta["namespace"], meta["name"])
        if kind == "DELETED":
            self.pod_events.pop(key, None)  # the per-pod event map lives as long as the pod
        summary = None if kind == "DELETED" else pod_summary(obj, self.pod_events.get(key, ""))
        owner = self.pod_owner.get(key)
        if kind == "MODIFIED" and owner is not None and self.pods.get(owner, {}).get(meta["name"]) == summary:
            return  # nothing shown changed: no database read
        trigger = self._trigger_of(obj)
        if trigger is None:
            return
        pods = self.pods.setdefault(trigger.pk, {})
        if summary is None:
            pods.pop(meta["name"], None)
            self.pod_owner.pop(key, None)
        else:
            self.pod_owner[key] = trigger.pk
            pods[meta["name"]] = summary
        self._publish_pods(trigger)

    def _on_events(self, kind: str, obj: dict) -> None:
        involved = obj.get("involvedObject") or {}
        key = (involved.get("namespace", ""), involved.get("name", ""))
        if involved.get("kind") != "Pod" or kind == "DELETED" or key not in self.pod_owner:
            return
        self.pod_events[key] = obj.get("reason", "")
        pod = self.pods.get(self.pod_owner[key], {}).get(key[1])
        if pod is None or pod["ready"]:
            return  # a running pod's events (Pulled, Started…) change nothing shown: no database read
        trigger = self._trigger(self.pod_owner[key])
        if trigger is None:
            return
        pod["reason"] = pod["reason"] or obj.get("reason", "")
        self._publish_pods(trigger)

    def _publish_pods(self, trigger: Trigger) -> None:
        pods = sorted(self.pods.get(trigger.pk, {}).values(), key=lambda p: p["name"])
        ready = sum(1 for p in pods if p["ready"])
        before = trigger.ready_pods or 0  # never observed: it had none
        with transaction.atomic():
            if not self._write(trigger, {"pods": pods, "ready_pods": ready}):
                return
            broadcast.trigger_pods(trigger)
            if before != ready:
                self._scale_event(trigger, before, ready, pods)
                broadcast.trigger_status(trigger)

    def _scale_event(self, trigger: Trigger, before: int, after: int, pods: list[dict]) -> None:
        cold_ms = None
        began = self.activating.pop(trigger.pk, None)  # an activation ends with the first scale change after it
        activating = trigger.active_reason == "Queued" or (
            began is not None and time.monotonic() - began < ACTIVATION_WINDOW)
        if before == 0 and after > 0:
            if activating and trigger.active_since:
                cause = "activation"
                cold_ms = (timezone.now() - trigger.active_since).total_seconds() * 1000
            else:
                cause = "deploy"
        elif after == 0:
            failing = [p["reason"] for p in pods if p["reason"] and p["reason"] not in ("Completed", TERMINATING)]
            cause = f"pods failed ({failing[0]})" if failing else "scaled to zero"
        else:
            cause = "scale up" if after > before else "scale down"
        # a pod's reason can be long ("pods failed (OOMKilled (CrashLoopBackOff))" is 42): cut to the column, or
        # PostgreSQL refuses the row and the watcher's step fails
        cause = cause[: ScaleEvent._meta.get_field("cause").max_length]
        ScaleEvent.objects.create(trigger=trigger, from_pods=before, to_pods=after, cause=cause, cold_start_ms=cold_ms)


def poll_diag() -> None:
    """Poll Ambassador once; operators get the whole snapshot, each tenant only its own routes."""
    from triggers.gateway import diag

    before, after = diag.load(), diag.poll_once()
    if before is not None and not diag.changed(before, after):
        return
    broadcast.diag(None, after)
    hosts: dict[int, set[str]] = {}  # the same hosts as the tenant's websocket snapshot (consumers.py)
    for trigger in Trigger.objects.live().only("tenant_id", "address_url", "url"):
        hosts.setdefault(trigger.tenant_id, set()).update(diag.trigger_hosts(trigger))
    for tenant_id, tenant_hosts in hosts.items():
        view = diag.for_hosts(after, tenant_hosts)
        if before is None or diag.for_hosts(before, tenant_hosts) != view:
            broadcast.diag(tenant_id, view)


def run(watcher: Watcher, *, stop: threading.Event, diag_poll=None, diag_interval: float = 10.0) -> None:
    """The watch_cluster loop: apply changes as they come; poll Ambassador's diag every interval."""
    watcher.start()
    next_diag = 0.0
    try:
        while not stop.is_set():
            close_old_connections()  # a long-lived process: recycle stale or broken connections (health checks)
            watcher.step(timeout=0.5)
            if diag_poll is not None and time.monotonic() >= next_diag:
                diag_poll()
                next_diag = time.monotonic() + diag_interval
    finally:
        watcher.stop()
