"""Reading Knative's status: the code the deploy poll and the cluster watcher share.

Knative's own readiness rule decides (knative-ambassador.md §1.4): a ksvc is ready when
`status.observedGeneration == metadata.generation` and condition `Ready` is True, and failed when the
generations match and `Ready` is False.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.db import transaction
from django.utils import timezone

from triggers.models import Deployment, Trigger

from . import kube


def condition(obj: dict | None, kind: str) -> dict:
    for cond in ((obj or {}).get("status") or {}).get("conditions") or []:
        if cond.get("type") == kind:
            return cond
    return {}


def revision_ready_reason(cluster, namespace: str, name: str) -> tuple[str, str]:
    """A revision's own Ready reason and message (ExitCode1, ContainerMissing…), read from the API;
    ("", "") when it cannot be read. A crash's ExitCode<N> becomes what ended the container when the
    runtime says more than "Error" (OOMKilled: Knative's ExitCode137 "Container failed with: " does not)."""
    try:
        ready = condition(cluster.get_revision(namespace, name), "Ready")
        reason = ready.get("reason", "")
        if reason.startswith("ExitCode"):
            reason = crash_reason(reason, last_exits(cluster.list_revision_pods(namespace, name)))
    except kube.KubeError:
        return "", ""
    return reason, ready.get("message", "")


def last_exits(pods: list[dict]) -> set[str]:
    """The reasons the user containers of these pods terminated with (state or lastState .terminated)."""
    return {
        reason
        for pod in pods
        for c in (pod.get("status") or {}).get("containerStatuses") or []
        if c.get("name") == "user-container"
        for state in (c.get("state"), c.get("lastState"))
        if (reason := ((state or {}).get("terminated") or {}).get("reason"))
    }


def crash_reason(reason: str, exits: set[str]) -> str:
    """Knative's ExitCode<N>, or the runtime's own reason for it (OOMKilled) when it gives one."""
    telling = sorted(exits - {"", "Error", "Completed"})
    return telling[0] if reason.startswith("ExitCode") and telling else reason


@dataclass(frozen=True)
class Outcome:
    state: str  # "ready", "failed", "superseded" or "waiting"
    reason: str = ""
    message: str = ""


def outcome(ksvc: dict | None, generation: int | None, *, routes_only: bool = False) -> Outcome:
    """What Knative says about the apply that produced `generation`. A change of traffic alone (`routes_only`: a
    split, a rollback) is judged by RoutesReady: the Service's Ready is ConfigurationsReady and RoutesReady
    (knative/serving knative-v1.23.0 pkg/apis/serving/v1/service_lifecycle.go), and a rollback away from a
    failed latest revision leaves ConfigurationsReady False while the Route serves the chosen revision."""
    if ksvc is None:
        return Outcome("waiting", "NotFound", "The Knative Service does not exist.")
    current = (ksvc.get("metadata") or {}).get("generation")
    observed = (ksvc.get("status") or {}).get("observedGeneration")
    ready = condition(ksvc, "Ready")
    if generation is not None and current is not None and current > generation:
        return Outcome("superseded", "", f"The Knative Service changed since (generation {current}).")
    if generation is not None and (current is None or current < generation):
        return Outcome("waiting", "", "Knative has not seen this change yet.")  # an older event, still in flight
    if observed != current:
        return Outcome("waiting", ready.get("reason", ""), ready.get("message", ""))
    if routes_only:
        routes = condition(ksvc, "RoutesReady")
        state = {"True": "ready", "False": "failed"}.get(routes.get("status"), "waiting")
        return Outcome(state, routes.get("reason", ""), routes.get("message", ""))
    if ready.get("status") == "True":
        return Outcome("ready")
    if ready.get("status") == "False":
        # ConfigurationsReady carries the revision's own failure; Ready often shows the route's.
        config = condition(ksvc, "ConfigurationsReady")
        source = config if config.get("status") == "False" else ready
        return Outcome("failed", source.get("reason", ""), source.get("message", ""))
    return Outcome("waiting", ready.get("reason", ""), ready.get("message", ""))


OBSERVED_FIELDS = (
    "ready_status", "ready_reason", "ready_message", "url", "address_url", "latest_created_revision",
    "latest_ready_revision", "observed_generation", "generation",
)
TRAFFIC_KEYS = ("revisionName", "percent", "tag", "latestRevision", "url")  # of a status.traffic entry


def traffic_status(status: dict) -> list[dict]:
    """The Route's traffic as Knative reports it (ksvc status.traffic, knative/serving knative-v1.23.0
    pkg/apis/serving/v1/route_types.go TrafficTarget): who gets what share, under which tag and URL."""
    return [{key: target[key] for key in TRAFFIC_KEYS if key in target} for target in status.get("traffic") or []]


def observed_values(ksvc: dict | None) -> dict:
    if ksvc is None:
        return dict.fromkeys(OBSERVED_FIELDS, "") | {"observed_generation": None, "generation": None,
                                                     "traffic_status": []}
    status = ksvc.get("status") or {}
    ready = condition(ksvc, "Ready")
    return {
        "ready_status": ready.get("status", ""),
        "ready_reason": ready.get("reason", ""),
        "ready_message": ready.get("message", ""),
        "url": status.get("url", ""),
        "address_url": (status.get("address") or {}).get("url", ""),
        "latest_created_revision": status.get("latestCreatedRevisionName", ""),
        "latest_ready_revision": status.get("latestReadyRevisionName", ""),
        "observed_generation": status.get("observedGeneration"),
        "generation": (ksvc.get("metadata") or {}).get("generation"),
        "traffic_status": traffic_status(status),
    }


def observe_ksvc(
    trigger: Trigger, ksvc: dict | None, *, revision_reason=None, settled: list | None = None,
    waiting: bool | None = None,
) -> list[str]:
    """Write the trigger's observed state when it changed and settle its waiting deployments.

    `revision_reason(name) -> (reason, message)` looks up a failed revision's own condition (e.g.
    ContainerMissing, ImagePullBackOff, ExitCode1); it is only called for failures.
    `waiting=False` says the caller knows the trigger has no deployment waiting (a relist loads them all at
    once), so none is looked for. Returns the names of the trigger fields that changed (empty: nothing written).
    """
    values = observed_values(ksvc)
    changed = [name for name, value in values.items() if getattr(trigger, name) != value]
    with transaction.atomic():
        if changed:
            for name in changed:
                setattr(trigger, name, values[name])
            trigger.observed_at = timezone.now()
            updates = {name: values[name] for name in changed}
            Trigger.objects.filter(pk=trigger.pk).update(observed_at=trigger.observed_at, **updates)
        for deployment in () if waiting is False else trigger.deployments.filter(status=Deployment.Status.WAITING):
            if settle(deployment, ksvc, revision_reason=revision_reason) and settled is not None:
                settled.append(deployment)
    return changed


def settle(deployment: Deployment, ksvc: dict | None, *, revision_reason=None) -> bool:
    result = outcome(ksvc, deployment.generation, routes_only=deployment.kind == Deployment.Kind.TRAFFIC)
    if result.state == "waiting":
        return False
    status = (ksvc or {}).get("status") or {}
    if result.state == "ready":
        deployment.revision = status.get("latestReadyRevisionName", "")
        deployment.save(update_fields=["revision"])
        deployment.finish(Deployment.Status.READY)
    elif result.state == "failed":
        deployment.revision = status.get("latestCreatedRevisionName", "")
        deployment.save(update_fields=["revision"])
        reason, message = result.reason, result.message
        if revision_reason and deployment.revision:
            rev_reason, _ = revision_reason(deployment.revision)
            reason = rev_reason or reason
        deployment.finish(Deployment.Status.FAILED, reason=reason, message=message)
    else:
        deployment.finish(Deployment.Status.SUPERSEDED, message=result.message)
    return True
