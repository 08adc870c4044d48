"""In-memory runtime of revisions and pods: what kubelet and the deployment controller would do.

Store objects are the API view; these runtime objects are the "containers". A pod's lifecycle is
an asyncio task that writes the pod's status and its Kubernetes Events (Scheduled, Pulling,
Pulled, Created, Started, BackOff, Failed, Killing) as a real kubelet would, with the delays of
SimConfig. The gateway reads `RevisionRuntime.ready_pods` on its hot path, so that list is kept
current here and never rebuilt per request.
"""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import logging
import math
import re
import time
from collections import deque
from typing import TYPE_CHECKING, Any

from .handlers import Behaviour, Container, chatter, crash_line, image_digest, startup_line
from .knative_conditions import now_rfc3339
from .podlogs import STDERR, PodLogs

if TYPE_CHECKING:
    from .context import ServingContext

log = logging.getLogger("kubesim.knative.runtime")

NODE = "kubesim-node"
PODS, EVENTS, DEPLOYMENTS = "pods", "events", "deployments.apps"
QUEUE_IMAGE = "gcr.io/knative-releases/knative.dev/serving/cmd/queue@sha256:" + "0" * 64
_ip_counter = itertools.count(2)
_SAFE = "bcdfghjklmnpqrstvwxz2456789"


def safe_hash(data: str, n: int = 10) -> str:
    """A pod-template-hash-like string (k8s SafeEncodeString alphabet)."""
    h = int(hashlib.sha256(data.encode()).hexdigest(), 16)
    out = []
    for _ in range(n):
        h, r = divmod(h, len(_SAFE))
        out.append(_SAFE[r])
    return "".join(out)


class PodRuntime:
    __slots__ = ("namespace", "name", "uid", "rev", "container", "ready", "task", "restarts",
                 "terminated", "waiting_reason", "waiting_message", "ip", "started_at", "events",
                 "deleted", "logs", "chatter")

    def __init__(self, namespace: str, name: str, uid: str, rev: RevisionRuntime):
        self.namespace, self.name, self.uid, self.rev = namespace, name, uid, rev
        self.container = Container(rev.behaviour, name)
        self.ready = False
        self.task: asyncio.Task | None = None
        self.restarts = 0
        self.terminated: dict | None = None      # last termination (crash)
        self.waiting_reason = ""
        self.waiting_message = ""
        n = next(_ip_counter)
        self.ip = f"10.244.{n // 250}.{n % 250 + 2}"
        self.started_at = ""
        self.events: dict[tuple[str, str], str] = {}
        self.deleted = False
        self.logs = PodLogs()    # replaced by the Serving's registry entry in create_pod
        self.chatter: asyncio.Task | None = None   # the chatty image's log writer (handlers.chatter)


class RevisionRuntime:
    """The activator's and the autoscaler's view of one revision."""

    def __init__(self, namespace: str, name: str, rev: dict):
        self.namespace, self.name = namespace, name
        meta, spec = rev["metadata"], rev.get("spec") or {}
        self.uid = meta["uid"]
        c = (spec.get("containers") or [{}])[0]
        self.image = c.get("image", "")
        env = {e.get("name"): str(e.get("value", "")) for e in c.get("env") or []
               if isinstance(e, dict)}
        self.behaviour: Behaviour = _behaviour(self.image, env)
        self.timeout = float(spec.get("timeoutSeconds") or 300)
        self.container_concurrency = int(spec.get("containerConcurrency") or 0)
        ann = meta.get("annotations") or {}
        self.min_scale = _ann_int(ann, "autoscaling.knative.dev/min-scale",
                                  "autoscaling.knative.dev/minScale", 0)
        self.max_scale = _ann_int(ann, "autoscaling.knative.dev/max-scale",
                                  "autoscaling.knative.dev/maxScale", 0)
        try:
            self.target = float(ann.get("autoscaling.knative.dev/target", 0)) or 0.0
        except ValueError:
            self.target = 0.0
        if not self.target:
            self.target = float(self.container_concurrency or 100)
        # serving.knative.dev/progress-deadline (a Go duration, validated by the webhook) overrides
        # config-deployment's progress-deadline for this revision's Deployment and the KPA's activation
        # timeout (knative/serving knative-v1.23.0 pkg/reconciler/revision/resources/deploy.go
        # makeDeployment; pkg/reconciler/autoscaling/kpa/scaler.go, via PodAutoscaler.ProgressDeadline).
        self.progress_deadline: float | None = go_duration(ann.get("serving.knative.dev/progress-deadline"))
        self.digest = image_digest(self.image) if self.image else ""
        self.pods: dict[str, PodRuntime] = {}
        self.ready_pods: list[PodRuntime] = []
        self.rr = 0
        self.inflight = 0
        self.peak = 0
        self.peaks: deque[tuple[float, int]] = deque()
        self.last_request = time.monotonic()
        self.waiters = 0
        self.ready_event = asyncio.Event()
        self.state = "deploying"      # deploying | active | inactive | queued | timedout
        self.activations = 0
        self.activation_deadline = 0.0
        self.activation_timer: asyncio.TimerHandle | None = None
        self.ever_ready = False
        self.failed = False
        self.digest_resolved = False
        self.progress_start = time.monotonic()
        self.created = time.monotonic()
        self.routed = False
        self.replicas = 0

    def deadline(self, config: Any) -> float:
        """This revision's progress deadline in seconds (its annotation, else config-deployment's)."""
        return config.progress_deadline if self.progress_deadline is None else self.progress_deadline

    def desired_by_load(self, now: float, window: float) -> int:
        self.peaks.append((now, max(self.peak, self.inflight)))
        self.peak = self.inflight
        while self.peaks and self.peaks[0][0] < now - window:
            self.peaks.popleft()
        top = max((p for _, p in self.peaks), default=0)
        return math.ceil(top / self.target) if top else 0

    def pod_became_ready(self, pod: PodRuntime) -> None:
        pod.ready = True
        if pod not in self.ready_pods:
            self.ready_pods.append(pod)
        self.ever_ready = True
        self.ready_event.set()

    def pod_gone(self, pod: PodRuntime) -> None:
        pod.ready = False
        if pod in self.ready_pods:
            self.ready_pods.remove(pod)
        if not self.ready_pods:
            self.ready_event.clear()


_DURATION = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)")
_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}


def go_duration(text: str | None) -> float | None:
    """Seconds of a Go `time.ParseDuration` string such as `90s` or `1m30s`; None if absent or invalid."""
    if not text:
        return None
    text = str(text).strip()
    pos, total = 0, 0.0
    for m in _DURATION.finditer(text):
        if m.start() != pos:
            return None
        total += float(m.group(1)) * _UNITS[m.group(2)]
        pos = m.end()
    return total if pos == len(text) and pos else None


def _behaviour(image: str, env: dict[str, str]) -> Behaviour:
    from .handlers import behaviour_for
    return behaviour_for(image, env)


def _ann_int(ann: dict, k1: str, k2: str, default: int) -> int:
    for k in (k1, k2):
        if k in ann:
            try:
                return max(0, int(str(ann[k])))
            except ValueError:
                return default
    return default


# ---------------------------------------------------------------------------------- events

def emit_event(serving: ServingContext, pod: PodRuntime, reason: str, message: str,
               etype: str = "Normal", component: str = "kubelet", container: bool = True) -> None:
    """Create a core/v1 Event about a pod, or bump `count` of the same one (as kubelet aggregates)."""
    store = serving.store
    now = now_rfc3339()
    key = (reason, message)
    existing = pod.events.get(key)
    if existing:
        def bump(ev: dict) -> None:
            ev["count"] = int(ev.get("count") or 1) + 1
            ev["lastTimestamp"] = now
        if store.mutate(EVENTS, pod.namespace, existing, bump, ref=True) is not None:
            return
    name = f"{pod.name}.{time.time_ns():x}"
    involved: dict[str, Any] = {"apiVersion": "v1", "kind": "Pod", "name": pod.name,
                                "namespace": pod.namespace, "uid": pod.uid}
    if container:
        involved["fieldPath"] = "spec.containers{user-container}"
    ev = {"apiVersion": "v1", "kind": "Event",
          "metadata": {"name": name, "namespace": pod.namespace},
          "involvedObject": involved, "reason": reason, "message": message, "type": etype,
          "source": {"component": component} | ({"host": NODE} if component == "kubelet" else {}),
          "firstTimestamp": now, "lastTimestamp": now, "count": 1,
          "reportingComponent": component, "reportingInstance": NODE if component == "kubelet" else ""}
    try:
        store.create(EVENTS, ev, pod.namespace, ref=True)
        pod.events[key] = name
    except Exception:  # namespace terminating etc.: events are best effort, as in k8s
        log.debug("event %s for %s/%s dropped", reason, pod.namespace, pod.name)


# ------------------------------------------------------------------------------- pod status

def _container_status(pod: PodRuntime, image: str, state: dict, ready: bool,
                      started: bool) -> dict:
    cs: dict[str, Any] = {"name": "user-container", "image": image,
                          "imageID": pod.rev.digest if started or pod.restarts else "",
                          "ready": ready, "restartCount": pod.restarts, "started": started,
                          "state": state, "lastState": {}}
    if pod.terminated:
        cs["lastState"] = {"terminated": pod.terminated}
    if started:
        cs["containerID"] = user_container_id(pod)
    return cs


def user_container_id(pod: PodRuntime) -> str:
    """The CRI container ID of the user container's current run (a new one per restart)."""
    return "containerd://" + hashlib.sha256(f"{pod.uid}/{pod.restarts}".encode()).hexdigest()


def queue_container_id(pod: PodRuntime) -> str:
    return "containerd://" + hashlib.sha256(f"{pod.uid}/queue-proxy".encode()).hexdigest()


def _queue_status(pod: PodRuntime, running: bool, ready: bool) -> dict:
    state = {"running": {"startedAt": pod.started_at}} if running else \
        {"waiting": {"reason": "PodInitializing"}}
    cs = {"name": "queue-proxy", "image": QUEUE_IMAGE, "imageID": QUEUE_IMAGE if running else "",
          "ready": ready, "restartCount": 0, "started": running, "state": state, "lastState": {}}
    if running:
        cs["containerID"] = queue_container_id(pod)
    return cs


def write_pod_status(serving: ServingContext, pod: PodRuntime, phase: str, user_state: dict,
                     ready: bool, started: bool, scheduled: bool = True) -> None:
    now = now_rfc3339()
    image = pod.rev.image

    def fn(obj: dict) -> None:
        st = obj.setdefault("status", {})
        old = {c["type"]: c for c in st.get("conditions") or []}

        def cond(ctype: str, ok: bool, reason: str = "", message: str = "") -> dict:
            status = "True" if ok else "False"
            prev = old.get(ctype)
            c: dict[str, Any] = {"type": ctype, "status": status, "lastProbeTime": None,
                                 "lastTransitionTime": prev["lastTransitionTime"]
                                 if prev and prev["status"] == status else now}
            if not ok and reason:
                c["reason"], c["message"] = reason, message
            return c

        unready = "" if ready else \
            "containers with unready status: [user-container queue-proxy]" if not started \
            else "containers with unready status: [user-container]"
        conds = [cond("PodScheduled", scheduled)]
        if scheduled:
            conds[1:1] = [cond("Initialized", True)]
            conds += [cond("ContainersReady", ready, "ContainersNotReady", unready),
                      cond("Ready", ready, "ContainersNotReady", unready)]
        st["phase"] = phase
        st["conditions"] = conds
        if scheduled:
            st["hostIP"] = "10.0.0.1"
            st["hostIPs"] = [{"ip": "10.0.0.1"}]
            st["podIP"] = pod.ip
            st["podIPs"] = [{"ip": pod.ip}]
            st.setdefault("startTime", now)
            running_qp = started or bool(pod.restarts)
            st["containerStatuses"] = [_queue_status(pod, running_qp, running_qp),
                                       _container_status(pod, image, user_state, ready, started)]
            st["containerStatuses"].sort(key=lambda c: c["name"])
        st["qosClass"] = "Burstable"

    serving.store.mutate(PODS, pod.namespace, pod.name, fn, status=True, ref=True)


# ------------------------------------------------------------------------------ pod lifecycle

_ENV_SOURCES = (("secretKeyRef", "secrets", "secret", "Secret"),
                ("configMapKeyRef", "configmaps", "configmap", "ConfigMap"))


def env_error(serving: ServingContext, pod: PodRuntime) -> str:
    """Why the kubelet cannot build the user container's environment ("" when it can), with the kubelet's
    messages (kubernetes pkg/kubelet/kubelet_pods.go makeEnvironmentVariables; the secret and configmap
    managers' NotFound names the resource `secret`/`configmap`): a missing Secret is `secret "x" not
    found`, a missing key `couldn't find key K in Secret NS/NAME`; `optional: true` skips either.
    Secrets and ConfigMaps are read when the container starts, so a later change reaches new pods only."""
    obj = serving.store.peek(PODS, pod.namespace, pod.name)
    containers = ((obj or {}).get("spec") or {}).get("containers") or []
    user = next((c for c in containers if c.get("name") == "user-container"), containers[0] if containers else {})
    for src in user.get("envFrom") or []:
        for kind, key, noun in (("secretRef", "secrets", "secret"), ("configMapRef", "configmaps", "configmap")):
            ref = src.get(kind)
            if ref is not None and serving.store.peek(key, pod.namespace, ref.get("name", "")) is None \
                    and ref.get("optional") is not True:
                return f'{noun} "{ref.get("name", "")}" not found'
    for env in user.get("env") or []:
        source = env.get("valueFrom") or {}
        for kind, key, noun, title in _ENV_SOURCES:
            ref = source.get(kind)
            if ref is None:
                continue
            name, item = ref.get("name", ""), ref.get("key", "")
            found = serving.store.peek(key, pod.namespace, name)
            if ref.get("optional") is True:
                continue
            if found is None:
                return f'{noun} "{name}" not found'
            data = dict(found.get("data") or {}, **(found.get("binaryData") or {}))
            if item not in data:
                return f"couldn't find key {item} in {title} {pod.namespace}/{name}"
    return ""


async def run_pod(serving: ServingContext, pod: PodRuntime) -> None:
    """kubelet for one pod: schedule, pull, start, become ready (or fail the way the image says)."""
    cfg = serving.config
    b = pod.rev.behaviour
    image = pod.rev.image
    backoff = max(cfg.start_delay, 0.05) * 2
    emit_event(serving, pod, "Scheduled", f"Successfully assigned {pod.namespace}/{pod.name} "
               f"to {NODE}", component="default-scheduler", container=False)
    write_pod_status(serving, pod, "Pending", {"waiting": {"reason": "ContainerCreating"}},
                     False, False)
    attempt = 0
    while True:
        emit_event(serving, pod, "Pulling", f'Pulling image "{image}"')
        t0 = time.monotonic()
        await asyncio.sleep(cfg.image_pull_delay)
        if not b.pull_error:
            break
        pod.waiting_reason, pod.waiting_message = "ErrImagePull", b.pull_error
        emit_event(serving, pod, "Failed", f'Failed to pull image "{image}": {b.pull_error}',
                   "Warning")
        emit_event(serving, pod, "Failed", "Error: ErrImagePull", "Warning")
        write_pod_status(serving, pod, "Pending", {"waiting": {
            "reason": "ErrImagePull", "message": b.pull_error}}, False, False)
        await asyncio.sleep(backoff * 2 ** min(attempt, 4))
        msg = f'Back-off pulling image "{image}"'
        pod.waiting_reason, pod.waiting_message = "ImagePullBackOff", msg
        emit_event(serving, pod, "BackOff", msg)
        emit_event(serving, pod, "Failed", "Error: ImagePullBackOff", "Warning")
        write_pod_status(serving, pod, "Pending", {"waiting": {
            "reason": "ImagePullBackOff", "message": msg}}, False, False)
        serving.enqueue(("revision", pod.namespace, pod.rev.name))
        await asyncio.sleep(backoff * 2 ** min(attempt, 4))
        attempt += 1
    took = time.monotonic() - t0
    emit_event(serving, pod, "Pulled", f'Successfully pulled image "{image}" in {took:.3f}s '
               f"({took:.3f}s including waiting)")
    attempt = 0
    while error := env_error(serving, pod):
        # kubelet startContainer: generateContainerConfig fails -> Waiting CreateContainerConfigError with the
        # error as message and a Warning Failed "Error: <msg>" event; the pod sync retries with back-off
        # (pkg/kubelet/kuberuntime/kuberuntime_container.go startContainer, ErrCreateContainerConfig)
        pod.waiting_reason, pod.waiting_message = "CreateContainerConfigError", error
        emit_event(serving, pod, "Failed", f"Error: {error}", "Warning")
        write_pod_status(serving, pod, "Pending", {"waiting": {
            "reason": "CreateContainerConfigError", "message": error}}, False, False)
        serving.enqueue(("revision", pod.namespace, pod.rev.name))
        await asyncio.sleep(backoff * 2 ** min(attempt, 4))
        attempt += 1
    while True:
        emit_event(serving, pod, "Created", "Created container user-container")
        emit_event(serving, pod, "Started", "Started container user-container")
        pod.started_at = now_rfc3339()
        pod.waiting_reason = pod.waiting_message = ""
        # a new run: a new log (kubesim.podlogs); the handler prints its start-up line, then one line
        # per request (handlers.Container.respond)
        if pod.logs.find("queue-proxy", queue_container_id(pod)) is None:
            pod.logs.start("queue-proxy", queue_container_id(pod))
        run_log = pod.logs.start("user-container", user_container_id(pod))
        pod.container.log = run_log.write
        run_log.write(startup_line(b, image, pod.name))
        stop_chatter(pod)
        if b.log_rate > 0:
            # the chatty image prints `tick <n>` lines for as long as this run lasts (handlers.chatter)
            pod.chatter = asyncio.get_running_loop().create_task(chatter(run_log, b.log_rate))
        write_pod_status(serving, pod, "Running", {"running": {"startedAt": pod.started_at}},
                         False, True)
        await asyncio.sleep(cfg.start_delay + b.start_delay)
        if not b.crash:
            break
        # the last words, on stderr (as a Go runtime or a panicking process prints them), readable with
        # previous=true after the restart
        run_log.write(crash_line(b), STDERR)
        run_log.exit()
        stop_chatter(pod)
        finished = now_rfc3339()
        term = {"exitCode": b.crash_exit_code, "reason": b.crash_reason,
                **({"message": b.crash_message} if b.crash_message else {}),
                "startedAt": pod.started_at, "finishedAt": finished,
                "containerID": user_container_id(pod)}
        write_pod_status(serving, pod, "Running", {"terminated": term}, False, False)
        pod.terminated = term
        pod.restarts += 1
        msg = (f"back-off {int(10 * 2 ** min(pod.restarts - 1, 5))}s restarting failed "
               f"container=user-container pod={pod.name}_{pod.namespace}({pod.uid})")
        pod.waiting_reason, pod.waiting_message = "CrashLoopBackOff", msg
        emit_event(serving, pod, "BackOff", "Back-off restarting failed container user-container"
                   f" in pod {pod.name}_{pod.namespace}({pod.uid})", "Warning")
        write_pod_status(serving, pod, "Running", {"waiting": {
            "reason": "CrashLoopBackOff", "message": msg}}, False, False)
        serving.enqueue(("revision", pod.namespace, pod.rev.name))
        await asyncio.sleep(backoff * 2 ** min(pod.restarts - 1, 4))
    write_pod_status(serving, pod, "Running", {"running": {"startedAt": pod.started_at}},
                     True, True)
    pod.rev.pod_became_ready(pod)
    serving.enqueue(("deployment", pod.namespace, f"{pod.rev.name}-deployment"))
    serving.enqueue(("revision", pod.namespace, pod.rev.name))


def start_pod(serving: ServingContext, pod: PodRuntime) -> None:
    async def runner() -> None:
        try:
            await run_pod(serving, pod)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("pod %s/%s lifecycle failed", pod.namespace, pod.name)

    pod.task = asyncio.get_running_loop().create_task(runner())


def stop_chatter(pod: PodRuntime) -> None:
    """The container stopped: its log writer (chatty image) stops too."""
    if pod.chatter is not None:
        if not pod.chatter.done():
            pod.chatter.cancel()
        pod.chatter = None


def mark_pod_terminating(serving: ServingContext, ns: str, name: str) -> None:
    """A terminating pod's status: not ready (Ready and ContainersReady False, no container ready)."""
    now = now_rfc3339()
    unready = "containers with unready status: [queue-proxy user-container]"

    def fn(obj: dict) -> None:
        st = obj.setdefault("status", {})
        conds = []
        for c in st.get("conditions") or []:
            if c.get("type") in ("Ready", "ContainersReady") and c.get("status") != "False":
                c = dict(c, status="False", lastTransitionTime=now, reason="ContainersNotReady",
                         message=unready)
            conds.append(c)
        st["conditions"] = conds
        st["containerStatuses"] = [dict(c, ready=False) for c in st.get("containerStatuses") or []]

    serving.store.mutate(PODS, ns, name, fn, status=True, ref=True)


def stop_pod(serving: ServingContext, pod: PodRuntime, delete: bool = True) -> None:
    """Kill a pod: it stops serving at once, Killing is recorded, the object is deleted (gracefully:
    it stays, terminating and not ready, for `termination_grace`)."""
    if pod.deleted:
        return
    pod.deleted = True
    pod.logs.exit_all()    # its containers stop: follow streams drain and end
    stop_chatter(pod)
    pod.rev.pod_gone(pod)
    pod.rev.pods.pop(pod.name, None)
    serving.pods.pop((pod.namespace, pod.name), None)
    if pod.task and not pod.task.done():
        pod.task.cancel()
    if delete:
        emit_event(serving, pod, "Killing", "Stopping container user-container")
        try:
            serving.store.delete(PODS, pod.namespace, pod.name)
        except Exception:
            pass


# ------------------------------------------------------------------------------- deployments

def reconcile_deployment(serving: ServingContext, ns: str, name: str) -> None:
    """The ReplicaSet controller in one step: make the pod count match spec.replicas."""
    store = serving.store
    dep = store.peek(DEPLOYMENTS, ns, name)
    if dep is None:
        return
    rev_name = (dep["metadata"].get("labels") or {}).get("serving.knative.dev/revision")
    rev = serving.revisions.get((ns, rev_name or ""))
    if rev is None:
        return
    want = int(dep["spec"].get("replicas", 1) or 0)
    pods = [p for p in rev.pods.values() if not p.deleted]
    if len(pods) < want:
        tmpl = dep["spec"]["template"]
        h = safe_hash(repr(tmpl))
        for _ in range(want - len(pods)):
            create_pod(serving, dep, tmpl, h, rev)
    elif len(pods) > want:
        victims = sorted(pods, key=lambda p: (p.ready, p.name))[: len(pods) - want]
        for p in victims:
            stop_pod(serving, p)
    pods = [p for p in rev.pods.values() if not p.deleted]
    ready = sum(1 for p in pods if p.ready)
    now = now_rfc3339()
    timed_out = (want > 0 and ready == 0
                 and time.monotonic() - rev.progress_start > rev.deadline(serving.config))

    def fn(obj: dict) -> None:
        st = obj.setdefault("status", {})
        old = {c["type"]: c for c in st.get("conditions") or []}

        def cond(ctype: str, ok: bool, reason: str, message: str) -> dict:
            status = "True" if ok else "False"
            prev = old.get(ctype)
            same = prev and prev["status"] == status and prev.get("reason") == reason
            return {"type": ctype, "status": status,
                    "lastUpdateTime": prev["lastUpdateTime"] if same else now,
                    "lastTransitionTime": prev["lastTransitionTime"] if prev and prev["status"] ==
                    status else now, "reason": reason, "message": message}

        rs = f"{name}-{safe_hash(repr(obj['spec']['template']))}"
        avail = ready >= want or ready > 0
        st.update({"observedGeneration": obj["metadata"].get("generation", 1),
                   "replicas": len(pods), "updatedReplicas": len(pods),
                   "readyReplicas": ready, "availableReplicas": ready})
        if len(pods) - ready > 0:
            st["unavailableReplicas"] = len(pods) - ready
        else:
            st.pop("unavailableReplicas", None)
        for k in ("readyReplicas", "availableReplicas", "replicas", "updatedReplicas"):
            if not st[k]:
                del st[k]
        progressing = cond("Progressing", not timed_out,
                           "ProgressDeadlineExceeded" if timed_out else
                           "NewReplicaSetAvailable" if ready else "ReplicaSetUpdated",
                           f'ReplicaSet "{rs}" has timed out progressing.' if timed_out else
                           f'ReplicaSet "{rs}" has successfully progressed.' if ready else
                           f'ReplicaSet "{rs}" is progressing.')
        available = cond("Available", avail,
                         "MinimumReplicasAvailable" if avail else "MinimumReplicasUnavailable",
                         "Deployment has minimum availability." if avail else
                         "Deployment does not have minimum availability.")
        st["conditions"] = [available, progressing]

    store.mutate(DEPLOYMENTS, ns, name, fn, status=True, ref=True)


def create_pod(serving: ServingContext, dep: dict, tmpl: dict, h: str, rev: RevisionRuntime) -> None:
    meta = dep["metadata"]
    ns = meta["namespace"]
    pmeta = tmpl.get("metadata") or {}
    pod = {"apiVersion": "v1", "kind": "Pod",
           "metadata": {"generateName": f"{meta['name']}-{h}-", "namespace": ns,
                        "labels": dict(pmeta.get("labels") or {}, **{"pod-template-hash": h}),
                        "annotations": dict(pmeta.get("annotations") or {}),
                        "ownerReferences": [{"apiVersion": "apps/v1", "kind": "Deployment",
                                             "name": meta["name"], "uid": meta["uid"],
                                             "controller": True, "blockOwnerDeletion": True}]},
           "spec": dict(tmpl.get("spec") or {}, nodeName=NODE),
           "status": {"phase": "Pending", "qosClass": "Burstable"}}
    created = serving.store.create(PODS, pod, ns, ref=True)
    cmeta = created["metadata"]
    pr = PodRuntime(ns, cmeta["name"], cmeta["uid"], rev)
    pr.logs = serving.pod_logs.for_pod(pr.uid)
    rev.pods[pr.name] = pr
    serving.pods[(ns, pr.name)] = pr
    start_pod(serving, pr)
