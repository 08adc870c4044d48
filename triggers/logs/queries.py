"""Reading a trigger's handler logs: one FilterSet for the API (api/logs.py) and the UI, a delivery's lines,
the lines before a crash, and pages of lines by cursor.

Every read goes through the (trigger, time, id) index. Text search (`q`, case-insensitive) covers at most
SEARCH_SPAN, as for deliveries (triggers/deliveries/filters.py): `since` defaults to SEARCH_SPAN before `until`
(or now) and a longer range is refused, so a search scans one trigger's lines of a few days at most.

Pages hold the lines oldest first; the default page is the newest one. A cursor is a line's id, standing for its
(time, id) position: `before=<id>` gives the lines older than that line, `after=<id>` the newer ones, so inserts
(the collector writes lines late and out of order across pods) never shift a page. Nothing is counted."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

import django_filters
from django import forms
from django.db.models import Q, QuerySet
from django.utils import timezone

from triggers.models import Delivery, LogLine, Trigger

SEARCH_SPAN = timedelta(days=7)
SEARCH_MAX_LENGTH = 200
SLACK = timedelta(seconds=1)  # kubelet clocks vs ours, around a delivery's forward window
UNKNOWN_LATENCY = timedelta(seconds=30)  # an attempt without a latency: at most this (or the trigger's timeout)
PAGE_SIZE = 100
MAX_PAGE_SIZE = 200

NAMED = "named"  # the lines that name the delivery (handlers log X-Relay-Delivery-Id)
WINDOW = "window"  # none do: the lines printed while it was forwarded

Position = tuple[datetime, int]  # a line's (time, id): where a cursor points


def _minus(moment: datetime, span: timedelta) -> datetime:
    try:
        return moment - span
    except OverflowError:  # an `until` in year 1
        return datetime.min.replace(tzinfo=moment.tzinfo)


def forward_windows(delivery: Delivery) -> list[tuple[datetime, datetime]]:
    """When the delivery was being forwarded to the handler, one span per attempt, widened by SLACK.

    A sync delivery's one attempt starts at received_at. A stored attempt's started_at is written when its
    row is, after the forward (triggers/deliveries/retries.py), so its span reaches its latency both ways."""
    unknown = min(UNKNOWN_LATENCY, timedelta(seconds=delivery.trigger.timeout_seconds))
    windows = []
    for attempt in delivery.attempt_history():
        took = unknown if attempt.latency_ms is None else timedelta(milliseconds=attempt.latency_ms)
        before = took if attempt.pk is not None else timedelta(0)
        windows.append((attempt.started_at - before - SLACK, attempt.started_at + took + SLACK))
    return windows


def delivery_condition(delivery: Delivery) -> tuple[Q, str]:
    """The condition on a trigger's lines that selects the delivery's, and how they match (NAMED or WINDOW)."""
    if LogLine.objects.filter(trigger_id=delivery.trigger_id, delivery_id=delivery.pk).exists():
        return Q(delivery_id=delivery.pk), NAMED
    during = Q(pk__in=[])  # never forwarded (rejected, or not attempted yet): no line
    for start, end in forward_windows(delivery):
        during |= Q(time__gte=start, time__lte=end)
    return during & Q(delivery_id__isnull=True), WINDOW  # a line naming another delivery is that one's


def for_delivery(delivery: Delivery) -> tuple[QuerySet[LogLine], str]:
    """The delivery's lines and how they match: NAMED, the trigger's lines whose delivery_id is the delivery's;
    else WINDOW, the trigger's lines (naming no delivery) printed during its forward windows."""
    condition, match = delivery_condition(delivery)
    return LogLine.objects.filter(trigger_id=delivery.trigger_id).filter(condition).order_by("time", "id"), match


def last_lines_before(trigger: Trigger, when: datetime, pod: str | None = None, n: int = 20) -> list[LogLine]:
    """The last n lines of the trigger (of one pod, when given) printed at or before `when`, oldest first:
    what a pod said before it crashed."""
    lines = trigger.log_lines.filter(time__lte=when)
    if pod is not None:
        lines = lines.filter(pod=pod)
    return list(reversed(lines.order_by("-time", "-id")[:n]))


def line_position(trigger: Trigger, line_id: int) -> Position | None:
    """Where the trigger's line `line_id` is, for a cursor; None when it has no such line (or it was pruned)."""
    return trigger.log_lines.filter(pk=line_id).values_list("time", "id").first()


def _older_than(position: Position) -> Q:
    time, pk = position
    return Q(time__lte=time) & (Q(time__lt=time) | Q(id__lt=pk))  # the first term bounds the index range


def _newer_than(position: Position) -> Q:
    time, pk = position
    return Q(time__gte=time) & (Q(time__gt=time) | Q(id__gt=pk))


@dataclass(frozen=True)
class Page:
    lines: list[LogLine]  # oldest first
    older: int | None  # the cursor (a line id) for `before=`: older lines exist; None when none do
    newer: int | None  # the cursor for `after=`; None when no newer line existed at the time of the read


def page_of_lines(lines: QuerySet[LogLine], *, before: Position | None = None, after: Position | None = None,
                  size: int = PAGE_SIZE) -> Page:
    """One page of `lines` (already filtered), oldest first: the newest `size` lines by default, else the
    `size` lines just older than `before` or just newer than `after` (one of them). One query."""
    if before is not None and after is not None:
        raise ValueError("before or after, not both")
    if after is not None:
        rows = list(lines.filter(_newer_than(after)).order_by("time", "id")[:size + 1])
        shown = rows[:size]
        return Page(shown, older=shown[0].pk if shown else None, newer=shown[-1].pk if len(rows) > size else None)
    if before is not None:
        lines = lines.filter(_older_than(before))
    rows = list(lines.order_by("-time", "-id")[:size + 1])
    shown = rows[:size][::-1]
    older = shown[0].pk if len(rows) > size else None
    newer = shown[-1].pk if before is not None and shown else None
    return Page(shown, older=older, newer=newer)


class LogFilterForm(forms.Form):
    def clean(self):
        data = super().clean()
        since, until = data.get("since"), data.get("until")
        if since and until and since > until:
            self.add_error("until", "Must be after since.")
        elif data.get("q") and since and (until or timezone.now()) - since > SEARCH_SPAN:
            self.add_error("q", f"Text search covers at most {SEARCH_SPAN.days} days: narrow since and until.")
        return data


class DeliveryChoiceFilter(django_filters.ModelChoiceFilter):
    """A delivery of the filter's trigger, by id; its lines are for_delivery's."""

    def filter(self, queryset, value):
        if value is None:
            return queryset
        condition, self.parent.delivery_match = delivery_condition(value)
        return queryset.filter(condition)


class LogFilter(django_filters.FilterSet):
    """One trigger's lines: LogFilter(params, trigger=trigger) (queryset: the trigger's lines by default).

    After `.qs`, `delivery_match` says how a `delivery` matched (NAMED or WINDOW; None without one). A delivery
    id that is not one of this trigger's deliveries is invalid (an error naming `delivery`)."""

    since = django_filters.IsoDateTimeFilter(field_name="time", lookup_expr="gte", label="Printed at or after "
                                             "(ISO 8601)")
    until = django_filters.IsoDateTimeFilter(field_name="time", lookup_expr="lte", label="Printed at or before "
                                             "(ISO 8601)")
    q = django_filters.CharFilter(
        method="search", max_length=SEARCH_MAX_LENGTH,
        label=f"Text in the line, any case (within {SEARCH_SPAN.days} days; without since, the last "
              f"{SEARCH_SPAN.days} days before until or now)")
    pod = django_filters.CharFilter(max_length=253, label="Pod name")
    revision = django_filters.CharFilter(max_length=253, label="Revision name")
    delivery = DeliveryChoiceFilter(
        queryset=Delivery.objects.none(), to_field_name="id", label="A delivery's lines: those that name its id "
        "or, when none does, those printed while it was forwarded",
        error_messages={"invalid_choice": "Not a delivery of this trigger."})

    class Meta:
        model = LogLine
        form = LogFilterForm
        fields = ["since", "until", "q", "pod", "revision", "delivery"]

    def __init__(self, data=None, queryset=None, *, trigger: Trigger, request=None, prefix=None):
        queryset = trigger.log_lines.all() if queryset is None else queryset
        super().__init__(data, queryset, request=request, prefix=prefix)
        self.trigger = trigger
        self.delivery_match: str | None = None
        # not the bodies: the delivery is only its forward window
        self.filters["delivery"].queryset = trigger.deliveries.defer(
            "body", "response_body", "headers", "response_headers", "sealed_headers")

    def search(self, queryset, name, value):
        if not value:
            return queryset
        if not self.form.cleaned_data.get("since"):
            end = self.form.cleaned_data.get("until") or timezone.now()
            queryset = queryset.filter(time__gte=_minus(end, SEARCH_SPAN))
        return queryset.filter(text__icontains=value)
