"""Browser UI for candidate replays: the list with "Replay the last N to the candidate", one replay's
deliveries with the original and the candidate's answer side by side and a line diff of the bodies (difflib,
server-side; rendered escaped, no script), and Promote. Viewers read; editors and owners replay and promote."""

from __future__ import annotations

import difflib
import json

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.core.paginator import Paginator
from django.db import transaction
from django.db.models import Count, F, Q
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST

from tenants.decorators import tenant_view
from tenants.permissions import Action, allows
from triggers import services
from triggers.deliveries import candidates
from triggers.models import CandidateReplay, Trigger

PAGE_SIZE = 20
DIFF_MAX_LINES = 400
LAST_DEFAULT = 10


def _trigger(tenant, name: str) -> Trigger:
    return get_object_or_404(Trigger.objects.select_related("tenant"), tenant=tenant, name=name)


def _text(data: bytes) -> str | None:
    """A body as lines to compare: JSON pretty-printed with sorted keys, else the UTF-8 text; None if binary."""
    data = bytes(data or b"")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return None
    try:
        return json.dumps(json.loads(text), indent=2, sort_keys=True, ensure_ascii=False)
    except (ValueError, RecursionError):
        return text


def body_diff(original: bytes, candidate: bytes) -> dict:
    """A unified line diff of two response bodies: {"same", "binary", "lines": [(kind, text)], "cut"}; kind is
    add, del, hunk or ctx (the template escapes the text)."""
    if bytes(original or b"") == bytes(candidate or b""):
        return {"same": True, "binary": False, "lines": [], "cut": 0}
    a, b = _text(original), _text(candidate)
    if a is None or b is None:
        return {"same": False, "binary": True, "lines": [], "cut": 0}
    lines = []
    for line in difflib.unified_diff(a.splitlines(), b.splitlines(), "original", "candidate", lineterm="", n=3):
        kind = ("hunk" if line.startswith("@@") else "head" if line.startswith(("---", "+++")) else
                "add" if line.startswith("+") else "del" if line.startswith("-") else "ctx")
        lines.append((kind, line))
    return {"same": False, "binary": False, "lines": lines[:DIFF_MAX_LINES],
            "cut": max(0, len(lines) - DIFF_MAX_LINES)}


def _replays(trigger: Trigger):
    return trigger.candidate_replays.select_related("created_by").annotate(
        n_results=Count("results"), n_sent=Count("results", filter=Q(results__sent_at__isnull=False)),
        n_same=Count("results", filter=Q(results__candidate_status=F("results__original_status"))),
    ).order_by("-created_at")


@tenant_view(Action.VIEW)
def candidate_replay_list(request, tenant, name):
    trigger = _trigger(tenant, name)
    page = Paginator(_replays(trigger), PAGE_SIZE).get_page(request.GET.get("page"))
    return render(request, "triggers/candidates.html", {
        "tenant": tenant, "trigger": trigger, "page": page, "target": candidates.candidate_target(trigger),
        "host": candidates.candidate_host(trigger), "max": candidates.MAX_DELIVERIES, "last": LAST_DEFAULT,
        "can_change": allows(request.role, Action.CHANGE) and not trigger.deleting,
    })


@require_POST
@tenant_view(Action.CHANGE)
def candidate_replay_start(request, tenant, name):
    trigger = _trigger(tenant, name)
    try:
        last = int(request.POST.get("last", ""))
    except ValueError:
        last = -1
    filters = {k: v for k, v in request.POST.items() if k in ("state", "response_status") and v}
    try:
        replay = candidates.candidate_replay_start(trigger=trigger, user=request.user, last=last, filters=filters)
    except ValidationError as e:
        messages.error(request, " ".join(e.messages))
    except candidates.CandidateReplayRefused as e:
        messages.error(request, e.message)
    else:
        messages.success(request, f"Replaying {replay.results.count()} deliveries to the candidate "
                                  f"({replay.revision}) in the background.")
        return redirect("ui-candidate-replay", slug=tenant.slug, name=trigger.name, replay_id=replay.pk)
    return redirect("ui-candidate-replays", slug=tenant.slug, name=trigger.name)


@tenant_view(Action.VIEW)
def candidate_replay_detail(request, tenant, name, replay_id):
    trigger = _trigger(tenant, name)
    replay = get_object_or_404(_replays(trigger), pk=replay_id)
    results = [{"result": r, "diff": body_diff(r.original_body, r.candidate_body),
                "original": _text(r.original_body), "candidate": _text(r.candidate_body),
                "same_status": None if r.candidate_status is None else r.candidate_status == r.original_status}
               for r in replay.results.order_by("position")]
    target = candidates.candidate_target(trigger)
    return render(request, "triggers/candidates_detail.html", {
        "tenant": tenant, "trigger": trigger, "replay": replay, "results": results, "target": target,
        "active": replay.state in candidates.ACTIVE,
        "can_promote": (allows(request.role, Action.CHANGE) and not trigger.deleting and replay.state == "done"
                        and target is not None and target.get("revisionName") == replay.revision),
    })


@require_POST
@tenant_view(Action.CHANGE)
def candidate_replay_promote(request, tenant, name, replay_id):
    trigger = _trigger(tenant, name)
    replay = get_object_or_404(trigger.candidate_replays.select_related("trigger__tenant"), pk=replay_id)
    try:
        if replay.state != CandidateReplay.State.DONE:
            raise ValidationError(f"This replay is {replay.state}: promote after a replay that is done.")
        targets = candidates.promotion_targets(replay)
        with transaction.atomic():
            deployment = services.trigger_set_traffic(trigger=trigger, targets=targets, user=request.user)
            candidates.candidate_promoted(replay=replay, deployment=deployment)
    except ValidationError as e:
        messages.error(request, " ".join(e.messages))
        return redirect("ui-candidate-replay", slug=tenant.slug, name=name, replay_id=replay.pk)
    except services.ClusterUnavailable as e:
        messages.error(request, e.message)
        return redirect("ui-candidate-replay", slug=tenant.slug, name=name, replay_id=replay.pk)
    messages.success(request, f"Promoting {replay.revision}: it gets 100 % of the traffic once the deployment is "
                              "applied.")
    return redirect("ui-trigger-detail", slug=tenant.slug, name=name)
