"""Celery tasks: thin wrappers that fetch by id and call the cluster-side code.

Transient cluster errors retry with exponential backoff and jitter; permanent ones are recorded by
the code they come from. Tasks are acknowledged late, so a worker killed mid-task loses nothing.

A task that was never queued (Redis was down when its change was committed) or was lost with Redis's data
is queued again by the periodic resume (`deployments_resume`, every 30 s): deployments stuck pending, and
tenant provisioning, tenant deletion and trigger deletion. Those three hold a lease in Redis while they
are queued or running (`triggers.enqueue.enqueue_leased`, renewed by every run for RELAY_STUCK_AFTER): the
resume queues work only when no run holds its lease, and a run whose lease another run took over stops, so a
tenant's teardown, which reschedules itself, runs as one chain.
"""

from __future__ import annotations

import logging
import uuid

import redis
from celery import shared_task

from triggers.cluster import deploys, provisioning
from triggers.cluster.kube import KubeError
from triggers.deliveries import candidates
from triggers.deliveries import retries as deliveries
from triggers.edge import sample_sender
from triggers.enqueue import lease_key, lease_redis, lease_seconds
from triggers.logs import retention as logs_retention

log = logging.getLogger(__name__)

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
    """Queue again what lost tasks left undone: stuck deployments, then leased work that no run holds."""
    return deploys.deployments_resume() + leased_resume()


_RENEW = """
local holder = redis.call('GET', KEYS[1])
if holder and holder ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[2])
return 1
"""


def _renew(task, pk: int, run: str | None) -> bool:
    """Renew the lease at the start of a run; False when another run holds it (this one was superseded)."""
    if not run:
        return True  # called as a function, not queued: no lease
    try:
        return bool(lease_redis().eval(_RENEW, 1, lease_key(task.name, pk), run or "", lease_seconds()))
    except redis.RedisError:
        return True  # no lease to compare with: do the (idempotent) work


def leased_resume() -> int:
    """Queue tenant provisioning, tenant deletion and trigger deletion whose lease no run holds; how many."""
    from tenants.models import Tenant

    from .models import Trigger

    work = [
        *((tenant_provision, pk) for pk in Tenant.objects.filter(state=Tenant.State.PROVISIONING).values_list(
            "pk", flat=True)),
        *((tenant_teardown, pk) for pk in Tenant.objects.filter(state=Tenant.State.DELETING).values_list(
            "pk", flat=True)),
        # a deleting tenant's teardown takes its triggers along
        *((trigger_teardown, pk) for pk in Trigger.objects.filter(deleting=True).exclude(
            tenant__state=Tenant.State.DELETING).values_list("pk", flat=True)),
    ]
    client, queued = lease_redis(), 0
    for task, pk in work:
        run = str(uuid.uuid4())
        if client.set(lease_key(task.name, pk), run, nx=True, ex=lease_seconds()):
            task.apply_async((pk,), task_id=run)
            queued += 1
    return queued


@shared_task(bind=True, **RETRY)
def trigger_teardown(self, trigger_id: int) -> bool:
    if not _renew(trigger_teardown, trigger_id, self.request.id):
        return False
    return deploys.trigger_teardown(trigger_id)


@shared_task(bind=True, **RETRY)
def tenant_provision(self, tenant_id: int) -> str:
    if not _renew(tenant_provision, tenant_id, self.request.id):
        return "superseded"
    try:
        return provisioning.tenant_provision(tenant_id)
    except KubeError as e:
        if self.request.retries >= self.max_retries:
            provisioning.tenant_provision_failed(tenant_id, e.message)
            return "failed"
        raise


@shared_task(bind=True, **RETRY)
def tenant_teardown(self, tenant_id: int, chain: str | None = None) -> bool:
    """One step; the next is queued with the chain's id (the first step's), which holds the lease."""
    chain = chain or self.request.id
    if not _renew(tenant_teardown, tenant_id, chain):
        return False  # another chain took over
    delay = provisioning.tenant_teardown(tenant_id)
    if delay is None:
        return True
    tenant_teardown.apply_async((tenant_id, chain), countdown=delay)
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
def candidate_replay_run(replay_id: str) -> str:
    """Send a candidate replay's deliveries to the trigger's `candidate` tag (triggers/deliveries/candidates.py);
    a run after a lost one sends only what has no answer yet."""
    return candidates.candidate_replay_run(replay_id)


@shared_task(ignore_result=True)
def trigger_test_webhook_send(trigger_id: int) -> int | None:
    """Send Send-test-webhook's signed sample through the public ingress (not acks_late: never sent twice)."""
    return sample_sender.trigger_test_webhook_send(trigger_id)


@shared_task(acks_late=True, ignore_result=True)
def deliveries_sweep() -> int:
    return deliveries.deliveries_sweep()


@shared_task(acks_late=True, ignore_result=True)
def deliveries_prune() -> int:
    return deliveries.deliveries_prune()


@shared_task(acks_late=True, ignore_result=True)
def logs_prune() -> int:
    return logs_retention.logs_prune()


@shared_task(acks_late=True, ignore_result=True)
def audit_prune() -> int:
    from tenants.audit import audit_prune

    return audit_prune()
