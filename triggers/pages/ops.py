"""The operators' Ambassador diag page (staff only; tenants see their routes on each trigger page)."""

from __future__ import annotations

from functools import wraps

from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.http import Http404
from django.shortcuts import render

from triggers.gateway import diag
from triggers.models import ClusterCheck, Trigger

from .views import Overview, described_queryset


def staff_required(view):
    """Anonymous users sign in; signed-in users who are not staff get 404 (the page stays invisible)."""

    @login_required
    @wraps(view)
    def wrapper(request, *args, **kwargs):
        if not (request.user.is_active and request.user.is_staff):
            raise Http404
        return view(request, *args, **kwargs)

    return wrapper


@staff_required
def ops_diag(request):
    state = diag.load()
    return render(request, "ops/diag.html", {
        "state": state,
        "snapshot": (state or {}).get("snapshot"),
        "checked_time": diag.parse_time((state or {}).get("checked_at")),
        "last_good_time": diag.parse_time((state or {}).get("last_good_at")),
        "interval": getattr(settings, "RELAY_DIAG_INTERVAL", 10),
        "admin_url": getattr(settings, "RELAY_AMBASSADOR_ADMIN_URL", "http://127.0.0.1:8877"),
        "cluster_check": ClusterCheck.objects.first(),
    })


@staff_required
def ops_overview(request):
    """Every tenant's triggers on one dashboard (the tenant overview's rows, with their tenant)."""
    triggers = Trigger.objects.select_related("tenant").order_by("tenant__slug", "name")
    return render(request, "ops/overview.html", {"overview": Overview(described_queryset(triggers))})
