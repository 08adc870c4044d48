"""Container logs, as the kubelet keeps them and `GET /api/v1/namespaces/{ns}/pods/{name}/log` reads them.

The simulated runtime (knative_runtime) opens one `LogInstance` per run of a container (keyed by its
`containerID`, as CRI log files are), the simulated handler (handlers.Container) writes lines into it, and
the API server (api.py) answers the `pods/log` subresource from the pod's *stored* status, exactly as
kube-apiserver + kubelet decide which run to read. Every rule below follows
`../shared/design/round2-facts.md` section 1 (cited as "facts §1.x"), which gives the upstream sources:

* options and their validation: facts §1.1 (`PodLogOptions`, `ValidatePodLogOptions`);
* which container and which run: facts §1.3 (`validateContainer` in the apiserver's pod strategy) and
  §1.2 (`validateContainerLogStatus` in the kubelet);
* stream content and termination: facts §1.2 (cri-client `pkg/logs/logs.go` `ReadLogs`/`waitLogs`);
* the `stream` option (`All`/`Stdout`/`Stderr`, feature gate `PodLogsQuerySplitStreams`): facts §1.1. Every
  stored line remembers the stream it was written to, as a CRI log line does (`<time> stdout|stderr F
  <text>`); handlers print to stdout, a crash's last words go to stderr.

Memory is bounded per container run: a ring of `MAX_LINES` lines (older lines fall off, as the kubelet's
log rotation drops rotated files for `tailLines` and follow readers; facts §1.1 "rotated files are not
read"), each line cut at `MAX_LINE_BYTES`, and at most two runs per container (the current one and the
previous, which is all `previous=true` can reach; the kubelet garbage-collects older dead containers).
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from aiohttp import ClientConnectionResetError, web

from .errors import ApiError, bad_request

MAX_LINES = 1000                 # lines kept per container run (the ring; see the module docstring)
MAX_LINE_BYTES = 16 * 1024       # containerd's maximum log line (16 KiB); longer lines are cut here
RUNS_KEPT = 2                    # the current run and the previous one
_FOLLOW_POLL = 1.0               # cri-client logForceCheckPeriod: re-check at least every second
STDOUT, STDERR = "stdout", "stderr"   # the stream tag of a CRI log line
# PodLogOptions.stream values (kubernetes/api@v0.34.0 core/v1/types.go: LogStreamStdout/Stderr/All) and the
# stream each selects; All is None (no filter)
STREAMS = {"All": None, "Stdout": STDOUT, "Stderr": STDERR}


def rfc3339_nano_fixed(ns: int) -> str:
    """cri-client's `RFC3339NanoFixed` ("2006-01-02T15:04:05.000000000Z07:00"): always 9 fractional
    digits, UTC (facts §1.2 "Timestamp prefix")."""
    sec, frac = divmod(ns, 1_000_000_000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(sec)) + f".{frac:09d}Z"


class LogInstance:
    """The log of one run of one container (one CRI container ID): a bounded ring of lines."""

    __slots__ = ("container", "container_id", "lines", "seq", "running", "changed", "max_lines")

    def __init__(self, container: str, container_id: str, max_lines: int = MAX_LINES):
        self.container = container
        self.container_id = container_id
        self.max_lines = max_lines
        # (seq, time ns, text, stream): stream is STDOUT or STDERR
        self.lines: deque[tuple[int, int, str, str]] = deque(maxlen=max_lines)
        self.seq = 0                  # the sequence number the next line gets
        self.running = True
        self.changed = asyncio.Event()

    def _wake(self) -> None:
        self.changed.set()
        self.changed = asyncio.Event()

    def write(self, text: str, stream: str = STDOUT) -> None:
        """Print `text` (one or more lines) to the container's stdout (or `stream`: STDERR)."""
        now = time.time_ns()
        text = str(text)
        for line in (text[:-1] if text.endswith("\n") else text).split("\n"):
            data = line.encode()
            if len(data) > MAX_LINE_BYTES:
                line = data[:MAX_LINE_BYTES].decode(errors="ignore")
            self.lines.append((self.seq, now, line, stream))
            self.seq += 1
        self._wake()

    def exit(self) -> None:
        """The container stopped: followers get what is left and their streams end."""
        if self.running:
            self.running = False
            self._wake()


class PodLogs:
    """The container runs of one pod that still have logs (at most RUNS_KEPT per container)."""

    __slots__ = ("runs", "max_lines")

    def __init__(self, max_lines: int = MAX_LINES) -> None:
        self.runs: dict[str, list[LogInstance]] = {}
        self.max_lines = max_lines

    def start(self, container: str, container_id: str) -> LogInstance:
        """A new run of `container` (the previous one is stopped; older runs are forgotten)."""
        runs = self.runs.setdefault(container, [])
        for old in runs:
            old.exit()
        inst = LogInstance(container, container_id, self.max_lines)
        runs.append(inst)
        del runs[:-RUNS_KEPT]
        return inst

    def find(self, container: str, container_id: str) -> LogInstance | None:
        return next((i for i in self.runs.get(container, ()) if i.container_id == container_id), None)

    def exit_all(self) -> None:
        for runs in self.runs.values():
            for inst in runs:
                inst.exit()


class PodLogRegistry:
    """Every pod's logs, by pod uid (a pod re-created under the same name starts empty)."""

    def __init__(self, max_lines: int = MAX_LINES):
        self.max_lines = max_lines
        self.pods: dict[str, PodLogs] = {}

    def for_pod(self, uid: str) -> PodLogs:
        logs = self.pods.get(uid)
        if logs is None:
            logs = self.pods[uid] = PodLogs(self.max_lines)
        return logs

    def get(self, uid: str) -> PodLogs | None:
        return self.pods.get(uid)

    def drop(self, uid: str) -> None:
        """The pod object is gone: so are its logs (the kubelet removes the pod's log directory)."""
        logs = self.pods.pop(uid, None)
        if logs is not None:
            logs.exit_all()

    def exit_all(self) -> None:
        for logs in self.pods.values():
            logs.exit_all()


# ----------------------------------------------------------------------------------- options

@dataclass
class LogOptions:
    container: str = ""
    follow: bool = False
    previous: bool = False
    timestamps: bool = False
    since_ns: int | None = None     # skip lines older than this (time ns)
    tail: int | None = None
    limit: int | None = None
    stream: str | None = None       # STDOUT or STDERR: only that stream's lines; None: both (All)


def _bool(value: str) -> bool:
    """apimachinery's query conversion of a bool: "0" and "false" (any case) are false, all else true."""
    return not (value == "0" or value.lower() == "false")


def _int(query: Any, key: str) -> int | None:
    value = query.get(key)
    if value is None:
        return None
    try:
        return int(value)
    except ValueError:
        raise bad_request(f'strconv.ParseInt: parsing "{value}": invalid syntax') from None


def _since_time(value: str) -> int:
    """`sinceTime` is RFC 3339; the apiserver hands it to the kubelet formatted with `time.RFC3339`, so
    only whole seconds count (facts §1.1 `sinceTime`, strategy.go LogLocation)."""
    try:
        if "T" not in value:
            raise ValueError(value)
        dt = datetime.fromisoformat(value.replace("z", "Z"))
        if dt.tzinfo is None:
            raise ValueError(value)
    except ValueError:
        raise bad_request(f'parsing time "{value}" as "2006-01-02T15:04:05Z07:00": cannot parse '
                          f'"{value}" as RFC 3339') from None
    return int(dt.timestamp()) * 1_000_000_000


def parse_options(query: Any, pod: str, split_streams: bool = True) -> LogOptions:
    """PodLogOptions from the query, validated as `ValidatePodLogOptions` does: 422 Invalid
    `PodLogOptions "<pod>" is invalid: …` (facts §1.1, "Validation messages").

    `split_streams` is the `PodLogsQuerySplitStreams` feature gate (SimConfig.pod_logs_split_streams).
    With it on, a missing `stream` means `All` (the defaulter sets it; the apiserver's LogLocation then
    forwards `stream` to the kubelet unconditionally, "With defaulters, We can be confident that
    opts.Stream is not nil here": kubernetes/kubernetes pkg/registry/core/pod/strategy.go LogLocation, code
    index snapshot of 1.34-era main). With it off, LogLocation does not forward `stream` at all (same
    function), so the kubelet returns both streams: kubesim ignores the parameter. Whether a gate-off
    apiserver also clears the field before validation (so a bad value is not refused) is unconfirmed;
    kubesim ignores it entirely."""
    opts = LogOptions(container=query.get("container", ""),
                      follow=_bool(query["follow"]) if "follow" in query else False,
                      previous=_bool(query["previous"]) if "previous" in query else False,
                      timestamps=_bool(query["timestamps"]) if "timestamps" in query else False)
    tail, limit, since_s = _int(query, "tailLines"), _int(query, "limitBytes"), _int(query, "sinceSeconds")
    since_t = _since_time(query["sinceTime"]) if query.get("sinceTime") else None
    # a present `stream=` converts to a pointer to "" (apimachinery's []string -> *string query
    # conversion takes the first value), which is then not a supported value
    stream = query.get("stream") if split_streams else None
    causes = []
    if tail is not None and tail < 0:
        causes.append({"reason": "FieldValueInvalid", "field": "tailLines",
                       "message": f"Invalid value: {tail}: must be greater than or equal to 0"})
    if limit is not None and limit < 1:
        causes.append({"reason": "FieldValueInvalid", "field": "limitBytes",
                       "message": f"Invalid value: {limit}: must be greater than 0"})
    if since_s is not None and since_t is not None:
        causes.append({"reason": "FieldValueForbidden", "field": "",
                       "message": "Forbidden: at most one of `sinceTime` or `sinceSeconds` may be specified"})
    elif since_s is not None and since_s < 1:
        causes.append({"reason": "FieldValueInvalid", "field": "sinceSeconds",
                       "message": f"Invalid value: {since_s}: must be greater than 0"})
    if stream is not None:
        # ValidatePodLogOptions (index copy of the v1 variant, `validLogStreams`): an unknown value is
        # field.NotSupported on `stream`; a specific stream with tailLines is field.Forbidden on the root
        # path, "`tailLines` and specific `stream` are mutually exclusive for now". The exact 1.34 text,
        # and the order of the supported values (that copy lists a Go set unsorted; kubesim sorts them), are
        # unconfirmed (facts §1.1: "1.34 also validates `stream`; its exact text is unconfirmed").
        if stream not in STREAMS:
            supported = ", ".join(f'"{v}"' for v in sorted(STREAMS))
            causes.append({"reason": "FieldValueNotSupported", "field": "stream",
                           "message": f'Unsupported value: "{stream}": supported values: {supported}'})
        elif stream != "All" and tail is not None:
            causes.append({"reason": "FieldValueForbidden", "field": "",
                           "message": "Forbidden: `tailLines` and specific `stream` are mutually exclusive "
                                      "for now"})
    if causes:
        parts = [f"{c['field']}: {c['message']}" if c["field"] else c["message"] for c in causes]
        text = parts[0] if len(parts) == 1 else "[" + ", ".join(parts) + "]"
        raise ApiError(422, "Invalid", f'PodLogOptions "{pod}" is invalid: {text}',
                       {"name": pod, "kind": "PodLogOptions", "causes": causes})
    opts.tail, opts.limit = tail, limit
    opts.stream = STREAMS.get(stream) if stream is not None else None
    if since_t is not None:
        opts.since_ns = since_t
    elif since_s is not None:
        # the kubelet computes `now - sinceSeconds` when the request arrives (facts §1.1 `sinceSeconds`)
        opts.since_ns = time.time_ns() - since_s * 1_000_000_000
    return opts


# ------------------------------------------------------------------------ container and run

def _names(spec: dict, kind: str) -> list[str]:
    return [c.get("name", "") for c in spec.get(kind) or [] if isinstance(c, dict)]


def select_container(pod: dict, container: str) -> str:
    """The apiserver's `validateContainer` (facts §1.3): the only container by default, else 400."""
    spec = pod.get("spec") or {}
    name = pod["metadata"]["name"]
    if not container:
        containers = _names(spec, "containers")
        if len(containers) == 1:
            return containers[0]
        if not containers:
            raise bad_request(f"a container name must be specified for pod {name}")
        # podutil.VisitContainers order: init containers, containers, ephemeral containers; Go's %s of
        # a []string is "[a b c]"
        every = _names(spec, "initContainers") + containers + _names(spec, "ephemeralContainers")
        raise bad_request(f"a container name must be specified for pod {name}, "
                          f"choose one of: [{' '.join(every)}]")
    if container not in (_names(spec, "initContainers") + _names(spec, "containers")
                         + _names(spec, "ephemeralContainers")):
        raise bad_request(f"container {container} is not valid for pod {name}")
    return container


def container_id(pod: dict, container: str, previous: bool) -> str:
    """The kubelet's `validateContainerLogStatus` (facts §1.2 "Which instance is read", §1.3): which run's
    log is read, from the pod's status, or 400 with the kubelet's message."""
    name = pod["metadata"]["name"]
    status = pod.get("status") or {}
    cs = None
    for kind in ("containerStatuses", "initContainerStatuses", "ephemeralContainerStatuses"):
        cs = next((c for c in status.get(kind) or [] if c.get("name") == container), None)
        if cs is not None:
            break
    if cs is None:
        raise bad_request(f'container "{container}" in pod "{name}" is not available')
    state = cs.get("state") or {}
    last = (cs.get("lastState") or {}).get("terminated")
    waiting, running, terminated = state.get("waiting"), state.get("running"), state.get("terminated")
    if previous:
        if not last or not last.get("containerID"):
            raise bad_request(f'previous terminated container "{container}" in pod "{name}" not found')
        return last["containerID"]
    if running is not None:
        return cs.get("containerID", "")
    if terminated is not None:
        if terminated.get("containerID"):
            return terminated["containerID"]
        if last and last.get("containerID"):
            return last["containerID"]
        raise bad_request(f'container "{container}" in pod "{name}" is terminated')
    if last is not None:
        if not last.get("containerID"):
            raise bad_request(f'container "{container}" in pod "{name}" is terminated')
        return last["containerID"]
    if waiting is not None:
        reason = waiting.get("reason", "")
        detail = {"ErrImagePull": "image can't be pulled",
                  "ImagePullBackOff": "trying and failing to pull image"}.get(reason, reason)
        raise bad_request(f'container "{container}" in pod "{name}" is waiting to start: {detail}')
    raise bad_request(f'container "{container}" in pod "{name}" is waiting to start - no logs yet')


# ------------------------------------------------------------------------------------ stream

async def serve_log(request: web.Request, pod: dict, logs: PodLogs | None,
                    opts: LogOptions) -> web.StreamResponse:
    """Answer one `pods/log` request for a pod read from the store (its existence already checked)."""
    container = select_container(pod, opts.container)
    if not (pod.get("spec") or {}).get("nodeName"):
        # not scheduled: LogLocation returns no location and the apiserver answers 204, empty (facts §1.3)
        return web.Response(status=204)
    cid = container_id(pod, container, opts.previous)
    inst = logs.find(container, cid) if logs is not None else None
    resp = web.StreamResponse(status=200, headers={"Content-Type": "text/plain",
                                                   "Cache-Control": "no-cache, private"})
    resp.enable_chunked_encoding()   # the kubelet streams chunked (facts §1.2 "Headers flushed early")
    try:
        await resp.prepare(request)   # headers go out before any line, as the kubelet's zero-byte write
        if inst is not None:
            await _copy(request, resp, inst, opts)
        await resp.write_eof()
    except (ClientConnectionResetError, ConnectionResetError, ConnectionError):
        pass   # the client went away (kubectl ^C, a closed python stream): nothing to answer
    return resp


async def _copy(request: web.Request, resp: web.StreamResponse, inst: LogInstance, opts: LogOptions) -> None:
    lines = inst.lines
    if opts.tail is not None:
        # tailLines: the last N lines of the current file; with follow the stream continues after them
        # (facts §1.1 `tailLines`)
        pos = lines[-opts.tail][0] if 0 < opts.tail <= len(lines) else \
            inst.seq if opts.tail == 0 else (lines[0][0] if lines else inst.seq)
    else:
        pos = lines[0][0] if lines else inst.seq
    budget = opts.limit
    while True:
        if inst.seq > pos:
            chunk = bytearray()
            for seq, ts, text, stream in list(lines):
                if seq < pos:
                    continue
                pos = seq + 1
                if opts.since_ns is not None and ts < opts.since_ns:
                    continue
                if opts.stream is not None and stream != opts.stream:
                    continue   # stream=Stdout/Stderr: the kubelet skips the other stream's lines
                out = (text + "\n").encode()
                if opts.timestamps:
                    out = (rfc3339_nano_fixed(ts) + " ").encode() + out
                chunk += out
            pos = max(pos, inst.seq)
            if budget is not None and len(chunk) >= budget:
                # limitBytes counts the prefix too; the last line is cut and the stream ends without an
                # error (facts §1.1 `limitBytes`)
                await resp.write(bytes(chunk[:budget]))
                return
            if chunk:
                if budget is not None:
                    budget -= len(chunk)
                await resp.write(bytes(chunk))
            continue   # the write may have let new lines in
        if not opts.follow or not inst.running:
            # not following, or the container is no longer running: everything is drained, the response
            # ends normally (facts §1.2 "Followed container exits or pod is deleted")
            return
        changed = inst.changed
        try:
            await asyncio.wait_for(changed.wait(), _FOLLOW_POLL)
        except TimeoutError:
            if request.transport is None or request.transport.is_closing():
                return
