"""Template helpers for handler log lines (templates/triggers/_logs*.html): how a line's time and pod are shown
(static/js/logs.js draws live lines the same way), and a delivery's lines for the delivery page."""

from __future__ import annotations

from datetime import UTC, datetime

from django import template

from triggers.logs import queries
from triggers.models import Delivery

register = template.Library()

DELIVERY_LINES = 200  # the delivery page shows at most this many; the Logs panel has them all


@register.filter(name="log_clock")
def log_clock(moment: datetime) -> str:
    """"14:03:07.125": the line's kubelet time in UTC, to the millisecond."""
    moment = moment.astimezone(UTC)
    return f"{moment:%H:%M:%S}.{moment.microsecond // 1000:03d}"


@register.filter(name="log_iso")
def log_iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat()


@register.filter(name="short_pod")
def short_pod(pod: str) -> str:
    """A Knative pod's own part, "hello-00001-deployment-7c9f8d6b5-x2x9k" → "7c9f8d6b5-x2x9k" (the revision
    is shown beside it); any other name unchanged."""
    head, sep, tail = pod.rpartition("-deployment-")
    return tail if sep and head and tail else pod


@register.simple_tag
def delivery_logs(delivery: Delivery) -> dict:
    """`{% delivery_logs delivery as logs %}`: {lines (oldest first, at most DELIVERY_LINES), match (named or
    window), more (there are more lines)} for the delivery page's "Logs during this delivery"."""
    lines, match = queries.for_delivery(delivery)
    shown = list(lines[:DELIVERY_LINES + 1])
    return {"lines": shown[:DELIVERY_LINES], "match": match, "named": match == queries.NAMED,
            "more": len(shown) > DELIVERY_LINES, "limit": DELIVERY_LINES}
