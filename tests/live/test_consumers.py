"""Websockets over the real Redis channel layer: who may connect, snapshot, deltas, tenant isolation."""

import asyncio

import pytest
from asgiref.sync import sync_to_async
from channels.testing import WebsocketCommunicator
from django.contrib.auth import SESSION_KEY
from django.contrib.sessions.backends.db import SessionStore

from relayweb.asgi import application
from triggers.live import broadcast
from triggers.models import Trigger

pytestmark = pytest.mark.django_db(transaction=True)
ORIGIN = (b"origin", b"http://localhost")


def session_cookie(user) -> tuple[bytes, bytes]:
    session = SessionStore()
    session[SESSION_KEY] = str(user.pk)
    session["_auth_user_backend"] = "django.contrib.auth.backends.ModelBackend"
    session["_auth_user_hash"] = user.get_session_auth_hash()
    session.save()
    return b"cookie", f"sessionid={session.session_key}".encode()


async def connect(path, user=None, origin=ORIGIN):
    headers = [origin, (b"host", b"localhost")]
    if user is not None:
        headers.append(await sync_to_async(session_cookie)(user))
    communicator = WebsocketCommunicator(application, path, headers=headers)
    connected, _ = await communicator.connect(timeout=5)
    return communicator, connected


async def test_anonymous_non_member_and_foreign_origin_are_refused(alice, charlie, tenant_a, tenant_b):
    for user, origin in [(None, ORIGIN), (charlie, ORIGIN), (alice, (b"origin", b"https://evil.example"))]:
        communicator, connected = await connect("/ws/tenants/acme/", user, origin)
        assert connected is False, (user, origin)
        await communicator.disconnect()
    communicator, connected = await connect("/ws/ops/", alice)
    assert connected is False


async def test_member_gets_a_snapshot_then_deltas_and_other_tenants_nothing(alice, bob, charlie, tenant_a, tenant_b):
    trigger = await sync_to_async(Trigger.objects.create)(tenant=tenant_a, name="hello", image="kubesim/echo")
    viewer, connected = await connect("/ws/tenants/acme/", bob)
    assert connected
    snapshot = await viewer.receive_json_from(timeout=5)
    assert snapshot["type"] == "snapshot"
    assert [t["name"] for t in snapshot["payload"]["triggers"]] == ["hello"]
    assert snapshot["payload"]["triggers"][0]["badge_text"] == "Not deployed"
    other, connected = await connect("/ws/tenants/globex/", charlie)
    assert connected
    assert (await other.receive_json_from(timeout=5))["payload"]["triggers"] == []

    trigger.ready_pods = 2
    await sync_to_async(broadcast.trigger_pods)(trigger)
    await sync_to_async(broadcast.diag)(tenant_a.pk, {"routes": [{"host": "hello.relay-acme.svc.cluster.local"}]})
    delta = await viewer.receive_json_from(timeout=2)
    assert delta == {"type": "trigger.pods", "payload": {"id": trigger.pk, "name": "hello", "ready_pods": 2,
                                                           "pods": []}}
    assert (await viewer.receive_json_from(timeout=2))["type"] == "diag"
    assert await other.receive_nothing(timeout=0.5)
    for communicator in (viewer, other):
        await communicator.disconnect()


async def test_operators_socket_is_for_staff(staff):
    communicator, connected = await connect("/ws/ops/", staff)
    assert connected
    assert (await communicator.receive_json_from(timeout=5))["type"] == "snapshot"
    await communicator.disconnect()


async def test_events_are_sent_only_after_commit(alice, tenant_a):
    from django.db import transaction

    viewer, _ = await connect("/ws/tenants/acme/", alice)
    await viewer.receive_json_from(timeout=5)
    trigger = await sync_to_async(Trigger.objects.create)(tenant=tenant_a, name="late", image="kubesim/echo")

    def rolled_back():
        with transaction.atomic():
            broadcast.trigger_status(trigger)
            transaction.set_rollback(True)

    await sync_to_async(rolled_back)()
    assert await viewer.receive_nothing(timeout=0.5)
    await sync_to_async(broadcast.trigger_status)(trigger)
    assert (await viewer.receive_json_from(timeout=2))["type"] == "trigger.status"
    await viewer.disconnect()
    await asyncio.sleep(0)


async def test_operators_get_every_tenants_status_and_one_deliveries_event_per_batch(staff, alice, tenant_a, tenant_b):
    """The all-tenants overview (issue 14 item 3) follows trigger.status, trigger.pods and deployments of every
    tenant, and learns which triggers had deliveries from one coalesced event, not one per webhook."""
    from triggers.models import Delivery

    hello = await sync_to_async(Trigger.objects.create)(tenant=tenant_a, name="hello", image="kubesim/echo")
    other = await sync_to_async(Trigger.objects.create)(tenant=tenant_b, name="other", image="kubesim/echo")
    ops, connected = await connect("/ws/ops/", staff)
    assert connected
    await ops.receive_json_from(timeout=5)  # snapshot
    member, _ = await connect("/ws/tenants/acme/", alice)
    await member.receive_json_from(timeout=5)

    await sync_to_async(broadcast.trigger_status)(other)
    event = await ops.receive_json_from(timeout=2)
    assert (event["type"], event["payload"]["name"]) == ("trigger.status", "other")
    assert await member.receive_nothing(timeout=0.3)  # globex's trigger is not acme's business

    deliveries = [Delivery(trigger=t, method="POST", path="/") for t in (hello, hello, other)]
    for d in deliveries:
        d.tenant_id = d.trigger.tenant_id  # as the ingress's writer rows carry it
    for group, message in broadcast.delivery_messages(deliveries):  # what the ingress's writer sends per batch
        await _layer().group_send(group, message)
    assert await ops.receive_json_from(timeout=2) == {
        "type": "deliveries", "payload": {"trigger_ids": sorted([hello.pk, other.pk])}}
    assert await ops.receive_nothing(timeout=0.3)  # one event for the batch of three
    assert [(await member.receive_json_from(timeout=2))["type"] for _ in range(2)] == ["delivery", "delivery"]
    for communicator in (ops, member):
        await communicator.disconnect()


def _layer():
    from channels.layers import get_channel_layer

    return get_channel_layer()


async def test_the_retry_workers_deliveries_reach_operators_coalesced(staff, tenant_a):
    from triggers.models import Delivery

    hello = await sync_to_async(Trigger.objects.create)(tenant=tenant_a, name="hello", image="kubesim/echo")
    ops, _ = await connect("/ws/ops/", staff)
    await ops.receive_json_from(timeout=5)
    for _ in range(5):  # what delivery_deliver does after each attempt
        await sync_to_async(broadcast.delivery)(Delivery(trigger=hello, method="POST", path="/"), tenant_a.pk)
    assert await ops.receive_json_from(timeout=3) == {"type": "deliveries", "payload": {"trigger_ids": [hello.pk]}}
    assert await ops.receive_nothing(timeout=broadcast.OPERATORS_DELIVERY_INTERVAL + 0.3)
    await ops.disconnect()


async def test_a_log_panel_follows_its_own_tenants_trigger_only(alice, charlie, tenant_a, tenant_b):
    """Issue 15 item 4: a socket joins a trigger's log lines on request (logs.follow), only for a trigger of its
    own tenant, at most MAX_LOG_FOLLOWS at once; logs.unfollow (Pause) stops them; junk is ignored."""
    from datetime import UTC, datetime

    from triggers.live.consumers import TenantConsumer
    from triggers.models import LogLine

    mine = await sync_to_async(Trigger.objects.create)(tenant=tenant_a, name="hello", image="kubesim/echo")
    theirs = await sync_to_async(Trigger.objects.create)(tenant=tenant_b, name="other", image="kubesim/echo")
    viewer, _ = await connect("/ws/tenants/acme/", alice)
    await viewer.receive_json_from(timeout=5)
    line = LogLine(pk=7, trigger=mine, time=datetime(2026, 12, 7, tzinfo=UTC), pod="p", text="hello")

    for junk in ("not json", '{"type": "logs.follow", "trigger": "1"}', "[1, 2]", "x" * 5000,
                 f'{{"type": "logs.follow", "trigger": {theirs.pk}}}'):
        await viewer.send_to(text_data=junk)
    await sync_to_async(broadcast.log_lines)(theirs.pk, [line])
    assert await viewer.receive_nothing(timeout=0.3)  # another tenant's trigger cannot be followed

    await viewer.send_json_to({"type": "logs.follow", "trigger": mine.pk})
    assert await viewer.receive_json_from(timeout=2) == {"type": "logs.following", "payload": {"trigger_id": mine.pk}}
    await sync_to_async(broadcast.log_lines)(mine.pk, [line], dropped=3)
    event = await viewer.receive_json_from(timeout=2)
    assert event["type"] == "logs" and event["payload"]["dropped"] == 3
    assert event["payload"]["lines"] == [{"id": 7, "time": "2026-12-07T00:00:00+00:00", "pod": "p", "revision": "",
                                          "stream": "", "text": "hello", "cut": 0}]

    await viewer.send_json_to({"type": "logs.unfollow", "trigger": mine.pk})
    await asyncio.sleep(0.2)
    await sync_to_async(broadcast.log_lines)(mine.pk, [line])
    assert await viewer.receive_nothing(timeout=0.3)

    more = [await sync_to_async(Trigger.objects.create)(tenant=tenant_a, name=f"t{i}", image="kubesim/echo")
            for i in range(TenantConsumer.MAX_LOG_FOLLOWS + 1)]
    for trigger in more:
        await viewer.send_json_to({"type": "logs.follow", "trigger": trigger.pk})
    confirmed = [(await viewer.receive_json_from(timeout=2))["payload"]["trigger_id"]
                 for _ in range(TenantConsumer.MAX_LOG_FOLLOWS)]
    assert confirmed == [t.pk for t in more[:TenantConsumer.MAX_LOG_FOLLOWS]]
    assert await viewer.receive_nothing(timeout=0.3)  # the fifth is refused
    await viewer.disconnect()


async def test_the_collectors_sender_delivers_a_batch_without_waiting_and_drops_beyond_its_bound(alice, tenant_a):
    """The log collector sends each batch's messages from one long-lived loop (broadcast.BackgroundSender): the
    caller never waits, the messages arrive, and batches beyond the bound are dropped and counted."""
    from datetime import UTC, datetime

    from triggers.models import LogLine

    mine = await sync_to_async(Trigger.objects.create)(tenant=tenant_a, name="hello", image="kubesim/echo")
    viewer, _ = await connect("/ws/tenants/acme/", alice)
    await viewer.receive_json_from(timeout=5)
    await viewer.send_json_to({"type": "logs.follow", "trigger": mine.pk})
    await viewer.receive_json_from(timeout=2)  # logs.following
    sender = broadcast.BackgroundSender(max_pending=1)
    try:
        line = LogLine(pk=1, trigger=mine, time=datetime(2026, 12, 7, tzinfo=UTC), pod="p", text="one")
        assert sender.submit([broadcast.log_lines_message(mine.pk, [line])])
        event = await viewer.receive_json_from(timeout=3)
        assert event["payload"]["lines"][0]["text"] == "one"
        for _ in range(300):  # the sender's own loop counts it once its sends returned
            if not sender.pending:
                break
            await asyncio.sleep(0.01)
        sender.pending = sender.max_pending  # as if a batch were still on its way
        assert sender.submit([broadcast.log_lines_message(mine.pk, [line])]) is False
        assert (sender.sent, sender.dropped) == (1, 1)
        assert await viewer.receive_nothing(timeout=0.3)
        sender.pending = 0
    finally:
        await sync_to_async(sender.stop)()
    await viewer.disconnect()


async def test_more_messages_than_the_layer_has_connections_are_all_sent(alice, tenant_a):
    """channels_redis holds 100 connections per event loop: 200 group_sends at once failed half
    (MaxConnectionsError, found by the log benchmark); send_many keeps at most SEND_CONCURRENCY in flight."""
    viewer, _ = await connect("/ws/tenants/acme/", alice)
    await viewer.receive_json_from(timeout=5)
    messages = [(f"logs-{i}", {"type": "relay.event", "event": "logs", "payload": {}}) for i in range(250)]
    messages.append((broadcast.tenant_group(tenant_a.pk), {"type": "relay.event", "event": "delivery",
                                                           "payload": {"n": 1}}))
    assert await broadcast.send_many(messages) == 0
    assert (await viewer.receive_json_from(timeout=2)) == {"type": "delivery", "payload": {"n": 1}}
    await viewer.disconnect()


async def test_pushed_events_skip_the_connection_check_and_other_messages_keep_it(alice, tenant_a, monkeypatch):
    """relay.event / relay.events go straight to the socket (no hop to the sync thread per message); connect,
    receive and access checks still run channels' usual dispatch, which closes stale database connections."""
    from channels import consumer as channels_consumer

    checks = []

    async def counted():
        checks.append(1)

    monkeypatch.setattr(channels_consumer, "aclose_old_connections", counted)
    viewer, _ = await connect("/ws/tenants/acme/", alice)
    await viewer.receive_json_from(timeout=5)
    before = len(checks)
    assert before >= 1  # websocket.connect went through channels' dispatch
    for n in range(3):
        await _layer().group_send(broadcast.tenant_group(tenant_a.pk),
                                  {"type": "relay.event", "event": "delivery", "payload": {"n": n}})
    assert [(await viewer.receive_json_from(timeout=2))["payload"]["n"] for _ in range(3)] == [0, 1, 2]
    assert len(checks) == before
    await viewer.disconnect()
