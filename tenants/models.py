"""Tenants (teams), their members and roles, and per-user API tokens."""

from __future__ import annotations

import hashlib
import secrets
from datetime import timedelta

from django.conf import settings
from django.core.validators import RegexValidator
from django.db import models
from django.utils import timezone

# A DNS-1123 label: the slug becomes part of the tenant's Kubernetes namespace name.
SLUG_MAX_LENGTH = 30
slug_validator = RegexValidator(
    r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$",
    "Use lowercase letters, digits and hyphens, starting and ending with a letter or digit "
    "(it becomes part of a Kubernetes namespace name).",
    code="invalid_slug",
)


class Role(models.TextChoices):
    OWNER = "owner", "Owner"
    EDITOR = "editor", "Editor"
    VIEWER = "viewer", "Viewer"


class Tenant(models.Model):
    class State(models.TextChoices):
        PROVISIONING = "provisioning", "Provisioning"
        READY = "ready", "Ready"
        DELETING = "deleting", "Deleting"
        FAILED = "failed", "Failed"

    slug = models.CharField(
        max_length=SLUG_MAX_LENGTH,
        unique=True,
        validators=[slug_validator],
        help_text="Short name used in URLs and in the Kubernetes namespace; cannot change later.",
    )
    name = models.CharField(max_length=100, help_text="Display name.")
    namespace = models.CharField(max_length=63, unique=True, editable=False)
    state = models.CharField(max_length=16, choices=State.choices, default=State.PROVISIONING)
    message = models.TextField(blank=True, default="")
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    members = models.ManyToManyField(
        settings.AUTH_USER_MODEL, through="Membership", related_name="tenants"
    )

    class Meta:
        ordering = ["slug"]

    def __str__(self) -> str:
        return self.slug

    def save(self, *args, **kwargs) -> None:
        # The namespace is fixed at creation: changing the prefix later must not move tenants.
        if not self.namespace:
            self.namespace = f"{settings.RELAY_NAMESPACE_PREFIX}{self.slug}"
        super().save(*args, **kwargs)


class Membership(models.Model):
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships"
    )
    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="memberships")
    role = models.CharField(max_length=10, choices=Role.choices, default=Role.VIEWER)
    created_at = models.DateTimeField(default=timezone.now, editable=False)

    class Meta:
        ordering = ["tenant__slug", "user__username"]
        constraints = [
            models.UniqueConstraint(fields=["user", "tenant"], name="one_membership_per_user"),
        ]

    def __str__(self) -> str:
        return f"{self.user} in {self.tenant} ({self.role})"


def _hash_token(raw: str) -> str:
    # Tokens carry 256 random bits, so a fast hash is enough: nothing to brute-force.
    return hashlib.sha256(raw.encode()).hexdigest()


class ApiTokenQuerySet(models.QuerySet):
    def for_raw(self, raw: str) -> ApiToken | None:
        return self.select_related("user").filter(digest=_hash_token(raw)).first()


class ApiToken(models.Model):
    """A personal API token: shown once at creation, stored only as a SHA-256 digest."""

    LAST_USED_RESOLUTION_SECONDS = 60

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_tokens"
    )
    name = models.CharField(max_length=100)
    prefix = models.CharField(max_length=16, editable=False, help_text="First characters, to tell tokens apart.")
    digest = models.CharField(max_length=64, unique=True, editable=False)
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    last_used_at = models.DateTimeField(null=True, blank=True, editable=False)

    objects = ApiTokenQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(fields=["user", "name"], name="token_name_unique_per_user"),
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…)"

    @classmethod
    def generate(cls, *, user, name: str) -> tuple[ApiToken, str]:
        raw = settings.RELAY_API_TOKEN_PREFIX + secrets.token_urlsafe(32)
        token = cls.objects.create(user=user, name=name, prefix=raw[:10], digest=_hash_token(raw))
        return token, raw

    def touch(self) -> None:
        """Record use, at most once a minute per token (no write on every request)."""
        now = timezone.now()
        last = self.last_used_at
        if last is None or (now - last).total_seconds() >= self.LAST_USED_RESOLUTION_SECONDS:
            ApiToken.objects.filter(pk=self.pk).update(last_used_at=now)
            self.last_used_at = now


INVITATION_VALID_FOR = timedelta(days=7)


class InvitationQuerySet(models.QuerySet):
    def pending(self):
        return self.filter(accepted_at=None, revoked_at=None, expires_at__gt=timezone.now())

    def for_raw(self, raw: str) -> Invitation | None:
        return self.select_related("tenant").filter(digest=_hash_token(raw or "")).first()


class Invitation(models.Model):
    """An invitation to join a tenant, sent by e-mail. The link's token is stored only as a SHA-256 digest."""

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="invitations")
    email = models.EmailField(help_text="Address the invitation was sent to (lowercase).")
    role = models.CharField(max_length=10, choices=Role.choices, default=Role.VIEWER)
    digest = models.CharField(max_length=64, unique=True, editable=False)
    invited_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    expires_at = models.DateTimeField(editable=False)
    accepted_at = models.DateTimeField(null=True, blank=True, editable=False)
    accepted_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    revoked_at = models.DateTimeField(null=True, blank=True, editable=False)

    objects = InvitationQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.email} to {self.tenant} ({self.role})"

    @classmethod
    def generate(cls, *, tenant: Tenant, email: str, role: str, invited_by) -> tuple[Invitation, str]:
        raw = secrets.token_urlsafe(32)
        now = timezone.now()
        invitation = cls.objects.create(
            tenant=tenant, email=email, role=role, invited_by=invited_by, digest=_hash_token(raw),
            created_at=now, expires_at=now + INVITATION_VALID_FOR,
        )
        return invitation, raw

    @property
    def state(self) -> str:
        if self.accepted_at:
            return "accepted"
        if self.revoked_at:
            return "revoked"
        return "expired" if self.expires_at <= timezone.now() else "pending"


class AuditEntry(models.Model):
    """One change of a tenant's state (or of a user's API tokens): who, what, on which object, from where.

    Written by tenants.audit.audit_record() inside the change's own transaction. Labels are copies, so an
    entry still reads after its actor, target or tenant is gone. `changes` holds field names and
    non-secret values only."""

    tenant = models.ForeignKey(Tenant, null=True, blank=True, on_delete=models.SET_NULL, related_name="audit_entries")
    tenant_slug = models.CharField(max_length=SLUG_MAX_LENGTH, blank=True, default="")
    actor = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                              related_name="+")
    actor_label = models.CharField(max_length=150, help_text='Username, or "system" for background work.')
    token_name = models.CharField(max_length=100, blank=True, default="", help_text="API token used, if any.")
    token_prefix = models.CharField(max_length=16, blank=True, default="")
    action = models.CharField(max_length=40, db_index=True)
    target_type = models.CharField(max_length=40)
    target_id = models.CharField(max_length=64, blank=True, default="")
    target_label = models.CharField(max_length=200, blank=True, default="")
    source = models.GenericIPAddressField(null=True, blank=True, help_text="Client address (the real peer).")
    changes = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(default=timezone.now, editable=False, db_index=True)

    class Meta:
        ordering = ["-created_at", "-pk"]
        indexes = [models.Index(fields=["tenant", "-created_at"], name="audit_tenant_time")]
        verbose_name_plural = "audit entries"

    def __str__(self) -> str:
        return f"{self.actor_label} {self.action} {self.target_type}:{self.target_label}"
