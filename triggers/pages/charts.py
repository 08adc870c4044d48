"""A trigger's last hour as four charts people can read: deliveries per minute (stacked ok / failed), latency p50
and p95 per minute, cold starts per minute, and pods over time.

Hand-made SVG, no library and no CDN: these pure functions turn rows into coordinates in a fixed viewBox with
axes (round y ticks, a time label every 15 minutes), and `templates/triggers/_charts.html` draws them, with a
`<title>` per bar and point for the value on hover and a legend per chart. The page redraws them live by
re-reading that fragment (static/js/live.js) when a delivery or a pod count arrives, so there is one formula.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta

WIDTH, HEIGHT, MINUTES = 600, 150, 60
LEFT, RIGHT, TOP, BOTTOM = 40, 8, 8, 22  # room for the y labels, the x labels
PLOT_W, PLOT_H = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
BASE = TOP + PLOT_H  # y of the x axis
FAILED = frozenset({"failed", "dead", "rejected", "retrying"})  # a delivery that did not (yet) succeed


def window_start(now: datetime, minutes: int = MINUTES) -> datetime:
    """The first minute shown: the current minute is the last of `minutes` buckets."""
    return now.replace(second=0, microsecond=0) - timedelta(minutes=minutes - 1)


def per_minute(times: Iterable[datetime], now: datetime, minutes: int = MINUTES) -> list[int]:
    start = window_start(now, minutes)
    counts = [0] * minutes
    for at in times:
        index = int((at - start).total_seconds() // 60)
        if 0 <= index < minutes:
            counts[index] += 1
    return counts


def _top(value: float) -> float:
    """A round upper bound for an axis (1, 2, 5, 10, 20, 50…), at least 1."""
    step = 1.0
    while True:
        for m in (1, 2, 5):
            if value <= step * m:
                return step * m
        step *= 10


def _y(value: float, top: float) -> float:
    return round(BASE - min(value, top) / top * PLOT_H, 2)


def _x(seconds: float) -> float:
    """x of a moment `seconds` after the window's start."""
    return round(LEFT + seconds / (MINUTES * 60) * PLOT_W, 2)


def _axes(top: float, start: datetime, unit: str = "") -> dict:
    ticks = [0, top / 2, top] if top >= 2 else [0, top]
    fmt = (lambda v: f"{v:g}{unit}")  # noqa: E731
    return {
        "y": [{"y": _y(v, top), "label": fmt(v)} for v in ticks],
        "x": [{"x": _x(m * 60), "label": (start + timedelta(minutes=m)).strftime("%H:%M")}
              for m in (0, 15, 30, 45, 59)],
        "left": LEFT, "right": WIDTH - RIGHT, "base": BASE, "top": TOP,
    }


def _percentile(values: list[float], p: float) -> float:
    """Linear interpolation between closest ranks (as PostgreSQL's percentile_cont)."""
    values = sorted(values)
    rank = (len(values) - 1) * p
    low = int(rank)
    high = min(low + 1, len(values) - 1)
    return values[low] + (values[high] - values[low]) * (rank - low)


def _bar_x(minute: int) -> tuple[float, float]:
    width = PLOT_W / MINUTES
    return round(LEFT + minute * width + 0.5, 2), round(width - 1, 2)


def deliveries_chart(rows: list[tuple[datetime, float | None, bool, str]], start: datetime) -> dict:
    ok, failed = [0] * MINUTES, [0] * MINUTES
    for at, _, _, state in rows:
        minute = int((at - start).total_seconds() // 60)
        if 0 <= minute < MINUTES:
            (failed if state in FAILED else ok)[minute] += 1
    top = _top(max((a + b for a, b in zip(ok, failed, strict=True)), default=0))
    bars = []
    for minute, (n_ok, n_failed) in enumerate(zip(ok, failed, strict=True)):
        if not n_ok + n_failed:
            continue
        x, w = _bar_x(minute)
        y_ok, y_all = _y(n_ok, top), _y(n_ok + n_failed, top)
        bars.append({"x": x, "w": w, "minute": (start + timedelta(minutes=minute)).strftime("%H:%M"),
                     "ok": n_ok, "failed": n_failed, "ok_y": y_ok, "ok_h": round(BASE - y_ok, 2),
                     "failed_y": y_all, "failed_h": round(y_ok - y_all, 2)})
    return {"axes": _axes(top, start), "bars": bars, "total": sum(ok) + sum(failed), "failed": sum(failed)}


def latency_chart(rows: list[tuple[datetime, float | None, bool, str]], start: datetime) -> dict:
    by_minute: dict[int, list[float]] = {}
    for at, ms, _, _ in rows:
        minute = int((at - start).total_seconds() // 60)
        if ms is not None and 0 <= minute < MINUTES:
            by_minute.setdefault(minute, []).append(ms)
    stats = {m: (_percentile(v, 0.5), _percentile(v, 0.95)) for m, v in sorted(by_minute.items())}
    top = _top(max((p95 for _, p95 in stats.values()), default=0))
    series = {}
    for name, index in (("p50", 0), ("p95", 1)):
        points = [{"x": _x(m * 60 + 30), "y": _y(v[index], top), "ms": round(v[index]),
                   "minute": (start + timedelta(minutes=m)).strftime("%H:%M")} for m, v in stats.items()]
        series[name] = {"points": points, "line": " ".join(f"{p['x']},{p['y']}" for p in points)}
    return {"axes": _axes(top, start, " ms"), **series}


def cold_starts_chart(rows: list[tuple[datetime, float | None, bool, str]], start: datetime) -> dict:
    counts = per_minute((at for at, _, cold, _ in rows if cold), start + timedelta(minutes=MINUTES - 1))
    top = _top(max(counts, default=0))
    bars = []
    for minute, count in enumerate(counts):
        if count:
            x, w = _bar_x(minute)
            y = _y(count, top)
            bars.append({"x": x, "w": w, "y": y, "h": round(BASE - y, 2), "count": count,
                         "minute": (start + timedelta(minutes=minute)).strftime("%H:%M")})
    return {"axes": _axes(top, start), "bars": bars, "total": sum(counts)}


def pods_chart(changes: list[tuple[datetime, int, int, str]], now_pods: int | None, start: datetime,
               now: datetime) -> dict:
    """A step line of ready pods from scale events (at, from, to, cause), oldest first, in the window."""
    changes = [c for c in changes if start <= c[0] <= now]
    first = changes[0][1] if changes else (now_pods or 0)
    top = _top(max([first, now_pods or 0, *(c[2] for c in changes)]))
    elapsed = lambda at: (at - start).total_seconds()  # noqa: E731
    path, level = [f"{_x(0)},{_y(first, top)}"], first
    points = []
    for at, _, to, cause in changes:
        x = _x(elapsed(at))
        path += [f"{x},{_y(level, top)}", f"{x},{_y(to, top)}"]
        level = to
        points.append({"x": x, "y": _y(to, top), "pods": to, "cause": cause, "at": at.strftime("%H:%M:%S")})
    path.append(f"{_x(min(elapsed(now), MINUTES * 60))},{_y(level, top)}")
    return {"axes": _axes(top, start), "line": " ".join(path), "points": points, "now": level}


def last_hour(rows: list[tuple[datetime, float | None, bool, str]], changes: list[tuple[datetime, int, int, str]],
              now_pods: int | None, now: datetime) -> dict:
    """The four charts from delivery rows (received_at, latency_ms, cold_start, state) and scale events
    (at, from_pods, to_pods, cause) of the last hour, oldest first."""
    start = window_start(now)
    return {
        "width": WIDTH, "height": HEIGHT, "start": start.isoformat(),
        "deliveries": deliveries_chart(rows, start), "latency": latency_chart(rows, start),
        "cold_starts": cold_starts_chart(rows, start), "pods": pods_chart(changes, now_pods, start, now),
    }


def trigger_last_hour(trigger, now: datetime, limit: int = 5000) -> dict:
    """The charts of one trigger: two bounded queries (its deliveries of the hour, its scale events)."""
    start = window_start(now)
    rows = trigger.deliveries.filter(received_at__gte=start).order_by("-received_at")
    rows = list(rows.values_list("received_at", "latency_ms", "cold_start", "state")[:limit])[::-1]
    changes = trigger.scale_events.filter(at__gte=start).order_by("at", "pk")
    changes = list(changes.values_list("at", "from_pods", "to_pods", "cause")[:500])
    return last_hour(rows, changes, trigger.ready_pods, now)
