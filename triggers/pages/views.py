"""Browser UI for triggers. Thin: forms in, services do the work, service errors become form errors
or messages. Viewers read; editors and owners change (tenants.permissions)."""

from __future__ import annotations

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.db.models import OuterRef, Subquery
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.views.decorators.http import require_POST

from tenants.decorators import tenant_view
from tenants.permissions import Action, allows
from triggers import services
from triggers.deliveries import stats
from triggers.gateway import diag
from triggers.models import Delivery, Deployment, Trigger

from . import charts
from .deliveries import webhook_info
from .forms import TriggerForm, secret_rows
from .logs import logs_context
from .revisions import revisions_context

RECENT_DELIVERIES = 10
CHART_ROWS = 5000


def _trigger(tenant, name: str) -> Trigger:
    return get_object_or_404(Trigger, tenant=tenant, name=name)


def _detail(trigger: Trigger):
    return redirect("ui-trigger-detail", slug=trigger.tenant.slug, name=trigger.name)


def _add_errors(form, error: ValidationError) -> None:
    if not hasattr(error, "error_dict"):
        form.add_error(None, error)
        return
    for field, errors in error.error_dict.items():
        form.add_error(field if field in form.fields else None, errors)


def describe(trigger: Trigger, last: Deployment | None) -> Trigger:
    """Attach the state shown on the pages: state_class (badge), state_label, state_message."""
    failed = (Deployment.Status.FAILED, Deployment.Status.ERROR)
    if trigger.deleting:
        state = ("deleting", "Deleting…", "")
    elif last is None:
        state = ("none", "Not deployed", "")
    elif last.active:
        state = ("deploying", "Deploying", last.get_status_display())
    elif last.status in failed:
        state = ("failed", f"Failed: {last.reason or last.get_status_display()}", last.message)
    elif trigger.is_ready:
        state = ("ready", "Ready", "")
    elif trigger.ready_status == "False":
        state = ("failed", f"Failed: {trigger.ready_reason or 'NotReady'}", trigger.ready_message)
    else:
        state = ("deploying", "Not ready yet", trigger.ready_message)
    trigger.state_class, trigger.state_label, trigger.state_message = state
    trigger.last = last
    return trigger


def _deploy(request, trigger: Trigger, *, redeploy: bool = False) -> bool:
    try:
        deployment = services.trigger_deploy(trigger=trigger, user=request.user, redeploy=redeploy)
    except ValidationError as e:
        messages.error(request, " ".join(e.messages))
        return False
    verb = "Redeploying" if redeploy else "Deploying"
    messages.success(request, f"{verb} {trigger.name} (spec version {deployment.spec_version}).")
    return True


def described_queryset(triggers) -> list[Trigger]:
    newest = Deployment.objects.filter(trigger=OuterRef("pk")).order_by("-created_at", "-pk").values("pk")[:1]
    triggers = list(triggers.annotate(last_id=Subquery(newest)))
    last = Deployment.objects.in_bulk([t.last_id for t in triggers if t.last_id])
    return [describe(trigger, last.get(trigger.last_id)) for trigger in triggers]


def described_triggers(tenant) -> list[Trigger]:
    """The tenant's triggers with their last deployment, in a fixed number of queries."""
    return described_queryset(tenant.triggers.all())


RECENT_FAILURES = 10
FAILED_DEPLOYMENTS = (Deployment.Status.FAILED, Deployment.Status.ERROR)


class Overview(list):
    """The overview's triggers (a list: what tenants.hooks.overview returns), each with `.hour` (last hour's
    stats), `.day` (last 24 h: pod time saved), `.last_delivery_at` and `.spark` (SVG points), plus the
    totals and the recent failures. A fixed number of queries for any number of triggers and deliveries."""

    def __init__(self, triggers: list[Trigger]):
        super().__init__(triggers)
        ids = [t.pk for t in triggers]
        hour = stats.triggers_stats(triggers, "1h")
        day = stats.triggers_stats(triggers, "24h")
        last = stats.last_deliveries(ids)
        spark = stats.sparklines(ids)
        for t in triggers:
            t.hour, t.day, t.last_delivery_at = hour[t.pk], day[t.pk], last.get(t.pk)
            t.spark_counts = spark[t.pk]
            t.spark = stats.sparkline_svg_points(spark[t.pk])
        self.hour = stats.totals(hour.values(), ids, "1h")
        self.day = stats.totals(day.values(), ids, "24h")
        self.failed_deliveries = list(
            Delivery.objects.filter(trigger_id__in=ids, state__in=stats.FAILED).select_related("trigger__tenant")
            .defer("body", "response_body", "headers", "response_headers", "sealed_headers")
            .order_by("-received_at")[:RECENT_FAILURES]) if ids else []
        self.failed_deployments = list(
            Deployment.objects.filter(trigger_id__in=ids, status__in=FAILED_DEPLOYMENTS)
            .select_related("trigger__tenant").defer("manifest").order_by("-created_at", "-pk")[:RECENT_FAILURES]
        ) if ids else []


def tenant_overview(tenant) -> Overview:
    """The tenant page's dashboard (tenants.hooks.overview)."""
    return Overview(described_queryset(tenant.triggers.all()))


@tenant_view(Action.VIEW)
def trigger_list(request, tenant):
    triggers = described_triggers(tenant)
    can_change = allows(request.role, Action.CHANGE)
    return render(request, "triggers/list.html", {"tenant": tenant, "triggers": triggers, "can_change": can_change})


@tenant_view(Action.CHANGE)
def trigger_create(request, tenant):
    form = TriggerForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            trigger = services.trigger_create(
                tenant=tenant, user=request.user, name=form.cleaned_data["name"], **form.spec(), **form.edge())
        except ValidationError as e:
            _add_errors(form, e)
        else:
            messages.success(request, f"Trigger “{trigger.name}” created.")
            secrets = form.secret_values()
            try:
                if secrets:
                    services.trigger_set_secrets(trigger=trigger, values=secrets)
            except ValidationError as e:
                messages.error(request, f"The secret values were not stored: {' '.join(e.messages)}")
                return redirect("ui-trigger-edit", slug=tenant.slug, name=trigger.name)
            if "deploy" in request.POST:
                _deploy(request, trigger)
            return _detail(trigger)
    return render(request, "triggers/form.html", {"tenant": tenant, "form": form})


@tenant_view(Action.CHANGE)
def trigger_edit(request, tenant, name):
    trigger = _trigger(tenant, name)
    form = TriggerForm(request.POST or None, trigger=trigger)
    if request.method == "POST" and form.is_valid():
        try:
            services.trigger_update(trigger=trigger, secret_values=form.secret_values(), **form.spec(),
                                    **form.edge())
        except ValidationError as e:
            _add_errors(form, e)
        else:
            messages.success(request, f"Saved {trigger.name} (spec version {trigger.spec_version}).")
            if "deploy" in request.POST:
                _deploy(request, trigger)
            return _detail(trigger)
    return render(request, "triggers/form.html", {"tenant": tenant, "form": form, "trigger": trigger})


@tenant_view(Action.VIEW)
def trigger_detail(request, tenant, name):
    trigger = _trigger(tenant, name)
    deployments = list(trigger.deployments.select_related("created_by")[:50])
    describe(trigger, deployments[0] if deployments else None)
    return render(request, "triggers/detail.html", {
        "tenant": tenant, "trigger": trigger, "deployments": deployments, "secrets": secret_rows(trigger),
        "webhook": webhook_info(trigger),
        "can_change": allows(request.role, Action.CHANGE) and not trigger.deleting,
        **live_context(trigger), **logs_context(trigger), **revisions_context(request, trigger),
    })


def live_context(trigger: Trigger) -> dict:
    """What the live trigger page draws first: scale timeline, recent deliveries, last-hour charts, diag, and
    the pod time scale-to-zero saved over the last 24 h (`pod_time`, a stats.Stats; the overview's number)."""
    return {
        "pod_time": stats.triggers_stats([trigger], "24h")[trigger.pk],
        "scale_events": list(trigger.scale_events.all()[:30]),
        "recent_deliveries": list(trigger.deliveries.defer("body", "response_body")[:RECENT_DELIVERIES]),
        "chart": charts.trigger_last_hour(trigger, timezone.now(), CHART_ROWS),
        "diag": diag.trigger_diag(trigger),
        "live_hosts": sorted(diag.trigger_hosts(trigger)),
    }


@require_POST
@tenant_view(Action.CHANGE)
def trigger_deploy(request, tenant, name):
    trigger = _trigger(tenant, name)
    _deploy(request, trigger, redeploy=False)
    return _detail(trigger)


@require_POST
@tenant_view(Action.CHANGE)
def trigger_redeploy(request, tenant, name):
    trigger = _trigger(tenant, name)
    _deploy(request, trigger, redeploy=True)
    return _detail(trigger)


@require_POST
@tenant_view(Action.CHANGE)
def trigger_suspend(request, tenant, name):
    trigger = services.trigger_suspend(trigger=_trigger(tenant, name))
    messages.success(request, f"{trigger.name} suspended: its webhook URL answers 410 Gone until resumed; "
                     "deliveries not yet delivered are cancelled (replay them once resumed).")
    return _detail(trigger)


@require_POST
@tenant_view(Action.CHANGE)
def trigger_resume(request, tenant, name):
    trigger = services.trigger_resume(trigger=_trigger(tenant, name))
    messages.success(request, f"{trigger.name} resumed.")
    return _detail(trigger)


@require_POST
@tenant_view(Action.CHANGE)
def trigger_delete(request, tenant, name):
    trigger = _trigger(tenant, name)
    if request.POST.get("confirm", "").strip() != trigger.name:
        messages.error(request, f"Type the name “{trigger.name}” to confirm deletion.")
        return _detail(trigger)
    services.trigger_delete(trigger=trigger)
    messages.success(request, f"Deleting {trigger.name}: its Knative Service and Secret are being removed.")
    return redirect("ui-trigger-list", slug=tenant.slug)
