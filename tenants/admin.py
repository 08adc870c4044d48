from django.contrib import admin

from .models import ApiToken, AuditEntry, Membership, Tenant


class MembershipInline(admin.TabularInline):
    model = Membership
    extra = 0
    autocomplete_fields = ["user"]


@admin.register(Tenant)
class TenantAdmin(admin.ModelAdmin):
    list_display = ["slug", "name", "namespace", "state", "created_at"]
    list_filter = ["state", "created_at"]
    search_fields = ["slug", "name", "namespace", "memberships__user__username"]
    readonly_fields = ["namespace", "created_at"]
    inlines = [MembershipInline]

    def get_readonly_fields(self, request, obj=None):
        # The slug names the namespace: fixed once the tenant exists.
        return [*self.readonly_fields, "slug"] if obj else self.readonly_fields


@admin.register(Membership)
class MembershipAdmin(admin.ModelAdmin):
    list_display = ["tenant", "user", "role", "created_at"]
    list_filter = ["role", "tenant"]
    search_fields = ["tenant__slug", "tenant__name", "user__username", "user__email"]
    autocomplete_fields = ["user", "tenant"]
    list_select_related = ["tenant", "user"]


@admin.register(ApiToken)
class ApiTokenAdmin(admin.ModelAdmin):
    list_display = ["name", "user", "prefix", "created_at", "last_used_at"]
    search_fields = ["name", "user__username", "prefix"]
    readonly_fields = ["user", "name", "prefix", "created_at", "last_used_at"]
    exclude = ["digest"]

    def has_add_permission(self, request) -> bool:
        return False  # tokens are created by their owners, who see them once


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
