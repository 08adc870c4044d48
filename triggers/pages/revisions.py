"""The Revisions panel of the trigger page: revisions with traffic, tags and ready state; editors
roll back to one or set a split. Errors come back to the page inline, naming the field (post, redirect, get:
the submitted values and the errors ride in the session for the next page view)."""

from __future__ import annotations

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.shortcuts import get_object_or_404, redirect
from django.urls import reverse
from django.views.decorators.http import require_POST

from tenants.decorators import tenant_view
from tenants.permissions import Action
from triggers import services
from triggers.cluster.traffic import GC_NOTE
from triggers.models import Trigger

SESSION_KEY = "relayweb.traffic_form"
LATEST = "latest"


def revisions_context(request, trigger: Trigger) -> dict:
    """`revisions` (rows, newest first), `revisions_error` (the cluster could not be read), `traffic_form`
    (the split's inputs: per revision and latest, with this page's last errors), `revisions_gc`."""
    try:
        rows, error = services.trigger_revisions(trigger), ""
    except services.ClusterUnavailable as e:
        rows, error = [], e.message
    state = request.session.pop(SESSION_KEY, None) if hasattr(request, "session") else None
    if state and state.get("trigger") != trigger.pk:
        state = None
    asked = {t["revision"] or LATEST: t["percent"] for t in trigger.traffic}
    asked_tags = {t["revision"] or LATEST: t.get("tag") or "" for t in trigger.traffic}
    submitted = (state or {}).get("values") or {}
    submitted_tags = (state or {}).get("tags") or {}
    errors = (state or {}).get("errors") or {}
    index = (state or {}).get("index") or {}
    inputs = [{"key": LATEST, "label": "latest (follows new revisions)",
               "value": submitted.get(LATEST, asked.get(LATEST, 100 if not trigger.traffic else 0))}]
    inputs += [{"key": row["name"], "label": row["name"],
                "value": submitted.get(row["name"], asked.get(row["name"], 0))} for row in rows]
    for item in inputs:
        item["tag"] = submitted_tags.get(item["key"], asked_tags.get(item["key"], ""))
    for item in inputs:
        item["errors"] = [f"{field}: {message}" for field, messages_ in errors.items()
                          for message in messages_ if index.get(field) == item["key"]]
    general = [f"{field}: {message}" for field, messages_ in errors.items() for message in messages_
               if field not in index]
    return {"revisions": rows, "revisions_error": error, "revisions_gc": GC_NOTE,
            "traffic_inputs": inputs, "traffic_errors": general}


def _trigger(tenant, name: str) -> Trigger:
    return get_object_or_404(Trigger, tenant=tenant, name=name)


def _back(trigger: Trigger):
    return redirect(reverse("ui-trigger-detail", args=[trigger.tenant.slug, trigger.name]) + "#revisions")


def _percent(value: str):
    value = (value or "").strip()
    try:
        return int(value) if value else 0
    except ValueError:
        return value  # validation names it


@require_POST
@tenant_view(Action.CHANGE)
def trigger_traffic(request, tenant, name):
    """The split form: one number and one tag per revision and for latest; entries with 0 % and no tag are left
    out (a tagged one at 0 % keeps its tag URL, as a candidate's)."""
    trigger = _trigger(tenant, name)
    values = {key[len("percent:"):]: raw for key, raw in request.POST.items() if key.startswith("percent:")}
    tags = {key[len("tag:"):]: raw.strip() for key, raw in request.POST.items() if key.startswith("tag:")}
    targets, index = [], {}
    for key, raw in values.items():
        percent, tag = _percent(raw), tags.get(key, "")
        if percent == 0 and not tag:
            continue
        for field in ("percent", "revision", "tag"):
            index[f"traffic[{len(targets)}].{field}"] = key
        target = {"latest": True, "percent": percent} if key == LATEST else {"revision": key, "percent": percent}
        if tag:
            target["tag"] = tag
        targets.append(target)
    try:
        services.trigger_set_traffic(trigger=trigger, targets=targets, user=request.user)
    except (ValidationError, services.ClusterUnavailable) as e:
        errors = e.message_dict if isinstance(e, ValidationError) and hasattr(e, "error_dict") else (
            {"traffic": e.messages} if isinstance(e, ValidationError) else {"traffic": [e.message]})
        request.session[SESSION_KEY] = {"trigger": trigger.pk, "values": values, "tags": tags, "errors": errors,
                                        "index": index}
        messages.error(request, "Traffic not changed: see the errors under Revisions.")
    else:
        messages.success(request, f"Applying the traffic split of {trigger.name}.")
    return _back(trigger)


@require_POST
@tenant_view(Action.CHANGE)
def trigger_rollback(request, tenant, name):
    trigger = _trigger(tenant, name)
    revision = request.POST.get("revision", "")
    try:
        services.trigger_rollback(trigger=trigger, revision=revision, user=request.user)
    except ValidationError as e:
        text = "; ".join(f"{field}: {' '.join(m)}" for field, m in e.message_dict.items()) \
            if hasattr(e, "error_dict") else " ".join(e.messages)
        request.session[SESSION_KEY] = {"trigger": trigger.pk, "values": {}, "errors": e.message_dict
                                        if hasattr(e, "error_dict") else {"revision": e.messages}, "index": {}}
        messages.error(request, f"Not rolled back: {text}")
    except services.ClusterUnavailable as e:
        messages.error(request, f"Not rolled back: {e.message}")
    else:
        messages.success(request, f"Rolling back {trigger.name}: all traffic goes to {revision} once Knative's "
                                  "Route is ready. New deploys get no traffic until traffic follows latest again.")
    return _back(trigger)
