"""triggers' side of tenants.hooks: the cluster work and the live side tenants asks for without importing
triggers. Connected by TriggersConfig.ready()."""

from __future__ import annotations

from tenants import hooks
from triggers.live import broadcast

from .enqueue import enqueue_leased


def _provision(sender, *, tenant_id: int, **kwargs) -> None:
    enqueue_leased("tenant_provision", tenant_id)


def _teardown(sender, *, tenant_id: int, **kwargs) -> None:
    enqueue_leased("tenant_teardown", tenant_id)


def _access_revoked(sender, *, user_id: int | None = None, tenant_id: int | None = None,
                    session_key: str | None = None, **kwargs) -> None:
    broadcast.access_revoked(user_id=user_id, tenant_id=tenant_id, session_key=session_key)


def _overview(tenant) -> list:
    from triggers.pages.views import tenant_overview  # the pages load after the apps are ready

    return tenant_overview(tenant)


def connect() -> None:
    hooks.provision_requested.connect(_provision, dispatch_uid="triggers-tenant-provision")
    hooks.teardown_requested.connect(_teardown, dispatch_uid="triggers-tenant-teardown")
    hooks.access_revoked.connect(_access_revoked, dispatch_uid="triggers-access-revoked")
    hooks.set_overview(_overview)
