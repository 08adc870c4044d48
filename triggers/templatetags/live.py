"""Template helpers for the live pages: the badge a trigger shows and the payload its cards are drawn from
(the same ones the websocket sends)."""

from django import template

from triggers.live import broadcast
from triggers.live.badge import badge
from triggers.models import Trigger

register = template.Library()


class _KnownLast:
    """A trigger whose latest deployment is already loaded (the list view's `trigger.last`), so that
    `badge()` reads it instead of querying once per row. Everything else is the trigger's own."""

    def __init__(self, trigger: Trigger, last):
        self._trigger, self.last_deployment = trigger, last

    def __getattr__(self, name):
        return getattr(self._trigger, name)

    @property
    def state(self) -> str:
        return Trigger.state.fget(self)


@register.filter(name="live_badge")
def live_badge(trigger: Trigger) -> dict:
    """{"key": "ready", "text": "Ready (1 pod)"} for `{% with b=trigger|live_badge %}`."""
    key, text = badge(_KnownLast(trigger, trigger.last) if hasattr(trigger, "last") else trigger)
    return {"key": key, "text": text}


@register.filter(name="live_payload")
def live_payload(trigger: Trigger) -> dict:
    """broadcast.trigger_payload(trigger): the trigger page's live cards render from the event's own dict."""
    return broadcast.trigger_payload(trigger)
