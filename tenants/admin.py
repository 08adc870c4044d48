"""Operators' admin for tenants, members, invitations and tokens.

Every change of a tenant's state goes through the services, as the UI's and the API's do: the last-owner
rule holds, sockets close, the cluster is torn down, and the audit log names the operator and their address.
A tenant's state and message are the provisioner's (retry provisioning and delete are actions here).
"""

from django import forms
from django.contrib import admin, messages
from django.contrib.auth import get_user_model
from django.contrib.auth.admin import UserAdmin
from django.core.exceptions import ValidationError
from django.db import transaction
from django.http import HttpResponseRedirect
from django.urls import reverse

from . import services
from .models import ApiToken, AuditEntry, Invitation, Membership, Role, Tenant


def _owner_rule_problems(memberships) -> list[str]:
    """The last-owner rule, as lines the admin's delete confirmation lists (and then refuses)."""
    try:
        services.memberships_check_removal(memberships=memberships)
    except ValidationError as e:
        return e.messages
    return []


class KeepsOwnersOnDelete:
    """Admin deletes (the delete page and the changelist action) that would remove a tenant's last owner are
    refused: the confirmation page lists the problem instead of a "Yes" button, and a POST deletes nothing."""

    def memberships_deleted_with(self, objs):
        raise NotImplementedError

    def get_deleted_objects(self, objs, request):
        deleted, model_count, perms_needed, protected = super().get_deleted_objects(objs, request)
        problems = _owner_rule_problems(self.memberships_deleted_with(objs))
        return deleted, model_count, perms_needed, [*protected, *problems]

    def delete_model(self, request, obj) -> None:
        with transaction.atomic():
            services.memberships_remove(memberships=self.memberships_deleted_with([obj]))
            super().delete_model(request, obj)

    def delete_queryset(self, request, queryset) -> None:
        with transaction.atomic():
            services.memberships_remove(memberships=self.memberships_deleted_with(queryset))
            super().delete_queryset(request, queryset)


class MembershipInlineFormSet(forms.BaseInlineFormSet):
    """Edits of a tenant's members in one save must leave it an owner (the services' rule)."""

    def clean(self) -> None:
        super().clean()
        if any(self.errors) or self.instance.pk is None:
            return
        leaving, gained = set(), False
        for form in self.forms:
            if not form.has_changed() and form.instance.pk is None:
                continue
            deleted = self.can_delete and self._should_delete_form(form)
            if form.instance.pk is None and self.instance.state == Tenant.State.DELETING:
                raise ValidationError(f"Tenant {self.instance.slug} is being deleted: no member can be added.")
            if form.instance.pk is not None and not deleted and "user" in form.changed_data:
                raise ValidationError("A membership cannot move to another user: remove it and add the other user.")
            role = form.cleaned_data.get("role")
            if deleted or role != Role.OWNER:
                if form.instance.pk is not None:
                    leaving.add(form.instance.pk)
            elif form.instance.pk is None or "role" in form.changed_data:
                gained = True  # a new owner, or a member made owner in the same save
        if not gained and _owner_rule_problems(Membership.objects.filter(pk__in=leaving)):
            raise ValidationError("A tenant must keep an owner: make someone else owner first.")


class MembershipInline(admin.TabularInline):
    model = Membership
    formset = MembershipInlineFormSet
    extra = 0
    autocomplete_fields = ["user"]


class InvitationInline(admin.TabularInline):
    model = Invitation
    extra = 0
    can_delete = False
    fields = ["email", "role", "invited_by", "created_at", "expires_at", "accepted_at", "revoked_at"]
    readonly_fields = fields

    def has_add_permission(self, request, obj=None) -> bool:
        return False  # owners invite from the product, which mails the link


def run_each(modeladmin, request, objs, action, done: str) -> None:
    """An admin action's loop: run a service per object; report each refusal (ValidationError) with its message
    and the successes as a count. Shared by the triggers admin."""
    succeeded = 0
    for obj in objs:
        try:
            action(obj)
        except ValidationError as e:
            modeladmin.message_user(request, f"[{obj}] {' '.join(e.messages)}", messages.ERROR)
        else:
            succeeded += 1
    if succeeded:
        modeladmin.message_user(request, done.format(count=succeeded), messages.SUCCESS)


@admin.register(Tenant)
class TenantAdmin(admin.ModelAdmin):
    list_display = ["slug", "name", "namespace", "state", "created_at"]
    list_filter = ["state", "created_at"]
    search_fields = ["slug", "name", "namespace", "memberships__user__username"]
    readonly_fields = ["namespace", "state", "message", "created_at"]
    inlines = [MembershipInline, InvitationInline]
    actions = ["delete_selected", "retry_provisioning"]

    def get_readonly_fields(self, request, obj=None):
        # The slug names the namespace: fixed once the tenant exists.
        return [*self.readonly_fields, "slug"] if obj else self.readonly_fields

    def has_add_permission(self, request) -> bool:
        return False  # a tenant is created by its first owner (UI or API), which provisions its namespace

    def save_model(self, request, obj, form, change) -> None:
        if change and "name" in form.changed_data:
            name, obj.name = obj.name, form.initial["name"]
            services.tenant_update(tenant=obj, name=name)

    def delete_model(self, request, obj) -> None:
        services.tenant_delete(tenant=obj)  # its triggers, then the namespace, then the row: in the background

    def delete_queryset(self, request, queryset) -> None:
        for tenant in queryset:
            services.tenant_delete(tenant=tenant)

    def response_delete(self, request, obj_display, obj_id):
        self.message_user(request, f"Deleting tenant {obj_display}: its triggers and namespace are being removed, "
                                   "then the tenant.", messages.SUCCESS)
        return HttpResponseRedirect(reverse("admin:tenants_tenant_changelist"))

    @admin.action(description="Retry provisioning of selected failed tenants", permissions=["change"])
    def retry_provisioning(self, request, queryset):
        run_each(self, request, queryset, lambda t: services.tenant_provision_retry(tenant=t),
              "Provisioning {count} tenant(s) again.")

    def save_formset(self, request, form, formset, change) -> None:
        if formset.model is not Membership:
            return super().save_formset(request, form, formset, change)
        with transaction.atomic():
            instances = formset.save(commit=False)  # new rows and owners first, then demotions, then removals
            for membership in sorted(instances, key=lambda m: (m.pk is not None, m.role != Role.OWNER)):
                if membership.pk is None:
                    created = services.membership_add(tenant=form.instance, user=membership.user, role=membership.role)
                    membership.pk, membership.created_at = created.pk, created.created_at
                else:
                    role = membership.role
                    membership.role = Membership.objects.get(pk=membership.pk).role
                    services.membership_set_role(membership=membership, role=role)
            removed = Membership.objects.filter(pk__in=[m.pk for m in formset.deleted_objects])
            services.memberships_remove(memberships=removed)


class MembershipAdminForm(forms.ModelForm):
    class Meta:
        model = Membership
        fields = ["tenant", "user", "role"]

    def clean_tenant(self) -> Tenant:
        tenant = self.cleaned_data["tenant"]
        if self.instance.pk is None and tenant.state == Tenant.State.DELETING:
            raise ValidationError(f"Tenant {tenant.slug} is being deleted: no member can be added.")
        return tenant

    def clean_role(self) -> str:
        role = self.cleaned_data["role"]
        old = self.instance
        if old.pk and role != Role.OWNER and services.membership_is_last_owner(
            membership=Membership.objects.get(pk=old.pk)
        ):
            raise ValidationError("The last owner cannot be demoted; make someone else owner first.")
        return role


@admin.register(Membership)
class MembershipAdmin(KeepsOwnersOnDelete, admin.ModelAdmin):
    form = MembershipAdminForm
    list_display = ["tenant", "user", "role", "created_at"]
    list_filter = ["role", "tenant"]
    search_fields = ["tenant__slug", "tenant__name", "user__username", "user__email"]
    autocomplete_fields = ["user", "tenant"]
    list_select_related = ["tenant", "user"]

    def memberships_deleted_with(self, objs):
        return Membership.objects.filter(pk__in=[m.pk for m in objs])

    def get_readonly_fields(self, request, obj=None):
        # Moving a membership to another tenant or user would bypass the last-owner rule: remove and add instead.
        return ["tenant", "user"] if obj else []

    def save_model(self, request, obj, form, change) -> None:
        if not change:
            created = services.membership_add(tenant=obj.tenant, user=obj.user, role=obj.role)
            obj.pk, obj.created_at = created.pk, created.created_at
        elif "role" in form.changed_data:
            role, obj.role = obj.role, form.initial["role"]
            services.membership_set_role(membership=obj, role=role)


@admin.register(Invitation)
class InvitationAdmin(admin.ModelAdmin):
    list_display = ["email", "tenant", "role", "invited_by", "created_at", "expires_at", "accepted_at", "revoked_at"]
    list_filter = ["role", "tenant"]
    search_fields = ["email", "tenant__slug"]
    exclude = ["digest"]
    readonly_fields = ["tenant", "email", "role", "invited_by", "created_at", "expires_at", "accepted_at",
                       "accepted_by", "revoked_at"]

    actions = ["revoke_selected"]

    def has_add_permission(self, request) -> bool:
        return False  # owners invite from the product, which mails the link

    def has_delete_permission(self, request, obj=None) -> bool:
        return False  # invitations are history: revoke a pending one instead

    @admin.action(description="Revoke selected pending invitations", permissions=["change"])
    def revoke_selected(self, request, queryset):
        run_each(self, request, queryset.select_related("tenant"), lambda i: services.invitation_revoke(invitation=i),
              "Revoked {count} invitation(s).")


User = get_user_model()
if admin.site.is_registered(User):
    _BaseUserAdmin = type(admin.site.get_model_admin(User))
    admin.site.unregister(User)
else:
    _BaseUserAdmin = UserAdmin


@admin.register(User)
class RelayUserAdmin(KeepsOwnersOnDelete, _BaseUserAdmin):
    """Deleting a user deletes their memberships: refused while they are a tenant's last owner."""

    def memberships_deleted_with(self, objs):
        return Membership.objects.filter(user__in=[u.pk for u in objs])


@admin.register(ApiToken)
class ApiTokenAdmin(admin.ModelAdmin):
    list_display = ["name", "user", "prefix", "created_at", "last_used_at"]
    search_fields = ["name", "user__username", "prefix"]
    readonly_fields = ["user", "name", "prefix", "created_at", "last_used_at"]
    exclude = ["digest"]

    def has_add_permission(self, request) -> bool:
        return False  # tokens are created by their owners, who see them once

    def delete_model(self, request, obj) -> None:
        services.token_revoke(token=obj)

    def delete_queryset(self, request, queryset) -> None:
        for token in queryset:
            services.token_revoke(token=token)


@admin.register(AuditEntry)
class AuditEntryAdmin(admin.ModelAdmin):
    """Every tenant's audit log, read-only: entries are written only by the services."""

    list_display = ["created_at", "tenant_slug", "actor_label", "token_name", "action", "target_type", "target_label",
                    "source"]
    list_filter = ["action", "target_type", "created_at"]
    search_fields = ["tenant_slug", "actor_label", "action", "target_label", "token_prefix"]
    date_hierarchy = "created_at"

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False
