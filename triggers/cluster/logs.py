"""The log collector (`manage.py collect_logs`): every managed pod's `user-container` log, kept in the database.

Knative deletes a handler's pods when it scales to zero, and their logs with them; this process reads each
pod's log as it is written and stores every line (triggers.models.LogLine) with its pod, revision, container,
the kubelet's timestamp and the delivery id it names.

How it follows (the API's behaviour: ../shared/design/round2-facts.md §1, kubesim/podlogs.py):

* One watch of the managed pods (label app.kubernetes.io/managed-by=relayweb, all namespaces) says which pods
  exist and which run of their `user-container` is current (its `containerID`).
* Each running container is followed by one thread: `pods/{name}/log?container=user-container&follow=true&
  timestamps=true` (§1.1). The kubelet ends the response normally once the container is no longer running
  and its log is drained (§1.2), so a pod scaled away or a crashed container is read to its last line. A
  container that restarts is followed again (its new containerID); one that ran while nobody followed it
  (the collector was down, or it crashed before we got to it) is read once with `previous=true`.
* Each follow starts a little before the last stored line: `sinceSeconds` = the seconds since it, rounded
  up, plus SINCE_MARGIN for the node's clock (the official client, v37, offers no `since_time` on
  read_namespaced_pod_log, and the apiserver would cut sinceTime to whole seconds anyway, §1.1). The lines
  that come again are skipped: those older than the last stored line, and of the lines stamped exactly like
  it, as many as are already stored. A restarted collector therefore neither loses nor repeats a line.
* Bounded: at most RELAY_LOG_MAX_STREAMS follows at once (more pods wait for a slot), at most
  RELAY_LOG_QUEUE_LINES lines read but not yet stored (a follower blocks when the queue is full, which holds
  back its TCP stream), lines cut at LogLine.MAX_CHARS (the cut counted), a partial line at most READ_CAP.
* A quiet follow is re-opened after READ_TIMEOUT seconds without a byte (a dead connection would otherwise
  hang a thread forever); thanks to sinceTime that costs nothing twice.

The calling thread (step(), driven by run()/run_elected like the cluster watcher) starts follows on pod
changes, writes the queued lines in batches and tells open log panels (triggers.live.broadcast.log_lines);
one leader at a time (its own Lease, RELAY_LOG_LEASE_NAME) so no line is stored twice.
"""

from __future__ import annotations

import json
import logging
import math
import queue
import re
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime

import urllib3
from django.conf import settings
from kubernetes import watch
from kubernetes.client.exceptions import ApiException

from triggers.live import broadcast
from triggers.models import LogLine, Trigger

from . import kube

log = logging.getLogger(__name__)

CONTAINER = "user-container"  # Knative's name for the handler's container
REVISION_LABEL = "serving.knative.dev/revision"
READ_TIMEOUT = 30.0  # seconds without a byte before a follow is re-opened
SINCE_MARGIN = 5  # seconds asked for before the last stored line (clock skew between us and the node)
READ_CAP = 64 * 1024  # the longest partial line buffered; beyond it the line is cut
BATCH = 2000  # lines written per insert
TRIM_SLACK = 1.1  # a trigger's lines are trimmed back to the maximum once they pass it by 10 %
LIVE_LINES = 200  # lines per trigger per batch sent to open log panels (the rest: reload to see)
_UUID = re.compile(rb"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def parse_time(stamp: bytes) -> datetime | None:
    """The kubelet's RFC3339NanoFixed prefix ("2026-12-07T19:00:00.123456789Z", §1.2) as an aware datetime
    (microseconds: what the database keeps). None when it is not one."""
    try:
        text = stamp.decode("ascii")
        if text.endswith("Z"):
            text = text[:-1] + "+00:00"
        head, dot, rest = text.partition(".")
        if dot:  # Python reads at most 6 fractional digits
            digits = len(rest) - len(rest.lstrip("0123456789"))
            text = f"{head}.{rest[:min(digits, 6)]:0<6}{rest[digits:]}"
        when = datetime.fromisoformat(text)
    except ValueError:
        return None
    return when if when.tzinfo else when.replace(tzinfo=UTC)


@dataclass
class Mark:
    """Where a pod's stored log ends: the last line's time and how many stored lines carry exactly it."""

    time: datetime | None = None
    same: int = 0

    def advance(self, when: datetime) -> None:
        if self.time is not None and when == self.time:
            self.same += 1
        elif self.time is None or when > self.time:
            self.time, self.same = when, 1


@dataclass
class Pod:
    namespace: str
    name: str
    trigger_id: int
    revision: str
    container_id: str = ""  # of the running user-container, "" when none runs
    previous_id: str = ""  # of its last terminated run
    followed: set[str] = field(default_factory=set)  # container ids read to their end (or being read)
    following: int = 0  # follow threads running (one per stream)
    deleted: bool = False


def pod_state(obj: dict) -> tuple[str, str]:
    """(running container id, last terminated container id) of a pod's user-container."""
    for status in (obj.get("status") or {}).get("containerStatuses") or []:
        if status.get("name") != CONTAINER:
            continue
        state = status.get("state") or {}
        running = status.get("containerID", "") if "running" in state else ""
        if not running and "terminated" in state:  # ended, not yet restarted: its run is still readable
            running = (state.get("terminated") or {}).get("containerID") or ""
        previous = ((status.get("lastState") or {}).get("terminated") or {}).get("containerID") or ""
        return running, previous
    return "", ""


class LogCollector:
    def __init__(self, cluster: kube.Cluster | None = None, *, max_streams: int | None = None,
                 queue_lines: int | None = None, read_timeout: float = READ_TIMEOUT, watch_timeout: int = 300):
        self.cluster = cluster or kube.cluster()
        self.max_streams = max_streams or settings.RELAY_LOG_MAX_STREAMS
        self.read_timeout, self.watch_timeout = read_timeout, watch_timeout
        self.lines: queue.Queue = queue.Queue(maxsize=queue_lines or settings.RELAY_LOG_QUEUE_LINES)
        self.changes: queue.Queue = queue.Queue()  # pod changes from the watch thread and ended follows
        self.slots = threading.BoundedSemaphore(self.max_streams)
        self.stopping = threading.Event()
        self.pods: dict[tuple[str, str], Pod] = {}
        self.marks: dict[tuple[int, str, str], Mark] = {}  # (trigger id, pod, stream) → where its stored log ends
        self.responses: dict[int, urllib3.HTTPResponse] = {}  # open follows, closed on stop
        self.threads: list[threading.Thread] = []
        self.lock = threading.Lock()
        self.stored = 0  # lines written (tests and the benchmark read it)
        self.opens = 0  # log streams opened (a quiet one is re-opened every read_timeout)
        self.max_lines = settings.RELAY_LOG_MAX_LINES_PER_TRIGGER
        self.counts: dict[int, int] = {}  # trigger id → its stored lines (at most about max_lines × TRIM_SLACK)
        self.cut_lines = 0
        # (the API's `stream` value, what a line's `stream` says): both apart, or one stream of both
        split = settings.RELAY_LOG_SPLIT_STREAMS
        self.streams = (("Stdout", "stdout"), ("Stderr", "stderr")) if split else ((None, ""),)
        self._held: list[LogLine] = []  # a line step() waited for, stored first
        self.sender = broadcast.BackgroundSender()

    # ------------------------------------------------------------ the pod watch (thread)

    def start(self) -> None:
        thread = threading.Thread(target=self._watch_pods, name="logs-watch-pods", daemon=True)
        thread.start()
        self.threads.append(thread)

    def stop(self) -> None:
        self.stopping.set()
        with self.lock:
            responses = list(self.responses.values())
        for response in responses:
            try:
                response.shutdown() if hasattr(response, "shutdown") else response.close()
            except Exception:  # noqa: BLE001 - closing a dying connection
                pass
        deadline = time.monotonic() + 5
        for thread in list(self.threads):
            thread.join(max(0.0, deadline - time.monotonic()))
        self.flush()
        self.sender.stop()

    def _watch_pods(self) -> None:
        core, backoff, version = self.cluster.core, 0.5, None
        while not self.stopping.is_set():
            try:
                if version is None:
                    raw = json.loads(core.list_pod_for_all_namespaces(
                        label_selector=kube.MANAGED_SELECTOR, _preload_content=False, _request_timeout=30).data)
                    version = raw["metadata"]["resourceVersion"]
                    self.changes.put(("SYNC", raw["items"]))
                w = watch.Watch()
                for event in w.stream(core.list_pod_for_all_namespaces, label_selector=kube.MANAGED_SELECTOR,
                                      resource_version=version, timeout_seconds=self.watch_timeout,
                                      allow_watch_bookmarks=True, _request_timeout=self.watch_timeout + 30):
                    obj = event["raw_object"]
                    version = (obj.get("metadata") or {}).get("resourceVersion") or version
                    if event["type"] != "BOOKMARK":
                        self.changes.put((event["type"], obj))
                    if self.stopping.is_set():
                        return
                backoff = 0.5
            except ApiException as e:
                if e.status == 410:  # compacted: list again (the follows already open carry on)
                    version = None
                    continue
                log.warning("collect_logs: pod watch: API error %s, retrying in %.1fs", e.status, backoff)
                self.stopping.wait(backoff)
                backoff = min(backoff * 2, 30.0)
            except (urllib3.exceptions.HTTPError, OSError, ValueError) as e:
                log.warning("collect_logs: pod watch: %s, retrying in %.1fs", type(e).__name__, backoff)
                self.stopping.wait(backoff)
                backoff = min(backoff * 2, 30.0)

    # ------------------------------------------------------------ the calling thread

    def step(self, timeout: float = 0.5) -> int:
        """Apply pod changes (starting follows), then store what the follows read. Returns lines stored."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                kind, obj = self.changes.get_nowait()
            except queue.Empty:
                break
            self._on_change(kind, obj)
        if self.lines.empty() and not self._held:
            remaining = deadline - time.monotonic()
            if remaining > 0:
                try:
                    self._held.append(self.lines.get(timeout=min(remaining, 0.2)))  # wait for the first line
                except queue.Empty:
                    return 0
        return self.flush()

    def _on_change(self, kind: str, obj) -> None:
        if kind == "SYNC":
            listed = set()
            for item in obj:
                listed.add(self._key(item))
                self._on_pod(item)
            for key, pod in list(self.pods.items()):
                if key not in listed:
                    pod.deleted = True
                    if not pod.following:
                        del self.pods[key]
            return
        if kind == "ENDED":  # a follow ended: follow the pod's next run, if one began meanwhile
            pod = self.pods.get(obj)
            if pod is not None:
                pod.following -= 1
                if pod.following:
                    return  # the pod's other stream still reads
                if pod.deleted:
                    del self.pods[obj]
                else:
                    self._follow_if_needed(pod)
            return
        key = self._key(obj)
        if kind == "DELETED":
            pod = self.pods.get(key)
            if pod is not None:
                pod.deleted = True
                if not pod.following:
                    del self.pods[key]
            return
        self._on_pod(obj)

    @staticmethod
    def _key(obj: dict) -> tuple[str, str]:
        meta = obj.get("metadata") or {}
        return meta.get("namespace", ""), meta.get("name", "")

    def _on_pod(self, obj: dict) -> None:
        meta = obj.get("metadata") or {}
        labels = meta.get("labels") or {}
        try:
            trigger_id = int(labels.get(kube.TRIGGER_LABEL, ""))
        except ValueError:
            return  # not a trigger's pod
        key = self._key(obj)
        pod = self.pods.get(key)
        if pod is None:
            pod = self.pods[key] = Pod(key[0], key[1], trigger_id, labels.get(REVISION_LABEL, ""))
        pod.container_id, pod.previous_id = pod_state(obj)
        self._follow_if_needed(pod)

    def _follow_if_needed(self, pod: Pod) -> None:
        if pod.following or self.stopping.is_set():
            return
        unread_previous = pod.previous_id and pod.previous_id not in pod.followed
        unread_current = pod.container_id and pod.container_id not in pod.followed
        if not (unread_previous or unread_current):
            return
        runs = []
        if unread_previous:  # a run nobody followed to its end (we were down, or it crashed at once)
            runs.append((pod.previous_id, True))
        if unread_current:
            runs.append((pod.container_id, False))
        pod.followed.update(run for run, _ in runs)
        self.threads = [t for t in self.threads if t.is_alive()]
        for stream, label in self.streams:
            pod.following += 1
            thread = threading.Thread(target=self._follow, args=(pod, runs, stream, self._mark(pod, label)),
                                      name=f"logs-{pod.name}-{label or 'all'}", daemon=True)
            self.threads.append(thread)
            thread.start()

    def _mark(self, pod: Pod, stream: str) -> Mark:
        """Where the pod's stored log (of one stream) ends: read from the database once per pod and process."""
        key = (pod.trigger_id, pod.name, stream)
        mark = self.marks.get(key)
        if mark is None:
            stored = LogLine.objects.filter(trigger_id=pod.trigger_id, pod=pod.name, stream=stream)
            last = stored.order_by("-time", "-id").values_list("time", flat=True).first()
            mark = self.marks[key] = Mark(last, stored.filter(time=last).count() if last else 0)
        return mark

    # ------------------------------------------------------------ follows (threads)

    def _follow(self, pod: Pod, runs: list[tuple[str, bool]], stream: str | None, mark: Mark) -> None:
        try:
            while not self.slots.acquire(timeout=1.0):
                if self.stopping.is_set():
                    return
            try:
                for container_id, previous in runs:
                    while not self.stopping.is_set():
                        outcome = self._read_once(pod, previous, mark, stream)
                        if outcome == "done" and not previous and self._still_running(pod, container_id):
                            outcome = "again"  # the stream ended but the container runs on (a proxy cut it)
                        if outcome != "again":
                            break
                        self.stopping.wait(0.5)  # a quiet or broken stream: re-open it from the mark
            finally:
                self.slots.release()
        except Exception:  # noqa: BLE001 - a follow must never take the collector down
            log.exception("collect_logs: following %s/%s failed", pod.namespace, pod.name)
        finally:
            self.changes.put(("ENDED", (pod.namespace, pod.name)))

    def _still_running(self, pod: Pod, container_id: str) -> bool:
        try:
            obj = json.loads(self.cluster.core.read_namespaced_pod(
                pod.name, pod.namespace, _preload_content=False, _request_timeout=10).data)
        except (ApiException, urllib3.exceptions.HTTPError, OSError, ValueError):
            return False  # gone, or unknown: the pod watch starts a new follow if it runs on
        for status in (obj.get("status") or {}).get("containerStatuses") or []:
            if status.get("name") == CONTAINER:
                return "running" in (status.get("state") or {}) and status.get("containerID") == container_id
        return False

    def _read_once(self, pod: Pod, previous: bool, mark: Mark, stream: str | None) -> str:
        kwargs = {"container": CONTAINER, "timestamps": True, "follow": not previous, "previous": previous,
                  "_preload_content": False, "_request_timeout": (10, self.read_timeout)}
        if stream is not None:
            kwargs["stream"] = stream
        if mark.time is not None:
            ago = (datetime.now(UTC) - mark.time).total_seconds()
            kwargs["since_seconds"] = max(1, math.ceil(ago) + SINCE_MARGIN)
        try:
            response = self.cluster.core.read_namespaced_pod_log(pod.name, pod.namespace, **kwargs)
        except ApiException as e:
            # 400: not running yet, or no previous run (§1.3); 404: the pod is gone. Nothing (more) to read.
            if e.status in (400, 404, 204):
                return "done"
            log.warning("collect_logs: %s/%s: API error %s", pod.namespace, pod.name, e.status)
            return "again"
        except (urllib3.exceptions.HTTPError, OSError) as e:
            log.warning("collect_logs: %s/%s: %s", pod.namespace, pod.name, type(e).__name__)
            return "again"
        self.opens += 1
        if response.status == 204:  # not scheduled yet: no log (§1.3)
            response.release_conn()
            return "done"
        with self.lock:
            self.responses[id(response)] = response
        skip = mark.same  # lines stamped exactly like the mark that are stored already
        label = {"Stdout": "stdout", "Stderr": "stderr"}.get(stream or "", "")
        buffer, cut = b"", 0
        try:
            for chunk in response.stream(65536, decode_content=False):
                buffer += chunk
                *complete, buffer = buffer.split(b"\n")
                if len(buffer) > READ_CAP:  # a line without end: keep its head, count the rest
                    cut += len(buffer) - READ_CAP
                    buffer = buffer[:READ_CAP]
                for raw in complete:
                    skip = self._line(pod, raw, mark, skip, label, cut)
                    cut = 0
            if buffer:
                self._line(pod, buffer, mark, skip, label, cut)
            return "done"
        except (urllib3.exceptions.HTTPError, OSError, ValueError):
            # quiet for READ_TIMEOUT, or the connection broke: re-open from the mark (an unfinished line in
            # the buffer comes again whole)
            return "again"
        finally:
            with self.lock:
                self.responses.pop(id(response), None)
            response.release_conn()

    def _line(self, pod: Pod, raw: bytes, mark: Mark, skip: int, stream: str, cut: int) -> int:
        stamp, _, text = raw.partition(b" ")
        when = parse_time(stamp)
        if when is None:  # not a timestamped line (cannot happen with timestamps=true): keep it as it came
            when, text = datetime.now(UTC), raw
        if mark.time is not None:
            if when < mark.time:
                return skip  # stored before (sinceTime has whole seconds)
            if when == mark.time and skip > 0:
                return skip - 1
        mark.advance(when)  # a line to keep: nothing more is skipped (the rest is newer)
        named = _UUID.search(text)
        decoded = text.decode("utf-8", errors="replace").rstrip("\r")
        if len(decoded) > LogLine.MAX_CHARS:
            cut += len(decoded) - LogLine.MAX_CHARS
            decoded = decoded[:LogLine.MAX_CHARS]
        line = LogLine(trigger_id=pod.trigger_id, time=when, pod=pod.name, revision=pod.revision,
                       container=CONTAINER, stream=stream, text=decoded, cut=cut,
                       delivery_id=uuid.UUID(named.group().decode()) if named else None)
        while not self.stopping.is_set():
            try:
                self.lines.put(line, timeout=0.5)  # full: the writer is behind; hold this stream back
                break
            except queue.Full:
                continue
        return 0

    # ------------------------------------------------------------ storing (calling thread)

    @staticmethod
    def _insert(batch: list[LogLine]) -> list[LogLine]:
        """Store the lines of triggers that still exist. Returns what was stored. (LogLine.trigger has no
        database constraint: a trigger deleted between the check and the insert leaves an unreachable orphan
        for retention, never a failed deletion.)"""
        return LogLine.objects.bulk_create(_live(batch))

    def flush(self) -> int:
        """Store the queued lines in batches; tell open log panels. Returns how many were stored."""
        total = 0
        while True:
            batch, self._held = self._held, []
            try:
                while len(batch) < BATCH:
                    batch.append(self.lines.get_nowait())
            except queue.Empty:
                pass
            if not batch:
                return total
            batch = self._insert(batch)
            self.stored += len(batch)
            self.cut_lines += sum(1 for line in batch if line.cut)
            total += len(batch)
            by_trigger: dict[int, list[LogLine]] = {}
            for line in batch:
                by_trigger.setdefault(line.trigger_id, []).append(line)
            messages = []
            for trigger_id, lines in by_trigger.items():
                self._keep_at_most(trigger_id, len(lines))
                messages.append(broadcast.log_lines_message(trigger_id, lines[-LIVE_LINES:],
                                                            dropped=max(0, len(lines) - LIVE_LINES)))
            self.sender.submit(messages)  # to open log panels, from the sender's own loop: never waited for

    def _keep_at_most(self, trigger_id: int, added: int) -> None:
        """RELAY_LOG_MAX_LINES_PER_TRIGGER, as lines come: once a trigger has TRIM_SLACK times as many, its
        oldest go (the cost of a trim grows with what it deletes, not with what is kept)."""
        count = self.counts.get(trigger_id)
        if count is None:  # first batch of this trigger in this process: count what is stored (bounded)
            limit = int(self.max_lines * TRIM_SLACK) + 1
            count = LogLine.objects.filter(trigger_id=trigger_id).values("id")[:limit].count()
        else:
            count += added
        if count > self.max_lines * TRIM_SLACK:
            LogLine.trim(trigger_id, self.max_lines)
            count = self.max_lines
        self.counts[trigger_id] = count


def _live(batch: list[LogLine]) -> list[LogLine]:
    """The lines whose trigger still exists (one deleted meanwhile takes its pods' last lines with it)."""
    live = set(Trigger.objects.filter(pk__in={line.trigger_id for line in batch}).values_list("pk", flat=True))
    return [line for line in batch if line.trigger_id in live]

