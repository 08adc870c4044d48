"""The audit log: who changed what in a tenant, when, and from which address.

Services call `audit_record()` once, at the end of the change and inside its transaction, so an entry
exists exactly when the change was committed. The actor and source come from a request-scoped context:
`AuditMiddleware` puts the current request there (the user and API token are read when the entry is
written, after DRF has authenticated); without a request (Celery, beat, management commands) the actor
is "system". `audit_as()` sets the actor explicitly where there is no request.
"""

from __future__ import annotations

import contextlib
import contextvars
import ipaddress
from collections.abc import Iterator

from django.conf import settings
from django.utils import timezone

from relayweb.proxies import is_trusted_proxy

from .models import ApiToken, AuditEntry, Tenant

_request: contextvars.ContextVar = contextvars.ContextVar("audit_request", default=None)
_actor: contextvars.ContextVar = contextvars.ContextVar("audit_actor", default=None)
SYSTEM = "system"


class AuditMiddleware:
    """Make the current request the audit context for the services it calls."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        reset = _request.set(request)
        try:
            return self.get_response(request)
        finally:
            _request.reset(reset)


@contextlib.contextmanager
def audit_as(user=None, *, source: str | None = None) -> Iterator[None]:
    """Record changes made inside the block as `user` (None: "system") from `source`."""
    reset = _actor.set((user, source))
    try:
        yield
    finally:
        _actor.reset(reset)


def _valid_ip(value: str) -> str | None:
    try:
        return str(ipaddress.ip_address(value.strip()))
    except ValueError:
        return None


def client_address(request) -> str | None:
    """The client's address: the TCP peer, or, when the peer is a trusted proxy (RELAY_TRUSTED_PROXIES),
    the nearest X-Forwarded-For hop that is not itself a trusted proxy. A sender's own X-Forwarded-For is
    never believed from an untrusted peer."""
    peer = request.META.get("REMOTE_ADDR", "")
    if not is_trusted_proxy(peer):
        return _valid_ip(peer)
    hops = [hop.strip() for hop in request.META.get("HTTP_X_FORWARDED_FOR", "").split(",") if hop.strip()]
    for hop in reversed(hops):
        if not is_trusted_proxy(hop):
            return _valid_ip(hop) or _valid_ip(peer)
    return _valid_ip(hops[0]) if hops and _valid_ip(hops[0]) else _valid_ip(peer)


def _actor_and_source():
    explicit = _actor.get()
    if explicit is not None:
        return explicit[0], None, explicit[1]
    request = _request.get()
    if request is None:
        return None, None, None
    user = getattr(request, "user", None)
    token = getattr(request, "auth", None)  # DRF sets it on the Django request too
    user = user if getattr(user, "is_authenticated", False) else None
    return user, token if isinstance(token, ApiToken) else None, client_address(request)


def audit_record(*, tenant: Tenant | None, action: str, target, target_type: str | None = None,
                 label: str | None = None, changes: dict | None = None) -> AuditEntry:
    """Write one entry for `action` (e.g. "trigger.deploy") on `target` (a model instance)."""
    user, token, source = _actor_and_source()
    return AuditEntry.objects.create(
        tenant=tenant, tenant_slug=tenant.slug if tenant is not None else "",
        actor=user, actor_label=user.get_username() if user is not None else SYSTEM,
        token_name=token.name if token else "", token_prefix=token.prefix if token else "",
        action=action, target_type=target_type or target._meta.model_name,
        target_id=str(target.pk or ""), target_label=(label or str(target))[:200], source=source, changes=changes or {},
    )


def audit_prune() -> int:
    """Delete entries older than RELAY_AUDIT_RETENTION_DAYS (0: keep them all); returns how many."""
    days = settings.RELAY_AUDIT_RETENTION_DAYS
    if days <= 0:
        return 0
    cutoff = timezone.now() - timezone.timedelta(days=days)
    return AuditEntry.objects.filter(created_at__lt=cutoff).delete()[0]
