"""The ingress's group-commit writer on the real database (COPY on PostgreSQL, executemany on SQLite)."""

from datetime import timedelta

import pytest
from django.db import IntegrityError, connection
from django.test import Client
from django.utils import timezone

from triggers.edge.delivery_writer import DeliveryRecord, DuplicateDelivery, RowNotStored, TriggerGone, _write
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
    assert list(failures) == [id(rows[1])] and isinstance(failures[id(rows[1])], DuplicateDelivery)
    assert isinstance(failures[id(rows[1])], IntegrityError)
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


# ---------------------------------------------------------------- one row never fails another

LONG_METHOD, LONG_ERROR = "X" * 40, "e" * 1000  # Delivery.method holds 16, verification_error 300
SURROGATE = "half a pair: \ud800 here"  # no UTF-8 encoding: refused by both backends' drivers


def _stored(record):
    return Delivery.objects.get(pk=record.pk)


def _row(trigger, **values):
    return DeliveryRecord(**{"trigger_id": trigger.pk, "tenant_id": trigger.tenant_id, "mode": "async",
                             "method": "POST", **values})


@pytest.fixture
def other(tenant_b):
    return Trigger.objects.create(tenant=tenant_b, name="other", image="kubesim/echo")


def test_a_row_the_database_refuses_does_not_fail_the_rest_of_the_batch(trigger, other):
    good = [_row(trigger, path=f"/ok/{i}", headers=[["x-n", str(i)]]) for i in range(40)]
    bad = [_row(other, method=LONG_METHOD), _row(other, verification_error=LONG_ERROR),
           _row(other, headers=[["x-nul", "a\x00b"]]), _row(other, error=SURROGATE)]
    batch = good[:20] + bad + good[20:]
    assert _write([(row, None, False, False) for row in batch]) == {}
    assert Delivery.objects.count() == 44
    for row in good:  # every other row exactly as it arrived, unflagged
        stored = _stored(row)
        assert (stored.path, stored.headers, stored.truncated, stored.record_note) == (row.path, row.headers, False, "")
    assert _stored(bad[3]).truncated and _stored(bad[3]).error == "half a pair: \ufffd here"


def test_a_row_that_cannot_be_stored_as_it_is_is_stored_cut_to_fit_and_flagged(trigger):
    record = _row(trigger, method=LONG_METHOD, verification_error=LONG_ERROR, headers=[["x-nul", "a\x00b"]],
                  error=SURROGATE, path="/p" * 3000)
    assert _write([(record, None, False, False)]) == {}
    stored = _stored(record)
    assert stored.truncated and "error: characters the database refuses replaced by U+FFFD" in stored.record_note
    assert stored.error == "half a pair: \ufffd here" and stored.path == "/p" * 3000  # path is text: never cut
    if connection.vendor == "postgresql":  # SQLite holds over-long text and NUL as they are
        assert (stored.method, stored.verification_error) == ("X" * 16, "e" * 300)
        assert stored.headers == [["x-nul", "a\ufffdb"]]
        assert "method: 40 characters cut to 16" in stored.record_note
        assert "verification_error: 1000 characters cut to 300" in stored.record_note
        assert "headers: characters the database refuses replaced by U+FFFD" in stored.record_note


def test_a_claimed_rows_outcome_the_database_refuses_is_stored_cut_to_fit_and_flagged(trigger, other):
    claimed = [_row(trigger, mode="sync", provider_delivery_id=f"evt-{i}", state="forwarded") for i in range(2)]
    assert _write([(row, None, False, False) for row in claimed]) == {}
    fine, poisoned = claimed
    fine.state, fine.response_status, fine.response_headers = "succeeded", 200, [["content-type", "text/plain"]]
    poisoned.state, poisoned.response_status, poisoned.error = "failed", 500, SURROGATE
    poisoned.response_headers = [["x-nul", "\x00"]]
    new = _row(other)
    assert _write([(poisoned, None, False, True), (new, None, False, False), (fine, None, False, True)]) == {}
    assert (_stored(fine).state, _stored(fine).response_headers, _stored(fine).truncated) == (
        "succeeded", [["content-type", "text/plain"]], False)
    stored = _stored(poisoned)
    assert (stored.state, stored.response_status, stored.error, stored.truncated) == (
        "failed", 500, "half a pair: \ufffd here", True)
    assert "error: characters the database refuses" in stored.record_note
    assert _stored(new).state == "received"


def test_an_integrity_error_other_than_the_dedupe_constraint_is_not_a_duplicate(trigger, other):
    """Only the provider delivery id's constraint is a duplicate: a deleted trigger, or a value a CHECK
    constraint refuses, is reported as what it is, and the other rows are stored."""
    Delivery.objects.create(trigger=trigger, mode="async", method="POST", provider_delivery_id="evt-1")
    gone = Trigger.objects.create(tenant=other.tenant, name="gone", image="kubesim/echo")
    orphan, gone_id = _row(gone, provider_delivery_id="evt-1"), gone.pk
    gone.delete()  # deleted while the ingress still had its route cached
    duplicate = _row(trigger, provider_delivery_id="evt-1")
    unsigned = _row(trigger, response_status=-1)  # PositiveIntegerField: a CHECK constraint
    good = _row(other, provider_delivery_id="evt-1")
    failures = _write([(row, None, False, False) for row in (orphan, duplicate, unsigned, good)])
    assert set(failures) == {id(orphan), id(duplicate), id(unsigned)}
    assert isinstance(failures[id(duplicate)], DuplicateDelivery)
    assert isinstance(failures[id(orphan)], TriggerGone) and f"trigger {gone_id}" in str(failures[id(orphan)])
    assert isinstance(failures[id(unsigned)], RowNotStored) and not isinstance(failures[id(unsigned)], TriggerGone)
    assert not any(isinstance(failures[id(row)], IntegrityError) for row in (orphan, unsigned))
    assert Delivery.objects.filter(pk=good.pk).exists()
    assert not Delivery.objects.filter(pk__in=[orphan.pk, duplicate.pk, unsigned.pk]).exists()


def test_a_row_stored_cut_to_fit_says_so_in_the_api_and_on_its_log_page(trigger, api, bob):
    record = _row(trigger, error=SURROGATE)
    assert _write([(record, None, False, False)]) == {}
    url = f"/api/v1/tenants/acme/triggers/hello/deliveries/{record.pk}/"
    body = api(bob).get(url).json()
    assert body["truncated"] is True and body["record_note"].startswith("error: characters the database refuses")
    client = Client()
    client.force_login(bob)
    html = client.get(f"/t/acme/triggers/hello/deliveries/{record.pk}/").content.decode()
    assert 'id="record-note"' in html and "Stored cut to fit the log: error: characters" in html
    plain = _row(trigger)
    _write([(plain, None, False, False)])
    assert api(bob).get(url.replace(str(record.pk), str(plain.pk))).json()["truncated"] is False
    assert 'id="record-note"' not in client.get(f"/t/acme/triggers/hello/deliveries/{plain.pk}/").content.decode()


def test_a_batch_committed_while_live_events_are_on_their_way_is_shown_too(trigger, monkeypatch):
    """The live sender takes the queued rows, then awaits the group send. A batch committed meanwhile finds
    the sender still running and starts no other: its events were left queued until the next delivery came
    (never, for the last webhooks of a burst; a test waiting for them flaked under load)."""
    import asyncio

    from asgiref.sync import async_to_sync
    from channels.layers import get_channel_layer

    from triggers.edge import delivery_writer
    from triggers.live import broadcast

    writer = delivery_writer.DeliveryWriter(live_interval=0.01)
    first, second = _row(trigger, state="succeeded"), _row(trigger, state="succeeded")
    real_send_all, sends = delivery_writer._send_all, []

    async def a_batch_commits_during_the_send(messages):
        sends.append(messages)
        if len(sends) == 1:  # the interleaving: the next batch's after-commit step runs while this send waits
            writer._writing += 1
            await writer._after_commit([(second, None, False, False)], {})
        await real_send_all(messages)

    monkeypatch.setattr(delivery_writer, "_send_all", a_batch_commits_during_the_send)
    layer, group = get_channel_layer(), broadcast.tenant_group(trigger.tenant_id)

    async def shown() -> set[str]:
        channel = await layer.new_channel()
        await layer.group_add(group, channel)
        try:
            writer._writing += 1
            await writer._after_commit([(first, None, False, False)], {})
            seen: set[str] = set()
            while {str(first.pk), str(second.pk)} - seen:
                message = await asyncio.wait_for(layer.receive(channel), 5)
                seen |= {payload["id"] for event, payload in message["events"] if event == "delivery"}
            return seen
        finally:
            await layer.group_discard(group, channel)

    assert async_to_sync(shown)() == {str(first.pk), str(second.pk)}
    assert len(sends) == 2 and writer._live == []
