"""Ambassador's data plane with Knative's activator in front of revisions scaled to zero.

Hot path (a warm revision): Host header -> `serving.hosts` dict -> split -> revision runtime ->
round-robin pod -> the simulated container answers synchronously. No store access, no copies.
Cold path: no ready pod -> the activator buffers the request (queue depth limit), scales the
revision from zero once, waits for a ready pod until the activation timeout, then dispatches.
Error bodies are Envoy's / queue-proxy's / the activator's (knative-ambassador.md §5.3, §6).
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from aiohttp import web

from .handlers import Generated, Request
from .knative_runtime import RevisionRuntime

_SERVER = {"server": "envoy"}


def _text(status: int, body: str) -> web.Response:
    return web.Response(status=status, text=body, headers=_SERVER)


async def _write_generated(request: web.Request, status: int, body: Generated, ctype: str) -> web.StreamResponse:
    """A large body written as it is produced, at the pace the client reads it (Content-Length known)."""
    response = web.StreamResponse(status=status, headers=_SERVER)
    response.content_type, response.content_length = ctype, body.size
    await response.prepare(request)
    for chunk in body.chunks():
        await response.write(chunk)
    await response.write_eof()
    return response


def make_gateway_app(sim: Any) -> web.Application:
    """The gateway port: every path of every Host is routed through `handle`."""
    serving = sim.serving
    hosts = serving.hosts
    revisions = serving.revisions
    stats = serving.stats
    config = sim.config
    monotonic = time.monotonic

    async def wait_for_pod(rt: RevisionRuntime) -> web.Response | None:
        """The activator: buffer until a pod of `rt` is ready; a Response means give up."""
        if rt.waiters >= config.queue_depth:
            return _text(503, "pending request queue full")
        rt.waiters += 1
        try:
            serving.activate(rt)
            remaining = rt.activation_deadline - monotonic()
            while not rt.ready_pods:
                if rt.state == "gone":
                    return _text(503, "no healthy upstream")
                if remaining <= 0:
                    return _text(504, "activator request timeout")
                try:
                    await asyncio.wait_for(rt.ready_event.wait(), remaining)
                except TimeoutError:
                    return _text(504, "activator request timeout")
                remaining = rt.activation_deadline - monotonic()
        finally:
            rt.waiters -= 1
        return None

    async def dispatch(request: web.Request, split: Any) -> web.Response:
        rt = revisions.get(split.key)
        if rt is None:
            return _text(503, "no healthy upstream")
        pods = rt.ready_pods
        if not pods:
            early = await wait_for_pod(rt)
            if early is not None:
                return early
            pods = rt.ready_pods
        elif rt.state != "active":
            serving.touch(rt)
        rt.rr += 1
        pod = pods[rt.rr % len(pods)]
        body = await request.read() if request.body_exists else b""
        headers = request.headers.copy()
        headers.update(split.headers)
        req = Request(request.method, request.path, request.query_string, headers, body)
        rt.inflight += 1
        if rt.inflight > rt.peak:
            rt.peak = rt.inflight
        try:
            container = pod.container
            if container.is_async:
                try:
                    async with asyncio.timeout(rt.timeout):
                        status, out, ctype = await container.respond_async(req)
                except TimeoutError:
                    return _text(504, "request timeout")
            else:
                status, out, ctype = container.respond(req)
        finally:
            rt.inflight -= 1
            rt.last_request = monotonic()
        if type(out) is Generated:
            return await _write_generated(request, status, out, ctype)
        return web.Response(status=status, body=out, content_type=ctype, headers=_SERVER)

    async def handle(request: web.Request) -> web.Response:
        host = request.headers.get("Host", "")
        route = hosts.get(host.partition(":")[0].lower() if ":" in host else host.lower())
        if route is None:
            return web.Response(status=404, headers=_SERVER)
        split = route.pick()
        if split is None:
            return _text(503, "no healthy upstream")
        if route.timeout:
            try:
                async with asyncio.timeout(route.timeout):
                    resp = await dispatch(request, split)
            except TimeoutError:
                resp = _text(504, "upstream request timeout")
        else:
            resp = await dispatch(request, split)
        st = stats.get(split.cluster)
        if st is None:
            st = serving.cluster_stats(split.cluster)
        st.count(resp.status)
        return resp

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handle)
    return app
