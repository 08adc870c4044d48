import django_filters

from .models import Membership, Role, Tenant


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
