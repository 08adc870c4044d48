"""API: candidate replays, /api/v1/tenants/<slug>/triggers/<name>/candidate-replays/. Recorded
deliveries sent again to the revision tagged `candidate`, each answer beside the original one; then promote
the candidate to 100 % of the traffic. Viewers read; editors and owners start replays and promote.
Bodies come back as text when they are UTF-8, else base64 (`*_encoding`)."""

from __future__ import annotations

from django.db import transaction
from django.db.models import Count, F, Q
from django.shortcuts import get_object_or_404
from drf_spectacular.utils import extend_schema, extend_schema_field, inline_serializer
from rest_framework import mixins, permissions, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import ValidationError
from rest_framework.response import Response

from tenants.api import TenantRole, TenantScoped, tenant_param
from tenants.permissions import Action
from triggers import services
from triggers.deliveries import candidates
from triggers.deliveries.filters import DeliveryFilter
from triggers.models import CandidateReplay, CandidateResult, Trigger

from .deliveries import UUID_REGEX, body_as_text
from .serializers import DeploymentSerializer
from .views import trigger_param


# Inlined, as DeliveryStateField is: a `StateEnum` component would collide with the other `state`s.
@extend_schema_field({"allOf": [{"type": "string", "enum": CandidateReplay.State.values}]})
class CandidateReplayStateField(serializers.ChoiceField):
    pass


class CandidateReplaySerializer(serializers.ModelSerializer):
    state = CandidateReplayStateField(choices=CandidateReplay.State.choices, read_only=True)
    revision = serializers.CharField(read_only=True, help_text="The revision tagged `candidate` when it was asked "
                                     "for; a replay fails if the tag moves to another one meanwhile.")
    created_by = serializers.CharField(source="created_by.username", read_only=True, default=None)
    deliveries = serializers.IntegerField(source="n_results", read_only=True, help_text="Deliveries in the replay.")
    answered = serializers.IntegerField(source="n_sent", read_only=True, help_text="Deliveries sent so far.")
    same_status = serializers.IntegerField(source="n_same_status", read_only=True,
                                           help_text="Answered with the same status as the original.")

    class Meta:
        model = CandidateReplay
        fields = ["id", "state", "revision", "error", "created_at", "finished_at", "created_by", "deliveries",
                  "answered", "same_status"]
        read_only_fields = fields


@extend_schema_field(serializers.BooleanField(allow_null=True))
class _Comparison(serializers.SerializerMethodField):
    pass


class CandidateResultSerializer(serializers.ModelSerializer):
    delivery = serializers.UUIDField(source="delivery_id", read_only=True, allow_null=True,
                                     help_text="The original delivery (null once pruned from the log).")
    original_body = serializers.SerializerMethodField(help_text="The handler's original response body (capped).")
    original_body_encoding = serializers.SerializerMethodField()
    candidate_body = serializers.SerializerMethodField(help_text="The candidate's response body (capped).")
    candidate_body_encoding = serializers.SerializerMethodField()
    candidate_headers = serializers.ListField(
        child=serializers.ListField(child=serializers.CharField(), min_length=2, max_length=2), read_only=True,
        help_text="The candidate's response headers, [[name, value], …]; credentials are shown as [redacted].")
    same_status = _Comparison(help_text="Whether the candidate answered the original's status (null: no answer).")
    same_body = _Comparison(help_text="Whether the candidate's body is byte for byte the original's (null: no "
                                      "answer).")

    class Meta:
        model = CandidateResult
        fields = ["position", "delivery", "method", "path", "original_status", "original_latency_ms",
                  "original_body", "original_body_encoding", "candidate_status", "candidate_latency_ms",
                  "candidate_body", "candidate_body_encoding", "candidate_headers", "same_status", "same_body",
                  "error", "sent_at"]
        read_only_fields = fields

    def get_original_body(self, result) -> str:
        return body_as_text(result.original_body)[0]

    def get_original_body_encoding(self, result) -> str:
        return body_as_text(result.original_body)[1]

    def get_candidate_body(self, result) -> str:
        return body_as_text(result.candidate_body)[0]

    def get_candidate_body_encoding(self, result) -> str:
        return body_as_text(result.candidate_body)[1]

    def get_same_status(self, result) -> bool | None:
        return None if result.candidate_status is None else result.candidate_status == result.original_status

    def get_same_body(self, result) -> bool | None:
        return None if result.candidate_status is None else bytes(result.candidate_body) == bytes(result.original_body)


class CandidateReplayDetailSerializer(CandidateReplaySerializer):
    results = CandidateResultSerializer(many=True, read_only=True, help_text="One per delivery, in the order sent.")

    class Meta(CandidateReplaySerializer.Meta):
        fields = [*CandidateReplaySerializer.Meta.fields, "results"]
        read_only_fields = fields


def _filter_fields() -> dict:
    return {name: serializers.CharField(required=False, help_text=f"With last: {f.label or name}.")
            for name, f in DeliveryFilter.base_filters.items()}


CandidateReplayRequest = inline_serializer("CandidateReplayStart", {
    "deliveries": serializers.ListField(child=serializers.UUIDField(), required=False, min_length=1,
                                        max_length=candidates.MAX_DELIVERIES,
                                        help_text="These deliveries of the trigger, sent in this order."),
    "last": serializers.IntegerField(required=False, min_value=1, max_value=candidates.MAX_DELIVERIES,
                                     help_text="Or the newest N deliveries matching the filters below (those of the "
                                               "delivery list), sent oldest first."),
    **_filter_fields(),
})
_Detail = inline_serializer("CandidateReplayRefused", {"detail": serializers.CharField()})


@extend_schema(parameters=[tenant_param, trigger_param])
class CandidateReplayViewSet(TenantScoped, mixins.ListModelMixin, mixins.RetrieveModelMixin,
                             viewsets.GenericViewSet):
    """A trigger's candidate replays, newest first: its recorded deliveries sent to the revision tagged
    `candidate` (0 % of the traffic), never to the sender and never counted as deliveries."""

    permission_classes = [permissions.IsAuthenticated, TenantRole]
    write_action = Action.CHANGE
    lookup_value_regex = UUID_REGEX
    filter_backends = []

    def get_serializer_class(self):
        return CandidateReplaySerializer if self.action == "list" else CandidateReplayDetailSerializer

    def trigger(self) -> Trigger:
        return get_object_or_404(Trigger.objects.select_related("tenant"), tenant=self.tenant,
                                 name=self.kwargs.get("trigger_name"))

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False) or self.tenant is None:
            return CandidateReplay.objects.none()
        replays = self.trigger().candidate_replays.select_related("created_by", "trigger__tenant")
        replays = replays.annotate(
            n_results=Count("results"), n_sent=Count("results", filter=Q(results__sent_at__isnull=False)),
            n_same_status=Count("results", filter=Q(results__candidate_status=F("results__original_status"))))
        if self.action != "list":
            replays = replays.prefetch_related("results")
        return replays.order_by("-created_at")

    @extend_schema(request=CandidateReplayRequest,
                   responses={202: CandidateReplayDetailSerializer, 400: _Detail, 429: _Detail})
    def create(self, request, *args, **kwargs):
        """Replay `deliveries` (ids) or the `last` N (with the delivery list's filters) to the candidate; 202
        with the replay, which the worker runs. 400 when the trigger has no `candidate` tag; 429 (Retry-After)
        while one of the trigger's replays runs, or past RELAY_CANDIDATE_REPLAYS_PER_MINUTE of yours."""
        data = request.data
        if not isinstance(data, dict):
            raise ValidationError({"detail": 'Expected a JSON object: {"deliveries": [ids]} or {"last": N, …}.'})
        filters = {k: v for k, v in data.items() if k not in ("deliveries", "last")}
        try:
            replay = candidates.candidate_replay_start(trigger=self.trigger(), user=request.user,
                                                       deliveries=data.get("deliveries"), last=data.get("last"),
                                                       filters=filters)
        except candidates.CandidateReplayRefused as e:
            return Response({"detail": e.message}, status=e.status, headers={"Retry-After": str(e.wait)})
        replay = self.get_queryset().get(pk=replay.pk)
        return Response(CandidateReplayDetailSerializer(replay).data, status=status.HTTP_202_ACCEPTED)

    @extend_schema(request=None, responses={202: DeploymentSerializer, 400: _Detail, 503: _Detail})
    @action(detail=True, methods=["post"])
    def promote(self, request, *args, **kwargs):
        """Give the replay's candidate 100 % of the traffic (the latest revision again when it is the latest,
        else that revision pinned); its `candidate` tag goes. 202 with the Deployment that applies it."""
        replay = self.get_object()
        targets = candidates.promotion_targets(replay)
        if replay.state != CandidateReplay.State.DONE:
            raise ValidationError({"detail": f"This replay is {replay.state}: promote after a replay that is done."})
        try:
            with transaction.atomic():
                deployment = services.trigger_set_traffic(trigger=replay.trigger, targets=targets, user=request.user)
                candidates.candidate_promoted(replay=replay, deployment=deployment)
        except services.ClusterUnavailable as e:
            return Response({"detail": e.message}, status=status.HTTP_503_SERVICE_UNAVAILABLE)
        return Response(DeploymentSerializer(deployment).data, status=status.HTTP_202_ACCEPTED)

