"""Watch streams: chunked JSON lines, one flushed per event, exactly as the official client expects.

Rules (kubernetes-client-wire.md): never a blank line; resourceVersion unset/"0" sends synthetic ADDED for
the current objects then live events; RV=N sends events after N, or an ERROR 410 Expired event when N is
older than the kept history; BOOKMARKs only when asked; the server enforces timeoutSeconds; with a label
selector an object leaving it is DELETED and one entering it is ADDED.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from typing import TYPE_CHECKING

from aiohttp import ClientConnectionResetError, web

from .errors import ApiError, bad_request
from .resources import Resource
from .selectors import parse_field_selector, parse_label_selector
from .store import Event
from .tables import table, wants_table

if TYPE_CHECKING:
    from .context import SimContext

log = logging.getLogger("kubesim.watch")

_CLOSE, _RESET = "close", "reset"


def _expired(rv: int, current: int) -> bytes:
    status = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
              "message": f"too old resource version: {rv} ({current})", "reason": "Expired",
              "code": 410}
    return (json.dumps({"type": "ERROR", "object": status}, separators=(",", ":")) + "\n").encode()


def _bookmark(res: Resource, rv: int, initial_end: bool = False) -> bytes:
    meta: dict = {"resourceVersion": str(rv)}
    if initial_end:
        meta["annotations"] = {"k8s.io/initial-events-end": "true"}
    obj = {"kind": res.kind, "apiVersion": res.api_version, "metadata": meta}
    return (json.dumps({"type": "BOOKMARK", "object": obj}, separators=(",", ":")) + "\n").encode()


def _dumps_line(type_: str, obj: dict) -> bytes:
    return (json.dumps({"type": type_, "object": obj}, separators=(",", ":")) + "\n").encode()


class _Filter:
    """Decides what one event becomes for one watcher (None, or the type to send)."""

    def __init__(self, res: Resource, namespace: str | None, label_selector: str | None,
                 field_selector: str | None):
        self.key = res.key
        self.namespace = namespace
        self.lsel = parse_label_selector(label_selector)
        self.fsel = parse_field_selector(field_selector, res.key)
        self.meta_only = all(p.strip().startswith("metadata.")
                             for p in (field_selector or "").split(",") if p.strip())

    def _fields_ok(self, ev: Event) -> bool:
        if self.fsel is None:
            return True
        if self.meta_only:
            return self.fsel({"metadata": {"name": ev.name, "namespace": ev.namespace}})
        return self.fsel(json.loads(ev.raw))

    def __call__(self, ev: Event) -> str | None:
        if ev.key != self.key or (self.namespace and ev.namespace != self.namespace):
            return None
        if not self._fields_ok(ev):
            return None
        if self.lsel is None:
            return ev.type
        new = self.lsel(ev.labels)
        if ev.type == "ADDED":
            return "ADDED" if new else None
        if ev.type == "DELETED":
            return "DELETED" if self.lsel(ev.old_labels or ev.labels) else None
        old = self.lsel(ev.old_labels or {})
        if old and new:
            return "MODIFIED"
        if new:
            return "ADDED"
        if old:
            return "DELETED"
        return None


async def serve_watch(request: web.Request, sim: SimContext, res: Resource,
                      namespace: str | None) -> web.StreamResponse:
    q = request.query
    store = sim.store
    flt = _Filter(res, namespace, q.get("labelSelector"), q.get("fieldSelector"))
    try:
        timeout = float(q["timeoutSeconds"]) if q.get("timeoutSeconds") else None
    except ValueError:
        raise bad_request(f"invalid timeoutSeconds: {q['timeoutSeconds']!r}") from None
    bookmarks = q.get("allowWatchBookmarks") in ("true", "1")
    rv_param = q.get("resourceVersion") or ""
    queue: asyncio.Queue[bytes | str] = asyncio.Queue()
    initial: list[bytes] = []
    as_table = wants_table(request.headers.get("Accept"))
    include = q.get("includeObject", "Metadata")

    def render(ev: Event, type_: str) -> bytes:
        if not as_table:
            return ev.line(type_)
        obj = json.loads(ev.raw)
        tbl = table(res, [obj], obj["metadata"]["resourceVersion"], include)
        return _dumps_line(type_, tbl)

    if rv_param in ("", "0"):
        for obj in store.iter_refs(res.key, namespace, q.get("labelSelector"),
                                   q.get("fieldSelector")):
            if as_table:
                initial.append(_dumps_line("ADDED", table(res, [obj], obj["metadata"]["resourceVersion"],
                                                          include)))
                continue
            initial.append(b'{"type":"ADDED","object":' +
                           json.dumps(obj, separators=(",", ":")).encode() + b"}\n")
        if q.get("sendInitialEvents") == "true" and bookmarks:
            initial.append(_bookmark(res, store.resource_version, initial_end=True))
    else:
        try:
            rv = int(rv_param)
        except ValueError:
            raise ApiError(400, "BadRequest", f"invalid resource version: {rv_param!r}") from None
        events = store.events_since(rv)
        if events is None:
            initial.append(_expired(rv, store.resource_version))
            queue.put_nowait(_CLOSE)
        else:
            for ev in events:
                t = flt(ev)
                if t:
                    initial.append(render(ev, t))

    def on_event(ev: Event) -> None:
        t = flt(ev)
        if t:
            queue.put_nowait(render(ev, t))

    # Registered synchronously with the snapshot above: no event can fall in between.
    store.watch_listeners.append(on_event)
    unregister = sim.faults.register_watch(queue.put_nowait)
    sim.open_watches.add(queue)
    try:
        resp = web.StreamResponse(status=200, headers={"Content-Type": "application/json",
                                                       "Cache-Control": "no-cache, private"})
        resp.enable_chunked_encoding()
        await resp.prepare(request)
        for chunk in initial:
            await resp.write(chunk)
        deadline = time.monotonic() + timeout if timeout is not None else None
        interval = sim.config.bookmark_interval
        next_bookmark = time.monotonic() + interval
        while True:
            now = time.monotonic()
            wait = 1.0
            if deadline is not None:
                wait = min(wait, deadline - now)
            if bookmarks:
                wait = min(wait, next_bookmark - now)
            if wait <= 0:
                if deadline is not None and now >= deadline:
                    break
                if bookmarks and now >= next_bookmark:
                    await resp.write(_bookmark(res, store.resource_version))
                    next_bookmark = now + interval
                continue
            try:
                item = await asyncio.wait_for(queue.get(), wait)
            except TimeoutError:
                if request.transport is None or request.transport.is_closing():
                    break
                continue
            if item == _CLOSE:
                break
            if item == _RESET:
                if request.transport is not None:
                    request.transport.abort()
                return resp
            await resp.write(item)  # type: ignore[arg-type]
        await resp.write_eof()
        return resp
    except (ClientConnectionResetError, ConnectionResetError, ConnectionError) as e:
        # The client went away (w.stop(), a closed or reset socket) while we wrote to it: routine
        # for a watch, so no traceback; nothing to answer.
        log.debug("watch client disconnected: %r", e)
        return resp
    finally:
        unregister()
        sim.open_watches.discard(queue)
        if on_event in store.watch_listeners:
            store.watch_listeners.remove(on_event)
