"""Chart data for a trigger's last hour: deliveries per minute and latency (cold vs warm).

Pure functions over (received_at, latency_ms, cold_start) rows; they return SVG-ready coordinates
in a fixed viewBox, so the template draws the initial chart and static/js/live.js redraws it with
the same formulas when live deliveries arrive.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta

WIDTH, HEIGHT, MINUTES = 600, 120, 60


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


def bars(counts: list[int]) -> dict:
    top = _top(max(counts, default=0))
    width = WIDTH / len(counts) if counts else WIDTH
    rects = [{"x": round(i * width, 2), "y": round(HEIGHT - c / top * HEIGHT, 2), "w": round(width - 1, 2),
              "h": round(c / top * HEIGHT, 2), "count": c} for i, c in enumerate(counts) if c]
    return {"top": int(top), "bars": rects, "total": sum(counts)}


def latency_points(rows: Iterable[tuple[datetime, float | None, bool]], now: datetime,
                   minutes: int = MINUTES) -> dict:
    """Scatter points (x by time, y by latency) split into cold and warm starts."""
    start = window_start(now, minutes)
    span = minutes * 60
    kept = [(at, ms, cold) for at, ms, cold in rows
            if ms is not None and 0 <= (at - start).total_seconds() < span]
    top = _top(max((ms for _, ms, _ in kept), default=0))
    out: dict = {"top": int(top) if top >= 1 else top, "cold": [], "warm": []}
    for at, ms, cold in sorted(kept):
        point = {"x": round((at - start).total_seconds() / span * WIDTH, 2),
                 "y": round(HEIGHT - min(ms, top) / top * HEIGHT, 2), "ms": round(ms, 1)}
        out["cold" if cold else "warm"].append(point)
    return out


def last_hour(rows: list[tuple[str, datetime, float | None, bool]], now: datetime) -> dict:
    """Both charts from (delivery id, received_at, latency_ms, cold_start) rows, plus what the browser
    needs to keep drawing them as deliveries arrive (the rows, keyed by id so an update replaces)."""
    points = [(at, ms, cold) for _, at, ms, cold in rows]
    return {
        "width": WIDTH, "height": HEIGHT, "minutes": MINUTES,
        "start": window_start(now).isoformat(),
        "deliveries": bars(per_minute((at for at, _, _ in points), now)),
        "latency": latency_points(points, now),
        "rows": [{"id": str(pk), "at": at.isoformat(), "ms": ms, "cold": cold} for pk, at, ms, cold in rows],
    }
