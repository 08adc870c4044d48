"""Tenant, membership, invitation and token operations. Views, the API and the admin call these; rules live here.

Errors are `django.core.exceptions.ValidationError` keyed by field, so a form shows them inline and
the API answers 400 naming the field.
"""

from __future__ import annotations

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.mail import send_mail
from django.core.validators import validate_email
from django.db import IntegrityError, transaction
from django.urls import reverse
from django.utils import timezone

from . import hooks
from .audit import audit_record
from .models import INVITATION_VALID_FOR, ApiToken, Invitation, Membership, Role, Tenant
from .permissions import Action, allows


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
            transaction.on_commit(lambda: hooks.provision_requested.send(sender=Tenant, tenant_id=tenant.pk))
            audit_record(tenant=tenant, action="tenant.create", target=tenant, changes={"name": tenant.name})
    except IntegrityError:  # a concurrent create won the race for this slug
        raise ValidationError({"slug": "Tenant with this Slug already exists."}) from None
    return tenant


def tenant_provision_retry(*, tenant: Tenant) -> Tenant:
    """Try provisioning a failed tenant's namespace again."""
    if tenant.state != Tenant.State.FAILED:
        raise ValidationError(f"Tenant {tenant.slug} is {tenant.state}; only a failed tenant can be retried.")
    with transaction.atomic():
        Tenant.objects.filter(pk=tenant.pk).update(state=Tenant.State.PROVISIONING, message="")
        tenant.state, tenant.message = Tenant.State.PROVISIONING, ""
        transaction.on_commit(lambda: hooks.provision_requested.send(sender=Tenant, tenant_id=tenant.pk))
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
        _close_sockets(tenant_id=tenant.pk)  # first: they close even if the broker refuses the teardown
        transaction.on_commit(lambda: hooks.teardown_requested.send(sender=Tenant, tenant_id=tenant.pk))
        audit_record(tenant=tenant, action="tenant.delete", target=tenant)
    return tenant


def _close_sockets(**whose) -> None:
    """After commit, the open websockets concerned re-check access and close if it is gone."""
    hooks.access_revoked.send(sender=Tenant, **whose)  # triggers, which holds the live side, listens


def _changed(before: dict, obj) -> dict:
    """{field: {"from": old, "to": new}} for the fields of `before` whose value changed (non-secret fields only)."""
    return {name: {"from": old, "to": getattr(obj, name)} for name, old in before.items() if old != getattr(obj, name)}


def _check_role(role: str) -> str:
    if role not in Role.values:
        raise ValidationError({"role": f"Unknown role {role!r}; choose one of: {', '.join(Role.values)}."})
    return role


def _audit_member(membership: Membership, action: str, changes: dict | None = None) -> None:
    audit_record(tenant=membership.tenant, action=action, target=membership, target_type="member",
                 label=membership.user.get_username(),
                 changes={"user": membership.user.get_username(), **(changes or {})})


def _tenants_left_without_owner(*, tenant_ids, leaving: set[int]) -> list[str]:
    """The one last-owner rule: slugs of tenants whose owners would all be among `leaving` (membership pks).

    Locks the owners' rows (in pk order, so concurrent callers cannot deadlock) until the transaction ends,
    so two concurrent demotions or removals cannot both pass.
    """
    owners: dict[int, set[int]] = {}
    locked = (
        Membership.objects.select_for_update()
        .filter(tenant_id__in=set(tenant_ids), role=Role.OWNER)
        .order_by("pk")
        .values_list("pk", "tenant_id")
    )
    for pk, tenant_id in locked:
        owners.setdefault(tenant_id, set()).add(pk)
    orphaned = [tenant_id for tenant_id, pks in owners.items() if pks <= leaving]
    return list(Tenant.objects.filter(pk__in=orphaned).order_by("slug").values_list("slug", flat=True))


def membership_is_last_owner(*, membership: Membership) -> bool:
    """Whether removing or demoting this membership would leave its tenant without an owner (no lock)."""
    if membership.role != Role.OWNER:
        return False
    return not Membership.objects.filter(tenant_id=membership.tenant_id, role=Role.OWNER).exclude(
        pk=membership.pk
    ).exists()


def membership_add(*, tenant: Tenant, user, role: str) -> Membership:
    """Make `user` a member at once (an operator, in admin; owners invite instead)."""
    role = _check_role(role)
    if tenant.state == Tenant.State.DELETING:
        raise ValidationError(f"Tenant {tenant.slug} is being deleted.")
    try:
        with transaction.atomic():
            membership = Membership.objects.create(tenant=tenant, user=user, role=role)
            _audit_member(membership, "member.add", {"role": role})
    except IntegrityError:
        raise ValidationError({"user": f"{user.get_username()} is already a member of {tenant.slug}."}) from None
    return membership


@transaction.atomic
def membership_set_role(*, membership: Membership, role: str) -> Membership:
    role = _check_role(role)
    if membership.role == Role.OWNER and role != Role.OWNER and _tenants_left_without_owner(
        tenant_ids=[membership.tenant_id], leaving={membership.pk}
    ):
        raise ValidationError({"role": "The last owner cannot be demoted; make someone else owner first."})
    before, membership.role = membership.role, role
    membership.save(update_fields=["role"])
    if not allows(role, Action.VIEW):
        _close_sockets(user_id=membership.user_id, tenant_id=membership.tenant_id)
    _audit_member(membership, "member.role_change", _changed({"role": before}, membership))
    return membership


@transaction.atomic
def membership_remove(*, membership: Membership) -> None:
    if _tenants_left_without_owner(tenant_ids=[membership.tenant_id], leaving={membership.pk}):
        raise ValidationError(
            {"user": "The last owner cannot be removed; make someone else owner, or delete the tenant."}
        )
    pk = membership.pk
    membership.delete()
    membership.pk = pk  # the entry names the membership that was removed
    _audit_member(membership, "member.remove", {"role": membership.role})
    _close_sockets(user_id=membership.user_id, tenant_id=membership.tenant_id)


def memberships_check_removal(*, memberships) -> None:
    """Refuse removing a set of memberships (an admin bulk delete, a user deletion) that leaves a tenant ownerless."""
    with transaction.atomic():
        rows = list(memberships.values_list("pk", "tenant_id"))
        slugs = _tenants_left_without_owner(tenant_ids={t for _, t in rows}, leaving={pk for pk, _ in rows})
    if slugs:
        raise ValidationError(
            f"This would leave {', '.join(slugs)} without an owner; make someone else owner first."
        )


@transaction.atomic
def memberships_remove(*, memberships) -> None:
    """Remove several memberships at once; each goes through `membership_remove` (and whatever it does)."""
    memberships_check_removal(memberships=memberships)
    for membership in memberships.select_related("tenant").order_by("pk"):
        membership_remove(membership=membership)


def invitation_sent_message(invitation: Invitation) -> str:
    """The one answer to "invite X", whoever X is."""
    return (f"Invitation sent to {invitation.email} as {invitation.role}; "
            f"the link is valid for {INVITATION_VALID_FOR.days} days.")


def _check_email(email: str) -> str:
    email = (email or "").strip().lower()
    if not email:
        raise ValidationError({"email": "This field is required."})
    try:
        validate_email(email)
    except ValidationError:
        raise ValidationError({"email": f"{email!r} is not a valid e-mail address."}) from None
    return email


def invitation_create(*, tenant: Tenant, email: str, role: str, invited_by) -> Invitation:
    """Invite an e-mail address to a tenant with a role, and mail the link.

    The outcome is the same whatever the address: no user is looked up here (not even to say "already a
    member"), so the answer, the work done and the mail sent do not tell whether an account exists. A
    new invitation to the same address replaces the pending one (its old link stops working).
    """
    email, role = _check_email(email), _check_role(role)
    with transaction.atomic():
        tenant.invitations.pending().filter(email=email).update(revoked_at=timezone.now())
        invitation, raw = Invitation.generate(tenant=tenant, email=email, role=role, invited_by=invited_by)
        transaction.on_commit(lambda: _invitation_send(invitation, raw), robust=True)  # a mail outage is logged
        audit_record(tenant=invitation.tenant, action="invitation.create", target=invitation, label=invitation.email,
                     changes={"email": invitation.email, "role": invitation.role})
    return invitation


def _invitation_send(invitation: Invitation, raw: str) -> None:
    link = settings.SITE_URL + reverse("invitation-accept", args=[raw])
    inviter = invitation.invited_by.username if invitation.invited_by else "An owner"
    send_mail(
        subject=f"Invitation to join {invitation.tenant.name} on relayweb",
        message=(
            f"{inviter} invited you to join the tenant {invitation.tenant.name} ({invitation.tenant.slug}) "
            f"as {invitation.role}.\n\nSign in and accept it here (valid for {INVITATION_VALID_FOR.days} days, "
            f"one use):\n{link}\n\nIf you did not expect this, ignore this message.\n"
        ),
        from_email=None,
        recipient_list=[invitation.email],
    )


def invitation_accept(*, invitation: Invitation | None, user) -> Membership:
    """Accept a pending invitation as `user`: it becomes a membership with the invited role, once.

    Someone already a member keeps the role they have (role changes are an owner's action).
    """
    with transaction.atomic():
        locked = Invitation.objects.select_for_update().filter(pk=getattr(invitation, "pk", None)).first()
        if locked is None or locked.state != "pending":
            state = locked.state if locked else "unknown"
            raise ValidationError({"token": INVITATION_UNUSABLE.get(state, INVITATION_UNUSABLE["unknown"])})
        if locked.tenant.state == Tenant.State.DELETING:
            raise ValidationError({"token": f"The tenant {locked.tenant.name} is being deleted."})
        membership, _ = Membership.objects.get_or_create(
            tenant=locked.tenant, user=user, defaults={"role": locked.role}
        )
        locked.accepted_at, locked.accepted_by = timezone.now(), user
        locked.save(update_fields=["accepted_at", "accepted_by"])
        audit_record(tenant=locked.tenant, action="invitation.accept", target=locked, label=locked.email,
                     changes={"role": locked.role})
    return membership


INVITATION_UNUSABLE = {
    "accepted": "This invitation has already been used.",
    "revoked": "This invitation was withdrawn; ask a tenant owner for a new one.",
    "expired": "This invitation has expired; ask a tenant owner for a new one.",
    "unknown": "This invitation link is not valid; check that you copied all of it.",
}


def invitation_revoke(*, invitation: Invitation) -> Invitation:
    """Withdraw a pending invitation: its link stops working."""
    if invitation.state != "pending":
        raise ValidationError(f"Only a pending invitation can be revoked; this one is {invitation.state}.")
    with transaction.atomic():
        Invitation.objects.filter(pk=invitation.pk, accepted_at=None).update(revoked_at=timezone.now())
        invitation.refresh_from_db()
        audit_record(tenant=invitation.tenant, action="invitation.revoke", target=invitation, label=invitation.email)
    return invitation


def invitations_for(*, user):
    """Pending invitations addressed to the user's account e-mail."""
    email = (getattr(user, "email", "") or "").strip().lower()
    if not email or not user.is_active:
        return Invitation.objects.none()
    return Invitation.objects.pending().filter(email=email).select_related("tenant", "invited_by")


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
