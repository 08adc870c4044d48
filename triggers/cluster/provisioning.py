"""The cluster side of tenants: provision the namespace, tear everything down on deletion."""

from __future__ import annotations

from django.conf import settings
from django.db import transaction

from tenants.models import Tenant
from triggers.models import Trigger

from . import kube
from .deploys import _delete_in_cluster


def tenant_provision(tenant_id: int) -> str:
    """Namespace, default-deny NetworkPolicy and LimitRange; the tenant becomes ready or failed."""
    tenant = Tenant.objects.filter(pk=tenant_id).first()
    if tenant is None or tenant.state != Tenant.State.PROVISIONING:
        return tenant.state if tenant else "gone"
    cluster = kube.cluster()
    try:
        cluster.apply_namespace(kube.render_namespace(tenant))
        cluster.apply_network_policy(kube.render_network_policy(tenant))
        cluster.apply_limit_range(kube.render_limit_range(tenant))
    except kube.KubeError as e:
        if e.transient:
            raise
        _set_state(tenant, Tenant.State.FAILED, f"Provisioning namespace {tenant.namespace} failed: {e.message}")
        return tenant.state
    _set_state(tenant, Tenant.State.READY, "")
    return tenant.state


def tenant_provision_failed(tenant_id: int, message: str) -> None:
    tenant = Tenant.objects.filter(pk=tenant_id, state=Tenant.State.PROVISIONING).first()
    if tenant:
        _set_state(tenant, Tenant.State.FAILED, f"Could not reach the cluster: {message}")


def _set_state(tenant: Tenant, state: str, message: str) -> None:
    tenant.state, tenant.message = state, message
    Tenant.objects.filter(pk=tenant.pk).update(state=state, message=message)


def tenant_teardown(tenant_id: int) -> float | None:
    """One step of deleting a tenant: a batch of triggers, then the namespace, then the row.

    Returns None when finished, else the seconds to wait before the next step.
    """
    tenant = Tenant.objects.filter(pk=tenant_id).first()
    if tenant is None or tenant.state != Tenant.State.DELETING:
        return None
    cluster = kube.cluster()
    batch = list(Trigger.objects.filter(tenant=tenant).select_related("tenant")[: settings.RELAY_TEARDOWN_BATCH])
    if batch:
        for trigger in batch:
            with transaction.atomic():
                Trigger.objects.select_for_update().filter(pk=trigger.pk).update(deleting=True)
                _delete_in_cluster(cluster, trigger)
                trigger.delete()
        left = Trigger.objects.filter(tenant=tenant).count()
        _set_state(tenant, Tenant.State.DELETING, f"Deleting triggers: {left} left.")
        return 0
    namespace = cluster.get_namespace(tenant.namespace)
    if namespace is not None:
        if not namespace.metadata.deletion_timestamp:
            cluster.delete_namespace(tenant.namespace)
        _set_state(tenant, Tenant.State.DELETING, f"Waiting for namespace {tenant.namespace} to terminate.")
        return 1.0
    tenant.delete()
    return None
