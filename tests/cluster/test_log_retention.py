"""Handler-log retention (issue 15 item 2): by age (the hourly logs_prune task) and by count per trigger (the
collector, as it writes), in batches; what is kept stays whole."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from triggers import tasks
from triggers.cluster.logs import LogCollector
from triggers.models import LogLine, Trigger

pytestmark = pytest.mark.django_db


def add(trigger, count, start, step=timedelta(seconds=1), same_every=1):
    LogLine.objects.bulk_create(LogLine(trigger=trigger, time=start + step * (i // same_every), pod="p",
                                        text=f"line {i}") for i in range(count))


@pytest.fixture
def two(tenant_a):
    return (Trigger.objects.create(tenant=tenant_a, name="one", image="kubesim/echo"),
            Trigger.objects.create(tenant=tenant_a, name="two", image="kubesim/echo"))


def test_lines_past_the_retention_period_go_in_batches(two, settings):
    settings.RELAY_LOG_RETENTION_DAYS = 7
    one, other = two
    now = datetime.now(UTC)
    add(one, 25, now - timedelta(days=9))  # all older than 7 days
    add(other, 5, now - timedelta(days=7, minutes=10))  # older too
    add(other, 7, now - timedelta(days=6))  # kept
    assert LogLine.prune_older(now - timedelta(days=7), batch=4) == 30
    assert sorted(LogLine.objects.values_list("text", flat=True)) == sorted(f"line {i}" for i in range(7))
    assert tasks.logs_prune() == 0  # the task: the same cut-off, nothing left to delete


def test_a_trigger_keeps_its_newest_lines_even_with_equal_times(two):
    one, other = two
    add(one, 50, datetime(2026, 12, 7, tzinfo=UTC), same_every=3)  # runs of three lines at the same instant
    add(other, 10, datetime(2026, 12, 1, tzinfo=UTC))
    assert LogLine.trim(one.pk, 20, batch=7) == 30
    kept = list(LogLine.objects.filter(trigger=one).order_by("time", "id").values_list("text", flat=True))
    assert kept == [f"line {i}" for i in range(30, 50)]
    assert LogLine.objects.filter(trigger=other).count() == 10  # another trigger's lines are not touched
    assert LogLine.trim(one.pk, 20) == 0


def test_the_collector_trims_a_trigger_past_its_maximum_as_it_writes(two, settings):
    settings.RELAY_LOG_MAX_LINES_PER_TRIGGER = 100
    one, _ = two
    collector = LogCollector.__new__(LogCollector)
    collector.max_lines, collector.counts = 100, {}
    add(one, 105, datetime(2026, 12, 7, tzinfo=UTC))
    collector._keep_at_most(one.pk, 105)  # 105 ≤ 110: kept
    assert LogLine.objects.filter(trigger=one).count() == 105
    add(one, 6, datetime(2026, 12, 8, tzinfo=UTC))
    collector._keep_at_most(one.pk, 6)  # 111 > 110: back to the newest 100
    assert LogLine.objects.filter(trigger=one).count() == 100 and collector.counts[one.pk] == 100
    assert LogLine.objects.filter(trigger=one, time__gte=datetime(2026, 12, 8, tzinfo=UTC)).count() == 6
