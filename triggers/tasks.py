"""Celery tasks: thin wrappers that fetch by id and call the cluster-side code.

Transient cluster errors retry with exponential backoff and jitter; permanent ones are recorded by
the code they come from. Tasks are acknowledged late, so a worker killed mid-task loses nothing.
"""

from __future__ import annotations

from celery import shared_task

from triggers.cluster import deploys, provisioning
from triggers.cluster.kube import KubeError
from triggers.deliveries import retries as deliveries

RETRY = {
    "autoretry_for": (KubeError,),
    "retry_backoff": 1,
    "retry_backoff_max": 60,
    "retry_jitter": True,
    "max_retries": 8,
    "acks_late": True,
}



@shared_task(bind=True, **RETRY)
def deployment_apply(self, deployment_id: int) -> str:
    try:
        return deploys.deployment_apply(deployment_id)
    except KubeError as e:
        if self.request.retries >= self.max_retries:
            deploys.deployment_error(deployment_id, e.message)
            return "error"
        raise


@shared_task(acks_late=True, ignore_result=True)
def deployments_poll() -> int:
    waiting = deploys.deployments_poll()
    if waiting:
        deploys.schedule_poll(again=True)
    else:
        deploys.release_poll()
    return waiting


@shared_task(acks_late=True, ignore_result=True)
def deployments_resume() -> int:
    return deploys.deployments_resume()


@shared_task(**RETRY)
def trigger_teardown(trigger_id: int) -> bool:
    return deploys.trigger_teardown(trigger_id)


@shared_task(bind=True, **RETRY)
def tenant_provision(self, tenant_id: int) -> str:
    try:
        return provisioning.tenant_provision(tenant_id)
    except KubeError as e:
        if self.request.retries >= self.max_retries:
            provisioning.tenant_provision_failed(tenant_id, e.message)
            return "failed"
        raise


@shared_task(bind=True, **RETRY)
def tenant_teardown(self, tenant_id: int) -> bool:
    delay = provisioning.tenant_teardown(tenant_id)
    if delay is None:
        return True
    tenant_teardown.apply_async((tenant_id,), countdown=delay)
    return False


@shared_task(acks_late=True)
def reconcile_all() -> str:
    return str(deploys.reconcile_all())


@shared_task(acks_late=True, ignore_result=True)
def delivery_deliver(delivery_id: str) -> str:
    """One attempt of an async delivery; it schedules its own retries (see triggers/deliveries/retries.py)."""
    return deliveries.delivery_deliver(delivery_id)


@shared_task(acks_late=True, ignore_result=True)
def deliveries_dispatch(delivery_ids: list[str]) -> int:
    """A batch of async deliveries the ingress has just stored: one delivery_deliver task each."""
    return deliveries.deliveries_dispatch(delivery_ids)


@shared_task(acks_late=True, ignore_result=True)
def deliveries_sweep() -> int:
    return deliveries.deliveries_sweep()


@shared_task(acks_late=True, ignore_result=True)
def deliveries_prune() -> int:
    return deliveries.deliveries_prune()


@shared_task(acks_late=True, ignore_result=True)
def audit_prune() -> int:
    from tenants.audit import audit_prune

    return audit_prune()
