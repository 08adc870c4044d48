"""API: a trigger's delivery log, /api/v1/tenants/<slug>/triggers/<name>/deliveries/. Viewers read;
editors and owners replay. Bodies come back as text when they are UTF-8, else base64 (`*_encoding`)."""

from __future__ import annotations

import base64
import uuid

from django.shortcuts import get_object_or_404
from drf_spectacular.utils import extend_schema, extend_schema_field, inline_serializer
from rest_framework import mixins, permissions, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.response import Response

from tenants.api import TenantRole, TenantScoped, tenant_param
from tenants.permissions import Action
from triggers import services
from triggers.deliveries import retries as deliveries
from triggers.deliveries.filters import DeliveryFilter
from triggers.models import Delivery, DeliveryAttempt, Trigger

from .views import trigger_param

UUID_REGEX = "[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"


def body_as_text(data: bytes) -> tuple[str, str]:
    """(text, encoding): the body itself when it is UTF-8 ("utf-8"), else its base64 ("base64")."""
    data = bytes(data or b"")
    try:
        return data.decode("utf-8"), "utf-8"
    except UnicodeDecodeError:
        return base64.b64encode(data).decode("ascii"), "base64"


class DeliveryAttemptSerializer(serializers.ModelSerializer):
    class Meta:
        model = DeliveryAttempt
        fields = ["number", "started_at", "status", "latency_ms", "error"]
        read_only_fields = fields


def headers_field(source: str) -> serializers.ListField:
    return serializers.ListField(
        child=serializers.ListField(child=serializers.CharField(), min_length=2, max_length=2), read_only=True,
        source=source, help_text="[[name, value], …]; credentials and signatures are shown as [redacted] "
        "(Authorization, Proxy-Authorization, Cookie and any name containing token, key, secret, signature, "
        "password, auth or hmac).",
    )


# Inlined (inside allOf) rather than a `StateEnum` component: the list and detail components both carry it
# and the tenant has its own `state`, a collision drf-spectacular can only name with a hash and a warning.
@extend_schema_field({"allOf": [{"type": "string", "enum": Delivery.State.values}]})
class DeliveryStateField(serializers.ChoiceField):
    pass


class DeliverySerializer(serializers.ModelSerializer):
    state = DeliveryStateField(choices=Delivery.State.choices, read_only=True)
    attempt_count = serializers.IntegerField(source="attempts", read_only=True)
    replay_of = serializers.UUIDField(source="replay_of_id", read_only=True, allow_null=True)
    redelivery_of = serializers.UUIDField(
        source="redelivery_of_id", read_only=True, allow_null=True,
        help_text="The first delivery of this sender's delivery id, when that one failed and the sender sent it "
                  "again.")

    class Meta:
        model = Delivery
        fields = ["id", "received_at", "mode", "method", "path", "query", "body_size", "verification", "state",
                  "response_status", "latency_ms", "cold_start", "attempt_count", "replay_of", "redelivery_of"]
        read_only_fields = fields


class DeliveryDetailSerializer(DeliverySerializer):
    headers = headers_field("shown_headers")
    body = serializers.SerializerMethodField(help_text="The request body: text, or base64 (see body_encoding).")
    body_encoding = serializers.SerializerMethodField()
    response_headers = headers_field("shown_response_headers")
    response_body = serializers.SerializerMethodField(help_text="The handler's response body (capped).")
    response_body_encoding = serializers.SerializerMethodField()
    attempts = DeliveryAttemptSerializer(source="attempt_history", many=True, read_only=True)
    replays = serializers.SerializerMethodField(help_text="Ids of the replays of this delivery, newest first.")
    redeliveries = serializers.SerializerMethodField(
        help_text="Ids of the deliveries of the same sender's delivery id sent again after this one failed, newest "
                  "first.")
    credentials_kept = serializers.BooleanField(
        read_only=True, help_text="Whether the values shown as [redacted] are still kept, encrypted, for retries "
        "and replays (RELAY_CREDENTIALS_RETENTION_HOURS); a replay without them is sent without those headers.")

    class Meta(DeliverySerializer.Meta):
        fields = [*DeliverySerializer.Meta.fields, "headers", "body", "body_encoding", "verification_error",
                  "provider_delivery_id", "error", "next_attempt_at", "response_headers", "response_body",
                  "response_body_encoding", "attempts", "replays", "redeliveries", "credentials_kept",
                  "truncated", "record_note"]
        read_only_fields = fields

    def get_body(self, delivery: Delivery) -> str:
        return body_as_text(delivery.body)[0]

    def get_body_encoding(self, delivery: Delivery) -> str:
        return body_as_text(delivery.body)[1]

    def get_response_body(self, delivery: Delivery) -> str:
        return body_as_text(delivery.response_body)[0]

    def get_response_body_encoding(self, delivery: Delivery) -> str:
        return body_as_text(delivery.response_body)[1]

    def get_replays(self, delivery: Delivery) -> list[uuid.UUID]:
        return list(delivery.replays.order_by("-received_at").values_list("id", flat=True))

    def get_redeliveries(self, delivery: Delivery) -> list[uuid.UUID]:
        return list(delivery.redeliveries.order_by("-received_at").values_list("id", flat=True))


@extend_schema(parameters=[tenant_param, trigger_param])
class DeliveryViewSet(TenantScoped, mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """A trigger's delivery log, newest first. Replays are new deliveries linked to the original."""

    permission_classes = [permissions.IsAuthenticated, TenantRole]
    write_action = Action.CHANGE
    lookup_value_regex = UUID_REGEX
    filterset_class = DeliveryFilter
    search_fields = []
    ordering_fields = ["received_at"]
    ordering = ["-received_at"]

    def get_serializer_class(self):
        return DeliverySerializer if self.action == "list" else DeliveryDetailSerializer

    def trigger(self) -> Trigger:
        return get_object_or_404(Trigger, tenant=self.tenant, name=self.kwargs.get("trigger_name"))

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False) or self.tenant is None:
            return Delivery.objects.none()
        return self.trigger().deliveries.select_related("trigger").prefetch_related("attempt_log")

    @extend_schema(request=None, responses={202: DeliveryDetailSerializer})
    @action(detail=True, methods=["post"])
    def replay(self, request, *args, **kwargs):
        """Send the same request again as a new (async) delivery linked to this one; 202 with it."""
        delivery = self.get_object()
        services.delivery_check_replayable(trigger=delivery.trigger, delivery=delivery)
        copy = deliveries.delivery_replay(delivery)
        return Response(DeliveryDetailSerializer(copy).data, status=status.HTTP_202_ACCEPTED)

    @extend_schema(request=None, responses={202: inline_serializer("ReplayFailed", {
        "replayed": serializers.IntegerField(help_text="How many failed or dead deliveries were replayed."),
    })})
    @action(detail=False, methods=["post"], url_path="replay-failed", filter_backends=[], pagination_class=None)
    def replay_failed(self, request, *args, **kwargs):
        """Replay every failed or dead delivery not replayed yet (at most 500 per call)."""
        trigger = self.trigger()
        services.delivery_check_replayable(trigger=trigger)
        return Response({"replayed": deliveries.deliveries_replay_failed(trigger)}, status=status.HTTP_202_ACCEPTED)
