"""Filtering a trigger's deliveries: one FilterSet for the API (api/deliveries.py) and the UI list
(pages/deliveries.py).

Text search (`q`) looks for the text in the request's headers (case-insensitive) and body (the bytes as
UTF-8, case-sensitive) of the deliveries received within at most SEARCH_SPAN: received_after defaults to
SEARCH_SPAN before received_before (or now), and a longer range is refused. The scan is then one trigger's
rows of a few days, read through the (trigger, -received_at) index; a trigram index would not cover the
body (bytea) and would cost every insert on the webhook path, for a search people run rarely."""

from __future__ import annotations

from datetime import timedelta

import django_filters
from django import forms
from django.db.models import BinaryField, F, Func, IntegerField, Q, TextField, Value
from django.db.models.functions import Cast
from django.utils import timezone

from triggers.models import Delivery

SEARCH_SPAN = timedelta(days=7)
SEARCH_MAX_LENGTH = 200


class IntegerFilter(django_filters.NumberFilter):
    field_class = forms.IntegerField


class BytesPosition(Func):
    """Where the bytes `needle` first occur in `haystack`: 1-based, 0 when absent (INSTR / POSITION … IN …)."""

    function = "INSTR"
    output_field = IntegerField()

    def as_postgresql(self, compiler, connection, **extra):
        haystack, needle = self.get_source_expressions()
        clone = self.copy()
        clone.set_source_expressions([needle, haystack])
        return clone.as_sql(compiler, connection, function="POSITION", arg_joiner=" IN ", **extra)


class DeliveryFilterForm(forms.Form):
    def clean(self):
        data = super().clean()
        after, before = data.get("received_after"), data.get("received_before")
        if after and before and after > before:
            self.add_error("received_before", "Must be after received_after.")
        elif data.get("q") and after and (before or timezone.now()) - after > SEARCH_SPAN:
            self.add_error("q", f"Text search covers at most {SEARCH_SPAN.days} days: narrow received_after "
                                "and received_before.")
        return data


class DeliveryFilter(django_filters.FilterSet):
    """One filter set for the API and the UI list."""

    state = django_filters.ChoiceFilter(choices=Delivery.State.choices)
    response_status = IntegerFilter(min_value=100, max_value=599, label="Response status")
    cold_start = django_filters.BooleanFilter(label="Cold start")
    verification = django_filters.ChoiceFilter(
        choices=[("none", "None"), ("passed", "Passed"), ("failed", "Failed")], label="Verification")
    received_after = django_filters.DateTimeFilter(field_name="received_at", lookup_expr="gte",
                                                   label="Received after (ISO 8601)")
    received_before = django_filters.DateTimeFilter(field_name="received_at", lookup_expr="lte",
                                                    label="Received before (ISO 8601)")
    q = django_filters.CharFilter(
        method="search", max_length=SEARCH_MAX_LENGTH,
        label=f"Text in the headers or body (within {SEARCH_SPAN.days} days; without received_after, the last "
              f"{SEARCH_SPAN.days} days)")
    replay_of = django_filters.UUIDFilter(field_name="replay_of_id", label="Replay of")
    redelivery_of = django_filters.UUIDFilter(field_name="redelivery_of_id", label="Redelivery of")

    class Meta:
        model = Delivery
        form = DeliveryFilterForm
        fields = ["state", "response_status", "cold_start", "verification", "received_after", "received_before",
                  "q", "replay_of", "redelivery_of"]

    def search(self, queryset, name, value):
        if not value:
            return queryset
        if not self.form.cleaned_data.get("received_after"):
            end = self.form.cleaned_data.get("received_before") or timezone.now()
            queryset = queryset.filter(received_at__gte=end - SEARCH_SPAN)
        in_headers = Q(headers_text__icontains=value)
        in_body = Q(body_at__gt=0)
        return queryset.annotate(
            headers_text=Cast("headers", TextField()),
            body_at=BytesPosition(F("body"), Value(value.encode(), output_field=BinaryField())),
        ).filter(in_headers | in_body)
