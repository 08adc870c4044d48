"""API: a trigger's scale events and the delivery/scale statistics of a trigger or a whole tenant.

/api/v1/tenants/<slug>/triggers/<name>/scale-events/ (newest first, paginated),
/api/v1/tenants/<slug>/triggers/<name>/stats/?window=1h|24h|7d and
/api/v1/tenants/<slug>/stats/?window=…; members read (viewers included)."""

from __future__ import annotations

from django.shortcuts import get_object_or_404
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import generics, mixins, permissions, viewsets
from rest_framework.response import Response

from tenants.api import TenantRole, TenantScoped, tenant_param
from triggers.deliveries import stats
from triggers.models import ScaleEvent, Trigger

from .serializers import ScaleEventSerializer, TenantStatsSerializer, TriggerStatsSerializer, WindowSerializer
from .views import trigger_param

window_param = OpenApiParameter(
    "window", str, OpenApiParameter.QUERY, enum=list(stats.WINDOWS), default=stats.DEFAULT_WINDOW,
    description="The span ending now the statistics cover.")


def requested_window(request) -> str:
    """The `window` query parameter, or a 400 naming it."""
    serializer = WindowSerializer(data=request.query_params.dict())
    serializer.is_valid(raise_exception=True)
    return serializer.validated_data["window"]


def stats_row(values: stats.Stats, **extra) -> dict:
    return {**extra, **values.as_dict()}


@extend_schema(parameters=[tenant_param, trigger_param])
class ScaleEventViewSet(TenantScoped, mixins.ListModelMixin, viewsets.GenericViewSet):
    """A trigger's changes of ready pods, newest first; activations carry their cold-start time."""

    serializer_class = ScaleEventSerializer
    permission_classes = [permissions.IsAuthenticated, TenantRole]
    filter_backends = []

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False) or self.tenant is None:
            return ScaleEvent.objects.none()
        trigger = get_object_or_404(Trigger, tenant=self.tenant, name=self.kwargs.get("trigger_name"))
        return trigger.scale_events.order_by("-at", "-pk")


class _TenantTriggers(TenantScoped, generics.GenericAPIView):
    """A statistics view over the tenant's triggers: one object, no filters, no pages."""

    permission_classes = [permissions.IsAuthenticated, TenantRole]
    filter_backends = []
    pagination_class = None

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False) or self.tenant is None:
            return Trigger.objects.none()
        return Trigger.objects.filter(tenant=self.tenant).order_by("name")


@extend_schema(parameters=[tenant_param, trigger_param])
class TriggerStatsView(_TenantTriggers):
    """One trigger's statistics over the window."""

    serializer_class = TriggerStatsSerializer

    @extend_schema(parameters=[window_param], responses=TriggerStatsSerializer)
    def get(self, request, *args, **kwargs):
        window = requested_window(request)
        trigger = get_object_or_404(self.get_queryset(), name=self.kwargs.get("trigger_name"))
        values = stats.triggers_stats([trigger], window)[trigger.pk]
        return Response(stats_row(values, window=window, trigger=trigger.name))


@extend_schema(parameters=[tenant_param])
class TenantStatsView(_TenantTriggers):
    """The tenant's statistics: totals and one row per trigger."""

    serializer_class = TenantStatsSerializer

    @extend_schema(parameters=[window_param], responses=TenantStatsSerializer)
    def get(self, request, *args, **kwargs):
        window = requested_window(request)
        triggers = list(self.get_queryset())
        per_trigger = stats.triggers_stats(triggers, window)
        total = stats.totals(per_trigger.values(), [t.pk for t in triggers], window)
        return Response({
            "window": window, "totals": total.as_dict(),
            "triggers": [stats_row(per_trigger[t.pk], trigger=t.name) for t in triggers],
        })
