"""Operator (staff) pages, mounted under /ops/."""

from django.urls import path

from . import ops as diag_views

urlpatterns = [
    path("diag/", diag_views.ops_diag, name="ops-diag"),
    path("overview/", diag_views.ops_overview, name="ops-overview"),
]
