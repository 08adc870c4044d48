"""The cluster side of triggers: apply a deployment, watch it settle, tear down, reconcile.

Tasks call these with ids; each is idempotent, so a redelivered task (a worker killed mid-way, a
retry after a transient error) does no harm.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from dataclasses import dataclass, field

import redis
from django.conf import settings
from django.db import transaction
from django.db.models import JSONField, OuterRef, Subquery
from django.utils import timezone

from tenants.models import Tenant
from triggers.enqueue import enqueue
from triggers.live import broadcast
from triggers.models import Deployment, Trigger

from . import kube
from .status import observe_ksvc, revision_ready_reason

log = logging.getLogger(__name__)


def deployment_apply(deployment_id: int) -> str:
    """Apply one deployment's spec. Returns the deployment's status afterwards."""
    with transaction.atomic():  # claim it: visible as "applying", attempts counted even if we crash
        deployment = Deployment.objects.select_for_update().filter(pk=deployment_id).first()
        if deployment is None or deployment.status not in (Deployment.Status.PENDING, Deployment.Status.APPLYING):
            return deployment.status if deployment else "gone"
        deployment.status, deployment.attempts = Deployment.Status.APPLYING, deployment.attempts + 1
        deployment.save(update_fields=["status", "attempts"])
        broadcast.deployment(deployment, deployment.trigger.tenant_id)
    try:
        return _apply(deployment)
    except kube.KubeError as e:
        Deployment.objects.filter(pk=deployment.pk, status=Deployment.Status.APPLYING).update(
            message=f"Attempt {deployment.attempts} failed, retrying: {e.message}")
        raise


def _apply(deployment: Deployment) -> str:
    with transaction.atomic():
        # Lock the trigger: a concurrent teardown waits, so no ksvc is created after its deletion.
        trigger = Trigger.objects.select_for_update().select_related("tenant").filter(pk=deployment.trigger_id).first()
        deployment.refresh_from_db()
        if deployment.status != Deployment.Status.APPLYING:
            return deployment.status  # superseded meanwhile
        if trigger is None or trigger.deleting:
            deployment.finish(Deployment.Status.SUPERSEDED, message="The trigger was deleted.")
            return deployment.status
        manifest = kube.render_ksvc(trigger)
        try:
            live = kube.cluster().apply_ksvc(manifest, exists=trigger.generation is not None)
        except kube.KubeError as e:
            if e.transient:
                raise  # the task retries with backoff
            deployment.finish(Deployment.Status.FAILED, reason=e.reason or "Rejected", message=e.message)
            broadcast.deployment(deployment, trigger.tenant_id)
            broadcast.trigger_status(trigger)
            return deployment.status
        deployment.generation = live["metadata"]["generation"]
        deployment.manifest, deployment.applied_at = manifest, timezone.now()
        deployment.status, deployment.message = Deployment.Status.WAITING, ""
        deployment.save(update_fields=["generation", "manifest", "applied_at", "status", "message"])
        observe_ksvc(trigger, live)
        broadcast.deployment(deployment, trigger.tenant_id)
        broadcast.trigger_status(trigger)
        transaction.on_commit(schedule_poll)
    return deployment.status


def deployment_error(deployment_id: int, message: str) -> None:
    """Retries are exhausted: we could not talk to the cluster."""
    deployment = Deployment.objects.filter(pk=deployment_id, status__in=Deployment.ACTIVE).first()
    if deployment:
        deployment.finish(Deployment.Status.ERROR, reason="ClusterUnreachable", message=message)
        broadcast.deployment(deployment, deployment.trigger.tenant_id)
        broadcast.trigger_status(deployment.trigger)


POLL_KEY = "relayweb:deployments-poll"


def schedule_poll(*, again: bool = False) -> None:
    """At most one poll is scheduled at a time: many applies in a burst share it.

    `again` is the poll rescheduling itself; the key expires on its own if a scheduled poll is lost.
    """
    interval = settings.RELAY_DEPLOY_POLL_INTERVAL
    key_ttl_ms = int(interval * 3000) + 1000
    client = redis.Redis.from_url(settings.REDIS_URL)
    if not client.set(POLL_KEY, "1", nx=not again, px=key_ttl_ms):
        return
    enqueue("deployments_poll", countdown=interval, priority=0)


def release_poll() -> None:
    """The poll found nothing waiting: let the next apply schedule one at once."""
    redis.Redis.from_url(settings.REDIS_URL).delete(POLL_KEY)
    if Deployment.objects.filter(status=Deployment.Status.WAITING).exists():
        schedule_poll()  # one became waiting while we were finishing


def _revision_reason(cluster: kube.Cluster, namespace: str):
    return lambda name: revision_ready_reason(cluster, namespace, name)


def deployments_poll() -> int:
    """Settle waiting deployments: one list call per namespace that has any. Returns how many wait on."""
    waiting = Deployment.objects.filter(status=Deployment.Status.WAITING).select_related("trigger__tenant")
    by_namespace: dict[str, list[Deployment]] = defaultdict(list)
    for deployment in waiting:
        by_namespace[deployment.trigger.namespace].append(deployment)
    cluster = kube.cluster()
    try:
        # One call either way: the namespace, or the whole cluster when several are waiting.
        if len(by_namespace) == 1:
            (namespace,) = by_namespace
            items = cluster.list_ksvcs(namespace)
        else:
            items = cluster.list_all_ksvcs() if by_namespace else []
    except kube.KubeError as e:
        log.warning("deployments poll: cannot list Knative Services: %s", e.message)
        items = None
    live = {(o["metadata"]["namespace"], o["metadata"]["name"]): o for o in items or []}
    for namespace, deployments in by_namespace.items() if items is not None else ():
        for trigger in {d.trigger_id: d.trigger for d in deployments}.values():
            settled: list[Deployment] = []
            changed = observe_ksvc(trigger, live.get((namespace, trigger.name)),
                                   revision_reason=_revision_reason(cluster, namespace), settled=settled)
            for deployment in settled:
                broadcast.deployment(deployment, trigger.tenant_id)
                deployment_own_secrets(cluster, deployment)
            if changed or settled:
                broadcast.trigger_status(trigger)
    _time_out_waiting()
    return Deployment.objects.filter(status=Deployment.Status.WAITING).count()


def deployment_own_secrets(cluster: kube.Cluster, deployment: Deployment) -> int:
    """Make the revision a settled deployment produced an owner of the version Secrets it reads, so that
    Kubernetes' garbage collector deletes each Secret with the last revision that reads it — when Knative's
    own revision GC (config-gc) or the ksvc's deletion removes it — and never while a revision that could
    still start pods (the serving one, or one traffic could go back to) needs it. Returns how many."""
    trigger = deployment.trigger
    if not deployment.revision or not trigger.secret_env:
        return 0
    try:
        revision = cluster.get_revision(trigger.namespace, deployment.revision)
        if revision is None:
            return 0
        owner = kube.revision_owner(revision)
        return sum(cluster.add_secret_owner(trigger.namespace, name, owner)
                   for name in sorted(kube.revision_secrets(revision)) if kube.is_version_secret(trigger, name))
    except kube.KubeError as e:  # the Secret stays unowned: it goes with the trigger
        log.warning("secrets of revision %s/%s not owned: %s", trigger.namespace, deployment.revision, e.message)
        return 0


def secret_versions(secret_env: dict) -> set[int]:
    """The versions of the per-version Secrets that secret variables (`Trigger.secret_env`) are read from."""
    return {meta["version"] for meta in secret_env.values() if meta.get("version")}


def _applied_secrets(trigger: Trigger) -> set[str]:
    """Every Secret a manifest applied for the trigger reads: each revision Knative made for it came from
    one of these (deploys and reconcile apply only recorded manifests)."""
    names: set[str] = set()
    for manifest in trigger.deployments.filter(applied_at__isnull=False).values_list("manifest", flat=True):
        names |= kube.revision_secrets((manifest or {}).get("spec", {}).get("template", {}))
    return names


def secrets_unread(trigger: Trigger, versions: set[int]) -> list[str]:
    """The version Secrets among `versions` that no revision reads: no applied manifest names them, so no
    revision will ever own them (`deployment_own_secrets`) and nothing else deletes them before the
    trigger goes. Ask under the trigger's row lock: a deploy renders its manifest under it too."""
    names = {kube.secret_name(trigger, version) for version in versions} - _applied_secrets(trigger)
    return sorted(names)


def secrets_delete(namespace: str, names: list[str]) -> None:
    """Delete Secrets that no revision reads (superseded before a deploy read them); a failure is logged, and
    the Secret then goes with the trigger."""
    cluster = kube.cluster()
    for name in names:
        try:
            cluster.delete_secret(namespace, name)
        except kube.KubeError as e:
            log.warning("superseded secret %s/%s not deleted: %s", namespace, name, e.message)


def _time_out_waiting() -> None:
    deadline = timezone.now() - timezone.timedelta(seconds=settings.RELAY_DEPLOY_TIMEOUT)
    for deployment in Deployment.objects.filter(status=Deployment.Status.WAITING, applied_at__lt=deadline):
        trigger = deployment.trigger
        last = f" Last status: {trigger.ready_reason}: {trigger.ready_message}" if trigger.ready_reason else ""
        deployment.finish(
            Deployment.Status.FAILED, reason="Timeout",
            message=f"Knative did not report ready within {settings.RELAY_DEPLOY_TIMEOUT} s "
                    f"(RELAY_DEPLOY_TIMEOUT).{last}",
        )
        broadcast.deployment(deployment, trigger.tenant_id)
        broadcast.trigger_status(trigger)


def deployments_resume() -> int:
    """Re-enqueue deployments stuck before the cluster answered (their task was lost)."""
    stuck_before = timezone.now() - timezone.timedelta(seconds=settings.RELAY_STUCK_AFTER)
    stuck = list(
        Deployment.objects.filter(
            status__in=(Deployment.Status.PENDING, Deployment.Status.APPLYING), created_at__lt=stuck_before
        ).values_list("pk", flat=True)
    )
    for pk in stuck:
        enqueue("deployment_apply", pk)
    if Deployment.objects.filter(status=Deployment.Status.WAITING).exists():
        schedule_poll()
    return len(stuck)


def trigger_teardown(trigger_id: int) -> bool:
    """Delete a deleting trigger's ksvc and Secret, then its row. True when done."""
    with transaction.atomic():
        trigger = Trigger.objects.select_for_update().select_related("tenant").filter(pk=trigger_id).first()
        if trigger is None:
            return True
        if not trigger.deleting:
            return False
        _delete_in_cluster(kube.cluster(), trigger)
        trigger.delete()
    return True


def _delete_in_cluster(cluster: kube.Cluster, trigger: Trigger) -> None:
    cluster.delete_ksvc(trigger.namespace, trigger.name)  # its revisions take the Secrets they own along
    # and what no revision may own: the Secrets of the current variables and of every applied manifest (a
    # deploy that never settled, or whose revision was not made an owner), and the one Secret
    # `<trigger>-env` of values set before Secrets were per version
    current = {kube.secret_name(trigger, version) for version in secret_versions(trigger.secret_env)}
    for name in sorted({kube.secret_name(trigger, None)} | current | _applied_secrets(trigger)):
        cluster.delete_secret(trigger.namespace, name)


@dataclass
class ReconcileReport:
    namespaces: int = 0
    checked: int = 0
    created: int = 0
    updated: int = 0
    deleted: int = 0
    relabelled: int = 0
    errors: list[str] = field(default_factory=list)

    def __str__(self) -> str:
        text = (f"{self.namespaces} namespaces, {self.checked} triggers checked: {self.created} re-created, "
                f"{self.updated} re-applied (drift), {self.deleted} orphans deleted")
        text += f", {self.relabelled} namespaces re-labelled" if self.relabelled else ""
        return text + (f"; {len(self.errors)} errors: " + "; ".join(self.errors) if self.errors else "")


def reconcile_namespace_labels(tenants: list[Tenant], cluster: kube.Cluster, report: ReconcileReport) -> None:
    """Put back the labels a tenant's namespace is provisioned with where they are missing or changed: its
    Pod Security admission levels among them, so a namespace provisioned before relayweb set those gets them.
    One list call for all tenants; a patch only where labels differ."""
    live = {ns.metadata.name: ns.metadata.labels or {} for ns in cluster.list_namespaces(kube.MANAGED_SELECTOR)}
    for tenant in tenants:
        want = kube.render_namespace(tenant)["metadata"]["labels"]
        have = live.get(tenant.namespace, {})  # not listed: gone, or its managed-by label removed
        if all(have.get(key) == value for key, value in want.items()):
            continue
        try:
            cluster.label_namespace(tenant.namespace, want)
            report.relabelled += 1
        except kube.KubeError as e:
            report.errors.append(f"{tenant.namespace}: {e.message}")


def reconcile_tenant(tenant: Tenant, cluster: kube.Cluster, report: ReconcileReport) -> None:
    """One list call for the namespace; then only the writes that are needed."""
    live = {obj["metadata"]["name"]: obj for obj in cluster.list_ksvcs(tenant.namespace)}
    report.namespaces += 1
    last_applied = Deployment.objects.filter(trigger=OuterRef("pk"), applied_at__isnull=False).order_by("-applied_at")
    triggers = tenant.triggers.live().annotate(
        manifest=Subquery(last_applied.values("manifest")[:1], output_field=JSONField())
    ).filter(manifest__isnull=False)
    expected = {t.name: t.manifest for t in triggers}
    wanted = set(tenant.triggers.values_list("name", flat=True))  # incl. deleting: the teardown owns those
    for name, manifest in expected.items():
        report.checked += 1
        obj = live.get(name)
        want = manifest["metadata"]["annotations"][kube.SPEC_HASH]
        if obj is None:
            cluster.apply_ksvc(manifest, exists=False)
            report.created += 1
        elif kube.fingerprint(obj) != want or obj["metadata"].get("annotations", {}).get(kube.SPEC_HASH) != want:
            cluster.apply_ksvc(manifest, exists=True)
            report.updated += 1
    for name in set(live) - wanted:
        cluster.delete_ksvc(tenant.namespace, name)
        cluster.delete_secret(tenant.namespace, f"{name}-env")
        report.deleted += 1


def reconcile_all() -> ReconcileReport:
    report = ReconcileReport()
    cluster = kube.cluster()
    tenants = list(Tenant.objects.filter(state=Tenant.State.READY))
    try:
        reconcile_namespace_labels(tenants, cluster, report)
    except kube.KubeError as e:
        report.errors.append(f"tenant namespaces: {e.message}")
    for tenant in tenants:
        try:
            reconcile_tenant(tenant, cluster, report)
        except kube.KubeError as e:
            report.errors.append(f"{tenant.namespace}: {e.message}")
    return report
