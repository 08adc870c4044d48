"""Trigger operations: create, change, deploy, suspend, delete. Views, the API and the admin call these.

Cluster work happens in Celery tasks (enqueued on commit) except secret values: those are written
straight to the tenant's Kubernetes Secret and never stored in the database, nor in the broker.
"""

from __future__ import annotations

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone

from tenants.models import Tenant

from . import kube
from .models import Deployment, Trigger, name_validator
from .validation import validate_env, validate_env_name, validate_image, validate_port, validate_scaling

SPEC_FIELDS = ("image", "port", "env", "min_scale", "max_scale", "target_concurrency", "timeout_seconds")


def _check_tenant(tenant: Tenant) -> None:
    if tenant.state == Tenant.State.DELETING:
        raise ValidationError(f"Tenant {tenant.slug} is being deleted.")


def _validate_spec(trigger: Trigger) -> None:
    validate_image(trigger.image)
    validate_port(trigger.port)
    trigger.env = validate_env(trigger.env, secret_names=set(trigger.secret_env))
    validate_scaling(min_scale=trigger.min_scale, max_scale=trigger.max_scale,
                     target_concurrency=trigger.target_concurrency, timeout_seconds=trigger.timeout_seconds)


def _check_name(name: str) -> None:
    if not name:
        raise ValidationError({"name": "This field is required."})
    if len(name) > 40:
        raise ValidationError({"name": "At most 40 characters (the Knative Service name)."})
    try:
        name_validator(name)
    except ValidationError as e:
        raise ValidationError({"name": e.messages}) from None


def trigger_create(*, tenant: Tenant, user, name: str, secret_values: dict | None = None, **spec) -> Trigger:
    _check_tenant(tenant)
    _check_name(name)
    trigger = Trigger(tenant=tenant, name=name, created_by=user, spec_version=1, **spec)
    _validate_spec(trigger)
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
    return trigger


def trigger_update(*, trigger: Trigger, secret_values: dict | None = None, **spec) -> Trigger:
    """Change the spec (a new spec version when anything changed); deploy applies it."""
    _check_tenant(trigger.tenant)
    if trigger.deleting:
        raise ValidationError("This trigger is being deleted.")
    unknown = set(spec) - set(SPEC_FIELDS) - {"suspended"}
    if unknown:
        raise ValidationError({name: "Unknown field." for name in sorted(unknown)})
    before = {name: getattr(trigger, name) for name in SPEC_FIELDS}
    for name, value in spec.items():
        setattr(trigger, name, value)
    _validate_spec(trigger)
    if secret_values:
        trigger_set_secrets(trigger=trigger, values=secret_values)
    if any(before[name] != getattr(trigger, name) for name in SPEC_FIELDS):
        trigger.spec_version += 1
    trigger.save()
    return trigger


def trigger_set_secrets(*, trigger: Trigger, values: dict[str, str | None]) -> Trigger:
    """Write secret env values to the Kubernetes Secret `<trigger>-env`; None removes a variable.

    Only the names and when each was set are stored. The cluster must be reachable: otherwise
    nothing changes and the error says so.
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
    try:
        kube.cluster().apply_secret(kube.render_secret(trigger, setting), remove=removing)
    except kube.KubeError as e:
        message = f"Could not store the secret values in the cluster: {e.message}"
        raise ValidationError({"secret_env": message}) from None
    now = timezone.now().isoformat()
    secret_env = {name: meta for name, meta in trigger.secret_env.items() if name not in removing}
    secret_env.update({name: {"set_at": now} for name in setting})
    trigger.secret_env, trigger.secret_version = secret_env, trigger.secret_version + 1
    trigger.spec_version += 1
    Trigger.objects.filter(pk=trigger.pk).update(
        secret_env=secret_env, secret_version=trigger.secret_version, spec_version=trigger.spec_version
    )
    return trigger


def trigger_deploy(*, trigger: Trigger, user, redeploy: bool = False) -> Deployment:
    """Record a Deployment of the current spec and apply it in the background (on commit)."""
    from .tasks import deployment_apply

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
    with transaction.atomic():
        if redeploy:
            trigger.redeploy_stamp = timezone.now().strftime("%Y%m%dT%H%M%S.%fZ")
            Trigger.objects.filter(pk=trigger.pk).update(redeploy_stamp=trigger.redeploy_stamp)
        _supersede_active(trigger, "A newer deployment was requested.")
        deployment = Deployment.objects.create(
            trigger=trigger, spec_version=trigger.spec_version, redeploy=redeploy, created_by=user
        )
        transaction.on_commit(lambda: deployment_apply.delay(deployment.pk))
    return deployment


def _supersede_active(trigger: Trigger, message: str) -> None:
    for deployment in trigger.deployments.filter(status__in=Deployment.ACTIVE):
        deployment.finish(Deployment.Status.SUPERSEDED, message=message)


def trigger_suspend(*, trigger: Trigger) -> Trigger:
    trigger.suspended = True
    trigger.save(update_fields=["suspended", "updated_at"])
    return trigger


def trigger_resume(*, trigger: Trigger) -> Trigger:
    trigger.suspended = False
    trigger.save(update_fields=["suspended", "updated_at"])
    return trigger


def trigger_delete(*, trigger: Trigger) -> None:
    """Mark the trigger deleting; a task removes its ksvc and Secret, then the row."""
    from .tasks import trigger_teardown

    with transaction.atomic():
        trigger.deleting = True
        trigger.save(update_fields=["deleting", "updated_at"])
        _supersede_active(trigger, "The trigger was deleted.")
        transaction.on_commit(lambda: trigger_teardown.delay(trigger.pk))
