"""`GET /api/v1/namespaces/{ns}/pods/{name}/log` through the official client and kubectl.

What the apiserver and kubelet answer is in ../shared/design/round2-facts.md section 1 ("facts §1.x"); the
simulated handlers print a start-up line, one line per request with its X-Relay-Delivery-Id, and their
last words before a crash (kubesim/README.md, "Pod logs").
"""

from __future__ import annotations

import re
import shutil
import subprocess
import threading
import time
import uuid
from datetime import UTC, datetime

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from tests.kubesim.conftest import FAST, api_client
from tests.kubesim.helpers import KSVC, G, V, raw, status_of, wait_for
from tests.kubesim.kn_helpers import gw, kservice

UC = "user-container"
TS = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z ")
KUBECTL = shutil.which("kubectl") or "/usr/bin/kubectl"


# ------------------------------------------------------------------------------------ helpers

def deploy(custom, core, ns: str, name: str = "echo", image: str = "registry.example/echo:1",
           ready: bool = True) -> str:
    """A ksvc kept at one pod (min-scale 1); returns the pod's name once it is running (and ready)."""
    custom.create_namespaced_custom_object(G, V, ns, KSVC, kservice(
        name, image, template_annotations={"autoscaling.knative.dev/min-scale": "1"}))

    def pod() -> str | None:
        pods = core.list_namespaced_pod(ns, label_selector=f"serving.knative.dev/service={name}").items
        live = [p for p in pods if not p.metadata.deletion_timestamp]
        if not live:
            return None
        p = live[0]
        if ready and not any(c.type == "Ready" and c.status == "True" for c in p.status.conditions or []):
            return None
        return p.metadata.name
    return wait_for(pod, timeout=10)


def hit(sim, ns: str, name: str = "echo", delivery: str | None = None, path: str = "/") -> int:
    headers = {"X-Relay-Delivery-Id": delivery} if delivery else {}
    return gw(sim, f"{name}.{ns}.example.com", path=path, method="POST", body=b"{}", headers=headers)[0]


def logs(core, ns: str, pod: str, **kw) -> str:
    kw.setdefault("container", UC)
    return core.read_namespaced_pod_log(pod, ns, **kw)


def log_error(core, ns: str, pod: str, **kw) -> tuple[int, dict]:
    with pytest.raises(ApiException) as e:
        core.read_namespaced_pod_log(pod, ns, **kw)
    return e.value.status, status_of(e.value)


def get_log(k8s, ns: str, pod: str, query: str) -> tuple[int, bytes | dict, dict]:
    """A request the typed method cannot make (sinceTime is not among its parameters)."""
    return raw(k8s, "GET", f"/api/v1/namespaces/{ns}/pods/{pod}/log?{query}")


# ------------------------------------------------------------------------------------ content

def test_startup_line_and_one_line_per_request_with_the_delivery_id(sim, core, custom, ns):
    pod = deploy(custom, core, ns)
    assert hit(sim, ns, delivery="dlv-123", path="/hook") == 200
    assert hit(sim, ns) == 200
    lines = logs(core, ns, pod).splitlines()
    assert lines[0] == f"kubesim handler echo started: image=registry.example/echo:1 pod={pod} listening on :8080"
    assert lines[1:] == ["POST /hook 200 X-Relay-Delivery-Id=dlv-123", "POST / 200 X-Relay-Delivery-Id=-"]


def test_text_plain_and_timestamps_prefix_each_line_rfc3339_nano_fixed(sim, core, custom, ns, k8s):
    pod = deploy(custom, core, ns)
    hit(sim, ns, delivery="d1")
    status, body, headers = get_log(k8s, ns, pod, f"container={UC}&timestamps=true")
    assert status == 200 and headers["Content-Type"].startswith("text/plain")
    lines = body.decode().splitlines()
    assert len(lines) == 2 and all(TS.match(line) for line in lines)
    assert lines[1].split(" ", 1)[1] == "POST / 200 X-Relay-Delivery-Id=d1"
    stamp = datetime.fromisoformat(lines[1].split(" ", 1)[0])
    assert abs((datetime.now(UTC) - stamp).total_seconds()) < 5
    assert not TS.match(logs(core, ns, pod, timestamps=False))


def test_tail_lines(sim, core, custom, ns):
    pod = deploy(custom, core, ns)
    for i in range(3):
        hit(sim, ns, delivery=f"d{i}")
    assert logs(core, ns, pod, tail_lines=2).splitlines() == [
        "POST / 200 X-Relay-Delivery-Id=d1", "POST / 200 X-Relay-Delivery-Id=d2"]
    assert logs(core, ns, pod, tail_lines=0) == ""
    assert len(logs(core, ns, pod, tail_lines=50).splitlines()) == 4


def test_limit_bytes_cuts_mid_line_and_counts_the_timestamp(sim, core, custom, ns):
    pod = deploy(custom, core, ns)
    hit(sim, ns, delivery="d1")
    full = logs(core, ns, pod)
    assert logs(core, ns, pod, limit_bytes=10) == full[:10]
    stamped = logs(core, ns, pod, limit_bytes=40, timestamps=True)
    assert len(stamped) == 40 and TS.match(stamped)


def test_since_seconds_skips_older_lines(sim, core, custom, ns):
    pod = deploy(custom, core, ns)
    hit(sim, ns, delivery="old")
    time.sleep(1.3)
    hit(sim, ns, delivery="new")
    assert logs(core, ns, pod, since_seconds=1).splitlines() == ["POST / 200 X-Relay-Delivery-Id=new"]
    assert len(logs(core, ns, pod, since_seconds=60).splitlines()) == 3


def test_since_time_has_seconds_precision(sim, core, custom, ns, k8s):
    pod = deploy(custom, core, ns)
    started = logs(core, ns, pod, timestamps=True)[:19]
    wait_for(lambda: datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S") > started, timeout=3)
    hit(sim, ns, delivery="d1")   # a second later than the start-up line
    last = logs(core, ns, pod, timestamps=True).splitlines()[-1]
    second = last[:19]   # 2006-01-02T15:04:05
    # a fraction after the line's own is dropped by the apiserver (time.RFC3339): the line is still sent
    status, body, _ = get_log(k8s, ns, pod, f"container={UC}&sinceTime={second}.999999Z")
    assert status == 200 and body.decode().splitlines() == ["POST / 200 X-Relay-Delivery-Id=d1"]
    future = datetime.fromtimestamp(time.time() + 3600, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert get_log(k8s, ns, pod, f"container={UC}&sinceTime={future}")[1] == b""
    status, body, _ = get_log(k8s, ns, pod, f"container={UC}&sinceTime=yesterday")
    assert status == 400 and body["reason"] == "BadRequest"


def test_container_must_be_named_when_the_pod_has_two(sim, core, custom, ns):
    pod = deploy(custom, core, ns)
    code, st = log_error(core, ns, pod)
    assert (code, st["reason"]) == (400, "BadRequest")
    assert st["message"] == f"a container name must be specified for pod {pod}, choose one of: " \
                            "[user-container queue-proxy]"
    code, st = log_error(core, ns, pod, container="nope")
    assert (code, st["message"]) == (400, f"container nope is not valid for pod {pod}")
    assert core.read_namespaced_pod_log(pod, ns, container="queue-proxy") == ""


def test_pod_not_found(core, ns):
    code, st = log_error(core, ns, "ghost", container=UC)
    assert (code, st["reason"], st["message"]) == (404, "NotFound", 'pods "ghost" not found')
    assert st["details"] == {"name": "ghost", "kind": "pods"}


@pytest.mark.parametrize("kw, message", [
    ({"tail_lines": -1}, "tailLines: Invalid value: -1: must be greater than or equal to 0"),
    ({"limit_bytes": 0}, "limitBytes: Invalid value: 0: must be greater than 0"),
    ({"since_seconds": 0}, "sinceSeconds: Invalid value: 0: must be greater than 0"),
])
def test_invalid_options_are_422(core, ns, kw, message):
    code, st = log_error(core, ns, "any-pod", container=UC, **kw)   # validated before the pod is read
    assert (code, st["reason"], st["message"]) == (422, "Invalid", f'PodLogOptions "any-pod" is invalid: {message}')
    assert st["details"]["kind"] == "PodLogOptions"


def test_since_time_and_since_seconds_together_are_422(k8s, ns):
    status, body, _ = get_log(k8s, ns, "p", "sinceSeconds=5&sinceTime=2025-01-01T00:00:00Z")
    assert (status, body["reason"]) == (422, "Invalid")
    assert body["message"] == 'PodLogOptions "p" is invalid: ' \
                              "Forbidden: at most one of `sinceTime` or `sinceSeconds` may be specified"


def test_previous_without_a_previous_run(sim, core, custom, ns):
    pod = deploy(custom, core, ns)
    code, st = log_error(core, ns, pod, container=UC, previous=True)
    assert (code, st["message"]) == (400, f'previous terminated container "{UC}" in pod "{pod}" not found')


def test_previous_reads_the_crashed_run_with_its_last_words(sim, core, custom, ns):
    pod = deploy(custom, core, ns, name="boom", image="registry.example/crash", ready=False)

    def crashed():
        st = core.read_namespaced_pod(pod, ns).status
        cs = {c.name: c for c in st.container_statuses or []}.get(UC)
        return cs and cs.last_state.terminated and cs.restart_count >= 1
    wait_for(crashed, timeout=10)
    prev = logs(core, ns, pod, previous=True).splitlines()
    assert prev == [f"kubesim handler echo started: image=registry.example/crash pod={pod} listening on :8080",
                    "kubesim: simulated crash, exit status 1"]


def test_pending_container_is_waiting_to_start(make_sim, tmp_path):
    st = make_sim(image_pull_delay=2, progress_deadline=30, activation_timeout=30)
    api = api_client(st)
    core, custom = client.CoreV1Api(api), client.CustomObjectsApi(api)
    ns = f"t-{uuid.uuid4().hex[:8]}"
    core.create_namespace({"metadata": {"name": ns}})
    pod = deploy(custom, core, ns, ready=False)
    wait_for(lambda: core.read_namespaced_pod(pod, ns).status.container_statuses, timeout=5)
    code, body = log_error(core, ns, pod, container=UC)
    assert (code, body["message"]) == (400, f'container "{UC}" in pod "{pod}" is waiting to start: '
                                            "ContainerCreating")
    api.close()


def test_image_pull_failure_is_waiting_to_start(sim, core, custom, ns):
    pod = deploy(custom, core, ns, image="registry.example/pull-backoff", ready=False)

    def pulling_failed():
        cs = {c.name: c for c in core.read_namespaced_pod(pod, ns).status.container_statuses or []}.get(UC)
        return cs and cs.state.waiting and cs.state.waiting.reason in ("ErrImagePull", "ImagePullBackOff")
    wait_for(pulling_failed, timeout=10)
    code, body = log_error(core, ns, pod, container=UC)
    prefix = f'container "{UC}" in pod "{pod}" is waiting to start: '
    assert code == 400 and body["message"] in (prefix + "image can't be pulled",
                                               prefix + "trying and failing to pull image")


def test_pod_not_scheduled_is_204_and_missing_status_400(core, ns, k8s):
    core.create_namespaced_pod(ns, {"metadata": {"name": "lone"},
                                    "spec": {"containers": [{"name": "app", "image": "busybox"}]}})
    status, body, _ = get_log(k8s, ns, "lone", "")     # the only container is the default
    assert (status, body) == (204, b"")
    core.create_namespaced_pod(ns, {"metadata": {"name": "placed"},
                                    "spec": {"nodeName": "kubesim-node",
                                             "containers": [{"name": "app", "image": "busybox"}]}})
    code, st = log_error(core, ns, "placed")
    assert (code, st["message"]) == (400, 'container "app" in pod "placed" is not available')


# ------------------------------------------------------------------------------------- stream

def _crashed_once(core, ns: str, pod: str) -> None:
    def crashed():
        st = core.read_namespaced_pod(pod, ns).status
        cs = {c.name: c for c in st.container_statuses or []}.get(UC)
        return cs and cs.last_state.terminated and cs.restart_count >= 1
    wait_for(crashed, timeout=10)


def test_stream_stdout_and_stderr_split_the_log_and_the_last_words_are_on_stderr(sim, core, custom, ns):
    # stream=All|Stdout|Stderr (feature gate PodLogsQuerySplitStreams, facts §1.1); a crash's last words go
    # to stderr, everything else to stdout
    pod = deploy(custom, core, ns, name="boom", image="registry.example/crash", ready=False)
    _crashed_once(core, ns, pod)
    started = f"kubesim handler echo started: image=registry.example/crash pod={pod} listening on :8080"
    last_words = "kubesim: simulated crash, exit status 1"
    assert logs(core, ns, pod, previous=True, stream="Stdout").splitlines() == [started]
    assert logs(core, ns, pod, previous=True, stream="Stderr").splitlines() == [last_words]
    assert logs(core, ns, pod, previous=True, stream="All").splitlines() == [started, last_words]
    assert logs(core, ns, pod, previous=True).splitlines() == [started, last_words]   # All is the default
    stamped = logs(core, ns, pod, previous=True, stream="Stderr", timestamps=True)
    assert TS.match(stamped) and stamped.endswith(" " + last_words + "\n")


def test_stream_of_a_running_handler_request_lines_are_stdout(sim, core, custom, ns):
    pod = deploy(custom, core, ns)
    hit(sim, ns, delivery="s-1")
    everything = logs(core, ns, pod)
    assert logs(core, ns, pod, stream="Stdout") == everything
    assert logs(core, ns, pod, stream="Stderr") == ""
    # limitBytes counts only the selected stream's bytes
    assert logs(core, ns, pod, stream="Stdout", limit_bytes=7) == everything[:7]
    # tailLines is fine with stream All
    assert logs(core, ns, pod, stream="All", tail_lines=1) == "POST / 200 X-Relay-Delivery-Id=s-1\n"


def test_follow_stderr_of_a_crashing_container_gets_only_the_last_words(make_sim):
    st = make_sim(start_delay=1.0, progress_deadline=30, activation_timeout=30)
    api = api_client(st)
    core, custom = client.CoreV1Api(api), client.CustomObjectsApi(api)
    ns = f"t-{uuid.uuid4().hex[:8]}"
    core.create_namespace({"metadata": {"name": ns}})
    pod = deploy(custom, core, ns, image="registry.example/crash", ready=False)

    def running():
        cs = {c.name: c for c in core.read_namespaced_pod(pod, ns).status.container_statuses or []}.get(UC)
        return cs and cs.state.running and cs.restart_count == 0
    wait_for(running, timeout=5)
    out: list[str] = []
    done = threading.Event()
    _follow(core, ns, pod, out, done, stream="Stderr")
    assert done.wait(5)
    assert "".join(out) == "kubesim: simulated crash, exit status 1\n"
    api.close()


@pytest.mark.parametrize("stream", ["Stdout", "Stderr"])
def test_tail_lines_with_a_specific_stream_is_422(core, ns, stream):
    code, st = log_error(core, ns, "any-pod", container=UC, stream=stream, tail_lines=5)
    assert (code, st["reason"]) == (422, "Invalid")
    assert st["message"] == 'PodLogOptions "any-pod" is invalid: ' \
                            "Forbidden: `tailLines` and specific `stream` are mutually exclusive for now"
    assert st["details"]["kind"] == "PodLogOptions"
    assert st["details"]["causes"] == [{"reason": "FieldValueForbidden", "field": "",
                                        "message": "Forbidden: `tailLines` and specific `stream` are "
                                                   "mutually exclusive for now"}]


def test_unknown_stream_is_422(core, ns, k8s):
    code, st = log_error(core, ns, "any-pod", container=UC, stream="stdout")   # values are case-sensitive
    assert (code, st["reason"]) == (422, "Invalid")
    assert st["message"] == 'PodLogOptions "any-pod" is invalid: stream: Unsupported value: "stdout": ' \
                            'supported values: "All", "Stderr", "Stdout"'
    assert st["details"]["causes"][0]["reason"] == "FieldValueNotSupported"
    assert st["details"]["causes"][0]["field"] == "stream"
    status, body, _ = get_log(k8s, ns, "any-pod", f"container={UC}&stream=")
    assert (status, body["reason"]) == (422, "Invalid") and 'Unsupported value: ""' in body["message"]


def test_stream_is_ignored_with_the_feature_gate_off(sim, core, custom, ns):
    pod = deploy(custom, core, ns, name="boom", image="registry.example/crash", ready=False)
    _crashed_once(core, ns, pod)
    sim.call(lambda: setattr(sim.sim.config, "pod_logs_split_streams", False))
    try:
        both = logs(core, ns, pod, previous=True)
        assert len(both.splitlines()) == 2
        assert logs(core, ns, pod, previous=True, stream="Stdout") == both
        assert logs(core, ns, pod, previous=True, stream="nonsense") == both       # not validated either
        assert logs(core, ns, pod, previous=True, stream="Stderr", tail_lines=1) == both.splitlines(True)[-1]
    finally:
        sim.call(lambda: setattr(sim.sim.config, "pod_logs_split_streams", True))


# ------------------------------------------------------------------------------------- chatty

def test_chatty_image_logs_n_distinct_lines_per_second_and_still_echoes(sim, core, custom, ns):
    rate = 20
    pod = deploy(custom, core, ns, name="chatty", image=f"kubesim/chatty:{rate}")

    def ticks() -> list[str]:
        return [line for line in logs(core, ns, pod, stream="Stdout").splitlines() if line.startswith("tick ")]
    before = ticks()
    t0 = time.monotonic()
    time.sleep(1.5)
    after = ticks()
    elapsed = time.monotonic() - t0
    new = after[len(before):]
    assert len(new) >= rate * 1.5 / 2, f"{len(new)} tick lines in {elapsed:.2f}s"
    assert len(new) <= rate * (elapsed + 1.5), f"{len(new)} tick lines in {elapsed:.2f}s"
    assert len(set(after)) == len(after)                               # each line distinct
    numbers = [int(line.split()[1]) for line in after]
    assert numbers == sorted(numbers) and numbers[0] >= 1
    assert logs(core, ns, pod).splitlines()[0] == \
        f"kubesim handler chatty started: image=kubesim/chatty:{rate} pod={pod} listening on :8080"
    assert hit(sim, ns, name="chatty", delivery="c-1") == 200
    assert "POST / 200 X-Relay-Delivery-Id=c-1" in logs(core, ns, pod)
    assert logs(core, ns, pod, stream="Stderr") == ""


def test_chatty_writer_stops_when_the_container_stops(make_sim):
    st = make_sim(**FAST)
    api = api_client(st)
    core, custom = client.CoreV1Api(api), client.CustomObjectsApi(api)
    ns = f"t-{uuid.uuid4().hex[:8]}"
    core.create_namespace({"metadata": {"name": ns}})
    pod = deploy(custom, core, ns, name="chatty", image="kubesim/chatty:200")
    serving = st.sim.serving
    runtime = st.call(lambda: serving.pods[(ns, pod)])
    task = st.call(lambda: [runtime.chatter])[0]     # (in a list: SimulatorThread.call awaits awaitables)
    assert task is not None and st.call(lambda: not task.done())
    out: list[str] = []
    done = threading.Event()
    _follow(core, ns, pod, out, done, tail_lines=0)
    wait_for(lambda: "tick " in "".join(out), timeout=5)
    core.delete_namespaced_pod(pod, ns)
    assert done.wait(5), "the follow stream did not end when the container stopped"
    wait_for(lambda: st.call(lambda: task.done()), timeout=2)
    assert st.call(lambda: runtime.chatter is None)
    api.close()


# ------------------------------------------------------------------------------------- follow

def _follow(core, ns: str, pod: str, out: list[str], done: threading.Event, **kw) -> threading.Thread:
    resp = core.read_namespaced_pod_log(pod, ns, container=UC, follow=True, _preload_content=False, **kw)

    def read() -> None:
        try:
            for chunk in resp.stream(64):
                out.append(chunk.decode())
        finally:
            done.set()
    t = threading.Thread(target=read, daemon=True)
    t.start()
    return t


def test_follow_streams_new_lines_and_ends_when_the_container_terminates(sim, core, custom, ns):
    pod = deploy(custom, core, ns)
    out: list[str] = []
    done = threading.Event()
    _follow(core, ns, pod, out, done, tail_lines=0)
    time.sleep(0.2)
    assert out == [] and not done.is_set()     # nothing yet, and the stream is open
    hit(sim, ns, delivery="live-1")
    wait_for(lambda: "X-Relay-Delivery-Id=live-1" in "".join(out), timeout=5)
    assert not done.is_set()
    core.delete_namespaced_pod(pod, ns)
    assert done.wait(5), "the follow stream did not end when the container stopped"
    assert "".join(out) == "POST / 200 X-Relay-Delivery-Id=live-1\n"


def test_follow_with_limit_bytes_ends_at_the_limit(sim, core, custom, ns):
    pod = deploy(custom, core, ns)
    out: list[str] = []
    done = threading.Event()
    _follow(core, ns, pod, out, done, limit_bytes=5)
    assert done.wait(5)
    assert "".join(out) == "kubes"


def test_follow_of_a_crashing_container_ends_at_the_crash(make_sim):
    st = make_sim(start_delay=1.0, progress_deadline=30, activation_timeout=30)
    api = api_client(st)
    core, custom = client.CoreV1Api(api), client.CustomObjectsApi(api)
    ns = f"t-{uuid.uuid4().hex[:8]}"
    core.create_namespace({"metadata": {"name": ns}})
    pod = deploy(custom, core, ns, image="registry.example/crash", ready=False)

    def running():
        cs = {c.name: c for c in core.read_namespaced_pod(pod, ns).status.container_statuses or []}.get(UC)
        return cs and cs.state.running and cs.restart_count == 0
    wait_for(running, timeout=5)
    out: list[str] = []
    done = threading.Event()
    _follow(core, ns, pod, out, done)
    assert done.wait(5)
    assert "".join(out).splitlines()[-1] == "kubesim: simulated crash, exit status 1"
    api.close()


# ---------------------------------------------------------------------------------- lifecycle

def test_logs_go_with_the_pod(sim, core, custom, ns):
    pod = deploy(custom, core, ns)
    core.delete_namespaced_pod(pod, ns, grace_period_seconds=0)
    wait_for(lambda: log_error(core, ns, pod, container=UC)[0] == 404, timeout=5)


def test_log_memory_is_a_ring_of_lines(make_sim):
    st = make_sim()
    st.call(lambda: setattr(st.sim.serving.pod_logs, "max_lines", 3))
    api = api_client(st)
    core, custom = client.CoreV1Api(api), client.CustomObjectsApi(api)
    ns = f"t-{uuid.uuid4().hex[:8]}"
    core.create_namespace({"metadata": {"name": ns}})
    pod = deploy(custom, core, ns)
    for i in range(5):
        hit(st, ns, delivery=f"d{i}")
    assert logs(core, ns, pod).splitlines() == [f"POST / 200 X-Relay-Delivery-Id=d{i}" for i in (2, 3, 4)]
    api.close()


def test_discovery_lists_pods_log_with_get(k8s):
    status, body, _ = raw(k8s, "GET", "/api/v1")
    doc = {r["name"]: r for r in body["resources"]}
    assert doc["pods/log"] == {"name": "pods/log", "singularName": "", "namespaced": True, "kind": "Pod",
                               "verbs": ["get"]}


def test_only_get(k8s, ns):
    status, body, _ = raw(k8s, "POST", f"/api/v1/namespaces/{ns}/pods/p/log", body=b"{}")
    assert (status, body["reason"]) == (405, "MethodNotAllowed")


# --------------------------------------------------------------------------------------- RBAC

def test_rbac_pods_log_is_its_own_resource(sim, core, custom, ns, k8s):
    pod = deploy(custom, core, ns)
    rule = ("", "pods/log", "get", ns)
    sim.call(lambda: sim.sim.config.denied.append(rule))
    try:
        code, st = log_error(core, ns, pod, container=UC)
        assert (code, st["reason"]) == (403, "Forbidden")
        assert st["message"] == f'pods "{pod}" is forbidden: User "{sim.sim.config.user}" cannot get resource ' \
                                f'"pods/log" in API group "" in the namespace "{ns}"'
        assert core.read_namespaced_pod(pod, ns).metadata.name == pod     # get pods is still allowed
        review = client.AuthorizationV1Api(k8s).create_self_subject_access_review(
            {"spec": {"resourceAttributes": {"verb": "get", "resource": "pods", "subresource": "log",
                                             "namespace": ns}}})
        assert review.status.allowed is False
    finally:
        sim.call(lambda: sim.sim.config.denied.remove(rule))
    assert logs(core, ns, pod).startswith("kubesim handler")


def test_a_denial_of_get_pods_does_not_cover_pods_log(sim, core, custom, ns):
    pod = deploy(custom, core, ns)
    rule = ("", "pods", "get", ns)
    sim.call(lambda: sim.sim.config.denied.append(rule))
    try:
        assert logs(core, ns, pod).startswith("kubesim handler")
    finally:
        sim.call(lambda: sim.sim.config.denied.remove(rule))


# ------------------------------------------------------------------------------------ kubectl

@pytest.mark.skipif(not shutil.which("kubectl") and not __import__("os").path.exists(KUBECTL),
                    reason="kubectl not installed")
def test_kubectl_logs_follow_ends_when_the_pod_goes(make_sim, tmp_path):
    st = make_sim(api_tls=True, **FAST)
    env = {"HOME": str(tmp_path), "PATH": "/usr/bin:/bin"}

    def kubectl(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([KUBECTL, "--kubeconfig", st.kubeconfig_path, *args], capture_output=True,
                              text=True, timeout=30, env=env)
    api = api_client(st)
    core, custom = client.CoreV1Api(api), client.CustomObjectsApi(api)
    ns = f"t-{uuid.uuid4().hex[:8]}"
    core.create_namespace({"metadata": {"name": ns}})
    pod = deploy(custom, core, ns)
    hit(st, ns, delivery="k-1")
    tail = kubectl("logs", "-n", ns, pod, "-c", UC, "--tail=1", "--timestamps")
    assert tail.returncode == 0, tail.stderr
    assert TS.match(tail.stdout) and tail.stdout.endswith(" POST / 200 X-Relay-Delivery-Id=k-1\n")
    proc = subprocess.Popen([KUBECTL, "--kubeconfig", st.kubeconfig_path, "logs", "-f", "-n", ns, pod],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        first = proc.stdout.readline()
        assert first.startswith("kubesim handler echo started")
        hit(st, ns, delivery="k-2")
        assert proc.stdout.readline() == "POST / 200 X-Relay-Delivery-Id=k-1\n"
        assert proc.stdout.readline() == "POST / 200 X-Relay-Delivery-Id=k-2\n"
        core.delete_namespaced_pod(pod, ns)
        assert proc.wait(10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    missing = kubectl("logs", "-n", ns, "ghost")
    assert missing.returncode != 0 and 'pods "ghost" not found' in missing.stderr
    api.close()
