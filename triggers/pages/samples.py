"""Send test webhook from the trigger page (editors): queue a signed sample event and return at once;
the delivery appears on the page through the live delivery events."""

from __future__ import annotations

from django.contrib import messages
from django.shortcuts import get_object_or_404, redirect
from django.views.decorators.http import require_POST

from tenants.decorators import tenant_view
from tenants.permissions import Action
from triggers.edge.sample_sender import TestWebhookRefused, trigger_test_webhook
from triggers.models import Trigger


@require_POST
@tenant_view(Action.CHANGE)
def trigger_test_webhook_view(request, tenant, name):
    trigger = get_object_or_404(Trigger, tenant=tenant, name=name)
    try:
        event = trigger_test_webhook(trigger=trigger)
    except TestWebhookRefused as e:
        messages.error(request, e.message)
    else:
        messages.success(request, f"Sending a {event} to {trigger.name}'s webhook URL; "
                         "the delivery appears under Recent deliveries.")
    return redirect("ui-trigger-detail", slug=tenant.slug, name=trigger.name)
