"""Async delivery (Celery side), replay, retention and token rotation.

A delivery is claimed with a lease (`next_attempt_at` moved past the attempt's timeout) before it is
forwarded, so two workers never send it at once, and one that dies mid-attempt leaves a lease that
expires: the sweep (beat) then hands it to another worker. At least once: handlers dedupe on
`X-Relay-Delivery-Id`.

Each queued message is noted on its row (`enqueued_at`, cleared when a worker claims it), so the sweep
queues a due delivery again only once that message is known lost: not taken within the lease margin
of being due, and the queue holds nothing a worker has yet to take. Workers that are down or behind
leave the queue non-empty, so however long they are away each delivery stays queued once.

A suspended or deleted trigger stops its deliveries: they are cancelled (state `cancelled`, with the
reason in `error`) when it is suspended, and the claim checks the trigger again under the delivery's
lock, so no attempt starts for a trigger that is suspended or being deleted (or whose tenant is).
Resuming does not bring cancelled deliveries back; replaying one does.
"""

from __future__ import annotations

import logging
import random
import time

import urllib3
from django.conf import settings
from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone

from tenants.audit import audit_record
from tenants.models import Tenant
from triggers.edge import wakeup
from triggers.edge.headers import HOP_BY_HOP, sender_headers
from triggers.edge.wakeup import FORWARD_MARGIN
from triggers.enqueue import celery_app, enqueue
from triggers.live import broadcast
from triggers.models import Delivery, DeliveryAttempt, Trigger, new_token
from triggers.security import sealed, signatures

log = logging.getLogger(__name__)
RETRYABLE = Delivery.RETRYABLE_STATUSES
_pool = urllib3.PoolManager(num_pools=4, maxsize=16, retries=False)


def backoff(attempt: int) -> float:
    """Exponential backoff with full jitter, capped (RELAY_RETRY_BASE, RELAY_RETRY_MAX)."""
    ceiling = min(settings.RELAY_RETRY_MAX, settings.RELAY_RETRY_BASE * 2 ** (attempt - 1))
    return random.uniform(ceiling / 2, ceiling)


def cancel_reason(trigger: Trigger) -> str:
    """Why a delivery of this trigger is not attempted (any more); "" when it may be."""
    if trigger.tenant.state == Tenant.State.DELETING:
        return f"Cancelled: tenant {trigger.tenant.slug} is being deleted."
    if trigger.deleting:
        return f"Cancelled: trigger {trigger.name} is being deleted."
    if trigger.suspended:
        return f"Cancelled: trigger {trigger.name} was suspended. Replay this delivery to send it again."
    return ""


def deliveries_cancel(trigger: Trigger) -> int:
    """Cancel the trigger's async deliveries still to be attempted (an attempt in flight finishes, and is
    recorded, but is not retried). Call it once the trigger is suspended or deleting, in that transaction."""
    return trigger.deliveries.filter(mode=Trigger.Mode.ASYNC, state__in=Delivery.ATTEMPTABLE).update(
        state=Delivery.State.CANCELLED, next_attempt_at=None, enqueued_at=None, error=cancel_reason(trigger))


def _claim(delivery_id) -> Delivery | None:
    now = timezone.now()
    with transaction.atomic():
        delivery = (
            Delivery.objects.select_for_update(of=("self",)).select_related("trigger__tenant")
            .filter(pk=delivery_id).first()
        )
        if delivery is None or delivery.state not in Delivery.ATTEMPTABLE:
            return None
        if delivery.next_attempt_at and delivery.next_attempt_at > now + timezone.timedelta(seconds=1):
            return None  # not due yet, or another worker holds the lease
        reason = cancel_reason(delivery.trigger)  # read under the lock: a suspension commits before or after
        if reason:
            delivery.state, delivery.next_attempt_at, delivery.error = Delivery.State.CANCELLED, None, reason
            delivery.enqueued_at = None
            delivery.save(update_fields=["state", "next_attempt_at", "enqueued_at", "error"])
            return delivery
        timeout = settings.RELAY_ACTIVATION_TIMEOUT + delivery.trigger.timeout_seconds
        lease = timeout + settings.RELAY_DELIVERY_LEASE_MARGIN
        delivery.state, delivery.attempts = "forwarded", delivery.attempts + 1
        delivery.next_attempt_at, delivery.enqueued_at = now + timezone.timedelta(seconds=lease), None
        delivery.save(update_fields=["state", "attempts", "next_attempt_at", "enqueued_at"])
    return delivery


def _forward(delivery: Delivery, secrets: dict[int, str]) -> tuple[int | None, bytes, list, str]:
    trigger = delivery.trigger
    if not trigger.servable:
        return None, b"", [], f"Trigger {trigger.name} has no ready revision (never deployed, or failed)."
    original = sealed.restore(delivery.headers, secrets)  # what the sender sent, never "[redacted]"
    headers = {k: v for k, v in sender_headers(original) if k.lower() not in HOP_BY_HOP}
    headers.update({"Host": trigger.gateway_host, "X-Relay-Delivery-Id": str(delivery.pk),
                    "X-Relay-Trigger": f"{trigger.tenant.slug}/{trigger.name}"})
    url = f"{settings.RELAY_GATEWAY_URL}{delivery.path}" + (f"?{delivery.query}" if delivery.query else "")
    if not trigger.ready_pods:  # at zero, or unknown: a cold start is waited for first (wakeup.py)
        failed = _wake(trigger)
        if failed is not None:
            return failed[0], b"", [], failed[1]
    timeout = trigger.timeout_seconds + FORWARD_MARGIN
    unrouted = time.monotonic() + wakeup.ROUTE_GRACE
    try:
        while True:
            response = _pool.request(delivery.method, url, body=bytes(delivery.body), headers=headers,
                                     timeout=urllib3.Timeout(total=timeout), redirect=False, preload_content=False,
                                     decode_content=False)
            body = read_capped(response, settings.RELAY_RESPONSE_BODY_CAP)
            if not wakeup.is_envoy_404(response.status, response.headers.items(), body):
                break
            if time.monotonic() > unrouted:  # Envoy has no route yet: no upstream saw it; retried later
                return 503, b"", [], f"The gateway has no route to trigger {trigger.name} yet."
            time.sleep(wakeup.RETRY_PAUSE)
    except urllib3.exceptions.TimeoutError:
        return 504, b"", [], f"The handler did not answer within {timeout:.0f} s."
    except urllib3.exceptions.HTTPError as e:
        return 502, b"", [], f"The gateway is unreachable: {type(e).__name__}."
    kept = [[k, v] for k, v in signatures.redact(list(response.headers.items())) if k.lower() not in HOP_BY_HOP]
    return response.status, body, kept, ""


def _wake(trigger: Trigger) -> tuple[int, str] | None:
    """Wait until a pod of the trigger serves (wakeup.py): None then, else (status, error) of the attempt."""
    return wake_host(trigger.gateway_host, f"{trigger.tenant.slug}/{trigger.name}",
                     unrouted=f"The gateway has no route to trigger {trigger.name} yet.",
                     timed_out=f"The handler did not answer within {settings.RELAY_ACTIVATION_TIMEOUT:g} s: it did not "
                               "start in time (RELAY_ACTIVATION_TIMEOUT).")


def wake_host(host: str, label: str, *, unrouted: str, timed_out: str) -> tuple[int, str] | None:
    """Wake the pods behind `host` through the gateway and wait until one serves (wakeup.py): None then, else
    (status, error): 502 the gateway unreachable, 503 `unrouted` (still no route after ROUTE_GRACE), 504
    `timed_out` (RELAY_ACTIVATION_TIMEOUT passed). Async attempts and candidate replays both wait this way."""
    headers = dict(wakeup.wake_headers(host, label))
    now = time.monotonic()
    deadline, route_grace = now + settings.RELAY_ACTIVATION_TIMEOUT, now + wakeup.ROUTE_GRACE
    while (left := deadline - time.monotonic()) > 0:
        try:
            response = _pool.request("GET", f"{settings.RELAY_GATEWAY_URL}/", headers=headers, redirect=False,
                                     timeout=urllib3.Timeout(total=min(wakeup.attempt_timeout(), left)),
                                     preload_content=False)
            body = read_capped(response, 1024)
        except urllib3.exceptions.TimeoutError:
            continue
        except urllib3.exceptions.HTTPError as e:
            return 502, f"The gateway is unreachable: {type(e).__name__}."
        if wakeup.awake(response.status, response.headers.items(), body):
            return None
        if response.status == 404 and time.monotonic() > route_grace:
            return 503, unrouted
        time.sleep(min(wakeup.RETRY_PAUSE, max(0.0, deadline - time.monotonic())))
    return 504, timed_out


def read_capped(response: urllib3.BaseHTTPResponse, cap: int) -> bytes:
    """The first `cap` bytes of the body; the rest is read and dropped, so memory does not grow with the
    response and the connection can be reused. A body that breaks off raises (the attempt failed)."""
    kept = bytearray()
    try:
        for part in response.stream(64 * 1024, decode_content=False):
            if len(kept) < cap:
                kept += part[: cap - len(kept)]
    finally:
        response.release_conn()
    return bytes(kept)


def _stop_reason(delivery: Delivery) -> str | None:
    """Under the row's lock, after an attempt: why no retry may follow ("" when one may; None when the row
    is gone, removed with its trigger). The trigger may have been suspended, the row cancelled, meanwhile."""
    current = (Delivery.objects.select_for_update(of=("self",)).select_related("trigger__tenant")
               .filter(pk=delivery.pk).first())
    if current is None:
        return None
    return current.error if current.state == Delivery.State.CANCELLED else cancel_reason(current.trigger)


def delivery_deliver(delivery_id) -> str:
    """One attempt; schedules the next one (or marks the delivery dead). Returns the new state."""
    delivery = _claim(delivery_id)
    if delivery is None:
        return "skipped"
    if delivery.state == Delivery.State.CANCELLED:
        broadcast.delivery(delivery, delivery.trigger.tenant_id)
        return delivery.state
    started = time.perf_counter()
    secrets = sealed.open_sealed(delivery.sealed_headers)
    status, body, headers, error = _forward(delivery, secrets)
    latency = (time.perf_counter() - started) * 1000
    with transaction.atomic():
        stopped = _stop_reason(delivery)
        if stopped is None:
            return "skipped"
        DeliveryAttempt.objects.update_or_create(
            delivery=delivery, number=delivery.attempts,
            defaults={"status": status, "latency_ms": latency, "error": error},
        )
        delivery.response_status, delivery.response_headers = status, headers
        delivery.response_body = sealed.scrub(body[: settings.RELAY_RESPONSE_BODY_CAP], secrets.values())
        delivery.latency_ms, delivery.error = latency, error
        retryable = status is None or status in RETRYABLE
        if status is not None and status < 400 and not error:
            delivery.state, delivery.next_attempt_at = "succeeded", None
        elif retryable and delivery.attempts < delivery.trigger.max_attempts and not stopped:
            delay = backoff(delivery.attempts)
            delivery.state, delivery.next_attempt_at = "retrying", timezone.now() + timezone.timedelta(seconds=delay)
            delivery.enqueued_at = timezone.now()
            transaction.on_commit(lambda: _enqueue(delivery.pk, countdown=delay))
        elif retryable and delivery.attempts < delivery.trigger.max_attempts:
            delivery.state, delivery.next_attempt_at, delivery.error = Delivery.State.CANCELLED, None, stopped
        else:
            delivery.state = "dead" if retryable else "failed"
            delivery.next_attempt_at = None
        delivery.save(update_fields=["response_status", "response_headers", "response_body", "latency_ms",
                                     "error", "state", "next_attempt_at", "enqueued_at"])
    broadcast.delivery(delivery, delivery.trigger.tenant_id)
    return delivery.state


def _enqueue(delivery_id, countdown: float = 0) -> None:
    enqueue("delivery_deliver", str(delivery_id), countdown=countdown)


def deliveries_dispatch(delivery_ids: list) -> int:
    """The ingress stores async deliveries in batches and sends one message per batch; each delivery then
    gets its own task (its own attempts and retries), published here over one broker connection."""
    with celery_app().producer_or_acquire() as producer:
        for pk in delivery_ids:
            enqueue("delivery_deliver", str(pk), producer=producer)
    return len(delivery_ids)


def _queued_messages() -> int:
    """Messages waiting in the delivery tasks' queue, not yet taken by a worker."""
    app = celery_app()
    with app.connection_for_read() as connection:
        channel = connection.channel()
        try:
            return channel.queue_declare(queue=app.conf.task_default_queue, passive=True).message_count
        except connection.channel_errors:
            return 0  # never declared: nothing was ever queued
        finally:
            channel.close()


def deliveries_sweep(limit: int = 1000) -> int:
    """Queue due deliveries that have no message on its way: retries whose message was lost, and leases of
    workers that died. Each is queued once: a delivery whose message is still queued is left alone."""
    now = timezone.now()
    due = Q(enqueued_at__isnull=True, next_attempt_at__lte=now)
    if not _queued_messages():  # every message queued so far has been taken by a worker
        margin = now - timezone.timedelta(seconds=settings.RELAY_DELIVERY_LEASE_MARGIN)
        due |= Q(enqueued_at__lt=margin, next_attempt_at__lt=margin)
    with transaction.atomic():
        pks = list(
            Delivery.objects.select_for_update(skip_locked=True)
            .filter(due, state__in=Delivery.ATTEMPTABLE, mode=Trigger.Mode.ASYNC)
            .order_by("next_attempt_at").values_list("pk", flat=True)[:limit]
        )
        Delivery.objects.filter(pk__in=pks).update(enqueued_at=now)
    return deliveries_dispatch(pks)  # one broker connection for all of them


@transaction.atomic
def delivery_replay(delivery: Delivery, *, audit: bool = True) -> Delivery:
    """A new delivery of the same request, linked to the original, delivered in the background."""
    copy = Delivery.objects.create(
        trigger=delivery.trigger, mode=Trigger.Mode.ASYNC, method=delivery.method, path=delivery.path,
        query=delivery.query, headers=delivery.headers, sealed_headers=delivery.sealed_headers, body=delivery.body,
        body_size=delivery.body_size, verification=delivery.verification, replay_of=delivery,
        next_attempt_at=timezone.now(), enqueued_at=timezone.now(),
    )
    transaction.on_commit(lambda: _enqueue(copy.pk))
    if audit:
        audit_record(tenant=delivery.trigger.tenant, action="delivery.replay", target=delivery,
                     label=f"{delivery.trigger} {delivery.pk}", changes={"replay": str(copy.pk)})
    return copy


def deliveries_replay_failed(trigger: Trigger) -> int:
    originals = list(  # not replayed yet, and not sent again by the sender since (a later redelivery)
        trigger.deliveries.filter(state__in=("failed", "dead"), replays__isnull=True, redeliveries__isnull=True)
        .exclude(redelivery_of__redeliveries__received_at__gt=F("received_at"))[:500])
    with transaction.atomic():
        for delivery in originals:
            delivery_replay(delivery, audit=False)
        audit_record(tenant=trigger.tenant, action="delivery.replay_failed", target=trigger,
                     changes={"replayed": len(originals)})
    return len(originals)


def deliveries_prune() -> int:
    """Retention: older than RELAY_DELIVERY_RETENTION_DAYS, and beyond RELAY_DELIVERY_MAX_ROWS per trigger.
    The sealed credentials go first: once a delivery can no longer be attempted, after
    RELAY_CREDENTIALS_RETENTION_HOURS (a later replay is sent without its sensitive headers)."""
    deliveries_clear_credentials()
    cutoff = timezone.now() - timezone.timedelta(days=settings.RELAY_DELIVERY_RETENTION_DAYS)
    deleted, _ = Delivery.objects.filter(received_at__lt=cutoff).delete()
    cap = settings.RELAY_DELIVERY_MAX_ROWS
    for trigger_id in Trigger.objects.values_list("pk", flat=True):
        boundary = (Delivery.objects.filter(trigger_id=trigger_id).order_by("-received_at")
                    .values_list("received_at", flat=True)[cap:cap + 1].first())
        if boundary is not None:
            deleted += Delivery.objects.filter(trigger_id=trigger_id, received_at__lte=boundary).delete()[0]
    return deleted


def deliveries_clear_credentials() -> int:
    """Clear the sealed sensitive headers of deliveries received more than RELAY_CREDENTIALS_RETENTION_HOURS
    ago that can no longer be attempted; returns how many were cleared."""
    cutoff = timezone.now() - timezone.timedelta(hours=settings.RELAY_CREDENTIALS_RETENTION_HOURS)
    return (Delivery.objects.filter(received_at__lt=cutoff).exclude(sealed_headers="")
            .exclude(state__in=Delivery.IN_FLIGHT).update(sealed_headers=""))


def trigger_rotate_token(trigger: Trigger) -> Trigger:
    """A new webhook URL; the old one keeps working for RELAY_TOKEN_OVERLAP seconds."""
    trigger.previous_token, trigger.token = trigger.token, new_token()
    trigger.previous_token_expires_at = timezone.now() + timezone.timedelta(seconds=settings.RELAY_TOKEN_OVERLAP)
    with transaction.atomic():
        trigger.save(update_fields=["previous_token", "token", "previous_token_expires_at", "updated_at"])
        audit_record(tenant=trigger.tenant, action="trigger.rotate_token", target=trigger)  # never the tokens
    return trigger


