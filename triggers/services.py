"""Trigger operations: create, change, deploy, suspend, delete. Views, the API and the admin call these.

Cluster work happens in Celery tasks (enqueued on commit) except secret values: those are written
straight to the tenant's Kubernetes Secret and never stored in the database, nor in the broker.
"""

from __future__ import annotations

import re

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone

from relayweb import hosts
from tenants.audit import audit_record
from tenants.models import Tenant
from triggers.cluster import deploys, kube
from triggers.cluster import traffic as traffic_rules
from triggers.deliveries import retries as deliveries
from triggers.security import crypto, signatures

from .enqueue import enqueue, enqueue_leased
from .models import Deployment, Trigger, name_validator
from .validation import (
    default_timeout,
    validate_env,
    validate_env_name,
    validate_image,
    validate_port,
    validate_scaling,
)

SPEC_FIELDS = ("image", "port", "env", "min_scale", "max_scale", "target_concurrency", "timeout_seconds")
# The webhook edge (ingress): not part of the Knative spec, so changing them never needs a deploy.
EDGE_FIELDS = ("mode", "verification", "hmac_header", "hmac_encoding", "hmac_prefix", "dedupe_header", "max_attempts")
_HTTP_TOKEN = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")  # RFC 9110 token: a valid header name
MAX_VERIFICATION_SECRET = 1024


def _check_tenant(tenant: Tenant) -> None:
    if tenant.state == Tenant.State.DELETING:
        raise ValidationError(f"Tenant {tenant.slug} is being deleted.")


def _validate_spec(trigger: Trigger, stored_timeout: int | None = None) -> None:
    validate_image(trigger.image)
    validate_port(trigger.port)
    trigger.env = validate_env(trigger.env, secret_names=set(trigger.secret_env))
    validate_scaling(min_scale=trigger.min_scale, max_scale=trigger.max_scale,
                     target_concurrency=trigger.target_concurrency, timeout_seconds=trigger.timeout_seconds,
                     gateway_limit=trigger.timeout_seconds != stored_timeout)


def _check_name(name: str) -> None:
    if not name:
        raise ValidationError({"name": "This field is required."})
    if len(name) > 40:
        raise ValidationError({"name": "At most 40 characters (the Knative Service name)."})
    try:
        name_validator(name)
    except ValidationError as e:
        raise ValidationError({"name": e.messages}) from None


def trigger_create(*, tenant: Tenant, user, name: str, secret_values: dict | None = None,
                   verification_secret: str | None = None, **spec) -> Trigger:
    _check_tenant(tenant)
    _check_name(name)
    edge = {field: spec.pop(field) for field in EDGE_FIELDS if field in spec}
    spec.setdefault("timeout_seconds", default_timeout())
    trigger = Trigger(tenant=tenant, name=name, created_by=user, spec_version=1, **spec)
    _validate_spec(trigger)
    _apply_edge(trigger, verification_secret, edge)
    with transaction.atomic():  # one unit: a refused secret leaves no trigger behind
        Tenant.objects.select_for_update().filter(pk=tenant.pk).first()  # serialise the quota check
        limit = settings.RELAY_MAX_TRIGGERS_PER_TENANT
        if tenant.triggers.live().count() >= limit:
            raise ValidationError(f"Tenant {tenant.slug} has reached its limit of {limit} triggers.")
        if tenant.triggers.filter(name=name).exists():
            raise ValidationError({"name": f"A trigger named {name!r} already exists in {tenant.slug}."})
        try:
            with transaction.atomic():
                trigger.save()
        except IntegrityError:
            raise ValidationError({"name": f"A trigger named {name!r} already exists in {tenant.slug}."}) from None
        if secret_values:
            trigger_set_secrets(trigger=trigger, values=secret_values)
        secret = ["verification_secret"] if verification_secret else []
        audit_record(tenant=tenant, action="trigger.create", target=trigger,
                     changes={"fields": sorted(["name", *spec, *edge, *secret])})
    return trigger


def _audit_changes(trigger: Trigger, action: str, before: dict, secret_given: bool = False) -> None:
    """One entry naming the fields that changed (values of secrets never appear)."""
    fields = sorted(name for name, old in before.items() if old != getattr(trigger, name))
    audit_record(tenant=trigger.tenant, action=action, target=trigger,
                 changes={"fields": fields + (["verification_secret"] if secret_given else [])})


def _fields(trigger: Trigger) -> dict:
    return {name: getattr(trigger, name) for name in (*SPEC_FIELDS, *EDGE_FIELDS, "suspended")}


@transaction.atomic
def trigger_update(*, trigger: Trigger, secret_values: dict | None = None,
                   verification_secret: str | None = None, **spec) -> Trigger:
    """Change the spec (a new spec version when anything changed); deploy applies it.

    Webhook edge settings (EDGE_FIELDS, verification_secret) take effect at once, without a deploy.
    Only the fields this edit changes are written, under a lock of the row: a concurrent token rotation,
    suspension, resume or deletion made since `trigger` was loaded is kept."""
    _check_tenant(trigger.tenant)
    if trigger.deleting:
        raise ValidationError("This trigger is being deleted.")
    original = {name: getattr(trigger, name) for name in _EDITABLE}
    edge = {field: spec.pop(field) for field in EDGE_FIELDS if field in spec}
    audited = _fields(trigger)
    _apply_edge(trigger, verification_secret, edge)
    unknown = set(spec) - set(SPEC_FIELDS) - {"suspended"}
    if unknown:
        raise ValidationError({name: "Unknown field." for name in sorted(unknown)})
    before = {name: getattr(trigger, name) for name in SPEC_FIELDS}
    for name, value in spec.items():
        setattr(trigger, name, value)
    _validate_spec(trigger, stored_timeout=before["timeout_seconds"])
    if secret_values:
        trigger_set_secrets(trigger=trigger, values=secret_values)
    changed = [name for name in _EDITABLE if getattr(trigger, name) != original[name]]
    with transaction.atomic():
        current = Trigger.objects.select_for_update().filter(pk=trigger.pk).values("spec_version", "deleting").first()
        if current is None or current["deleting"]:
            raise ValidationError("This trigger is being deleted.")
        trigger.spec_version = current["spec_version"]  # a concurrent edit or secret change counts too
        if any(before[name] != getattr(trigger, name) for name in SPEC_FIELDS):
            trigger.spec_version += 1
        trigger.save(update_fields=[*changed, "spec_version", "updated_at"])
        trigger.refresh_from_db(fields=_CONCURRENT)
        _audit_changes(trigger, "trigger.update", audited, secret_given=bool(verification_secret))
    return trigger


_EDITABLE = (*SPEC_FIELDS, *EDGE_FIELDS, "verification_secret", "suspended")
# Written by other operations meanwhile (rotation, suspension, deletion, secrets, deploys): read back.
_CONCURRENT = ("token", "previous_token", "previous_token_expires_at", "suspended", "deleting", "secret_env",
               "secret_version", "redeploy_stamp")


def edge_errors(values: dict, *, secret_set: bool) -> dict[str, str]:
    """{field: message} for webhook edge settings; `values` holds every EDGE_FIELDS entry.
    `secret_set`: a verification secret is stored already or given with these values."""
    errors: dict[str, str] = {}
    if values["mode"] not in Trigger.Mode.values:
        errors["mode"] = f"Unknown mode {values['mode']!r}: use sync or async."
    kind = values["verification"]
    if kind not in signatures.KINDS:
        errors["verification"] = f"Unknown verification {kind!r}: use one of {', '.join(signatures.KINDS)}."
    elif kind != "none" and not secret_set:
        errors["verification_secret"] = f"{kind} verification needs a secret: set verification_secret."
    if values["hmac_encoding"] not in signatures.HmacVerifier.ENCODINGS:
        errors["hmac_encoding"] = f"Unknown encoding {values['hmac_encoding']!r}: use hex or base64."
    for field, limit in (("hmac_header", 100), ("dedupe_header", 100)):
        value = values[field]
        if not isinstance(value, str) or len(value) > limit or (value and not _HTTP_TOKEN.fullmatch(value)):
            errors[field] = (f"'{str(value)[:limit]}' is not a valid HTTP header name (letters, digits and "
                             f"!#$%&'*+.^_`|~- only, at most {limit} characters).")
    if kind == "hmac" and not values["hmac_header"]:
        errors["hmac_header"] = "Generic HMAC verification needs the name of the signature header."
    prefix = values["hmac_prefix"]
    if not isinstance(prefix, str) or len(prefix) > 20 or not prefix.isprintable():
        errors["hmac_prefix"] = "At most 20 printable characters, e.g. sha256=."
    attempts = values["max_attempts"]
    if isinstance(attempts, bool) or not isinstance(attempts, int) or not 1 <= attempts <= 20:
        errors["max_attempts"] = "Must be a whole number from 1 to 20."
    return errors


def _apply_edge(trigger: Trigger, verification_secret: str | None, edge: dict) -> None:
    """Validate edge settings against the trigger's current ones and set them on the instance (unsaved)."""
    unknown = set(edge) - set(EDGE_FIELDS)
    if unknown:
        raise ValidationError({name: "Unknown field." for name in sorted(unknown)})
    if verification_secret is not None and not isinstance(verification_secret, str):
        raise ValidationError({"verification_secret": "Must be a string."})
    if verification_secret and len(verification_secret) > MAX_VERIFICATION_SECRET:
        raise ValidationError({"verification_secret": f"At most {MAX_VERIFICATION_SECRET} characters."})
    values = {field: edge.get(field, getattr(trigger, field)) for field in EDGE_FIELDS}
    errors = edge_errors(values, secret_set=bool(verification_secret or trigger.verification_secret))
    if errors:
        raise ValidationError(errors)
    for field, value in values.items():
        setattr(trigger, field, value)
    if verification_secret:
        trigger.verification_secret = crypto.encrypt(verification_secret)


def trigger_set_edge(*, trigger: Trigger, verification_secret: str | None = None, **edge) -> Trigger:
    """Change the webhook edge settings (mode, verification, dedupe, retries); they apply without a deploy.

    The secret is write-only: encrypted at rest, never returned. None or "" keeps the stored one."""
    audited = _fields(trigger)
    _apply_edge(trigger, verification_secret, edge)
    with transaction.atomic():
        trigger.save(update_fields=[*EDGE_FIELDS, "verification_secret", "updated_at"])
        _audit_changes(trigger, "trigger.update", audited, secret_given=bool(verification_secret))
    return trigger


def delivery_check_replayable(*, trigger: Trigger, delivery=None) -> None:
    """Refuse a replay that would reach a handler the ingress itself would not call."""
    if trigger.deleting:
        raise ValidationError("This trigger is being deleted.")
    if trigger.suspended:
        raise ValidationError(f"Trigger {trigger.name} is suspended; resume it before replaying deliveries.")
    if delivery is not None and delivery.state == "rejected":
        raise ValidationError("This delivery failed signature verification; a replay would bypass that check.")


def trigger_webhook_url(trigger: Trigger, token: str | None = None) -> str:
    """The public URL senders call: RELAY_HOOKS_URL/hooks/<token> (RELAY_HOOKS_URL defaults to SITE_URL)."""
    return f"{hosts.hooks_url()}/hooks/{token or trigger.token}"


def trigger_set_secrets(*, trigger: Trigger, values: dict[str, str | None]) -> Trigger:
    """Write secret env values to a new immutable Kubernetes Secret `<trigger>-env-<n>` (n: the spec version
    this change makes); None removes a variable.

    Nothing already in the cluster changes: the revision serving now keeps reading the Secrets it was
    made with (a removed key or a new value reaches only the next revision), and those Secrets go
    with the revisions that own them (`deploys.deployment_own_secrets`); one this change supersedes before
    any deploy read it (so no revision will ever own it) is deleted. Only the names, when each was
    set and its Secret's version are stored. Setting values needs the cluster: otherwise nothing
    changes and the error says so.
    """
    if not isinstance(values, dict):
        raise ValidationError({"secret_env": 'Expected {"NAME": "value", …} (null removes a variable).'})
    plain = {item["name"] for item in trigger.env}
    for name, value in values.items():
        validate_env_name(name, "secret_env")
        if name in plain:
            raise ValidationError({"secret_env": f"{name} is also a plain variable; use one or the other."})
        if value is not None and not isinstance(value, str):
            raise ValidationError({"secret_env": f"The value of {name} must be a string (or null to remove it)."})
    if trigger.tenant.state != Tenant.State.READY:
        raise ValidationError({"secret_env": "The tenant's namespace is not ready yet; set secrets once it is."})
    setting = {name: value for name, value in values.items() if value is not None}
    removing = tuple(name for name, value in values.items() if value is None and name in trigger.secret_env)
    version = trigger.spec_version + 1
    if setting:
        try:
            kube.cluster().create_secret(kube.render_secret(trigger, setting, version))
        except kube.KubeError as e:
            message = f"Could not store the secret values in the cluster: {e.message}"
            raise ValidationError({"secret_env": message}) from None
    now = timezone.now().isoformat()
    before = trigger.secret_env
    secret_env = {name: meta for name, meta in before.items() if name not in removing}
    secret_env.update({name: {"set_at": now, "version": version} for name in setting})
    trigger.secret_env, trigger.secret_version = secret_env, trigger.secret_version + 1
    trigger.spec_version += 1
    with transaction.atomic():
        # under the row's lock, which a deploy renders its manifest under: no deploy reads what is superseded
        stored = Trigger.objects.select_for_update().filter(pk=trigger.pk).values_list("secret_env", flat=True)
        superseded = deploys.secret_versions(before) | deploys.secret_versions(stored.first() or {})
        Trigger.objects.filter(pk=trigger.pk).update(
            secret_env=secret_env, secret_version=trigger.secret_version, spec_version=trigger.spec_version
        )
        audit_record(tenant=trigger.tenant, action="trigger.secrets_set", target=trigger,
                     changes={"set": sorted(setting), "removed": sorted(removing)})  # names only, never values
        # A Secret replaced before any deploy read it would never be owned by a revision: it goes now.
        unread = deploys.secrets_unread(trigger, superseded - deploys.secret_versions(secret_env))
        if unread:
            transaction.on_commit(lambda: deploys.secrets_delete(trigger.namespace, unread))
    return trigger


class ClusterUnavailable(Exception):
    """The cluster could not be read (unreachable, not configured): the API answers 503, the pages say so."""

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


def _check_deployable(trigger: Trigger) -> None:
    tenant = trigger.tenant
    if trigger.deleting:
        raise ValidationError("This trigger is being deleted.")
    if trigger.suspended:
        raise ValidationError(f"Trigger {trigger.name} is suspended; resume it before deploying.")
    if tenant.state != Tenant.State.READY:
        raise ValidationError(f"Tenant {tenant.slug} is {tenant.state}: its namespace must be ready before deploying.")
    limit = settings.RELAY_MAX_TRIGGERS_PER_TENANT
    rank = tenant.triggers.live().filter(created_at__lt=trigger.created_at).count()
    if rank >= limit:
        raise ValidationError(f"Tenant {tenant.slug} is over its limit of {limit} triggers; this one cannot deploy.")


def trigger_deploy(*, trigger: Trigger, user, redeploy: bool = False, candidate: bool = False) -> Deployment:
    """Record a Deployment of the current spec and apply it in the background (on commit).

    `candidate`: traffic stays where it is served now (pinned to the current latest ready revision, or the
    split already set) and the new latest revision gets 0 % under the tag `candidate`, reachable at its tag
    URL; a traffic change (trigger_set_traffic) promotes it."""
    _check_deployable(trigger)
    traffic = None
    if candidate:
        if not trigger.latest_ready_revision:
            raise ValidationError({"candidate": f"{trigger.name} has no ready revision yet to keep traffic on; "
                                                "deploy it normally first."})
        traffic = traffic_rules.candidate_targets(trigger.traffic, trigger.latest_ready_revision)
    action = "trigger.redeploy" if redeploy else "trigger.deploy"
    return _record_deployment(trigger, user, action, redeploy=redeploy, traffic=traffic,
                              changes={"candidate": True} if candidate else {})


def _record_deployment(trigger: Trigger, user, action: str, *, redeploy: bool = False, traffic: list | None = None,
                       changes: dict | None = None, kind: str = Deployment.Kind.DEPLOY) -> Deployment:
    """Supersede the active deployments, record a new one (with `traffic` saved first, when given) and
    enqueue its apply on commit; one audit entry."""
    with transaction.atomic():
        # The trigger row first, then its deployments: the order the worker's deployment_apply takes them
        # in (triggers/cluster/deploys.py), so a deploy during an apply waits instead of deadlocking.
        locked = Trigger.objects.select_for_update(of=("self",)).filter(pk=trigger.pk).values("deleting").first()
        if locked is None or locked["deleting"]:
            raise ValidationError("This trigger is being deleted.")
        if redeploy:
            trigger.redeploy_stamp = timezone.now().strftime("%Y%m%dT%H%M%S.%fZ")
            Trigger.objects.filter(pk=trigger.pk).update(redeploy_stamp=trigger.redeploy_stamp)
        if traffic is not None:
            trigger.traffic = traffic
            Trigger.objects.filter(pk=trigger.pk).update(traffic=traffic)
        _supersede_active(trigger, "A newer deployment was requested.")
        deployment = Deployment.objects.create(
            trigger=trigger, spec_version=trigger.spec_version, redeploy=redeploy, created_by=user, kind=kind
        )
        transaction.on_commit(lambda: enqueue("deployment_apply", deployment.pk))
        audit_record(tenant=trigger.tenant, action=action, target=trigger,
                     changes={"deployment": deployment.pk, "spec_version": deployment.spec_version,
                              **(changes or {})})
    return deployment


def _cluster_revisions(trigger: Trigger) -> list[dict]:
    try:
        return kube.cluster().list_revisions(trigger.namespace, trigger.name)
    except kube.KubeError as e:
        raise ClusterUnavailable(f"Cannot read the revisions of {trigger.name} from the cluster: {e.message}") from None


def trigger_revisions(trigger: Trigger) -> list[dict]:
    """The trigger's revisions that Knative still keeps (its config-gc decides which), newest first: name,
    created, spec version and image it came from, Ready status/reason/message, and its traffic percent,
    tags and tag URLs as last observed. Raises ClusterUnavailable when the cluster cannot be read."""
    return traffic_rules.revision_rows(
        _cluster_revisions(trigger), trigger.traffic_status, latest_created=trigger.latest_created_revision,
        latest_ready=trigger.latest_ready_revision, spec_version_key=kube.SPEC_VERSION)


def trigger_set_traffic(*, trigger: Trigger, targets: list[dict], user) -> Deployment:
    """Split traffic between the trigger's revisions (Knative's rules, round2-facts.md §2.2) and apply it
    through the deploy task. [] or [{"latest": true, "percent": 100}] follows the latest revision again.
    Errors name the field (`traffic[1].percent`); ClusterUnavailable when the revisions cannot be read."""
    _check_deployable(trigger)
    traffic = traffic_rules.validate_shape(targets)
    if any(t["revision"] for t in traffic):
        known = {r["metadata"]["name"] for r in _cluster_revisions(trigger)}
        traffic_rules.check_revisions(traffic, known, trigger.name)
    return _record_deployment(trigger, user, "trigger.traffic", traffic=traffic, changes={"traffic": traffic},
                              kind=Deployment.Kind.TRAFFIC)


def trigger_rollback(*, trigger: Trigger, revision: str, user) -> Deployment:
    """Send 100 % of traffic to `revision`, which must be Ready. Later deploys still make new revisions, but
    they get no traffic until trigger_set_traffic restores follow-latest."""
    _check_deployable(trigger)
    if not isinstance(revision, str) or not revision:
        raise ValidationError({"revision": "Name the revision to roll back to, e.g. hello-00001."})
    rows = {row["name"]: row for row in trigger_revisions(trigger)}
    row = rows.get(revision)
    if row is None:
        raise ValidationError({"revision": f'Revision "{revision}" is not a revision of {trigger.name} in the '
                                           f"cluster (it has: {', '.join(sorted(rows)) or 'none'})."})
    if row["ready"] != "True":
        why = f": {row['reason']}: {row['message']}" if row["reason"] else ""
        raise ValidationError({"revision": f'Revision "{revision}" is not Ready ({row["ready"]}{why}); only a '
                                           "ready revision can take the traffic."})
    traffic = [{"revision": revision, "latest": False, "percent": 100, "tag": ""}]
    return _record_deployment(trigger, user, "trigger.rollback", traffic=traffic, changes={"revision": revision},
                              kind=Deployment.Kind.TRAFFIC)


def _supersede_active(trigger: Trigger, message: str) -> None:
    for deployment in trigger.deployments.filter(status__in=Deployment.ACTIVE):
        deployment.finish(Deployment.Status.SUPERSEDED, message=message)


def trigger_suspend(*, trigger: Trigger) -> Trigger:
    """The webhook URL answers 410; deliveries still to be attempted are cancelled (resuming keeps them so)."""
    with transaction.atomic():
        trigger.suspended = True
        trigger.save(update_fields=["suspended", "updated_at"])
        deliveries.deliveries_cancel(trigger)
        audit_record(tenant=trigger.tenant, action="trigger.suspend", target=trigger)
    return trigger


@transaction.atomic
def trigger_resume(*, trigger: Trigger) -> Trigger:
    trigger.suspended = False
    trigger.save(update_fields=["suspended", "updated_at"])
    audit_record(tenant=trigger.tenant, action="trigger.resume", target=trigger)
    return trigger


def trigger_delete(*, trigger: Trigger) -> None:
    """Mark the trigger deleting; a task removes its ksvc and Secret, then the row."""
    with transaction.atomic():
        trigger.deleting = True
        trigger.save(update_fields=["deleting", "updated_at"])
        _supersede_active(trigger, "The trigger was deleted.")
        deliveries.deliveries_cancel(trigger)
        transaction.on_commit(lambda: enqueue_leased("trigger_teardown", trigger.pk))  # leased: see triggers/tasks.py
        audit_record(tenant=trigger.tenant, action="trigger.delete", target=trigger)
