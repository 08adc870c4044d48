"""Delivery and scale statistics over a window (1h, 24h, 7d): what the API's stats endpoints and the overview
pages show. A fixed number of queries for any number of triggers and deliveries.

- deliveries, failed (failed or dead), last delivery: one grouped aggregate.
- latency p50/p95: PostgreSQL computes percentile_cont in that same aggregate; elsewhere (SQLite) one more
  query reads at most SAMPLE latencies per trigger (the newest, ROW_NUMBER over the trigger's rows) and
  interpolates them the way percentile_cont does, so both give the same numbers below SAMPLE rows.
- cold starts: the watcher's activation scale events (each carries its cold-start time); their median.
- pod seconds: the ready-pod count is a step function changed by the stored scale events. It starts at the
  last event before the window (or the first event's `from`, or the pods observed now when there is none)
  and is integrated up to now. Always-on: the same span × max(1, min_scale) pods. The span starts at the
  window's start or at the trigger's creation, whichever is later.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.db import connection
from django.db.models import Aggregate, Count, F, FloatField, OuterRef, Q, Subquery, Window
from django.db.models.functions import RowNumber, TruncMinute
from django.utils import timezone

from triggers.models import Delivery, ScaleEvent, Trigger

WINDOWS = {"1h": timedelta(hours=1), "24h": timedelta(hours=24), "7d": timedelta(days=7)}
DEFAULT_WINDOW = "24h"
SAMPLE = 5000  # latencies read per trigger when the database has no percentile_cont
MAX_EVENTS = 50000  # scale events read per call (the watcher writes one per change of ready pods)
FAILED = (Delivery.State.FAILED, Delivery.State.DEAD)
SPARK_BUCKETS, SPARK_MINUTES = 12, 5  # the overview's sparkline: 12 bars of 5 minutes (the last hour)


class PercentileCont(Aggregate):
    """PostgreSQL's percentile_cont(fraction) WITHIN GROUP (ORDER BY expression)."""

    function = "percentile_cont"
    template = "%(function)s(%(fraction)s) WITHIN GROUP (ORDER BY %(expressions)s)"
    output_field = FloatField()

    def __init__(self, expression, fraction: float, **extra):
        super().__init__(expression, fraction=float(fraction), **extra)


def percentile(values: list[float], fraction: float) -> float | None:
    """Linear interpolation between the closest ranks (what percentile_cont computes); None when empty."""
    if not values:
        return None
    ordered = sorted(values)
    position = fraction * (len(ordered) - 1)
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def _ms(value: float | None) -> float | None:
    return None if value is None else round(value, 1)


@dataclass
class Stats:
    deliveries: int = 0
    failed: int = 0
    latency_p50_ms: float | None = None
    latency_p95_ms: float | None = None
    cold_starts: int = 0
    cold_start_p50_ms: float | None = None
    pod_seconds: float = 0.0
    always_on_pod_seconds: float = 0.0
    last_delivery_at: datetime | None = None
    latencies: list[float] = field(default_factory=list, repr=False)
    cold_start_times: list[float] = field(default_factory=list, repr=False)

    @property
    def error_rate(self) -> float | None:
        """Failed deliveries in percent, None without deliveries."""
        return round(100 * self.failed / self.deliveries, 1) if self.deliveries else None

    @property
    def saved_percent(self) -> int | None:
        """How much of the always-on pod time scale-to-zero saved, in whole percent (None: no span yet)."""
        if not self.always_on_pod_seconds:
            return None
        return max(0, round(100 * (1 - self.pod_seconds / self.always_on_pod_seconds)))

    def as_dict(self) -> dict:
        return {
            "deliveries": self.deliveries, "failed": self.failed,
            "latency_p50_ms": _ms(self.latency_p50_ms), "latency_p95_ms": _ms(self.latency_p95_ms),
            "cold_starts": self.cold_starts, "cold_start_p50_ms": _ms(self.cold_start_p50_ms),
            "pod_seconds": round(self.pod_seconds, 1), "always_on_pod_seconds": round(self.always_on_pod_seconds, 1),
        }


def window_bounds(window: str, now: datetime | None = None) -> tuple[datetime, datetime]:
    now = now or timezone.now()
    return now - WINDOWS[window], now


def _has_percentile_cont() -> bool:
    return connection.vendor == "postgresql"


def _delivery_stats(ids: list[int], start: datetime, now: datetime, out: dict[int, Stats]) -> None:
    rows = Delivery.objects.filter(trigger_id__in=ids, received_at__gte=start, received_at__lte=now)
    aggregates = {"n": Count("pk"), "failed": Count("pk", filter=Q(state__in=FAILED))}
    if _has_percentile_cont():
        aggregates |= {"p50": PercentileCont("latency_ms", 0.5), "p95": PercentileCont("latency_ms", 0.95)}
    for row in rows.values("trigger_id").annotate(**aggregates).order_by():
        stats = out[row["trigger_id"]]
        stats.deliveries, stats.failed = row["n"], row["failed"]
        stats.latency_p50_ms, stats.latency_p95_ms = row.get("p50"), row.get("p95")
    if _has_percentile_cont():
        return
    newest = Window(RowNumber(), partition_by=[F("trigger_id")], order_by=F("received_at").desc())
    sample = (rows.filter(latency_ms__isnull=False).annotate(rank=newest).filter(rank__lte=SAMPLE)
              .values_list("trigger_id", "latency_ms"))
    for trigger_id, ms in sample:
        out[trigger_id].latencies.append(ms)
    for stats in out.values():
        stats.latency_p50_ms = percentile(stats.latencies, 0.5)
        stats.latency_p95_ms = percentile(stats.latencies, 0.95)


def _pod_stats(triggers: list[Trigger], start: datetime, now: datetime, out: dict[int, Stats]) -> None:
    ids = [t.pk for t in triggers]
    before = ScaleEvent.objects.filter(trigger=OuterRef("pk"), at__lt=start).order_by("-at", "-pk")
    pods_before = dict(Trigger.objects.filter(pk__in=ids).order_by()
                       .annotate(before=Subquery(before.values("to_pods")[:1])).values_list("pk", "before"))
    events = defaultdict(list)
    rows = (ScaleEvent.objects.filter(trigger_id__in=ids, at__gte=start, at__lte=now).order_by("at", "pk")
            .values_list("trigger_id", "at", "from_pods", "to_pods", "cold_start_ms")[:MAX_EVENTS])
    for trigger_id, at, from_pods, to_pods, cold_ms in rows:
        events[trigger_id].append((at, from_pods, to_pods))
        if cold_ms is not None:
            out[trigger_id].cold_start_times.append(cold_ms)
    for trigger in triggers:
        stats = out[trigger.pk]
        stats.cold_starts = len(stats.cold_start_times)
        stats.cold_start_p50_ms = percentile(stats.cold_start_times, 0.5)
        begin = max(start, trigger.created_at)
        if begin >= now:
            continue
        changes = events.get(trigger.pk, [])
        pods = pods_before.get(trigger.pk)
        if pods is None:
            pods = changes[0][1] if changes else (trigger.ready_pods or 0)
        seconds, at = 0.0, begin
        for when, _, to_pods in changes:
            when = max(when, begin)
            seconds += pods * (when - at).total_seconds()
            pods, at = to_pods, when
        seconds += pods * (now - at).total_seconds()
        stats.pod_seconds = seconds
        stats.always_on_pod_seconds = (now - begin).total_seconds() * max(1, trigger.min_scale)


def triggers_stats(triggers: Iterable[Trigger], window: str = DEFAULT_WINDOW,
                   now: datetime | None = None) -> dict[int, Stats]:
    """{trigger pk: Stats} over the window ending now, in at most four queries."""
    triggers = list(triggers)
    start, now = window_bounds(window, now)
    out = {t.pk: Stats() for t in triggers}
    if triggers:
        _delivery_stats(list(out), start, now, out)
        _pod_stats(triggers, start, now, out)
    return out


def totals(stats: Iterable[Stats], triggers_ids: list[int], window: str = DEFAULT_WINDOW,
           now: datetime | None = None) -> Stats:
    """The sum over triggers; the latency percentiles over all their deliveries (one query on PostgreSQL,
    the per-trigger samples elsewhere)."""
    stats = list(stats)
    total = Stats()
    for s in stats:
        total.deliveries += s.deliveries
        total.failed += s.failed
        total.pod_seconds += s.pod_seconds
        total.always_on_pod_seconds += s.always_on_pod_seconds
        total.latencies += s.latencies
        total.cold_start_times += s.cold_start_times
    total.cold_starts = len(total.cold_start_times)
    total.cold_start_p50_ms = percentile(total.cold_start_times, 0.5)
    if _has_percentile_cont() and triggers_ids:
        start, now = window_bounds(window, now)
        row = Delivery.objects.filter(trigger_id__in=triggers_ids, received_at__gte=start, received_at__lte=now) \
            .aggregate(p50=PercentileCont("latency_ms", 0.5), p95=PercentileCont("latency_ms", 0.95))
        total.latency_p50_ms, total.latency_p95_ms = row["p50"], row["p95"]
    else:
        total.latency_p50_ms = percentile(total.latencies, 0.5)
        total.latency_p95_ms = percentile(total.latencies, 0.95)
    return total


def last_deliveries(ids: list[int]) -> dict[int, datetime]:
    """Each trigger's newest delivery time (any age), one query."""
    newest = Delivery.objects.filter(trigger=OuterRef("pk")).order_by("-received_at").values("received_at")[:1]
    return {pk: at for pk, at in Trigger.objects.filter(pk__in=ids).order_by().annotate(last=Subquery(newest))
            .values_list("pk", "last") if at}


def sparklines(ids: list[int], now: datetime | None = None) -> dict[int, list[int]]:
    """Deliveries per 5 minutes over the last hour, oldest first, per trigger; one query (grouped by minute)."""
    now = now or timezone.now()
    end = now.replace(second=0, microsecond=0) + timedelta(minutes=1)
    start = end - timedelta(minutes=SPARK_BUCKETS * SPARK_MINUTES)
    out = {pk: [0] * SPARK_BUCKETS for pk in ids}
    rows = (Delivery.objects.filter(trigger_id__in=ids, received_at__gte=start, received_at__lt=end)
            .annotate(minute=TruncMinute("received_at")).values("trigger_id", "minute").annotate(n=Count("pk"))
            .order_by())
    for row in rows:
        index = int((row["minute"] - start).total_seconds() // (60 * SPARK_MINUTES))
        if 0 <= index < SPARK_BUCKETS:
            out[row["trigger_id"]][index] += row["n"]
    return out


def sparkline_svg_points(counts: list[int], width: int = 120, height: int = 24) -> str:
    """The `points` of an SVG polyline for these counts (a flat line at the bottom when all are zero)."""
    top = max(counts, default=0) or 1
    step = width / max(len(counts) - 1, 1)
    return " ".join(f"{round(i * step, 1)},{round(height - 1 - c / top * (height - 2), 1)}"
                    for i, c in enumerate(counts))
