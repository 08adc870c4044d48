"""The one place that decides who may do what in a tenant: UI views, the API and websockets ask here.

Viewers read; editors also change triggers; owners also manage members and delete the tenant.
A user who is not a member gets no role at all, and callers answer 404 so tenants stay invisible.
"""

from __future__ import annotations

from enum import StrEnum

from .models import Membership, Role, Tenant


class Action(StrEnum):
    VIEW = "view"
    CHANGE = "change"      # triggers: create, edit, deploy, suspend, replay
    MANAGE = "manage"      # members, tenant settings, tenant deletion


_ALLOWED: dict[str, frozenset[Action]] = {
    Role.VIEWER: frozenset({Action.VIEW}),
    Role.EDITOR: frozenset({Action.VIEW, Action.CHANGE}),
    Role.OWNER: frozenset({Action.VIEW, Action.CHANGE, Action.MANAGE}),
}


def role_of(user, tenant: Tenant) -> str | None:
    if not getattr(user, "is_authenticated", False) or not user.is_active:
        return None
    return (
        Membership.objects.filter(user=user, tenant=tenant).values_list("role", flat=True).first()
    )


def allows(role: str | None, action: Action) -> bool:
    return role is not None and action in _ALLOWED.get(role, frozenset())


def can(user, tenant: Tenant, action: Action) -> bool:
    return allows(role_of(user, tenant), action)


def tenants_of(user):
    """Tenants the user is a member of (the only ones it may even learn exist)."""
    if not getattr(user, "is_authenticated", False) or not user.is_active:
        return Tenant.objects.none()
    return Tenant.objects.filter(memberships__user=user)
