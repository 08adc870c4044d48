"""API: a trigger's revisions and their traffic, actions of TriggerViewSet.

GET …/triggers/<name>/revisions/ (members): the revisions Knative keeps, with traffic and tags.
PUT …/triggers/<name>/traffic/ (editors): split traffic between revisions, by Knative's rules.
POST …/triggers/<name>/rollback/ (editors): 100 % to one ready revision.
Reading the cluster may fail: 503 with what went wrong, never a 500.
"""

from __future__ import annotations

from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers, status
from rest_framework.decorators import action
from rest_framework.exceptions import UnsupportedMediaType
from rest_framework.response import Response

from relayweb.api import StrictFieldsMixin
from tenants.api import tenant_param
from triggers import services
from triggers.cluster.traffic import GC_NOTE

from .serializers import DeploymentSerializer


class TrafficSerializer(StrictFieldsMixin, serializers.Serializer):
    traffic = serializers.JSONField(help_text='A list of targets, each exactly one of "revision" or "latest": '
                                              'true, e.g. [{"revision": "hello-00001", "percent": 50}, '
                                              '{"latest": true, "percent": 50}]; [] follows the latest revision.')


class RollbackSerializer(StrictFieldsMixin, serializers.Serializer):
    revision = serializers.CharField(help_text="A ready revision of this trigger, e.g. hello-00001.")


def optional_body(request) -> dict:
    """The body of an action whose body is optional. A POST without one is {}; so is an empty form (what a bare
    form post or Django's test client sends): deploy took no body before `candidate` and still needs none. A
    form with fields is still refused (415): the API speaks JSON."""
    try:
        return request.data
    except UnsupportedMediaType:
        if request.content_type.startswith(("multipart/form-data", "application/x-www-form-urlencoded")) \
                and not request._request.POST and not request._request.FILES:
            return {}
        raise


class DeployRequestSerializer(StrictFieldsMixin, serializers.Serializer):
    candidate = serializers.BooleanField(
        required=False, default=False,
        help_text="Keep traffic on the revision(s) serving now; the new revision gets 0 % and the tag "
                  "`candidate` (its own URL) until traffic is moved to it.")


class TagSerializer(serializers.Serializer):
    tag = serializers.CharField()
    url = serializers.CharField()


class RevisionSerializer(serializers.Serializer):
    name = serializers.CharField()
    created = serializers.DateTimeField(allow_null=True)
    generation = serializers.IntegerField(allow_null=True, help_text="The configuration generation it came from.")
    spec_version = serializers.IntegerField(allow_null=True, help_text="The trigger's spec version it came from.")
    image = serializers.CharField()
    ready = serializers.ChoiceField(choices=["True", "False", "Unknown"])
    reason = serializers.CharField(allow_blank=True)
    message = serializers.CharField(allow_blank=True)
    percent = serializers.IntegerField(help_text="Its share of the trigger's traffic now.")
    tag = serializers.CharField(allow_blank=True)
    url = serializers.CharField(allow_blank=True, help_text="Its tag's URL (cluster-local), when tagged.")
    tags = TagSerializer(many=True)
    latest_created = serializers.BooleanField()
    latest_ready = serializers.BooleanField()
    routing_state = serializers.CharField(allow_blank=True)


_Revisions = inline_serializer("RevisionList", {
    "gc": serializers.CharField(help_text="Which revisions remain is up to Knative's revision GC (config-gc)."),
    "traffic": serializers.JSONField(help_text="The traffic asked for ([] = follow the latest revision)."),
    "results": RevisionSerializer(many=True),
})
_Detail = inline_serializer("ClusterUnavailable", {"detail": serializers.CharField()})


def _unavailable(e: services.ClusterUnavailable) -> Response:
    return Response({"detail": f"{e.message} Try again once the cluster is reachable."},
                    status=status.HTTP_503_SERVICE_UNAVAILABLE)


class TrafficMixin:
    """The revisions, traffic and rollback actions of TriggerViewSet."""

    @extend_schema(parameters=[tenant_param], request=None, responses={200: _Revisions, 503: _Detail})
    @action(detail=True, methods=["get"])
    def revisions(self, request, *args, **kwargs):
        """The trigger's revisions, newest first, with their traffic, tags and tag URLs. Knative's revision GC
        (config-gc) decides which revisions remain."""
        trigger = self.get_object()
        try:
            rows = services.trigger_revisions(trigger)
        except services.ClusterUnavailable as e:
            return _unavailable(e)
        return Response({"gc": GC_NOTE, "traffic": trigger.traffic,
                         "results": RevisionSerializer(rows, many=True).data})

    @extend_schema(parameters=[tenant_param], request=TrafficSerializer,
                   responses={202: DeploymentSerializer, 503: _Detail})
    @action(detail=True, methods=["put"])
    def traffic(self, request, *args, **kwargs):
        """Split traffic between revisions and apply it (a Deployment, 202). Validated as Knative does: percents
        0..100 summing to 100, each target exactly one of revision or latest, tags DNS-1035 labels and unique,
        revisions of this trigger that exist."""
        trigger = self.get_object()
        body = TrafficSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        try:
            deployment = services.trigger_set_traffic(trigger=trigger, targets=body.validated_data["traffic"],
                                                      user=request.user)
        except services.ClusterUnavailable as e:
            return _unavailable(e)
        return Response(DeploymentSerializer(deployment).data, status=status.HTTP_202_ACCEPTED)

    @extend_schema(parameters=[tenant_param], request=RollbackSerializer,
                   responses={202: DeploymentSerializer, 503: _Detail})
    @action(detail=True, methods=["post"])
    def rollback(self, request, *args, **kwargs):
        """Send all traffic to one ready revision. New deploys still make revisions, which get no traffic until
        traffic follows the latest revision again (PUT traffic with [])."""
        trigger = self.get_object()
        body = RollbackSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        try:
            deployment = services.trigger_rollback(trigger=trigger, revision=body.validated_data["revision"],
                                                   user=request.user)
        except services.ClusterUnavailable as e:
            return _unavailable(e)
        return Response(DeploymentSerializer(deployment).data, status=status.HTTP_202_ACCEPTED)
