"""What tenants asks of the apps above it, without importing them (the tenants-below-triggers contract).

tenants only sends these; triggers connects to them in TriggersConfig.ready() (triggers/hooks.py), and
tests/test_architecture.py checks that every one has its listener.
"""

from __future__ import annotations

from collections.abc import Callable

from django.dispatch import Signal

provision_requested = Signal()  # tenant_id=: the tenant's namespace is wanted (created, or retried)
teardown_requested = Signal()  # tenant_id=: remove the tenant's triggers, then its namespace
access_revoked = Signal()  # user_id=, tenant_id=, session_key= (any of them): open websockets re-check access

_overview: Callable[[object], list] | None = None


def set_overview(provider: Callable[[object], list]) -> None:
    """Register what the tenant's overview page lists (its triggers)."""
    global _overview
    _overview = provider


def overview(tenant) -> list:
    return _overview(tenant) if _overview is not None else []
