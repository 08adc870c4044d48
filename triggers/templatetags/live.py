"""Template helpers for the live pages: the badge a trigger shows and the payload its cards are drawn from
(the same ones the websocket sends)."""

from django import template

from triggers.live import broadcast
from triggers.live.badge import KnownLast, badge
from triggers.models import Trigger

register = template.Library()


@register.filter(name="live_badge")
def live_badge(trigger: Trigger) -> dict:
    """{"key": "ready", "text": "Ready (1 pod)"} for `{% with b=trigger|live_badge %}`."""
    key, text = badge(KnownLast(trigger, trigger.last) if hasattr(trigger, "last") else trigger)
    return {"key": key, "text": text}


@register.filter(name="live_payload")
def live_payload(trigger: Trigger) -> dict:
    """broadcast.trigger_payload(trigger): the trigger page's live cards render from the event's own dict."""
    return broadcast.trigger_payload(trigger)
