"""Fault injection: failing or hanging API calls, dropped watch streams (and the HTTP endpoints).

relayweb's reliability tests need a cluster that misbehaves on demand: a 503 on the third create, a 429
storm, a hanging list, a watch that dies. Rules are matched per API request by verb and resource and
consumed by count; pod kills and gateway stops are delegated to the Knative and gateway parts.
`GET /kubesim/stats` (request counters for benchmarks) is served here too.
"""

from __future__ import annotations

import inspect
import itertools
import logging
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from aiohttp import web

from .errors import ApiError, bad_request, reason_for

if TYPE_CHECKING:
    from .context import SimContext

log = logging.getLogger("kubesim.faults")

VERBS = {"get", "list", "watch", "create", "update", "patch", "delete", "deletecollection"}
_MESSAGES = {
    429: "Too many requests, please try again later.",
    500: "Internal error occurred: injected fault",
    503: "the server is currently unable to handle the request",
    504: "the server was unable to return a response in the time allotted, but may still be "
         "processing the request",
}
_ids = itertools.count(1)


@dataclass
class FaultRule:
    """One rule: answer `status` (or sleep `hang` seconds first) for matching calls, `count` times."""

    id: int
    status: int | None = None
    hang: float | None = None
    count: int | None = None  # None: until cleared
    verb: str | None = None
    resource: str | None = None  # resource key ("services.serving.knative.dev") or plural
    namespace: str | None = None
    message: str | None = None

    def matches(self, verb: str, key: str, namespace: str | None) -> bool:
        if self.verb and self.verb != verb:
            return False
        if self.resource and self.resource not in (key, key.split(".")[0]):
            return False
        return not (self.namespace and self.namespace != namespace)

    def error(self) -> ApiError | None:
        if self.status is None:
            return None
        return ApiError(self.status, reason_for(self.status),
                        self.message or _MESSAGES.get(self.status, "injected fault"), {})


class Faults:
    """The fault rules and the registry of open watch streams (so they can be dropped)."""

    def __init__(self) -> None:
        self.rules: list[FaultRule] = []
        self._watch_droppers: set[Callable[[str], None]] = set()

    def add(self, status: int | None = None, hang: float | None = None, count: int | None = None,
            verb: str | None = None, resource: str | None = None, namespace: str | None = None,
            message: str | None = None) -> FaultRule:
        if status is None and hang is None:
            raise bad_request("a fault needs 'status' and/or 'hang'")
        if status is not None and not 400 <= int(status) <= 599:
            raise bad_request("'status' must be an HTTP error code (400-599)")
        if verb is not None and verb not in VERBS:
            raise bad_request(f"'verb' must be one of {sorted(VERBS)}")
        rule = FaultRule(next(_ids), None if status is None else int(status),
                         None if hang is None else float(hang), None if count is None else int(count),
                         verb, resource, namespace, message)
        self.rules.append(rule)
        return rule

    def clear(self) -> None:
        self.rules.clear()

    def take(self, verb: str, key: str, namespace: str | None) -> FaultRule | None:
        """The first rule matching this call, consuming one of its count."""
        for rule in self.rules:
            if rule.matches(verb, key, namespace):
                if rule.count is not None:
                    rule.count -= 1
                    if rule.count <= 0:
                        self.rules.remove(rule)
                return rule
        return None

    def register_watch(self, drop: Callable[[str], None]) -> Callable[[], None]:
        self._watch_droppers.add(drop)
        return lambda: self._watch_droppers.discard(drop)

    def drop_watches(self, mode: str = "close") -> int:
        """End every open watch stream: "close" ends it cleanly, "reset" aborts the connection."""
        droppers = list(self._watch_droppers)
        for drop in droppers:
            drop(mode)
        return len(droppers)

    @property
    def open_watches(self) -> int:
        return len(self._watch_droppers)


# ---------------------------------------------------------------- HTTP endpoints (/kubesim/…)
async def _json(request: web.Request) -> dict:
    try:
        body = await request.json() if request.can_read_body else {}
    except ValueError as e:
        raise bad_request(f"json parse error: {e}") from None
    if not isinstance(body, dict):
        raise bad_request("body must be a JSON object")
    return body


async def _maybe_await(value: Any) -> Any:
    return await value if inspect.isawaitable(value) else value


async def handle(request: web.Request, sim: SimContext, parts: list[str]) -> web.Response:
    """Dispatch /kubesim/<parts> (auth already checked)."""
    m = request.method
    if parts == ["faults"]:
        if m == "GET":
            return web.json_response({"faults": [asdict(r) for r in sim.faults.rules]})
        if m == "POST":
            body = await _json(request)
            allowed = {"status", "hang", "count", "verb", "resource", "namespace", "message"}
            unknown = set(body) - allowed
            if unknown:
                raise bad_request(f"unknown fault fields: {sorted(unknown)}")
            rule = sim.faults.add(**body)
            log.info("fault added: %s", rule)
            return web.json_response(asdict(rule), status=201)
        if m == "DELETE":
            sim.faults.clear()
            return web.json_response({"faults": []})
    elif parts == ["watches", "drop"] and m == "POST":
        body = await _json(request)
        mode = body.get("mode", "close")
        if mode not in ("close", "reset"):
            raise bad_request("'mode' must be 'close' or 'reset'")
        return web.json_response({"dropped": sim.faults.drop_watches(mode)})
    elif parts == ["compact"] and m == "POST":
        body = await _json(request)
        rv = body.get("resourceVersion")
        if rv is not None and not (isinstance(rv, int | str) and str(rv).isdigit()):
            raise bad_request("'resourceVersion' must be a non-negative integer")
        compacted = sim.store.compact(None if rv is None else int(rv))
        log.info("watch history compacted at resourceVersion %d", compacted)
        return web.json_response({"compacted": str(compacted)})
    elif len(parts) == 4 and parts[0] == "pods" and parts[3] == "kill" and m == "POST":
        await _maybe_await(sim.serving.kill_pod(parts[1], parts[2]))
        return web.json_response({"killed": f"{parts[1]}/{parts[2]}"})
    elif parts == ["stats"] and m == "GET":
        return web.json_response({"api_requests": sim.api_requests,
                                  "api_requests_by_verb": dict(sim.api_requests_by_verb)})
    elif parts == ["permissions"]:
        # RBAC denials (SimConfig.denied): POST {"group", "resource", "verb", "namespace"?} adds one,
        # DELETE clears them, GET lists them.
        if m == "POST":
            body = await _json(request)
            unknown = set(body) - {"group", "resource", "verb", "namespace"}
            if unknown or not isinstance(body.get("resource"), str) or not isinstance(body.get("verb"), str):
                raise bad_request("a denial needs 'resource' and 'verb' (and optionally 'group', 'namespace')")
            sim.config.denied.append((body.get("group") or "", body["resource"], body["verb"],
                                      body.get("namespace")))
        elif m == "DELETE":
            sim.config.denied.clear()
        elif m != "GET":
            raise ApiError(405, "MethodNotAllowed", "the server does not allow this method", {})
        return web.json_response({"denied": [list(d) for d in sim.config.denied]})
    elif parts == ["gateway", "stop"] and m == "POST":
        await sim.gateway_stop()
        return web.json_response({"gateway": "stopped"})
    elif parts == ["gateway", "start"] and m == "POST":
        await sim.gateway_start()
        return web.json_response({"gateway": "started"})
    raise ApiError(404, "NotFound", "the server could not find the requested resource", {})
