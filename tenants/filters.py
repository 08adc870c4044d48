import django_filters

from .models import AuditEntry, Membership, Role, Tenant


class TenantFilter(django_filters.FilterSet):
    state = django_filters.ChoiceFilter(choices=Tenant.State.choices)

    class Meta:
        model = Tenant
        fields = ["state"]


class MembershipFilter(django_filters.FilterSet):
    role = django_filters.ChoiceFilter(choices=Role.choices)

    class Meta:
        model = Membership
        fields = ["role"]


class AuditFilter(django_filters.FilterSet):
    """?action=trigger.deploy (exact, or a prefix ending in a dot: trigger.) and ?actor=<username or system>."""

    action = django_filters.CharFilter(method="filter_action", help_text="An action, or a prefix such as `trigger.`.")
    actor = django_filters.CharFilter(field_name="actor_label", help_text='A username, or "system".')

    class Meta:
        model = AuditEntry
        fields = ["action", "actor"]

    def filter_action(self, queryset, name, value):
        return queryset.filter(action__startswith=value) if value.endswith(".") else queryset.filter(action=value)
