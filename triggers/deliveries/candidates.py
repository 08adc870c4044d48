"""Candidate replays: recorded deliveries sent again to the revision a trigger carries under the
`candidate` tag (0 % of the traffic, reached only through its tag host), each answer kept beside the
delivery's original outcome, so a new handler can be compared with the one in service before it is promoted.

The requests go to the gateway with `Host: candidate-<trigger>.<namespace>.svc.cluster.local` (Knative's tag
template; the tag URL from the ksvc's status.traffic when it names one), as recorded: method, path, query,
body and the sender's headers (credentials put back while they are kept sealed, else left out, as for a
replay), plus `X-Relay-Delivery-Id` of the original and `X-Relay-Candidate-Replay: <replay id>` so a handler
can tell. Nothing reaches the sender and no Delivery row is made: the results are CandidateResult rows.

`candidate_replay_start` checks and records a replay (one at a time per trigger, RELAY_CANDIDATE_REPLAYS_PER_MINUTE
per user) and queues `candidate_replay_run`, the worker's side: it wakes the candidate, sends each delivery in
turn and ends `done`, or `failed` with why (the tag went away or moved, the trigger was suspended, the gateway
has no route for the tag host). A run picks up where a lost one stopped: results without an answer are sent.
"""

from __future__ import annotations

import logging
import math
import time
import uuid
from datetime import timedelta
from urllib.parse import urlsplit

import redis
import urllib3
from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Count
from django.utils import timezone

from tenants.audit import audit_record
from triggers.deliveries.filters import DeliveryFilter
from triggers.deliveries.retries import read_capped, wake_host
from triggers.edge import wakeup
from triggers.edge.headers import HOP_BY_HOP, sender_headers
from triggers.enqueue import enqueue, lease_redis
from triggers.models import CandidateReplay, CandidateResult, Delivery, Trigger
from triggers.security import sealed, signatures

log = logging.getLogger(__name__)

TAG = "candidate"
REPLAY_HEADER = "X-Relay-Candidate-Replay"
MAX_DELIVERIES = 100
PER_MINUTE = 5  # replays a user may start per minute (RELAY_CANDIDATE_REPLAYS_PER_MINUTE)
BUSY_RETRY_AFTER = 10  # seconds suggested while a trigger's replay is still running
ACTIVE = (CandidateReplay.State.PENDING, CandidateReplay.State.RUNNING)
_pool = urllib3.PoolManager(num_pools=2, maxsize=4, retries=False)


class CandidateReplayRefused(Exception):
    """Not started: too many at once (429, `wait` seconds)."""

    def __init__(self, message: str, wait: int) -> None:
        super().__init__(message)
        self.message, self.status, self.wait = message, 429, wait


# ------------------------------------------------------------------------------------------- the candidate


def candidate_target(trigger: Trigger) -> dict | None:
    """The trigger's status.traffic entry tagged `candidate` (as last observed), or None."""
    return next((t for t in trigger.traffic_status or () if t.get("tag") == TAG), None)


def candidate_host(trigger: Trigger, target: dict | None = None) -> str:
    """The Host the gateway routes to the candidate: the tag URL's, else `candidate-<ksvc's cluster-local host>`."""
    target = target if target is not None else candidate_target(trigger)
    host = urlsplit((target or {}).get("url") or "").hostname
    return host or f"{TAG}-{trigger.gateway_host or f'{trigger.name}.{trigger.namespace}.svc.cluster.local'}"


def no_candidate_message(trigger: Trigger) -> str:
    return (f"Trigger {trigger.name} has no revision tagged `{TAG}`: deploy one as a candidate first (it gets 0 % "
            f"of the traffic and its own host), then replay deliveries to it.")


def promotion_targets(replay: CandidateReplay) -> list[dict]:
    """The traffic that gives the replay's candidate 100 % (Trigger.traffic's form): the latest revision when the
    candidate is it, else that revision pinned. Raises ValidationError when the candidate is gone or moved."""
    trigger = replay.trigger
    target = candidate_target(trigger)
    if target is None:
        raise ValidationError(no_candidate_message(trigger) + " Nothing to promote.")
    revision = target.get("revisionName", "")
    if replay.revision and revision and revision != replay.revision:
        raise ValidationError(f"The `{TAG}` tag has moved from {replay.revision} to {revision} since this replay: "
                              f"replay to {revision} before promoting it.")
    if target.get("latestRevision") or revision == trigger.latest_created_revision:
        return [{"latest": True, "percent": 100}]
    return [{"revision": revision, "latest": False, "percent": 100}]


def candidate_promoted(*, replay: CandidateReplay, deployment) -> None:
    """Audit a promotion (call inside the transaction that asked for the new traffic)."""
    audit_record(tenant=replay.trigger.tenant, action="trigger.promote", target=replay.trigger,
                 changes={"candidate_replay": str(replay.pk), "revision": replay.revision,
                          "deployment": getattr(deployment, "pk", None)})


# ------------------------------------------------------------------------------------------------- start


def _per_minute() -> int:
    return int(getattr(settings, "RELAY_CANDIDATE_REPLAYS_PER_MINUTE", PER_MINUTE))


def _user_wait(user) -> int | None:
    """None when `user` may start one more replay this minute (and counts it), else the seconds to wait."""
    key = f"relayweb:candidate-replays:{getattr(user, 'pk', None) or 'system'}"
    try:
        client = lease_redis()
        pipe = client.pipeline(transaction=True)
        pipe.set(key, 0, ex=60, nx=True)
        pipe.incr(key)
        pipe.pttl(key)
        _, count, ttl = pipe.execute()
        if count <= _per_minute():
            return None
        client.decr(key)  # a refused request does not count
        return max(1, math.ceil(max(ttl, 0) / 1000))
    except redis.RedisError as e:  # the queue is down too: enqueueing will say so
        log.warning("candidate replay rate limit not checked: %s", e)
        return None


def _stale_after(trigger: Trigger, count: int) -> timedelta:
    """How long a replay may stay pending or running before its slot is free again (its worker was lost)."""
    return timedelta(seconds=settings.RELAY_ACTIVATION_TIMEOUT + count * (trigger.timeout_seconds + 1) + 300)


def _running(trigger: Trigger) -> CandidateReplay | None:
    now = timezone.now()
    for replay in trigger.candidate_replays.filter(state__in=ACTIVE).annotate(n=Count("results")):
        if replay.created_at > now - _stale_after(trigger, replay.n):
            return replay
    return None


def _check_trigger(trigger: Trigger) -> None:
    if trigger.deleting:
        raise ValidationError("This trigger is being deleted.")
    if trigger.suspended:
        raise ValidationError(f"Trigger {trigger.name} is suspended; resume it before replaying deliveries.")
    if candidate_target(trigger) is None:
        raise ValidationError(no_candidate_message(trigger))


def _by_ids(trigger: Trigger, ids) -> list[Delivery]:
    if not isinstance(ids, list) or not ids:
        raise ValidationError({"deliveries": f"A list of 1 to {MAX_DELIVERIES} delivery ids."})
    wanted: list[uuid.UUID] = []
    for value in ids:
        try:
            pk = uuid.UUID(str(value)) if isinstance(value, str | uuid.UUID) else None
        except ValueError:
            pk = None
        if pk is None:
            raise ValidationError({"deliveries": f"{str(value)[:60]!r} is not a delivery id."})
        if pk not in wanted:
            wanted.append(pk)
    if len(wanted) > MAX_DELIVERIES:
        raise ValidationError({"deliveries": f"At most {MAX_DELIVERIES} deliveries per replay ({len(wanted)} given)."})
    found = trigger.deliveries.in_bulk(wanted)
    missing = [str(pk) for pk in wanted if pk not in found]
    if missing:
        raise ValidationError({"deliveries": f"Not deliveries of trigger {trigger.name}: {', '.join(missing[:5])}."})
    rejected = [str(pk) for pk in wanted if found[pk].state == Delivery.State.REJECTED]
    if rejected:
        raise ValidationError({"deliveries": "These failed signature verification; a replay would bypass that check: "
                                             f"{', '.join(rejected[:5])}."})
    return [found[pk] for pk in wanted]


def _last(trigger: Trigger, last, filters: dict | None) -> list[Delivery]:
    if isinstance(last, bool) or not isinstance(last, int) or not 1 <= last <= MAX_DELIVERIES:
        raise ValidationError({"last": f"A number from 1 to {MAX_DELIVERIES}."})
    filters = dict(filters or {})
    known = set(DeliveryFilter.base_filters)
    unknown = sorted(set(filters) - known)
    if unknown:
        raise ValidationError({name: "Unknown field." for name in unknown})
    data = {name: "" if value is None else str(value).lower() if isinstance(value, bool) else str(value)
            for name, value in filters.items()}
    queryset = trigger.deliveries.exclude(state=Delivery.State.REJECTED).order_by("-received_at")
    found = DeliveryFilter(data, queryset=queryset)
    if not found.is_valid():
        raise ValidationError({name: list(errors) for name, errors in found.errors.items()})
    newest = list(found.qs[:last])
    if not newest:
        raise ValidationError({"last": "No deliveries of this trigger match: nothing to replay."})
    return newest[::-1]  # sent in the order they were received


def candidate_replay_start(*, trigger: Trigger, user, deliveries: list | None = None, last: int | None = None,
                           filters: dict | None = None) -> CandidateReplay:
    """Record a replay of `deliveries` (ids, in that order) or of the `last` N deliveries matching `filters` (the
    delivery list's; sent oldest first) to the trigger's candidate, and queue it. Editors only (the caller
    checks). Raises ValidationError (naming the field) or CandidateReplayRefused (429)."""
    _check_trigger(trigger)
    if (deliveries is None) == (last is None):
        raise ValidationError({"deliveries": "Give either deliveries (a list of ids) or last (a number)."})
    if deliveries is not None and filters:
        raise ValidationError({name: "Filters apply to last, not to a list of deliveries." for name in filters})
    chosen = _by_ids(trigger, deliveries) if deliveries is not None else _last(trigger, last, filters)
    with transaction.atomic():
        locked = Trigger.objects.select_for_update(of=("self",)).select_related("tenant").get(pk=trigger.pk)
        _check_trigger(locked)
        busy = _running(locked)
        if busy is not None:
            raise CandidateReplayRefused(f"A candidate replay of {trigger.name} is still running ({busy.pk}); "
                                         "start another once it is done.", BUSY_RETRY_AFTER)
        wait = _user_wait(user)
        if wait is not None:
            raise CandidateReplayRefused(f"At most {_per_minute()} candidate replays a minute; try again in "
                                         f"{wait} s.", wait)
        target = candidate_target(locked)
        replay = CandidateReplay.objects.create(trigger=locked, revision=target.get("revisionName", ""),
                                                created_by=user if getattr(user, "pk", None) else None)
        CandidateResult.objects.bulk_create([
            CandidateResult(replay=replay, delivery=d, position=i, method=d.method, path=d.path,
                            original_status=d.response_status, original_latency_ms=d.latency_ms,
                            original_body=bytes(d.response_body or b""))
            for i, d in enumerate(chosen)
        ])
        audit_record(tenant=locked.tenant, action="trigger.candidate_replay", target=locked,
                     changes={"candidate_replay": str(replay.pk), "revision": replay.revision,
                              "deliveries": len(chosen)})
        pk = str(replay.pk)
        transaction.on_commit(lambda: enqueue("candidate_replay_run", pk))
    return replay


# --------------------------------------------------------------------------------------------------- run


def _finish(replay: CandidateReplay, state: str, error: str = "") -> str:
    replay.state, replay.error, replay.finished_at = state, error, timezone.now()
    replay.save(update_fields=["state", "error", "finished_at"])
    return state


def _why_stop(replay: CandidateReplay) -> str:
    """Why the replay may not go on (the trigger as it is now), "" when it may."""
    trigger = Trigger.objects.select_related("tenant").filter(pk=replay.trigger_id).first()
    if trigger is None or trigger.deleting:
        return "The trigger was deleted."
    if trigger.suspended:
        return f"Trigger {trigger.name} was suspended."
    target = candidate_target(trigger)
    if target is None:
        return f"The `{TAG}` tag vanished from trigger {trigger.name} (promoted, or removed by a deploy)."
    revision = target.get("revisionName", "")
    if replay.revision and revision and revision != replay.revision:
        return f"The `{TAG}` tag moved from {replay.revision} to {revision}; start a new replay to test {revision}."
    replay.trigger = trigger
    return ""


def _wake(host: str, label: str) -> str:
    """Wait until a pod of the candidate serves: "" then, else why not."""
    failed = wake_host(
        host, label,
        unrouted=f"The gateway has no route for the candidate's host {host} (its `{TAG}` tag was removed?).",
        timed_out=f"The candidate did not start within {settings.RELAY_ACTIVATION_TIMEOUT:g} s "
                  "(RELAY_ACTIVATION_TIMEOUT).")
    return failed[1] if failed else ""


class _Unrouted(Exception):
    pass


def _send(replay: CandidateReplay, delivery: Delivery, host: str) -> tuple[int | None, bytes, list, str, float]:
    """One request to the candidate: (status, body, headers, error, latency ms). Raises _Unrouted when the
    gateway has no route for the host (the tag is gone)."""
    trigger = replay.trigger
    secrets = sealed.open_sealed(delivery.sealed_headers)
    original = sealed.restore(delivery.headers, secrets)  # what the sender sent; redacted ones without a key dropped
    headers = {k: v for k, v in sender_headers(original) if k.lower() not in HOP_BY_HOP}
    headers.update({"Host": host, "X-Relay-Delivery-Id": str(delivery.pk), REPLAY_HEADER: str(replay.pk),
                    "X-Relay-Trigger": f"{trigger.tenant.slug}/{trigger.name}"})
    url = f"{settings.RELAY_GATEWAY_URL}{delivery.path or '/'}" + (f"?{delivery.query}" if delivery.query else "")
    timeout = trigger.timeout_seconds + wakeup.FORWARD_MARGIN
    unrouted = time.monotonic() + wakeup.ROUTE_GRACE
    while True:
        started = time.perf_counter()
        try:
            response = _pool.request(delivery.method, url, body=bytes(delivery.body), headers=headers,
                                     timeout=urllib3.Timeout(total=timeout), redirect=False, preload_content=False,
                                     decode_content=False)
            body = read_capped(response, settings.RELAY_RESPONSE_BODY_CAP)
        except urllib3.exceptions.TimeoutError:
            return 504, b"", [], f"The candidate did not answer within {timeout:.0f} s.", _ms(started)
        except urllib3.exceptions.HTTPError as e:
            return 502, b"", [], f"The gateway is unreachable: {type(e).__name__}.", _ms(started)
        latency = _ms(started)
        if not wakeup.is_envoy_404(response.status, response.headers.items(), body):
            break
        if time.monotonic() > unrouted:
            raise _Unrouted
        time.sleep(wakeup.RETRY_PAUSE)
    kept = [[k, v] for k, v in signatures.redact(list(response.headers.items())) if k.lower() not in HOP_BY_HOP]
    return response.status, sealed.scrub(body, secrets.values()), kept, "", latency


def _ms(started: float) -> float:
    return (time.perf_counter() - started) * 1000


def _not_sent(delivery: Delivery | None) -> str:
    if delivery is None:
        return "Not sent: the delivery was pruned from the log before its turn."
    if delivery.truncated:
        return "Not sent: only part of this request was recorded (truncated), the candidate would get another one."
    return ""


def candidate_replay_run(replay_id) -> str:
    """The worker's side: send each delivery not answered yet to the candidate; the replay's final state."""
    replay = CandidateReplay.objects.select_related("trigger__tenant").filter(pk=replay_id).first()
    if replay is None or replay.state not in ACTIVE:
        return "skipped"
    CandidateReplay.objects.filter(pk=replay.pk).update(state=CandidateReplay.State.RUNNING)
    replay.state = CandidateReplay.State.RUNNING
    stop = _why_stop(replay)
    if stop:
        return _finish(replay, CandidateReplay.State.FAILED, stop)
    trigger = replay.trigger
    host = candidate_host(trigger)
    woke = _wake(host, f"{trigger.tenant.slug}/{trigger.name}")
    if woke:
        return _finish(replay, CandidateReplay.State.FAILED, woke)
    pending = replay.results.filter(candidate_status__isnull=True, error="").select_related("delivery")
    for result in pending.order_by("position"):
        stop = _why_stop(replay)
        if stop:
            return _finish(replay, CandidateReplay.State.FAILED, stop)
        result.sent_at = timezone.now()
        result.error = _not_sent(result.delivery)
        if not result.error:
            try:
                (result.candidate_status, result.candidate_body, result.candidate_headers, result.error,
                 result.candidate_latency_ms) = _send(replay, result.delivery, host)
            except _Unrouted:
                sent = replay.results.exclude(sent_at__isnull=True).count()
                return _finish(replay, CandidateReplay.State.FAILED,
                               f"The gateway has no route for the candidate's host {host} any more: its `{TAG}` "
                               f"tag vanished (promoted, or removed by a deploy) after {sent} of "
                               f"{replay.results.count()} deliveries.")
            result.error = result.error or ("" if result.candidate_status is not None else "No answer.")
        result.save(update_fields=["sent_at", "candidate_status", "candidate_body", "candidate_headers", "error",
                                   "candidate_latency_ms"])
    return _finish(replay, CandidateReplay.State.DONE)
