"""API: /api/v1/tenants/<slug>/triggers/ and their deployments. Viewers read; editors and owners change."""

from __future__ import annotations

import django_filters
from django.core.exceptions import ValidationError
from django.shortcuts import get_object_or_404
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import mixins, permissions, status, viewsets
from rest_framework.decorators import action
from rest_framework.response import Response

from tenants.api import TenantRole, TenantScoped, tenant_param, with_tenant_param
from tenants.permissions import Action
from triggers import services
from triggers.deliveries import retries as deliveries
from triggers.models import Deployment, Trigger

from .samples import TestWebhookMixin
from .serializers import DeploymentSerializer, TriggerSerializer
from .traffic import DeployRequestSerializer, TrafficMixin, optional_body

NAME_REGEX = "[a-z][-a-z0-9]*"


class TriggerFilter(django_filters.FilterSet):
    suspended = django_filters.BooleanFilter()
    ready = django_filters.ChoiceFilter(
        field_name="ready_status", choices=[(v, v) for v in ("True", "False", "Unknown")]
    )

    class Meta:
        model = Trigger
        fields = ["suspended", "ready"]


@with_tenant_param("list", "create", "retrieve", "update", "partial_update", "destroy",
                   "deploy", "redeploy", "suspend", "resume", "rotate_token")
class TriggerViewSet(TenantScoped, TestWebhookMixin, TrafficMixin, viewsets.ModelViewSet):
    serializer_class = TriggerSerializer
    permission_classes = [permissions.IsAuthenticated, TenantRole]
    write_action = Action.CHANGE
    lookup_field = "name"
    lookup_value_regex = NAME_REGEX
    filterset_class = TriggerFilter
    search_fields = ["name", "image"]
    ordering_fields = ["name", "created_at", "updated_at"]
    ordering = ["name"]

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False) or self.tenant is None:
            return Trigger.objects.none()
        return Trigger.objects.filter(tenant=self.tenant).select_related("tenant")

    def perform_destroy(self, trigger: Trigger) -> None:
        services.trigger_delete(trigger=trigger)

    def destroy(self, request, *args, **kwargs):
        """Deletion runs in the background: 202, the trigger shows `state: deleting` until it is gone."""
        trigger = self.get_object()
        self.perform_destroy(trigger)
        return Response(self.get_serializer(trigger).data, status=status.HTTP_202_ACCEPTED)

    def _deploy(self, redeploy: bool, candidate: bool = False) -> Response:
        deployment = services.trigger_deploy(trigger=self.get_object(), user=self.request.user, redeploy=redeploy,
                                             candidate=candidate)
        return Response(DeploymentSerializer(deployment).data, status=status.HTTP_202_ACCEPTED)

    @extend_schema(request=DeployRequestSerializer, responses={202: DeploymentSerializer})
    @action(detail=True, methods=["post"])
    def deploy(self, request, *args, **kwargs):
        """Apply the current spec; 202 with the Deployment, which moves to ready or failed. With
        `{"candidate": true}` the new revision gets 0 % of traffic and the tag `candidate`."""
        body = DeployRequestSerializer(data=optional_body(request))
        body.is_valid(raise_exception=True)
        return self._deploy(redeploy=False, candidate=body.validated_data["candidate"])

    @extend_schema(request=None, responses={202: DeploymentSerializer})
    @action(detail=True, methods=["post"])
    def redeploy(self, request, *args, **kwargs):
        """Force a new revision of the same spec (e.g. a moved `:latest` tag)."""
        return self._deploy(redeploy=True)

    @extend_schema(request=None, responses={200: TriggerSerializer})
    @action(detail=True, methods=["post"])
    def suspend(self, request, *args, **kwargs):
        trigger = services.trigger_suspend(trigger=self.get_object())
        return Response(self.get_serializer(trigger).data)

    @extend_schema(request=None, responses={200: TriggerSerializer})
    @action(detail=True, methods=["post"])
    def resume(self, request, *args, **kwargs):
        trigger = services.trigger_resume(trigger=self.get_object())
        return Response(self.get_serializer(trigger).data)

    @extend_schema(request=None, responses={200: TriggerSerializer})
    @action(detail=True, methods=["post"], url_path="rotate-token")
    def rotate_token(self, request, *args, **kwargs):
        """A new webhook URL; the previous one keeps working for RELAY_TOKEN_OVERLAP seconds, then 404s."""
        trigger = self.get_object()
        if trigger.deleting:
            raise ValidationError("This trigger is being deleted.")
        trigger = deliveries.trigger_rotate_token(trigger)
        return Response(self.get_serializer(trigger).data)


trigger_param = OpenApiParameter("trigger_name", str, OpenApiParameter.PATH, description="Trigger name.")


@extend_schema(parameters=[tenant_param, trigger_param])
class DeploymentViewSet(TenantScoped, mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """A trigger's deployment history, newest first (read-only)."""

    serializer_class = DeploymentSerializer
    permission_classes = [permissions.IsAuthenticated, TenantRole]
    filterset_fields = ["status"]
    ordering_fields = ["created_at"]
    ordering = ["-created_at", "-id"]
    search_fields = []

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False) or self.tenant is None:
            return Deployment.objects.none()
        trigger = get_object_or_404(Trigger, tenant=self.tenant, name=self.kwargs.get("trigger_name"))
        return trigger.deployments.select_related("trigger", "created_by")
