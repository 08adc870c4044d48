"""The live state of a trigger as people see it, one badge: the pages render it (templatetags/live.py) and the
websocket sends it (broadcast.py), so both show the same. It reads only the trigger's own fields."""

from __future__ import annotations

from triggers.models import Trigger


def badge(trigger: Trigger) -> tuple[str, str]:
    """The live state shown to people: (key, text), e.g. ("ready", "Ready (2 pods)").

    Not deployed · Deploying · Ready (N pods) · Scaled to zero · Activating (since …) · Failed: reason.
    """
    state = trigger.state
    if state == "deleting":
        return "deleting", "Deleting…"
    if state == "suspended":
        return "suspended", "Suspended"
    if state == "not_deployed":
        return "not_deployed", "Not deployed"
    if state == "deploying":
        return "deploying", "Deploying"
    if state == "failed" and not trigger.latest_ready_revision:
        last = trigger.last_deployment
        reason = (last.reason if last else "") or trigger.ready_reason or "unknown"
        return "failed", f"Failed: {reason}"
    if trigger.active_status == "Unknown" and trigger.active_reason == "Queued":
        since = trigger.active_since.strftime("%H:%M:%S") if trigger.active_since else "now"
        return "activating", f"Activating (cold start, since {since})"
    if trigger.ready_pods == 0:
        return "scaled_to_zero", "Scaled to zero"
    if trigger.ready_pods:
        return "ready", f"Ready ({trigger.ready_pods} pod{'s' if trigger.ready_pods != 1 else ''})"
    if state == "failed":
        return "failed", f"Failed: {trigger.ready_reason or 'unknown'}"
    return "ready", "Ready"


class KnownLast:
    """A trigger whose latest deployment is already loaded, so that `badge()` and `state` read it instead of
    querying again (the list view's `trigger.last`, or a payload built once). Everything else is the trigger's."""

    def __init__(self, trigger: Trigger, last):
        self._trigger, self.last_deployment = trigger, last

    def __getattr__(self, name):
        return getattr(self._trigger, name)

    @property
    def state(self) -> str:
        return Trigger.state.fget(self)
