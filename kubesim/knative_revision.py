"""The Revision reconciler (digest resolution, Deployment, status from pods) and the KPA's
`Active` condition, following knative-ambassador.md §2.2 and §6."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from .knative_conditions import Conditions
from .knative_controllers import REVISION, SERVICE_LABEL, child_name, owner_ref
from .knative_runtime import DEPLOYMENTS, QUEUE_IMAGE, RevisionRuntime
from .store import deep_copy

if TYPE_CHECKING:
    from .context import ServingContext

MSG_NO_TRAFFIC = "The target is not receiving traffic."
MSG_QUEUED = "Requests to the target are being buffered as resources are provisioned."
MSG_TIMED_OUT = "The target could not be activated."


def reconcile_revision(serving: ServingContext, ns: str, name: str) -> None:
    store = serving.store
    rev = store.peek(REVISION, ns, name)
    if rev is None or rev["metadata"].get("deletionTimestamp"):
        serving.drop_revision(ns, name)
        return
    rt = serving.revisions.get((ns, name))
    if rt is None or rt.uid != rev["metadata"]["uid"]:
        if rt is not None:
            serving.drop_revision(ns, name)
        rt = serving.revisions[(ns, name)] = RevisionRuntime(ns, name, rev)
        rt.routed = (ns, name) in serving.routed
    status = deep_copy(rev.get("status") or {})
    conds = Conditions(status, ("ContainerHealthy", "ResourcesAvailable"), info=("Active",))
    conds.initialize()
    now = time.monotonic()
    b = rt.behaviour
    if not rt.digest_resolved:
        wait = rt.created + serving.config.image_pull_delay - now
        if wait > 0:   # resolving the tag to a digest takes a registry round trip
            serving.enqueue_later(wait, ("revision", ns, name))
            _finish(serving, rev, status)
            return
        rt.digest_resolved = True
    if b.digest_error:
        rt.failed = True
        conds.mark_false("ContainerHealthy", "ContainerMissing",
                         f'Unable to fetch image "{rt.image}": {b.digest_error}')
        _finish(serving, rev, status)
        return
    status["containerStatuses"] = [{"imageDigest": rt.digest, "name": "user-container"}]
    dep_name = child_name(name, "-deployment")
    dep = store.peek(DEPLOYMENTS, ns, dep_name)
    if dep is None:
        initial = max(1, rt.min_scale)
        if rt.max_scale:
            initial = min(initial, rt.max_scale)
        store.create(DEPLOYMENTS, make_deployment(serving, rev, dep_name, initial), ns, ref=True)
        rt.replicas = initial
        rt.progress_start = now
        conds.mark_unknown("ResourcesAvailable", "Deploying")
        conds.mark_unknown("ContainerHealthy", "Deploying")
        # a brand-new revision is activating: knative/serving pkg/reconciler/autoscaling/kpa/kpa.go
        # computeActiveCondition marks the PodAutoscaler Activating "Queued" while fewer pods than the
        # active threshold are ready and it wants some (initial scale >= 1), and the revision's Active
        # condition follows the PA's (pkg/apis/serving/v1/revision_lifecycle.go PropagateAutoscalerStatus)
        conds.mark_unknown("Active", "Queued", MSG_QUEUED)
        status["desiredReplicas"] = initial
        status["actualReplicas"] = 0
        _finish(serving, rev, status)
        return
    want = int(dep["spec"].get("replicas") or 0)
    rt.replicas = want
    ready = len(rt.ready_pods)
    if ready > 0:
        conds.mark_true("ResourcesAvailable")
        conds.mark_true("ContainerHealthy")
        if rt.state in ("deploying", "queued", "timedout"):
            rt.state = "active"
            rt.last_request = now
            if rt.activation_timer:
                rt.activation_timer.cancel()
                rt.activation_timer = None
    elif want > 0:
        pods = [p for p in rt.pods.values() if not p.deleted]
        crashed = next((p for p in pods if p.terminated), None)
        if crashed:
            t = crashed.terminated or {}
            msg = t.get("message") or ("container exited with no error"
                                       if t.get("exitCode") == 0 else "")
            conds.mark_false("ContainerHealthy", f"ExitCode{t.get('exitCode', 1)}",
                             f"Container failed with: {msg}")
        deadline = rt.progress_start + rt.deadline(serving.config)
        if now >= deadline and not rt.ever_ready:
            # reconcile_resources.go reconcileDeployment: a timed-out deployment whose pod's container
            # is Waiting reports that reason and message
            waiting = next((p for p in pods if p.waiting_reason in
                            ("ImagePullBackOff", "ErrImagePull", "CreateContainerConfigError")), None)
            if waiting:
                conds.mark_false("ResourcesAvailable", waiting.waiting_reason,
                                 waiting.waiting_message)
            elif not crashed:
                conds.mark_false("ResourcesAvailable", "ProgressDeadlineExceeded",
                                 "Initial scale was never achieved")
            rt.failed = True
            serving.scale(rt, 0)
            want = 0
        elif now < deadline:
            serving.enqueue_later(deadline - now + 0.001, ("revision", ns, name))
    if rt.state == "queued":
        conds.mark_unknown("Active", "Queued", MSG_QUEUED)
    elif rt.state == "timedout":
        conds.mark_false("Active", "TimedOut", MSG_TIMED_OUT)
    elif rt.state == "inactive" or (rt.failed and want == 0):
        conds.mark_false("Active", "NoTraffic", MSG_NO_TRAFFIC)
    elif ready > 0:
        conds.mark_true("Active")
    else:  # pods wanted, none ready yet (kpa.go computeActiveCondition, see above)
        conds.mark_unknown("Active", "Queued", MSG_QUEUED)
    status["actualReplicas"] = ready
    status["desiredReplicas"] = want
    _finish(serving, rev, status)


def _finish(serving: ServingContext, rev: dict, status: dict) -> None:
    status["observedGeneration"] = rev["metadata"].get("generation", 1)
    m = rev["metadata"]
    serving.store.mutate(REVISION, m["namespace"], m["name"],
                         lambda o: o.__setitem__("status", status), status=True, ref=True)


def make_deployment(serving: ServingContext, rev: dict, dep_name: str, replicas: int) -> dict:
    """`<rev>-deployment` as Knative's revision reconciler builds it (makeLabels, makePodSpec)."""
    meta, spec = rev["metadata"], rev.get("spec") or {}
    name, uid = meta["name"], meta["uid"]
    labels = {k: v for k, v in (meta.get("labels") or {}).items()
              if k not in ("serving.knative.dev/route", "serving.knative.dev/routingState")}
    labels["serving.knative.dev/revision"] = name
    labels["serving.knative.dev/revisionUID"] = uid
    labels.setdefault("app", name)
    ann = {k: v for k, v in (meta.get("annotations") or {}).items()
           if not k.startswith("serving.knative.dev/creator")}
    user = deep_copy((spec.get("containers") or [{}])[0])
    user["name"] = user.get("name") or "user-container"
    probe = user.pop("readinessProbe", None)
    env = list(user.get("env") or [])
    rlabels = meta.get("labels") or {}
    env += [{"name": "PORT", "value": "8080"}, {"name": "K_REVISION", "value": name},
            {"name": "K_CONFIGURATION", "value": rlabels.get("serving.knative.dev/configuration",
                                                             "")},
            {"name": "K_SERVICE", "value": rlabels.get(SERVICE_LABEL, "")}]
    user["env"] = env
    user.setdefault("ports", [{"containerPort": 8080, "name": "user-port", "protocol": "TCP"}])
    user["terminationMessagePolicy"] = "FallbackToLogsOnError"
    user.setdefault("resources", {})
    timeout = int(spec.get("timeoutSeconds") or 300)
    rt = serving.revisions.get((meta["namespace"], name))
    deadline = rt.deadline(serving.config) if rt is not None else serving.config.progress_deadline
    queue = {"name": "queue-proxy", "image": QUEUE_IMAGE,
             "ports": [{"containerPort": 8022, "name": "http-queueadm", "protocol": "TCP"},
                       {"containerPort": 9090, "name": "http-autometric", "protocol": "TCP"},
                       {"containerPort": 9091, "name": "http-usermetric", "protocol": "TCP"},
                       {"containerPort": 8012, "name": "queue-port", "protocol": "TCP"}],
             "env": [{"name": "SERVING_NAMESPACE", "value": meta["namespace"]},
                     {"name": "SERVING_REVISION", "value": name},
                     {"name": "CONTAINER_CONCURRENCY",
                      "value": str(spec.get("containerConcurrency") or 0)},
                     {"name": "REVISION_TIMEOUT_SECONDS", "value": str(timeout)},
                     {"name": "USER_PORT", "value": "8080"}],
             "readinessProbe": {"httpGet": {"path": "/", "port": 8012, "httpHeaders": [
                 {"name": "K-Network-Probe", "value": "queue"}]}, "successThreshold": 1,
                 "periodSeconds": 1 if probe else 10},
             "resources": {"requests": {"cpu": "25m"}}}
    pod_spec = {k: deep_copy(v) for k, v in spec.items()
                if k not in ("containers", "containerConcurrency", "timeoutSeconds",
                             "idleTimeoutSeconds", "responseStartTimeoutSeconds")}
    pod_spec.update({"containers": [user, queue], "terminationGracePeriodSeconds": timeout,
                     "restartPolicy": "Always", "dnsPolicy": "ClusterFirst",
                     "schedulerName": "default-scheduler"})
    pod_spec.setdefault("enableServiceLinks", False)
    pod_spec.setdefault("serviceAccountName", "default")
    pod_ann = dict(ann, **{"kubectl.kubernetes.io/default-container": "user-container"})
    return {"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": dep_name, "namespace": meta["namespace"], "labels": labels,
                         "annotations": ann, "ownerReferences": [owner_ref(rev)]},
            "spec": {"replicas": replicas,
                     "selector": {"matchLabels": {"serving.knative.dev/revisionUID": uid}},
                     "progressDeadlineSeconds": max(1, int(deadline)),
                     "revisionHistoryLimit": 0,
                     "strategy": {"type": "RollingUpdate", "rollingUpdate": {
                         "maxSurge": "25%", "maxUnavailable": 0}},
                     "template": {"metadata": {"labels": dict(labels), "annotations": pod_ann},
                                  "spec": pod_spec}}}

