"""The webhook hot path: `/hooks/<token>[/<sub-path>]`, a plain ASGI app outside Django's middleware.

Measured (ARCHITECTURE.md): a Django view forwarding with aiohttp manages ~2% of a direct backend's
throughput, a plain ASGI app ~50%. So this is plain ASGI; it forwards over one keep-alive pool to the
gateway (triggers/edge/upstream.py: an HTTP/1.1 client on httptools, a third of aiohttp's CPU per webhook,
measured by tests/bench/bench_ingress.py); the database is touched through a token cache and a
group-commit writer (triggers/edge/delivery_writer.py).

Order of work per request: route (404/410) → size (413, before reading it all) → signature (401,
before waking anything) → dedupe → record → forward (sync) or store and 202 (async). First of all, the
request line and headers are held to their limits (`request_limit`: method 400, URL 414, headers 431).
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import time
from dataclasses import dataclass

from asgiref.sync import sync_to_async
from django.conf import settings
from django.db import InterfaceError, OperationalError, close_old_connections
from django.db.models import Q
from django.utils import timezone

from triggers.models import Delivery, Trigger
from triggers.security import crypto, sealed, signatures

from . import wakeup
from .delivery_writer import DeliveryRecord, DeliveryWriter, DuplicateDelivery, RowNotStored, TriggerGone
from .headers import HOP_BY_HOP, forwarded_headers, relayed_headers, sender_headers
from .invalidation import Listener
from .upstream import HandlerHeadersTooLarge, Response, Upstream, UpstreamUnreachable
from .wakeup import FORWARD_MARGIN

log = logging.getLogger(__name__)

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
    timeout: float  # for the forward: the trigger's timeout (a cold start is waited for before, see wakeup.py)
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
                   timeout=trigger.timeout_seconds + FORWARD_MARGIN, verifier=verifier,
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
        self.forgotten = 0  # invalidations so far: a load that saw one meanwhile is not kept

    def forget(self, token: str) -> None:
        """The trigger behind `token` changed (triggers/edge/invalidation.py): read it again next time."""
        self.forgotten += 1
        self.entries.pop(token, None)

    def forget_all(self) -> None:
        self.forgotten += 1
        self.entries.clear()

    async def get(self, token: str) -> Route | None:
        hit = self.entries.get(token)
        now = time.monotonic()
        if hit and hit[0] > now:
            return hit[1]
        pending = self.loading.get(token)
        if pending is not None:
            return await asyncio.shield(pending)
        future = self.loading[token] = asyncio.get_running_loop().create_future()
        forgotten = self.forgotten
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
        if forgotten == self.forgotten:  # else a change was published while it loaded: it may predate it
            self.entries[token] = (time.monotonic() + self.ttl, route)
        future.set_result(route)
        return route


class TooLarge(Exception):
    pass


@dataclass
class Streaming:
    """A sync delivery whose response head arrived and whose body is still arriving."""

    response: Response
    request: DeliveryRecord
    started: float  # perf_counter() when it was forwarded
    secrets: list[str]  # the sender's credential values, scrubbed from the logged response


async def _disconnected(receive) -> None:
    """Returns once the sender went away (the request body has been read already)."""
    try:
        while (await receive())["type"] != "http.disconnect":
            pass
    except Exception:  # noqa: BLE001 - a server whose receive fails once the sender is gone: gone as well
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


_METHOD = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")  # an RFC 9110 token
MAX_METHOD_CHARS = Delivery._meta.get_field("method").max_length  # what the delivery log can hold


def request_limit(scope) -> tuple[int, bytes] | None:
    """The request line's and headers' limits, checked before anything is read, stored or forwarded."""
    method = scope["method"]
    if len(method) > MAX_METHOD_CHARS or not _METHOD.fullmatch(method):
        return problem(400, f"The HTTP method must be a token of at most {MAX_METHOD_CHARS} characters.")
    query = scope.get("query_string", b"")
    if len(scope["raw_path"]) + (len(query) + 1 if query else 0) > settings.RELAY_MAX_URL_BYTES:
        return problem(414, f"URL longer than {settings.RELAY_MAX_URL_BYTES} bytes (RELAY_MAX_URL_BYTES).")
    if len(scope["headers"]) > settings.RELAY_MAX_HEADERS:
        return problem(431, f"More than {settings.RELAY_MAX_HEADERS} request headers (RELAY_MAX_HEADERS).")
    if sum(len(k) + len(v) + 4 for k, v in scope["headers"]) > settings.RELAY_MAX_HEADER_BYTES:  # "k: v\r\n"
        return problem(431, f"Request headers larger than {settings.RELAY_MAX_HEADER_BYTES} bytes "
                            "(RELAY_MAX_HEADER_BYTES).")
    return None


def not_stored(error: RowNotStored) -> tuple[int, bytes]:
    """The delivery could not be recorded (never a duplicate): its trigger was just deleted, or the log refused it."""
    if isinstance(error, TriggerGone):
        return problem(404, "Unknown webhook URL.")
    return problem(503, "The delivery could not be recorded; it was not accepted. Try again later.")


def _earlier_deliveries(trigger_id: int, provider_delivery_id: str) -> list[Delivery]:
    """Every delivery of a provider delivery id: the first (which holds the id) and its redeliveries."""
    close_old_connections()  # a thread of the ingress, outside Django's request cycle
    return list(Delivery.objects.filter(trigger_id=trigger_id, provider_delivery_id=provider_delivery_id)
                .defer("body", "headers", "sealed_headers").order_by("received_at")[:100])


def _abandoned(delivery: Delivery, lease: float) -> bool:
    return (delivery.mode == Trigger.Mode.SYNC and delivery.state == Delivery.State.FORWARDED
            and delivery.received_at < timezone.now() - timezone.timedelta(seconds=lease))


def _mark_abandoned(pk) -> bool:
    close_old_connections()
    return bool(Delivery.objects.filter(pk=pk, state=Delivery.State.FORWARDED).update(
        state=Delivery.State.FAILED, error="No outcome was recorded: the ingress stopped while forwarding it."))


class Ingress:
    def __init__(self):
        self.routes = RouteCache(settings.RELAY_INGRESS_CACHE_TTL)
        self.invalidations = Listener(self.routes)
        self.writer = DeliveryWriter()
        self._upstream: Upstream | None = None
        self.awake: dict[int, float] = {}  # trigger id -> until when a pod is known to be serving (a wake-up)

    @property
    def upstream(self) -> Upstream:
        """The keep-alive pool to the gateway (a new one if RELAY_GATEWAY_URL changed)."""
        if self._upstream is None or self._upstream.base_url != settings.RELAY_GATEWAY_URL:
            if self._upstream is not None:
                self._upstream.close()
            self._upstream = Upstream(settings.RELAY_GATEWAY_URL)
        return self._upstream

    async def close(self) -> None:
        await self.invalidations.stop()
        await self.writer.close()
        if self._upstream is not None:
            self._upstream.close()

    async def __call__(self, scope, receive, send) -> None:
        self.invalidations.ensure_started()
        if (refused := request_limit(scope)) is not None:
            await respond(send, *refused, JSON)
            return
        headers = [(k.decode("latin-1").lower(), v.decode("latin-1")) for k, v in scope["headers"]]
        try:
            status, body, extra = await self.handle(scope, headers, receive)
        except ConnectionResetError:
            return
        except (OperationalError, InterfaceError) as e:  # never a 500, never a 202 for a row not stored
            log.warning("webhook answered 503, the database is unavailable: %s", e)
            status, body = problem(503, "The database is unavailable; try again shortly.")
            extra = [*JSON, (b"retry-after", b"5")]
        if isinstance(body, Streaming):
            await self.stream(send, receive, status, body, extra)
            return
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
        logged, kept = signatures.redact_keeping(headers, route.verifier)
        request = DeliveryRecord(
            trigger_id=route.trigger_id, tenant_id=route.tenant_id, mode=route.mode, method=scope["method"],
            path="/" + sub_path,
            query=scope.get("query_string", b"").decode("latin-1"), body=body, body_size=len(body),
            headers=logged,
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
        if kept:  # for its retries and replays (never for a rejected request)
            request.sealed_headers = sealed.seal(kept)
        request.provider_delivery_id = signatures.provider_delivery_id(
            route.verifier, lookup, body, route.dedupe_header)
        if route.mode == Trigger.Mode.ASYNC:
            return await self.accept(request)
        return await self.relay(route, request, headers, scope, sub_path)

    async def accept(self, request: DeliveryRecord) -> tuple[int, bytes, list | None]:
        """Async mode: 202 only once the row is durably stored; Celery delivers it with retries."""
        request.state, request.next_attempt_at = "received", timezone.now()
        request.enqueued_at = request.next_attempt_at  # its message follows the commit (the writer's batch)
        if request.provider_delivery_id:
            answer = await self.claim(request, enqueue=True)
            if answer is not None:
                return answer
        else:
            try:
                await self.writer.store(request, enqueue=True)
            except RowNotStored as e:
                return (*not_stored(e), JSON)
        return 202, json.dumps({"delivery_id": str(request.pk)}).encode(), JSON

    async def claim(self, request: DeliveryRecord, enqueue: bool = False,
                    lease: float = 0) -> tuple[int, bytes, list] | None:
        """Store the row that claims its provider delivery id: None once it is ours to deliver, else the
        answer to a repeat. A repeat gets the earlier outcome only when one succeeded; while one is still on
        its way, a sync repeat gets 409 and Retry-After (not a 202 that a provider would count as
        delivered), an async one (accepted, still to be attempted) its 202; when all failed (the handler's
        own 4xx or 5xx, gateway down, timeout, dead), it is delivered again as a new delivery linked
        to the first (the database lets one such redelivery be in flight at a time). A sync delivery still
        "forwarded" `lease` seconds after it arrived has lost its ingress (a restart mid-forward): it is
        marked failed, and the repeat forwarded."""
        for _ in range(4):
            try:
                await self.writer.store(request, enqueue=enqueue)
                return None
            except DuplicateDelivery:
                pass
            except RowNotStored as e:
                return (*not_stored(e), JSON)
            earlier = await sync_to_async(_earlier_deliveries, thread_sensitive=False)(
                request.trigger_id, request.provider_delivery_id)
            if not earlier:  # not a repeat: the trigger is gone
                return (*problem(404, "Unknown webhook URL."), JSON)
            outcomes = [(d.dedupe_outcome(), d) for d in earlier]
            final = next((d for o, d in outcomes if o == "final"), None)
            if final is not None:
                return self.duplicate(final)
            pending = next((d for o, d in outcomes if o == "pending"), None)
            if pending is not None:
                if not (lease and _abandoned(pending, lease)
                        and await sync_to_async(_mark_abandoned, thread_sensitive=False)(pending.pk)):
                    return self.in_flight(pending)
                continue
            request.redelivery_of_id = next((d.pk for d in earlier if d.redelivery_of_id is None), earlier[0].pk)
        return self.in_flight(None)

    def duplicate(self, first: Delivery) -> tuple[int, bytes, list]:
        """A repeat of a provider delivery id answered with a final outcome; the handler is not called again."""
        headers = [(b"x-relay-duplicate-of", str(first.pk).encode())]
        if first.mode == Trigger.Mode.SYNC and first.response_status:
            stored = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in first.response_headers
                      if v != signatures.REDACTED]
            return first.response_status, bytes(first.response_body), relayed_headers(stored) + headers
        body = json.dumps({"delivery_id": str(first.pk), "duplicate": True, "state": first.state}).encode()
        return 202, body, JSON + headers

    def in_flight(self, pending: Delivery | None) -> tuple[int, bytes, list]:
        if pending is not None and pending.mode == Trigger.Mode.ASYNC:  # accepted: it is delivered with retries
            return self.duplicate(pending)
        detail = "A delivery with this sender's delivery id is still being forwarded; retry later."
        extra = {"delivery_id": str(pending.pk)} if pending is not None else {}
        status, body = problem(409, detail, **extra)
        headers = [*JSON, (b"retry-after", b"5")]
        if pending is not None:
            headers.append((b"x-relay-duplicate-of", str(pending.pk).encode()))
        return status, body, headers

    async def relay(self, route: Route, request: DeliveryRecord, headers, scope, sub_path) -> tuple[int, bytes, list]:
        """Sync mode: forward now, answer with the handler's response, record the outcome."""
        if request.provider_delivery_id:
            request.state = "forwarded"  # claim the id before calling the handler
            answer = await self.claim(request, lease=settings.RELAY_ACTIVATION_TIMEOUT + route.timeout
                                      + settings.RELAY_DELIVERY_LEASE_MARGIN)
            if answer is not None:
                return answer
        if not route.servable:
            request.state, request.response_status = "failed", 503
            request.error = f"Trigger {route.label} has no ready revision (never deployed, or failed)."
            self.writer.add(request, update=bool(request.provider_delivery_id))
            status, body = problem(503, request.error)
            return status, body, [*JSON, (b"retry-after", b"30")]
        started = time.perf_counter()
        if not route.ready_pods and self.awake.get(route.trigger_id, 0) < time.monotonic():  # 0, or unknown
            failed = await self.wake(route)
            if failed is not None:
                status, body = failed
                request.attempts, request.response_status = 1, status
                request.error = json.loads(body)["detail"]
                self.record(request, body, started, [])
                return status, body, [*JSON, (b"retry-after", b"5")] if status == 503 else JSON
        status, body, out_headers, error = await self.forward(route, request, headers, scope, sub_path)
        request.attempts, request.response_status, request.error = 1, status, error
        request.response_headers = signatures.redact_raw(out_headers)
        # a handler echoing the request: the sender's secrets stay out of the logged response
        secrets = ([v for k, v in headers if signatures.is_sensitive(k, route.verifier)]
                   if request.sealed_headers else [])
        if isinstance(body, Response):  # the body is still arriving: relayed as it comes, recorded at its end
            return status, Streaming(body, request, started, secrets), relayed_headers(out_headers)
        self.record(request, body, started, secrets)
        return status, body, relayed_headers(out_headers)

    def record(self, request: DeliveryRecord, body: bytes, started: float, secrets: list[str]) -> None:
        """The outcome of a sync delivery, its response body capped (RELAY_RESPONSE_BODY_CAP)."""
        request.latency_ms = (time.perf_counter() - started) * 1000
        request.state = "succeeded" if request.response_status < 400 and not request.error else "failed"
        request.response_body = body[: settings.RELAY_RESPONSE_BODY_CAP]
        if secrets:
            request.response_body = sealed.scrub(request.response_body, secrets)
        self.writer.add(request, update=bool(request.provider_delivery_id))


    async def stream(self, send, receive, status: int, streaming: Streaming, headers: list) -> None:
        """Relay a response body that is still arriving, part by part as it comes, never faster than the
        sender takes it (each `send` waits while the sender's socket is full, and the upstream buffers a
        bounded amount); only the first RELAY_RESPONSE_BODY_CAP bytes are kept for the log.

        If the handler's response breaks off (or stalls past the timeout), the sender's connection is closed
        without the end of the body, so the sender sees a truncated response, and the delivery is failed with
        that error. If the sender goes away, reading from the handler stops (that gateway connection is
        closed, not reused) and the delivery is failed with that error."""
        response, request = streaming.response, streaming.request
        cap = settings.RELAY_RESPONSE_BODY_CAP
        if response.length is not None:
            headers = [*headers, (b"content-length", str(response.length).encode())]
        part, relayed, complete = response.body, 0, False
        kept = bytearray(part[:cap])
        gone = asyncio.ensure_future(_disconnected(receive))
        try:
            await send({"type": "http.response.start", "status": status, "headers": headers})
            while True:
                if gone.done():
                    request.error = (f"The sender disconnected after {relayed} bytes of the response; the rest "
                                     "was not read from the handler.")
                    break
                more = not response.done
                if part or not more:
                    await send({"type": "http.response.body", "body": part, "more_body": more})
                    relayed += len(part)
                if not more:
                    complete = True
                    break
                part = await response.read()
                if len(kept) < cap:
                    kept += part[: cap - len(kept)]
        except TimeoutError:
            request.error = (f"The handler sent no more of its response for {response.timeout:.0f} s "
                             f"(after {relayed} bytes).")
        except UpstreamUnreachable as e:
            request.error = f"The handler's response broke off after {relayed} bytes: {e}."
        except OSError as e:  # a server whose send raises once the sender is gone
            request.error = f"The sender disconnected after {relayed} bytes of the response ({e})."
        finally:
            gone.cancel()
            response.close()
            if not complete and not request.error:
                request.error = f"The response was not relayed to the end (after {relayed} bytes)."
            self.record(request, bytes(kept), streaming.started, streaming.secrets)
        # not complete: return without ending the body, so the server closes the sender's connection

    async def wake(self, route: Route) -> tuple[int, bytes] | None:
        """Wait until a pod of the trigger serves (see wakeup.py): None then, else the answer to give."""
        loop = asyncio.get_running_loop()
        now = loop.time()
        deadline, unrouted = now + settings.RELAY_ACTIVATION_TIMEOUT, now + wakeup.ROUTE_GRACE
        headers = wakeup.wake_headers(route.host, route.label)
        while (left := deadline - loop.time()) > 0:
            try:
                response = await self.upstream.request("GET", "/", headers, b"", min(wakeup.attempt_timeout(), left))
            except TimeoutError:
                continue
            except HandlerHeadersTooLarge as e:
                return problem(502, f"{e}.")
            except UpstreamUnreachable as e:
                return problem(502, f"The gateway is unreachable: {e}.")
            empty = response.done and not response.body
            response.close()
            if wakeup.awake(response.status, response.headers, b"" if empty else b"?"):
                self.awake[route.trigger_id] = time.monotonic() + settings.RELAY_INGRESS_CACHE_TTL + 1
                return None
            if response.status == 404 and loop.time() > unrouted:
                return problem(503, f"The gateway has no route to trigger {route.label} yet; retry shortly.")
            await asyncio.sleep(min(wakeup.RETRY_PAUSE, max(0.0, deadline - loop.time())))
        return problem(504, f"The handler did not answer within {settings.RELAY_ACTIVATION_TIMEOUT:g} s: it did "
                            "not start in time (RELAY_ACTIVATION_TIMEOUT).")

    async def forward(self, route: Route, request: DeliveryRecord, headers, scope, sub_path):
        client = scope.get("client") or ("", 0)
        connection_tokens = {t.strip() for h, v in headers if h == "connection" for t in v.lower().split(",")}
        out = [(k, v) for k, v in sender_headers(headers) if k not in HOP_BY_HOP and k not in connection_tokens]
        out += [("Host", route.host), *forwarded_headers(headers, client[0], scope.get("scheme", "http")),
                ("X-Relay-Delivery-Id", str(request.pk)), ("X-Relay-Trigger", route.label)]
        query = scope.get("query_string", b"").decode("latin-1")
        target = f"/{sub_path}" + (f"?{query}" if query else "")
        try:
            response = await self.upstream.request(request.method, target, out, request.body, route.timeout)
            unrouted = None
            while response.status == 404 and wakeup.is_envoy_404(404, response.headers,
                                                                  response.body if response.done else b"?"):
                # Envoy has no route for the host yet (programmed a little after Knative reports Ready): no
                # upstream saw the request, so it is sent again for a short while, then 503, never the empty 404
                response.close()
                unrouted = unrouted or time.monotonic() + wakeup.ROUTE_GRACE
                if time.monotonic() > unrouted:
                    status, body = problem(503, f"The gateway has no route to trigger {route.label} yet; "
                                                "retry shortly.")
                    return status, body, [*JSON, (b"retry-after", b"5")], json.loads(body)["detail"]
                await asyncio.sleep(wakeup.RETRY_PAUSE)
                response = await self.upstream.request(request.method, target, out, request.body, route.timeout)
            status, raw_headers = response.status, response.headers
            kept = [(k, v) for k, v in raw_headers if k.decode("latin-1").lower() not in HOP_BY_HOP]
            return status, response.body if response.done else response, kept, ""
        except TimeoutError:
            status, body = problem(504, f"The handler did not answer within {route.timeout:.0f} s.")
        except HandlerHeadersTooLarge as e:  # not relayed: a handler does not choose what the ingress holds
            status, body = problem(502, f"{e}.")
        except UpstreamUnreachable as e:
            status, body = problem(502, f"The gateway is unreachable: {e}.")
        return status, body, JSON, json.loads(body)["detail"]
