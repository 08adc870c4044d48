"""Tenant, membership and token operations. Views, the API and the admin call these; rules live here.

Errors are `django.core.exceptions.ValidationError` keyed by field, so a form shows them inline and
the API answers 400 naming the field.
"""

from __future__ import annotations

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction

from .audit import audit_record
from .models import ApiToken, Membership, Role, Tenant


def _clean(instance, exclude=None) -> None:
    instance.full_clean(exclude=exclude)


def tenant_create(*, user, slug: str, name: str) -> Tenant:
    """Create a tenant with `user` as its first owner."""
    tenant = Tenant(slug=(slug or "").strip(), name=(name or "").strip())
    _clean(tenant, exclude=["namespace"])
    tenant.namespace = f"{settings.RELAY_NAMESPACE_PREFIX}{tenant.slug}"
    if Tenant.objects.filter(namespace=tenant.namespace).exists():
        raise ValidationError({"slug": f"Namespace {tenant.namespace!r} is already taken."})
    try:
        with transaction.atomic():
            tenant.save()
            Membership.objects.create(user=user, tenant=tenant, role=Role.OWNER)
            transaction.on_commit(lambda: _enqueue("tenant_provision", tenant.pk))
            audit_record(tenant=tenant, action="tenant.create", target=tenant, changes={"name": tenant.name})
    except IntegrityError:  # a concurrent create won the race for this slug
        raise ValidationError({"slug": "Tenant with this Slug already exists."}) from None
    return tenant


def _enqueue(task_name: str, *args) -> None:
    from triggers import tasks  # the cluster side lives with the triggers

    getattr(tasks, task_name).delay(*args)


def tenant_provision_retry(*, tenant: Tenant) -> Tenant:
    """Try provisioning a failed tenant's namespace again."""
    if tenant.state != Tenant.State.FAILED:
        raise ValidationError(f"Tenant {tenant.slug} is {tenant.state}; only a failed tenant can be retried.")
    with transaction.atomic():
        Tenant.objects.filter(pk=tenant.pk).update(state=Tenant.State.PROVISIONING, message="")
        tenant.state, tenant.message = Tenant.State.PROVISIONING, ""
        transaction.on_commit(lambda: _enqueue("tenant_provision", tenant.pk))
        audit_record(tenant=tenant, action="tenant.provision_retry", target=tenant)
    return tenant


@transaction.atomic
def tenant_update(*, tenant: Tenant, name: str) -> Tenant:
    before, tenant.name = tenant.name, (name or "").strip()
    _clean(tenant, exclude=["namespace", "slug"])
    tenant.save(update_fields=["name"])
    audit_record(tenant=tenant, action="tenant.update", target=tenant, changes=_changed({"name": before}, tenant))
    return tenant


def tenant_delete(*, tenant: Tenant) -> Tenant:
    """Mark the tenant deleting; a task removes its triggers, then its namespace, then the row."""
    with transaction.atomic():
        Tenant.objects.filter(pk=tenant.pk).update(state=Tenant.State.DELETING, message="Deletion requested.")
        tenant.state, tenant.message = Tenant.State.DELETING, "Deletion requested."
        transaction.on_commit(lambda: _enqueue("tenant_teardown", tenant.pk))
        audit_record(tenant=tenant, action="tenant.delete", target=tenant)
    return tenant


def _changed(before: dict, obj) -> dict:
    """{field: {"from": old, "to": new}} for the fields of `before` whose value changed (non-secret fields only)."""
    return {name: {"from": old, "to": getattr(obj, name)} for name, old in before.items() if old != getattr(obj, name)}


def _user_by_name(username: str):
    User = get_user_model()
    username = (username or "").strip()
    if not username:
        raise ValidationError({"username": "This field is required."})
    user = User.objects.filter(username=username, is_active=True).first()
    if user is None:
        user = User.objects.filter(email__iexact=username, is_active=True).first() if "@" in username else None
    if user is None:
        raise ValidationError({"username": f"No active user named {username!r}."})
    return user


def _check_role(role: str) -> str:
    if role not in Role.values:
        raise ValidationError({"role": f"Unknown role {role!r}; choose one of: {', '.join(Role.values)}."})
    return role


@transaction.atomic
def membership_add(*, tenant: Tenant, username: str, role: str) -> Membership:
    role = _check_role(role)
    user = _user_by_name(username)
    try:
        with transaction.atomic():
            membership = Membership.objects.create(tenant=tenant, user=user, role=role)
    except IntegrityError:
        raise ValidationError({"username": f"{user.username} is already a member."}) from None
    _audit_member(membership, "member.add", {"role": role})
    return membership


def _audit_member(membership: Membership, action: str, changes: dict | None = None) -> None:
    audit_record(tenant=membership.tenant, action=action, target=membership, target_type="member",
                 label=membership.user.get_username(),
                 changes={"user": membership.user.get_username(), **(changes or {})})


def _lock_owners(tenant: Tenant) -> list[int]:
    # Lock the tenant's memberships so two concurrent demotions cannot both pass the last-owner check.
    return list(
        Membership.objects.select_for_update()
        .filter(tenant=tenant, role=Role.OWNER)
        .values_list("pk", flat=True)
    )


@transaction.atomic
def membership_set_role(*, membership: Membership, role: str) -> Membership:
    role = _check_role(role)
    owners = _lock_owners(membership.tenant)
    if membership.role == Role.OWNER and role != Role.OWNER and owners == [membership.pk]:
        raise ValidationError({"role": "The last owner cannot be demoted; make someone else owner first."})
    before, membership.role = membership.role, role
    membership.save(update_fields=["role"])
    _audit_member(membership, "member.role_change", _changed({"role": before}, membership))
    return membership


@transaction.atomic
def membership_remove(*, membership: Membership) -> None:
    owners = _lock_owners(membership.tenant)
    if membership.role == Role.OWNER and owners == [membership.pk]:
        raise ValidationError(
            {"user": "The last owner cannot be removed; make someone else owner, or delete the tenant."}
        )
    pk = membership.pk
    membership.delete()
    membership.pk = pk  # the entry names the membership that was removed
    _audit_member(membership, "member.remove", {"role": membership.role})


def token_create(*, user, name: str) -> tuple[ApiToken, str]:
    name = (name or "").strip()
    if not name:
        raise ValidationError({"name": "This field is required."})
    if len(name) > 100:
        raise ValidationError({"name": "Ensure this field has no more than 100 characters."})
    if ApiToken.objects.filter(user=user, name=name).exists():
        raise ValidationError({"name": f"You already have a token named {name!r}."})
    try:
        with transaction.atomic():
            token, raw = ApiToken.generate(user=user, name=name)
            audit_record(tenant=None, action="token.create", target=token,
                         changes={"name": name, "prefix": token.prefix})
            return token, raw
    except IntegrityError:
        raise ValidationError({"name": f"You already have a token named {name!r}."}) from None


@transaction.atomic
def token_revoke(*, token: ApiToken) -> None:
    pk = token.pk
    token.delete()
    token.pk = pk
    audit_record(tenant=None, action="token.revoke", target=token,
                 changes={"name": token.name, "prefix": token.prefix})
