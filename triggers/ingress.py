"""The webhook hot path: `/hooks/<token>[/<sub-path>]`, a plain ASGI app outside Django's middleware.

Measured (ARCHITECTURE.md): a Django view forwarding with aiohttp manages ~2% of a direct backend's
throughput, a plain ASGI app ~50%. So this is plain ASGI; it forwards over one keep-alive pool to the
gateway (triggers/upstream.py: an HTTP/1.1 client on httptools, a third of aiohttp's CPU per webhook,
measured by tests/bench/bench_ingress.py); the database is touched through a token cache and a
group-commit writer (triggers/delivery_writer.py).

Order of work per request: route (404/410) → size (413, before reading it all) → signature (401,
before waking anything) → dedupe → record → forward (sync) or store and 202 (async).
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from dataclasses import dataclass

from asgiref.sync import sync_to_async
from django.conf import settings
from django.db import IntegrityError, InterfaceError, OperationalError, close_old_connections
from django.db.models import Q
from django.utils import timezone

from . import crypto, signatures
from .delivery_writer import DeliveryRecord, DeliveryWriter
from .models import Delivery, Trigger
from .upstream import Upstream, UpstreamUnreachable

log = logging.getLogger(__name__)

HOP_BY_HOP = {"connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te", "trailer",
              "transfer-encoding", "upgrade", "host", "content-length"}
JSON = [(b"content-type", b"application/json")]
_UNDECRYPTABLE: set[int] = set()  # triggers whose secret failed to decrypt, already logged


@dataclass(frozen=True)
class Route:
    trigger_id: int
    tenant_id: int
    label: str  # "<tenant>/<trigger>"
    mode: str
    suspended: bool
    host: str  # the ksvc's cluster-local host ("" until deployed)
    servable: bool  # a revision is ready to take traffic
    timeout: float
    verifier: signatures.Verifier
    dedupe_header: str
    ready_pods: int | None
    broken: str = ""  # a configuration problem on our side: answer 503, never a traceback

    @classmethod
    def of(cls, trigger: Trigger) -> Route:
        broken = ""
        try:
            secret = crypto.decrypt(trigger.verification_secret) if trigger.verification_secret else ""
            _UNDECRYPTABLE.discard(trigger.pk)
        except ValueError:
            secret, broken = "", "The verification secret cannot be decrypted (check RELAY_ENCRYPTION_KEYS)."
            if trigger.pk not in _UNDECRYPTABLE:  # once per process, not on every reload of the route
                _UNDECRYPTABLE.add(trigger.pk)
                log.error("trigger %s: verification secret cannot be decrypted (check RELAY_ENCRYPTION_KEYS); "
                          "its webhooks get 503", trigger.pk)
        verifier = signatures.verifier_for(trigger.verification, secret, header=trigger.hmac_header,
                                           encoding=trigger.hmac_encoding, prefix=trigger.hmac_prefix)
        return cls(trigger_id=trigger.pk, tenant_id=trigger.tenant_id, label=f"{trigger.tenant.slug}/{trigger.name}",
                   mode=trigger.mode,
                   suspended=trigger.suspended, host=trigger.gateway_host, servable=trigger.servable,
                   timeout=settings.RELAY_ACTIVATION_TIMEOUT + trigger.timeout_seconds, verifier=verifier,
                   dedupe_header=trigger.dedupe_header.lower(), ready_pods=getattr(trigger, "ready_pods", None),
                   broken=broken)


def _load_route(token: str) -> Route | None:
    now = timezone.now()
    trigger = (
        Trigger.objects.live().select_related("tenant")
        .filter(Q(token=token) | Q(previous_token=token, previous_token_expires_at__gt=now)).first()
    )
    return Route.of(trigger) if trigger else None


def _load_route_in_thread(token: str) -> Route | None:
    close_old_connections()  # outside Django's request cycle: recycle stale or broken connections here
    return _load_route(token)


class RouteCache:
    """token → Route for a few seconds: most webhooks cost no database read at all.

    Single-flight: when an entry expires under load, one request reloads it and the others wait for
    that load instead of each querying the database (no stampede).
    """

    def __init__(self, ttl: float):
        self.ttl, self.entries = ttl, {}
        self.loading: dict[str, asyncio.Future] = {}

    async def get(self, token: str) -> Route | None:
        hit = self.entries.get(token)
        now = time.monotonic()
        if hit and hit[0] > now:
            return hit[1]
        pending = self.loading.get(token)
        if pending is not None:
            return await asyncio.shield(pending)
        future = self.loading[token] = asyncio.get_running_loop().create_future()
        try:
            route = await sync_to_async(_load_route_in_thread, thread_sensitive=False)(token)
        except BaseException as e:
            future.set_exception(e)
            future.exception()  # retrieved: waiters get it, nothing is logged as unhandled
            raise
        finally:
            self.loading.pop(token, None)
        if len(self.entries) > 10000:
            self.entries.clear()
        self.entries[token] = (time.monotonic() + self.ttl, route)
        future.set_result(route)
        return route


class TooLarge(Exception):
    pass


async def read_body(receive, limit: int) -> bytes:
    chunks, size = [], 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ConnectionResetError("client went away")
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise TooLarge
        chunks.append(chunk)
        if not message.get("more_body"):
            return b"".join(chunks)


async def respond(send, status: int, body: bytes, headers=()) -> None:
    headers = [*headers, (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def problem(status: int, detail: str, **extra) -> tuple[int, bytes]:
    return status, json.dumps({"detail": detail, **extra}).encode()


class Ingress:
    def __init__(self):
        self.routes = RouteCache(settings.RELAY_INGRESS_CACHE_TTL)
        self.writer = DeliveryWriter()
        self._upstream: Upstream | None = None

    @property
    def upstream(self) -> Upstream:
        """The keep-alive pool to the gateway (a new one if RELAY_GATEWAY_URL changed)."""
        if self._upstream is None or self._upstream.base_url != settings.RELAY_GATEWAY_URL:
            if self._upstream is not None:
                self._upstream.close()
            self._upstream = Upstream(settings.RELAY_GATEWAY_URL)
        return self._upstream

    async def close(self) -> None:
        await self.writer.close()
        if self._upstream is not None:
            self._upstream.close()

    async def __call__(self, scope, receive, send) -> None:
        headers = [(k.decode("latin-1").lower(), v.decode("latin-1")) for k, v in scope["headers"]]
        try:
            status, body, extra = await self.handle(scope, headers, receive)
        except ConnectionResetError:
            return
        except (OperationalError, InterfaceError) as e:  # never a 500, never a 202 for a row not stored
            log.warning("webhook answered 503, the database is unavailable: %s", e)
            status, body = problem(503, "The database is unavailable; try again shortly.")
            extra = [*JSON, (b"retry-after", b"5")]
        await respond(send, status, body, extra or JSON)

    async def handle(self, scope, headers, receive) -> tuple[int, bytes, list | None]:
        token, _, sub_path = scope["raw_path"].decode("latin-1")[len("/hooks/"):].partition("/")
        route = await self.routes.get(token) if token else None
        if route is None:
            return (*problem(404, "Unknown webhook URL."), None)
        if route.suspended:
            return (*problem(410, f"Trigger {route.label} is suspended."), None)
        if route.broken:
            return (*problem(503, route.broken), [*JSON, (b"retry-after", b"300")])
        lookup = dict(headers)
        limit = settings.RELAY_MAX_BODY_BYTES
        length = lookup.get("content-length", "")
        if length.isdigit() and int(length) > limit:
            return (*problem(413, f"Body larger than {limit} bytes (RELAY_MAX_BODY_BYTES)."), None)
        try:
            body = await read_body(receive, limit)
        except TooLarge:
            return (*problem(413, f"Body larger than {limit} bytes (RELAY_MAX_BODY_BYTES)."), None)
        request = DeliveryRecord(
            trigger_id=route.trigger_id, tenant_id=route.tenant_id, mode=route.mode, method=scope["method"],
            path="/" + sub_path,
            query=scope.get("query_string", b"").decode("latin-1"), body=body, body_size=len(body),
            headers=[list(h) for h in signatures.redact(headers, route.verifier)],
            cold_start=route.ready_pods == 0,
        )
        verification = route.verifier.verify(lookup, body)
        if not verification.ok:
            request.state, request.verification, request.verification_error = "rejected", "failed", verification.reason
            request.response_status = 401
            self.writer.add(request)
            return (*problem(401, f"Signature verification failed: {verification.reason}."), None)
        request.verification = "none" if route.verifier.kind == "none" else "passed"
        if verification.challenge is not None:
            request.state, request.response_status, request.response_body = "succeeded", 200, verification.challenge
            self.writer.add(request)
            return 200, verification.challenge, JSON
        request.provider_delivery_id = signatures.provider_delivery_id(
            route.verifier, lookup, body, route.dedupe_header)
        if route.mode == Trigger.Mode.ASYNC:
            return await self.accept(request)
        return await self.relay(route, request, headers, scope, sub_path)

    async def accept(self, request: DeliveryRecord) -> tuple[int, bytes, list | None]:
        """Async mode: 202 only once the row is durably stored; Celery delivers it with retries."""
        request.state, request.next_attempt_at = "received", timezone.now()
        try:
            await self.writer.store(request, enqueue=True)
        except IntegrityError:
            return await self.duplicate(request)
        return 202, json.dumps({"delivery_id": str(request.pk)}).encode(), JSON

    async def duplicate(self, request: DeliveryRecord) -> tuple[int, bytes, list | None]:
        """A repeat of a provider delivery id gets the first outcome; the handler is not called again."""
        if not await sync_to_async(Trigger.objects.filter(pk=request.trigger_id).exists, thread_sensitive=False)():
            return (*problem(404, "Unknown webhook URL."), None)  # deleted since its route was cached
        first = await sync_to_async(
            lambda: Delivery.objects.filter(trigger_id=request.trigger_id,
                                            provider_delivery_id=request.provider_delivery_id).first(),
            thread_sensitive=False)()
        headers = [(b"x-relay-duplicate-of", str(first.pk).encode())]
        if first.mode == Trigger.Mode.SYNC and first.response_status:
            stored = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in first.response_headers]
            return first.response_status, bytes(first.response_body), stored + headers
        body = json.dumps({"delivery_id": str(first.pk), "duplicate": True, "state": first.state}).encode()
        return 202, body, JSON + headers

    async def relay(self, route: Route, request: DeliveryRecord, headers, scope, sub_path) -> tuple[int, bytes, list]:
        """Sync mode: forward now, answer with the handler's response, record the outcome."""
        if not route.servable:
            request.state, request.response_status = "failed", 503
            request.error = f"Trigger {route.label} has no ready revision (never deployed, or failed)."
            self.writer.add(request)
            status, body = problem(503, request.error)
            return status, body, [*JSON, (b"retry-after", b"30")]
        if request.provider_delivery_id:
            request.state = "forwarded"  # claim the id before calling the handler
            try:
                await self.writer.store(request)
            except IntegrityError:
                return await self.duplicate(request)
        started = time.perf_counter()
        status, body, out_headers, error = await self.forward(route, request, headers, scope, sub_path)
        request.latency_ms = (time.perf_counter() - started) * 1000
        request.attempts, request.response_status, request.error = 1, status, error
        request.state = "succeeded" if status < 400 and not error else "failed"
        request.response_headers = [[k.decode("latin-1"), v.decode("latin-1")] for k, v in out_headers]
        request.response_body = body[: settings.RELAY_RESPONSE_BODY_CAP]
        self.writer.add(request, update=bool(request.provider_delivery_id))
        return status, body, out_headers

    async def forward(self, route: Route, request: DeliveryRecord, headers, scope, sub_path):
        client = scope.get("client") or ("", 0)
        connection_tokens = {t.strip() for h, v in headers if h == "connection" for t in v.lower().split(",")}
        out = [(k, v) for k, v in headers if k not in HOP_BY_HOP and k not in connection_tokens]
        out += [("Host", route.host), ("X-Forwarded-For", client[0]),
                ("X-Forwarded-Proto", scope.get("scheme", "http")), ("X-Forwarded-Host", dict(headers).get("host", "")),
                ("X-Relay-Delivery-Id", str(request.pk)), ("X-Relay-Trigger", route.label)]
        query = scope.get("query_string", b"").decode("latin-1")
        target = f"/{sub_path}" + (f"?{query}" if query else "")
        try:
            status, raw_headers, body = await self.upstream.request(request.method, target, out, request.body,
                                                                    route.timeout)
            kept = [(k, v) for k, v in raw_headers if k.decode("latin-1").lower() not in HOP_BY_HOP]
            return status, body, kept, ""
        except TimeoutError:
            status, body = problem(504, f"The handler did not answer within {route.timeout:.0f} s.")
        except UpstreamUnreachable as e:
            status, body = problem(502, f"The gateway is unreachable: {e}.")
        return status, body, JSON, json.loads(body)["detail"]
