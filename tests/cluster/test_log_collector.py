"""The log collector (issue 15 item 1) against kubesim over real HTTP with the official client: every pod's
lines are kept with their pod, revision and time, a delivery's line names it, nothing is lost when a pod goes
away (scale to zero, crash), a restarted collector repeats nothing, and memory stays bounded."""

from __future__ import annotations

import threading
import time
import uuid
from datetime import UTC, datetime

import pytest
import requests

from tests.cluster import wait_for
from triggers.cluster.logs import LogCollector, Mark, Pod, parse_time
from triggers.models import Delivery, LogLine

pytestmark = pytest.mark.django_db(transaction=True)


class Running:
    """A collector driven by a thread, as run() drives it in collect_logs."""

    def __init__(self, cluster, **kwargs):
        self.collector = LogCollector(cluster, **kwargs)
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._loop, daemon=True)
        self.failure: BaseException | None = None

    def _loop(self):
        from django.db import connection

        self.collector.start()
        try:
            while not self.stop.is_set():
                self.collector.step(timeout=0.1)
        except BaseException as e:  # noqa: BLE001 - re-raised by the test
            self.failure = e
        finally:
            self.collector.stop()
            connection.close()

    def __enter__(self):
        self.thread.start()
        return self.collector

    def __exit__(self, *exc):
        self.stop.set()
        self.thread.join(15)
        assert not self.thread.is_alive()
        if self.failure is not None:
            raise self.failure


def lines(trigger, **filters) -> list[LogLine]:
    return list(LogLine.objects.filter(trigger=trigger, **filters).order_by("time", "id"))


def send(relay, trigger, body=b"{}") -> Delivery:
    response = requests.post(f"{relay}/hooks/{trigger.token}", data=body, timeout=30,
                             headers={"Content-Type": "application/json"})
    assert response.status_code == 200, response.text
    return wait_for(lambda: Delivery.objects.filter(trigger=trigger).order_by("-received_at").first(),
                    message="delivery stored")


# ------------------------------------------------------------------ parsing and resuming (no cluster)


def test_the_kubelets_nanosecond_timestamps_are_read_to_the_microsecond():
    assert parse_time(b"2026-12-07T19:00:01.123456789Z") == datetime(2026, 12, 7, 19, 0, 1, 123456, tzinfo=UTC)
    assert parse_time(b"2026-12-07T19:00:01.5Z") == datetime(2026, 12, 7, 19, 0, 1, 500000, tzinfo=UTC)
    assert parse_time(b"2026-12-07T19:00:01Z") == datetime(2026, 12, 7, 19, 0, 1, tzinfo=UTC)
    assert parse_time(b"hello") is None
    assert parse_time(b"\xff\xfe") is None


def test_a_resumed_stream_skips_what_is_stored_even_at_the_same_instant():
    """sinceTime has whole seconds (facts §1.1): the second's earlier lines come again and are skipped, and of
    the lines stamped exactly like the last stored one, as many as are stored."""
    collector = LogCollector.__new__(LogCollector)
    collector.lines, collector.stopping = __import__("queue").Queue(), threading.Event()
    t = datetime(2026, 12, 7, 19, 0, 1, 500000, tzinfo=UTC)
    mark = Mark(t, 2)  # two lines stamped t are stored
    pod = Pod("ns", "p", 1, "rev")
    skip = mark.same
    replay = [(b"2026-12-07T19:00:01.100000000Z", b"older"), (b"2026-12-07T19:00:01.500000000Z", b"same 1"),
              (b"2026-12-07T19:00:01.500000000Z", b"same 2"), (b"2026-12-07T19:00:01.500000000Z", b"same 3"),
              (b"2026-12-07T19:00:02.000000000Z", b"newer")]
    for stamp, text in replay:
        skip = collector._line(pod, stamp + b" " + text, mark, skip, "", 0)
    kept = [collector.lines.get_nowait().text for _ in range(collector.lines.qsize())]
    assert kept == ["same 3", "newer"]
    assert (mark.time, mark.same) == (datetime(2026, 12, 7, 19, 0, 2, tzinfo=UTC), 1)


def test_a_line_names_the_delivery_its_text_carries_and_long_lines_are_cut_and_counted():
    collector = LogCollector.__new__(LogCollector)
    collector.lines, collector.stopping = __import__("queue").Queue(), threading.Event()
    delivery = uuid.uuid4()
    pod = Pod("ns", "p", 1, "rev")
    collector._line(pod, f"2026-12-07T19:00:01.000000001Z POST / 200 X-Relay-Delivery-Id={delivery}".encode(),
                    Mark(), 0, "", 0)
    collector._line(pod, b"2026-12-07T19:00:02.000000001Z " + b"x" * (LogLine.MAX_CHARS + 10), Mark(), 0, "", 5)
    named, long = collector.lines.get_nowait(), collector.lines.get_nowait()
    assert named.delivery_id == delivery and named.revision == "rev"
    assert len(long.text) == LogLine.MAX_CHARS and long.cut == 15 and long.delivery_id is None


# ------------------------------------------------------------------ against kubesim


def test_every_line_is_kept_with_its_pod_revision_and_delivery(cluster, live_trigger, relay):
    trigger = live_trigger()
    with Running(cluster) as collector:
        wait_for(lambda: lines(trigger), message="start-up line collected")
        first = lines(trigger)[0]
        assert first.text.startswith("kubesim handler echo started: image=kubesim/echo pod=")
        assert first.pod in first.text and first.revision.startswith("hello-")
        assert first.container == "user-container" and first.stream == ""
        assert abs((datetime.now(UTC) - first.time).total_seconds()) < 60

        delivery = send(relay, trigger)
        named = wait_for(lambda: lines(trigger, delivery_id=delivery.pk), message="the delivery's line")
        assert named[0].text == f"POST / 200 X-Relay-Delivery-Id={delivery.pk}"
        assert collector.stored == len(lines(trigger))


def test_a_pod_scaled_to_zero_keeps_its_lines(cluster, live_trigger, relay, k8s):
    trigger = live_trigger()
    with Running(cluster):
        delivery = send(relay, trigger)
        pod = wait_for(lambda: lines(trigger, delivery_id=delivery.pk), message="line collected")[0].pod
        wait_for(lambda: not k8s.core.list_namespaced_pod(trigger.namespace).items, timeout=30,
                 message="scaled to zero")
        texts = [line.text for line in lines(trigger, pod=pod)]
    assert texts[0].startswith("kubesim handler echo started") and texts[-1].endswith(str(delivery.pk))
    assert len(texts) == len(set(texts)) == 2


def test_a_crashing_container_leaves_its_last_words(cluster, live_trigger, tenant_a):
    from triggers.cluster import kube
    from triggers.models import Trigger

    cluster.apply_namespace(kube.render_namespace(tenant_a))
    trigger = Trigger.objects.create(tenant=tenant_a, name="crashy", image="kubesim/crash")
    cluster.apply_ksvc(kube.render_ksvc(trigger), exists=False)
    with Running(cluster):
        crashes = wait_for(lambda: lines(trigger, text="kubesim: simulated crash, exit status 1")[1:] or None,
                           timeout=30, message="two runs' last words")
    assert {line.pod for line in crashes} <= {line.pod for line in lines(trigger)}
    runs = lines(trigger, text__startswith="kubesim handler")
    assert len(runs) >= 2  # each run's start-up line: the restarted container was followed again


def test_a_restarted_collector_neither_loses_nor_repeats_a_line(cluster, live_trigger):
    trigger = live_trigger(image="kubesim/chatty:40", min_scale=1)
    with Running(cluster):
        wait_for(lambda: len(lines(trigger)) >= 20, message="first lines")
    stored = len(lines(trigger))
    time.sleep(0.5)  # the pod logs on while no collector runs
    with Running(cluster):
        wait_for(lambda: len(lines(trigger)) >= stored + 40, message="the gap and more")
    ticks = [int(line.text.split()[1]) for line in lines(trigger) if line.text.startswith("tick ")]
    assert ticks == list(range(1, len(ticks) + 1)), "a tick lost or repeated across the restart"


def test_a_small_queue_holds_the_streams_back_and_loses_nothing(cluster, live_trigger):
    trigger = live_trigger(image="kubesim/chatty:200", min_scale=1)
    with Running(cluster, queue_lines=5) as collector:
        wait_for(lambda: len(lines(trigger)) >= 300, timeout=30, message="lines through a queue of 5")
        assert collector.lines.maxsize == 5
    ticks = [int(line.text.split()[1]) for line in lines(trigger) if line.text.startswith("tick ")]
    assert ticks == list(range(1, len(ticks) + 1))


def test_a_quiet_stream_is_reopened_without_repeating(cluster, live_trigger, relay):
    trigger = live_trigger(min_scale=1)  # one pod throughout
    with Running(cluster, read_timeout=0.5) as collector:
        wait_for(lambda: lines(trigger), message="start-up line")
        time.sleep(1.5)  # the follow times out and re-opens, from before the start-up line, at least twice
        assert collector.opens >= 2  # each cycle: 0.5 s without a byte, 0.5 s pause
        delivery = send(relay, trigger)
        wait_for(lambda: lines(trigger, delivery_id=delivery.pk), message="line after re-opening")
    texts = [(line.pod, line.text) for line in lines(trigger)]
    assert len(texts) == len(set(texts)) == 2, texts


def test_lines_of_a_deleted_trigger_are_not_stored(cluster, live_trigger):
    trigger = live_trigger(image="kubesim/chatty:50", min_scale=1)  # its pod logs on after the trigger is gone
    with Running(cluster) as collector:
        wait_for(lambda: lines(trigger), message="lines")
        trigger_id = trigger.pk
        trigger.delete()
        time.sleep(0.5)  # a batch checked before the deletion may still land (an orphan, see LogLine.trigger)
        orphans = LogLine.objects.filter(trigger_id=trigger_id).count()
        before = collector.stored
        time.sleep(0.5)
        assert collector.stored == before  # 25 more lines were read and dropped
    assert LogLine.objects.filter(trigger_id=trigger_id).count() == orphans


def test_deleting_a_trigger_while_its_lines_are_inserted_succeeds(tenant_a):
    """The collector's insert and a trigger's deletion race: the deletion must never fail (no deferred foreign
    key); the line inserted in between is an orphan no trigger shows."""
    from django.db import connection, connections, transaction

    from triggers.models import Trigger

    if connection.vendor != "postgresql":
        pytest.skip("SQLite serialises writers: the insert cannot happen inside the deletion's transaction")
    gone = Trigger.objects.create(tenant=tenant_a, name="gone", image="kubesim/echo")
    LogLine.objects.create(trigger=gone, time=datetime.now(UTC), pod="p", text="before")
    inserted, gone_id = threading.Event(), gone.pk

    def insert_meanwhile():  # another connection, as the collector is
        LogLine.objects.create(trigger_id=gone_id, time=datetime.now(UTC), pod="p", text="during")
        inserted.set()
        connections.close_all()

    with transaction.atomic():
        gone.delete()  # its lines go; the trigger row is deleted; commit comes after the other insert
        thread = threading.Thread(target=insert_meanwhile)
        thread.start()
        thread.join(10)
    assert inserted.is_set()
    assert not Trigger.objects.filter(pk=gone_id).exists()
    assert list(LogLine.objects.values_list("text", flat=True)) == ["during"]
