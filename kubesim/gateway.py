"""Ambassador's data plane with Knative's activator in front of revisions scaled to zero.

Hot path (a warm revision): Host header -> `serving.hosts` dict -> split -> revision runtime ->
round-robin pod -> the simulated container answers synchronously. No store access, no copies.
Cold path: no ready pod -> the activator buffers the request (queue depth limit), scales the
revision from zero once, waits for a ready pod until the activation timeout, then dispatches.
Error bodies are Envoy's / queue-proxy's / the activator's (knative-ambassador.md §5.3, §6).

Emissary's route timeout (SimConfig.route_timeout, 15 s: `timeout_ms` of every Knative Mapping, emissary
v1.14.4 python/ambassador/fetch/knative.py KnativeIngressProcessor._emit_mapping) is Envoy's route
`timeout`: it starts once the whole downstream request was received and covers the entire upstream
request, the activator's wait for a pod (a cold start) included (envoy source/common/router/router.cc
Filter::onRequestComplete arms the timer, Filter::onUpstreamTimeoutAbort answers 504
`upstream request timeout`). The same clock here: the body is read, then everything after it runs
under the route timeout.

A route is live only `route_ready_delay` after its KIngress turned Ready (Envoy is programmed after
Emissary wrote the status); before that, and for unknown hosts, Envoy's `route_not_found` local reply:
404 with an empty body (router.cc Filter::decodeHeaders, `sendLocalReply(Http::Code::NotFound, "")`).
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


_LOCAL = web.ResponseKey("envoy_local", bool)


def _envoy(status: int, body: str = "") -> web.Response:
    """A local reply of Envoy itself (no upstream answered): marked so that it gets no
    x-envoy-upstream-service-time, which Envoy adds to every upstream response unless
    suppress_envoy_headers is set (router.cc Filter::onUpstreamHeaders; Emissary leaves it off)."""
    resp = web.Response(status=status, text=body, headers=_SERVER) if body else \
        web.Response(status=status, headers=_SERVER)
    resp[_LOCAL] = True
    return resp


_UPSTREAM_TIME = "x-envoy-upstream-service-time"


# Knative's probe user agents (knative/networking release-1.23 pkg/http/header/header.go): the queue-proxy's
# Drainer answers requests with these with its health check instead of passing them to the user container
# (knative/serving knative-v1.23.0 pkg/queue/sharedmain/handlers.go mainHandler: HealthCheckUAPrefixes;
# vendor/knative.dev/pkg/network/handlers/drain.go Drainer.isHealthCheckRequest), while the activator
# buffers and proxies them like any request (its HealthHandler and ProbeHandler only look at kubelet probes
# and the K-Network-Probe header: pkg/activator/handler/healthz_handler.go, probe_handler.go).
_PROBE_AGENTS = ("Knative-Activator-Probe", "Knative-Autoscaling-Probe", "kube-probe/")


def _queue_health(request: web.Request) -> web.Response:
    """queue-proxy's health.ProbeHandler (pkg/queue/health/handler.go): `queue` for K-Network-Probe: queue,
    else 400 `unexpected probe header value: <value>` (http.Error: text/plain, a trailing newline)."""
    value = request.headers.get("K-Network-Probe", "")
    if value == "queue":
        return web.Response(text="queue", headers=_SERVER)
    return web.Response(status=400, text=f"unexpected probe header value: {value}\n", headers=_SERVER)


async def _write_generated(request: web.Request, status: int, body: Generated, ctype: str,
                           upstream_ms: int) -> web.StreamResponse:
    """A large body written as it is produced, at the pace the client reads it (Content-Length known)."""
    response = web.StreamResponse(status=status, headers={**_SERVER, _UPSTREAM_TIME: str(upstream_ms)})
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
                    return _envoy(503, "no healthy upstream")
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

    async def dispatch(request: web.Request, split: Any, body: bytes, t0: float) -> web.Response:
        rt = revisions.get(split.key)
        if rt is None:
            return _envoy(503, "no healthy upstream")
        pods = rt.ready_pods
        if not pods:
            early = await wait_for_pod(rt)
            if early is not None:
                return early
            pods = rt.ready_pods
        elif rt.state != "active":
            serving.touch(rt)
        agent = request.headers.get("User-Agent")
        if agent is not None and agent.startswith(_PROBE_AGENTS):
            return _queue_health(request)  # answered by the pod's queue-proxy, not its user container
        rt.rr += 1
        pod = pods[rt.rr % len(pods)]
        headers = request.headers.copy()
        headers.update(split.headers)
        req = Request(request.method, request.path, request.query_string, headers, body, rt.name)
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
            return await _write_generated(request, status, out, ctype, int((monotonic() - t0) * 1000))
        return web.Response(status=status, body=out, content_type=ctype, headers=_SERVER)

    async def handle(request: web.Request) -> web.Response:
        host = request.headers.get("Host", "")
        route = hosts.get(host.partition(":")[0].lower() if ":" in host else host.lower())
        if route is None or (route.live_at and not route.live()):
            return _envoy(404)
        split = route.pick()
        if split is None:
            return _envoy(503, "no healthy upstream")
        body = await request.read() if request.body_exists else b""
        t0 = monotonic()
        if route.timeout:
            try:
                async with asyncio.timeout(route.timeout):
                    resp = await dispatch(request, split, body, t0)
            except TimeoutError:
                resp = _envoy(504, "upstream request timeout")
        else:
            resp = await dispatch(request, split, body, t0)
        if not resp.prepared and _LOCAL not in resp:
            resp.headers[_UPSTREAM_TIME] = str(int((monotonic() - t0) * 1000))
        st = stats.get(split.cluster)
        if st is None:
            st = serving.cluster_stats(split.cluster)
        st.count(resp.status)
        return resp

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handle)
    return app
