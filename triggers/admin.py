"""Operators' view of triggers and deployments.

Triggers change only through the services (validated, versioned, applied by the worker, audited), so the
spec is read-only here, an edit of the webhook edge settings is a `trigger_update`, and the actions call
the services. Secret values are never in the database; the admin shows the variable names only. What the
cluster reports (readiness, pods) is read-only. Deployments are history: read-only.
"""

from __future__ import annotations

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import ValidationError
from django.utils.html import format_html_join

from tenants.admin import run_each
from tenants.models import Tenant

from . import services
from .models import Deployment, Trigger

DEPLOYMENT_FIELDS = ["created_at", "status", "reason", "message", "spec_version", "redeploy", "revision",
                     "generation", "attempts", "created_by", "applied_at", "finished_at"]


class DeploymentInline(admin.TabularInline):
    model = Deployment
    fields = DEPLOYMENT_FIELDS
    readonly_fields = DEPLOYMENT_FIELDS
    extra = 0
    can_delete = False
    show_change_link = True
    ordering = ["-created_at", "-pk"]

    def has_add_permission(self, request, obj=None) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


def _each(modeladmin, request, queryset, action, done: str) -> None:
    run_each(modeladmin, request, queryset.select_related("tenant"), action, done)


class TriggerAdminForm(forms.ModelForm):
    """The webhook edge settings (services.EDGE_FIELDS), checked by the rule the UI and the API use."""

    class Meta:
        model = Trigger
        fields = list(services.EDGE_FIELDS)

    def clean(self) -> dict:
        cleaned = super().clean()
        trigger = self.instance
        if trigger.deleting or trigger.tenant.state == Tenant.State.DELETING:
            raise ValidationError("This trigger is being deleted.")
        if not self.errors:
            values = {field: cleaned.get(field, getattr(trigger, field)) for field in services.EDGE_FIELDS}
            for field, message in services.edge_errors(values, secret_set=bool(trigger.verification_secret)).items():
                self.add_error(field if field in self.fields else None, message)
        return cleaned


@admin.register(Trigger)
class TriggerAdmin(admin.ModelAdmin):
    list_display = ["tenant", "name", "image", "suspended", "ready_status", "updated_at"]
    list_filter = ["suspended", "ready_status", "deleting", "tenant"]
    search_fields = ["name", "image", "tenant__slug"]
    list_select_related = ["tenant"]
    form = TriggerAdminForm
    readonly_fields = [
        "tenant", "name", "image", "port", "env", "secret_names", "secret_version", "min_scale", "max_scale",
        "target_concurrency", "timeout_seconds", "suspended", "deleting", "spec_version", "redeploy_stamp",
        "created_at", "updated_at", "created_by", "ready_status", "ready_reason", "ready_message", "url",
        "address_url", "latest_created_revision", "latest_ready_revision", "observed_generation", "generation",
        "observed_at", "ready_pods", "desired_replicas", "actual_replicas", "active_status", "active_reason",
        "active_since", "pods",
    ]
    inlines = [DeploymentInline]
    actions = ["redeploy_selected", "suspend_selected", "resume_selected", "delete_selected_triggers"]

    def save_model(self, request, obj, form, change) -> None:
        if not form.changed_data:
            return
        # the service writes only what the form changed (a concurrent rotation, suspension or deletion is kept)
        # and records it, with the operator and their address
        current = Trigger.objects.select_related("tenant").get(pk=obj.pk)
        try:
            services.trigger_update(trigger=current, **{field: form.cleaned_data[field] for field in form.changed_data})
        except ValidationError as e:  # deleted meanwhile
            self.message_user(request, f"[{obj}] not changed: {' '.join(e.messages)}", messages.ERROR)

    @admin.display(description="Secret environment")
    def secret_names(self, obj: Trigger):
        if not obj.secret_env:
            return "—"
        rows = [(name, (meta or {}).get("set_at", "")) for name, meta in sorted(obj.secret_env.items())]
        return format_html_join("", "<code>{}</code> <small>set {}</small><br>", rows)

    def has_add_permission(self, request) -> bool:
        return False  # triggers are created through the UI or the API, which validate them

    def has_delete_permission(self, request, obj=None) -> bool:
        return False  # deleting a row would orphan its ksvc: use "Delete selected triggers"

    @admin.action(description="Redeploy selected triggers", permissions=["change"])
    def redeploy_selected(self, request, queryset):
        _each(self, request, queryset,
              lambda t: services.trigger_deploy(trigger=t, user=request.user, redeploy=True),
              "Redeploying {count} trigger(s).")

    @admin.action(description="Suspend selected triggers", permissions=["change"])
    def suspend_selected(self, request, queryset):
        _each(self, request, queryset, lambda t: services.trigger_suspend(trigger=t), "Suspended {count} trigger(s).")

    @admin.action(description="Resume selected triggers", permissions=["change"])
    def resume_selected(self, request, queryset):
        _each(self, request, queryset, lambda t: services.trigger_resume(trigger=t), "Resumed {count} trigger(s).")

    @admin.action(description="Delete selected triggers (removes their Knative Services)", permissions=["change"])
    def delete_selected_triggers(self, request, queryset):
        _each(self, request, queryset, lambda t: services.trigger_delete(trigger=t),
              "Deleting {count} trigger(s): their Knative Services and Secrets are being removed.")


@admin.register(Deployment)
class DeploymentAdmin(admin.ModelAdmin):
    list_display = ["trigger", "spec_version", "status", "reason", "revision", "created_by", "created_at",
                    "finished_at"]
    list_filter = ["status", "redeploy", "created_at"]
    search_fields = ["trigger__name", "trigger__tenant__slug", "revision"]
    list_select_related = ["trigger__tenant", "created_by"]

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False
