"""The only place websocket group names and event payloads are built.

Events go to the Channels group of the trigger's tenant after the transaction commits, one message per
change. Event types: trigger.status, trigger.pods, deployment, delivery, diag.

Operators (the all-tenants overview and the diag page, ws/ops/) get trigger.status, trigger.pods and
deployment too, and for deliveries one coalesced `deliveries` event naming the triggers that had some (the
ingress sends one per batch; the retry worker at most one per OPERATORS_DELIVERY_INTERVAL per process): a
page across all tenants re-reads its rows, it does not need each webhook. Every message uses the types
both consumers handle (relay.event, relay.events, access.revoked): a group message type a member's consumer
lacks a handler for would close that socket.

Each socket also joins its user's group: when access may have ended (a member removed, a tenant being
deleted, a user deactivated or signed out) an `access.revoked` message makes its sockets re-check access and
close with ACCESS_REVOKED_CODE, saying why, if it is gone.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import threading
import time

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.db import transaction

from triggers.live.badge import KnownLast, badge

log = logging.getLogger(__name__)
OPERATORS = "operators"
OPERATORS_DELIVERY_INTERVAL = 0.5  # seconds: how often a process tells operators which triggers had deliveries
ACCESS_REVOKED_CODE = 4403  # websocket close code: access is gone, the page must not reconnect


def tenant_group(tenant_id: int) -> str:
    return f"tenant-{tenant_id}"


def user_group(user_id: int) -> str:
    return f"user-{user_id}"


def session_digest(session_key: str | None) -> str | None:
    """What names a signed-out session in a message (not the session key itself)."""
    return hashlib.sha256(session_key.encode()).hexdigest() if session_key else None


def trigger_payload(trigger) -> dict:
    """Everything a page shows of a trigger's live state, in one event: the badge, the scale, Knative's
    Ready condition, address and revisions, the failure notice and the latest deployment. The trigger page
    renders its cards from this same dict (templatetags/live.py), so a page and the socket never disagree."""
    last = trigger.last_deployment
    known = KnownLast(trigger, last)  # one query for the latest deployment, not one per use
    key, text = badge(known)
    return {
        "id": trigger.pk, "name": trigger.name, "badge": key, "badge_text": text, "state": known.state,
        "ready_pods": trigger.ready_pods, "desired": trigger.desired_replicas, "actual": trigger.actual_replicas,
        "active": trigger.active_status, "active_reason": trigger.active_reason,
        "active_since": trigger.active_since.isoformat() if trigger.active_since else None,
        "ready": trigger.ready_status, "reason": trigger.ready_reason, "message": trigger.ready_message,
        "address_url": trigger.address_url, "latest_ready_revision": trigger.latest_ready_revision,
        "latest_created_revision": trigger.latest_created_revision,
        "serving_old_revision": trigger.serving_old_revision, "url": trigger.url,
        "observed_at": trigger.observed_at.isoformat() if trigger.observed_at else None,
        "notice": notice(trigger, key, text, last),
        "last_deployment": deployment_payload(last) if last else None,
    }


def notice(trigger, key: str, text: str, last) -> dict | None:
    """The warning at the top of a trigger page: an update that failed while the old revision serves, or a
    failure with its message; None when all is well."""
    if trigger.serving_old_revision:
        return {"kind": "old_revision", "serving": trigger.latest_ready_revision,
                "newest": trigger.latest_created_revision,
                "message": trigger.ready_message or trigger.ready_reason}
    if key == "failed":
        failed = last is not None and last.status in ("failed", "error")
        message = (last.message if failed else "") or trigger.ready_message
        if message:
            return {"kind": "failed", "text": f"{text} — {message}"}
    return None


def pods_payload(trigger) -> dict:
    return {"id": trigger.pk, "name": trigger.name, "ready_pods": trigger.ready_pods, "pods": trigger.pods}


def deployment_payload(deployment) -> dict:
    return {"id": deployment.pk, "trigger_id": deployment.trigger_id, "status": deployment.status,
            "reason": deployment.reason, "message": deployment.message, "revision": deployment.revision,
            "spec_version": deployment.spec_version, "created_at": deployment.created_at.isoformat()}


def delivery_payload(delivery) -> dict:
    return {"id": str(delivery.pk), "trigger_id": delivery.trigger_id, "method": delivery.method,
            "path": delivery.path, "state": delivery.state, "status": delivery.response_status,
            "latency_ms": delivery.latency_ms, "cold_start": delivery.cold_start,
            "received_at": delivery.received_at.isoformat()}


def delivery_messages(deliveries) -> list[tuple[str, dict]]:
    """Channel-layer messages for deliveries the ingress wrote together: one per tenant, carrying all of
    that tenant's "delivery" events (the ingress sends them a few times a second, not one per webhook)."""
    by_tenant: dict[int, list] = {}
    for delivery in deliveries:
        by_tenant.setdefault(delivery.tenant_id, []).append(("delivery", delivery_payload(delivery)))
    messages = [(tenant_group(tenant_id), {"type": "relay.events", "events": events})
                for tenant_id, events in by_tenant.items()]
    if messages:
        messages.append(operators_deliveries({d.trigger_id for d in deliveries}))
    return messages


def operators_deliveries(trigger_ids) -> tuple[str, dict]:
    """The operators' message for deliveries of these triggers (ids sorted, so a message is reproducible)."""
    return OPERATORS, {"type": "relay.event", "event": "deliveries",
                       "payload": {"trigger_ids": sorted(trigger_ids)}}


class _OperatorsTicker:
    """Gathers the triggers that had deliveries in this process and tells operators at most once per
    interval (from a timer thread, so the last deliveries of a burst are told too, without a caller)."""

    def __init__(self, interval: float) -> None:
        self.interval = interval
        self._lock = threading.Lock()
        self._ids: set[int] = set()
        self._timer: threading.Timer | None = None

    def add(self, trigger_id: int) -> None:
        with self._lock:
            self._ids.add(trigger_id)
            if self._timer is None:
                self._timer = threading.Timer(self.interval, self.flush)
                self._timer.daemon = True
                self._timer.start()

    def flush(self) -> None:
        with self._lock:
            ids, self._ids, self._timer = self._ids, set(), None
        if ids:
            _group_send(*operators_deliveries(ids))


operators_ticker = _OperatorsTicker(OPERATORS_DELIVERY_INTERVAL)


def send(group: str, event: str, payload: dict) -> None:
    """Send after commit (or now, outside a transaction); a broken channel layer never breaks the caller."""
    _send_on_commit(group, {"type": "relay.event", "event": event, "payload": payload})


def _send_on_commit(group: str, message: dict) -> None:
    transaction.on_commit(lambda: _group_send(group, message))


def _group_send(group: str, message: dict) -> None:
    try:
        async_to_sync(get_channel_layer().group_send)(group, message)
    except Exception:  # the layer (Redis) is down: the page reconnects and gets a snapshot
        log.warning("broadcast of %s to %s failed", message.get("event", message["type"]), group, exc_info=True)


def access_revoked(*, user_id: int | None = None, tenant_id: int | None = None,
                   session_key: str | None = None) -> None:
    """After commit, make sockets re-check access: a user's (in one tenant, or all), or all of a tenant's.
    With `session_key` only that session's sockets close (it signed out; the user's others stay)."""
    group = user_group(user_id) if user_id is not None else tenant_group(tenant_id)
    _send_on_commit(group, {"type": "access.revoked", "tenant_id": tenant_id,
                            "session": session_digest(session_key)})


def trigger_status(trigger) -> None:
    _to_tenant_and_operators(trigger.tenant_id, "trigger.status", trigger_payload(trigger))


def trigger_pods(trigger) -> None:
    _to_tenant_and_operators(trigger.tenant_id, "trigger.pods", pods_payload(trigger))


def deployment(deployment, tenant_id: int) -> None:
    _to_tenant_and_operators(tenant_id, "deployment", deployment_payload(deployment))


def _to_tenant_and_operators(tenant_id: int, event: str, payload: dict) -> None:
    send(tenant_group(tenant_id), event, payload)
    send(OPERATORS, event, payload)


def delivery(delivery, tenant_id: int) -> None:
    send(tenant_group(tenant_id), "delivery", delivery_payload(delivery))
    trigger_id = delivery.trigger_id
    transaction.on_commit(lambda: operators_ticker.add(trigger_id))


def logs_group(trigger_id: int) -> str:
    """The group of a trigger's open log panels: a socket joins it on `logs.follow` (consumers.py), so the
    lines go only to pages showing that trigger's logs, not to every page of the tenant."""
    return f"logs-{trigger_id}"


def log_line_payload(line) -> dict:
    return {"id": line.pk, "time": line.time.isoformat(), "pod": line.pod, "revision": line.revision,
            "stream": line.stream, "text": line.text, "cut": line.cut}


def log_lines_message(trigger_id: int, lines, *, dropped: int = 0) -> tuple[str, dict]:
    """The message for new lines of a trigger's handler; `dropped` lines of the same batch are not sent (a panel
    says so and offers a reload)."""
    return logs_group(trigger_id), {"type": "relay.event", "event": "logs", "payload": {
        "trigger_id": trigger_id, "lines": [log_line_payload(line) for line in lines], "dropped": dropped}}


def log_lines(trigger_id: int, lines, *, dropped: int = 0) -> None:
    """Send new lines of a trigger's handler now (one message; the collector sends its batches through a
    BackgroundSender instead)."""
    _group_send(*log_lines_message(trigger_id, lines, dropped=dropped))


SEND_CONCURRENCY = 50  # group_sends in flight at once: channels_redis's pool holds 100 connections per event loop


async def send_many(messages: list[tuple[str, dict]]) -> int:
    """Send (group, message) pairs concurrently, at most SEND_CONCURRENCY at a time (more at once fail with
    MaxConnectionsError: 100 of 200 in the log benchmark). Returns how many could not be sent (logged)."""
    layer, gate = get_channel_layer(), asyncio.Semaphore(SEND_CONCURRENCY)

    async def one(group: str, message: dict) -> None:
        async with gate:
            await layer.group_send(group, message)

    results = await asyncio.gather(*(one(group, message) for group, message in messages), return_exceptions=True)
    failed = [r for r in results if isinstance(r, Exception)]
    if failed:
        log.warning("%d of %d live messages could not be sent: %r", len(failed), len(messages), failed[0])
    return len(failed)


class BackgroundSender:
    """Sends channel-layer messages from one long-lived event loop in a thread of its own, for a process that
    sends many (the log collector: one message per trigger per batch). async_to_sync per message costs a new
    loop and a new Redis connection each time (4-7 ms, measured by tests/bench/bench_logs.py: it capped the
    collector near 2,000 lines/s); here a batch's messages go out together on kept connections, and the caller
    never waits. At most `max_pending` batches wait; more are dropped and counted (live panels are a view: the
    lines are stored, a reload shows them)."""

    def __init__(self, *, max_pending: int = 20):
        self.max_pending = max_pending
        self.pending = 0
        self.sent = self.dropped = self.failed = 0
        self._lock = threading.Lock()
        self._loop = None
        self._thread: threading.Thread | None = None

    def _start(self) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="broadcast-sender", daemon=True)
        self._thread.start()

    def submit(self, messages: list[tuple[str, dict]]) -> bool:
        """Queue one batch of (group, message); False when dropped."""
        if not messages:
            return True
        with self._lock:
            if self._thread is None or not self._thread.is_alive():
                self._start()
            if self.pending >= self.max_pending:
                self.dropped += 1
                return False
            self.pending += 1
        asyncio.run_coroutine_threadsafe(self._send(messages), self._loop)
        return True

    async def _send(self, messages: list[tuple[str, dict]]) -> None:
        try:
            failures = await send_many(messages)
            self.sent += len(messages) - failures
            self.failed += failures
        finally:
            with self._lock:
                self.pending -= 1

    def stop(self, timeout: float = 5.0) -> None:
        """Wait for what is queued (up to `timeout`), then end the loop."""
        deadline = time.monotonic() + timeout
        while self.pending and time.monotonic() < deadline:
            time.sleep(0.01)
        if self._loop is not None and self._thread is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout)
            self._loop = self._thread = None


def diag(tenant_id: int | None, payload: dict) -> None:
    send(OPERATORS if tenant_id is None else tenant_group(tenant_id), "diag", payload)
