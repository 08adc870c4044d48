"""Filtering a trigger's deliveries: one FilterSet for the API (api/deliveries.py) and the UI list
(pages/deliveries.py)."""

from __future__ import annotations

import django_filters
from django import forms

from triggers.models import Delivery


class IntegerFilter(django_filters.NumberFilter):
    field_class = forms.IntegerField


class DeliveryFilter(django_filters.FilterSet):
    """One filter set for the API and the UI list."""

    state = django_filters.ChoiceFilter(choices=Delivery.State.choices)
    response_status = IntegerFilter(min_value=100, max_value=599, label="Response status")
    cold_start = django_filters.BooleanFilter(label="Cold start")
    replay_of = django_filters.UUIDFilter(field_name="replay_of_id", label="Replay of")
    redelivery_of = django_filters.UUIDFilter(field_name="redelivery_of_id", label="Redelivery of")

    class Meta:
        model = Delivery
        fields = ["state", "response_status", "cold_start", "replay_of", "redelivery_of"]
