"""API: POST /api/v1/tenants/<slug>/triggers/<name>/test-webhook/ (editors and owners): a signed sample
event for the trigger's verification, sent through the public ingress by the worker. 202 at once; the
delivery then appears in the delivery log and on the live pages. 409 when suspended or being deleted,
429 (Retry-After) when one was sent within RELAY_TEST_WEBHOOK_INTERVAL seconds."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers, status
from rest_framework.decorators import action
from rest_framework.response import Response

from tenants.api import tenant_param
from triggers.edge.sample_sender import TestWebhookRefused, trigger_test_webhook

_Queued = inline_serializer("TestWebhookQueued", {"detail": serializers.CharField(),
                                                  "event": serializers.CharField()})
_Detail = inline_serializer("TestWebhookRefused", {"detail": serializers.CharField()})


class TestWebhookMixin:
    """The test-webhook action of TriggerViewSet."""

    @extend_schema(parameters=[tenant_param], request=None, responses={202: _Queued, 409: _Detail, 429: _Detail})
    @action(detail=True, methods=["post"], url_path="test-webhook")
    def test_webhook(self, request, *args, **kwargs):
        """Send a sample event (GitHub ping, Stripe or Slack test event, or JSON) signed with the stored secret."""
        trigger = self.get_object()
        try:
            event = trigger_test_webhook(trigger=trigger)
        except TestWebhookRefused as e:
            headers = {"Retry-After": str(e.wait)} if e.wait else None
            return Response({"detail": e.message}, status=e.status, headers=headers)
        return Response({"detail": f"Sending a {event} to the webhook URL.", "event": event},
                        status=status.HTTP_202_ACCEPTED)
