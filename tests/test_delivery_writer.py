"""The ingress's group-commit writer on the real database (COPY on PostgreSQL, executemany on SQLite)."""

from datetime import timedelta

import pytest
from django.db import IntegrityError
from django.utils import timezone

from triggers.delivery_writer import DeliveryRecord, _write
from triggers.models import Delivery, Trigger

pytestmark = pytest.mark.django_db(transaction=True)

NASTY = "tab\there, newline\nthere, cr\r, backslash \\ and \\N, quote ' \" é ☃ \\."


@pytest.fixture
def trigger(tenant_a):
    return Trigger.objects.create(tenant=tenant_a, name="hello", image="kubesim/echo")


def test_a_record_has_the_models_defaults(trigger):
    record, model = DeliveryRecord(trigger_id=trigger.pk, mode="sync", method="POST"), Delivery()
    for field in Delivery._meta.concrete_fields:
        if field.attname not in ("id", "received_at", "trigger_id", "mode", "method"):
            assert getattr(record, field.attname) == getattr(model, field.attname), field.attname
    assert record.id != DeliveryRecord(trigger_id=trigger.pk).id and record.pk == record.id
    assert abs(record.received_at - timezone.now()) < timedelta(seconds=5)
    with pytest.raises(AttributeError):
        record.no_such_column = 1  # a typo on the hot path fails loudly, not silently


def test_every_column_type_round_trips(trigger, tenant_a):
    body = bytes(range(256)) + b"\\x00\t\n"
    original = Delivery.objects.create(trigger=trigger, mode="sync", method="POST")
    record = DeliveryRecord(
        trigger_id=trigger.pk, tenant_id=tenant_a.pk, mode="async", method="PATCH", path="/a\tb\\c",
        query=NASTY, headers=[["x-nasty", NASTY], ["x-json", '{"k": "\\u0041"}']], body=body,
        body_size=len(body), verification="passed", verification_error=NASTY, provider_delivery_id="evt_1\\2",
        state="succeeded", response_status=201, response_headers=[["set-cookie", "a=b; Path=/"]],
        response_body=b"", latency_ms=1.25, cold_start=True, attempts=1,
        next_attempt_at=timezone.now() + timedelta(minutes=3), error=NASTY, replay_of_id=original.pk)
    assert _write([(record, None, False, False)]) == {}
    stored = Delivery.objects.get(pk=record.pk)
    for field in Delivery._meta.concrete_fields:
        value = getattr(stored, field.attname)
        value = bytes(value) if isinstance(value, memoryview) else value
        assert value == getattr(record, field.attname), field.attname
    assert stored.attempt_log.count() == 0  # an async row's attempts are the workers' to write


def test_nulls_round_trip(trigger):
    record = DeliveryRecord(trigger_id=trigger.pk, mode="sync", method="GET")
    assert _write([(record, None, False, False)]) == {}
    stored = Delivery.objects.get(pk=record.pk)
    assert (stored.response_status, stored.latency_ms, stored.provider_delivery_id, stored.next_attempt_at,
            stored.replay_of_id) == (None, None, None, None, None)
    assert stored.attempt_log.count() == 0  # attempts=0: nothing was forwarded


def test_a_duplicate_provider_id_fails_only_its_own_row(trigger):
    Delivery.objects.create(trigger=trigger, mode="sync", method="POST", provider_delivery_id="evt-1")
    rows = [DeliveryRecord(trigger_id=trigger.pk, mode="sync", method="POST", provider_delivery_id=pid)
            for pid in ("evt-0", "evt-1", "evt-2")]
    failures = _write([(row, None, False, False) for row in rows])
    assert list(failures) == [id(rows[1])] and isinstance(failures[id(rows[1])], IntegrityError)
    assert sorted(Delivery.objects.values_list("provider_delivery_id", flat=True)) == ["evt-0", "evt-1", "evt-2"]
    assert Delivery.objects.filter(pk__in=[rows[0].pk, rows[2].pk]).count() == 2


def test_a_sync_deliverys_one_attempt_is_its_own_outcome(trigger):
    """The ingress writes one row per sync webhook; its attempt 1 is read from that row, never stored twice."""
    record = DeliveryRecord(trigger_id=trigger.pk, mode="sync", method="POST", state="failed", response_status=502,
                            latency_ms=3.5, attempts=1, error="The gateway is unreachable: refused.")
    assert _write([(record, None, False, False)]) == {}
    stored = Delivery.objects.get(pk=record.pk)
    assert stored.attempt_log.count() == 0
    (attempt,) = stored.attempt_history()
    assert (attempt.number, attempt.status, attempt.latency_ms, attempt.error, attempt.started_at) == (
        1, 502, 3.5, "The gateway is unreachable: refused.", stored.received_at)
    rejected = Delivery.objects.create(trigger=trigger, mode="sync", method="POST", state="rejected", attempts=0)
    assert rejected.attempt_history() == []  # never forwarded: no attempt
    queued = Delivery.objects.create(trigger=trigger, mode="async", method="POST", attempts=1)
    queued.attempt_log.create(number=1, status=500, latency_ms=2.0)
    assert [(a.number, a.status) for a in queued.attempt_history()] == [(1, 500)]
