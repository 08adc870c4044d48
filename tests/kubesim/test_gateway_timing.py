"""Emissary's and Knative's clocks at the gateway: the 15 s route timeout (cold start included), Envoy's
empty 404 until a new route is programmed, the per-revision progress deadline, and Knative's probe user
agent answered by the queue-proxy without reaching the user container."""

from __future__ import annotations

import json
import time

import pytest
from kubernetes import client, config

from kubesim.__main__ import build_parser, config_from_args
from kubesim.config import SimConfig
from tests.kubesim.kn_helpers import KSVC, G, V, cond, get_rev, gw, kservice, wait_for, wait_ready


def _apis(st):
    api = config.new_client_from_config(config_file=st.kubeconfig_path)
    return client.CustomObjectsApi(api), client.CoreV1Api(api), client.AppsV1Api(api)


def _ns(core, name):
    core.create_namespace({"metadata": {"name": name}})
    return name


def _diag(st) -> dict:
    import urllib.request
    return json.loads(urllib.request.urlopen(st.admin_url + "/ambassador/v0/diag/?json=true", timeout=5).read())


def test_the_default_route_timeout_is_emissarys_15_s_and_knative_1x_timings():
    d = SimConfig()
    assert (d.route_timeout, d.progress_deadline, d.stable_window, d.scale_to_zero_grace) == (15.0, 600.0, 60.0, 30.0)
    assert d.activation_timeout_for() == 630.0 and d.activation_timeout_for(20.0) == 50.0
    cli = config_from_args(build_parser().parse_args([]))
    assert cli.route_timeout == 15.0 and cli.progress_deadline == 600.0 and cli.route_ready_delay == 1.0
    assert config_from_args(build_parser().parse_args(["--route-timeout", "0"])).route_timeout is None


@pytest.mark.parametrize("route_timeout, timeout_ms", [(2.5, 2500), (None, 0)])
def test_the_diag_reports_the_route_timeout_the_gateway_enforces(make_sim, route_timeout, timeout_ms):
    st = make_sim(route_timeout=route_timeout)
    custom, core, _ = _apis(st)
    ns = _ns(core, "diag-rt")
    custom.create_namespaced_custom_object(G, V, ns, KSVC, kservice("d", "kubesim/echo"))
    wait_ready(custom, ns, "d", timeout=8)
    mappings = [m for r in _diag(st)["route_info"] for m in r["_route"]["mappings"]]
    assert mappings and {m["timeout_ms"] for m in mappings} == {timeout_ms}


def test_the_route_timeout_covers_the_activators_wait_for_a_cold_start(make_sim):
    st = make_sim(route_timeout=1.0, activation_timeout=10.0, progress_deadline=10.0)
    custom, core, _ = _apis(st)
    ns = _ns(core, "cold-rt")
    custom.create_namespaced_custom_object(G, V, ns, KSVC, kservice("c", "kubesim/slow-start:2s"))
    wait_ready(custom, ns, "c", timeout=8)
    wait_for(lambda: get_rev(custom, ns, "c-00001")["status"].get("actualReplicas") == 0, 8)
    started = time.monotonic()
    status, headers, body = gw(st, f"c.{ns}.example.com")
    took = time.monotonic() - started
    assert (status, body, headers["server"]) == (504, b"upstream request timeout", "envoy")
    assert "x-envoy-upstream-service-time" not in headers
    assert 0.9 <= took < 1.8, took
    # the activator went on waking it: once a pod is ready, the next request is answered at once
    wait_for(lambda: get_rev(custom, ns, "c-00001")["status"].get("actualReplicas") == 1, 8)
    assert gw(st, f"c.{ns}.example.com")[0] == 200


def test_knatives_probe_user_agent_is_answered_by_the_queue_proxy_not_the_handler(sim, custom, ns):
    custom.create_namespaced_custom_object(G, V, ns, KSVC, kservice("fp", "kubesim/flaky:1"))
    wait_ready(custom, ns, "fp", timeout=8)
    wait_for(lambda: get_rev(custom, ns, "fp-00001")["status"].get("actualReplicas") == 0, 8)
    # held by the activator through the cold start, then answered by the pod's queue-proxy
    status, _, body = gw(sim, f"fp.{ns}.example.com", headers={"User-Agent": "Knative-Activator-Probe"})
    assert (status, body) == (400, b"unexpected probe header value: \n")
    assert gw(sim, f"fp.{ns}.example.com", headers={"User-Agent": "Knative-Activator-Probe",
                                                      "K-Network-Probe": "queue"})[::2] == (200, b"queue")
    assert gw(sim, f"fp.{ns}.example.com")[0] == 500  # the handler's first request: flaky:1 fails it


def test_a_new_route_answers_envoys_empty_404_until_envoy_is_programmed(make_sim):
    st = make_sim(route_ready_delay=1.5)
    custom, core, _ = _apis(st)
    ns = _ns(core, "late-rt")
    custom.create_namespaced_custom_object(G, V, ns, KSVC, kservice(
        "l", "kubesim/echo", template_annotations={"autoscaling.knative.dev/min-scale": "1"}))
    wait_ready(custom, ns, "l", timeout=8)
    ready_at = time.monotonic()
    status, headers, body = gw(st, f"l.{ns}.example.com")
    assert (status, body, headers["server"]) == (404, b"", "envoy") and "Content-Type" not in headers
    assert "x-envoy-upstream-service-time" not in headers  # Envoy's own reply, no upstream answered
    assert wait_for(lambda: gw(st, f"l.{ns}.example.com")[0] == 200, 5)
    assert gw(st, f"l.{ns}.example.com")[1]["x-envoy-upstream-service-time"].isdigit()
    assert time.monotonic() - ready_at >= 1.0
    # a new revision of a host Envoy already serves: no gap
    custom.patch_namespaced_custom_object(G, V, ns, KSVC, "l", {"spec": {"template": {"spec": {
        "containers": [{"image": "gcr.io/knative-samples/helloworld-go"}]}}}})
    wait_for(lambda: (get_rev(custom, ns, "l-00002") or {}).get("status", {}).get("actualReplicas") == 1, 8)
    codes = {gw(st, f"l.{ns}.example.com")[0] for _ in range(10)}
    assert codes == {200}


def test_a_revisions_progress_deadline_annotation_overrides_config_deployments(make_sim):
    st = make_sim(progress_deadline=600.0, activation_timeout=None)
    custom, core, apps = _apis(st)
    ns = _ns(core, "pd-rt")
    custom.create_namespaced_custom_object(G, V, ns, KSVC, kservice(
        "pd", "registry.example.com/team/pull-backoff:1",
        template_annotations={"serving.knative.dev/progress-deadline": "2s"}))
    dep = wait_for(lambda: next(iter(apps.list_namespaced_deployment(ns).items), None), 5)
    assert dep.spec.progress_deadline_seconds == 2
    rev = wait_for(lambda: (r := get_rev(custom, ns, "pd-00001")) and
                   cond(r, "ResourcesAvailable")[0] == "False" and r, 6)
    assert cond(rev, "ResourcesAvailable")[1] in ("ImagePullBackOff", "ErrImagePull")


@pytest.mark.parametrize("value, message", [
    ("soon", "invalid value: soon"), ("1500ms", "progress-deadline=1500ms is not at second precision"),
    ("-5s", "progress-deadline=-5s must be positive")])
def test_the_webhook_refuses_a_bad_progress_deadline_annotation(custom, ns, value, message):
    with pytest.raises(client.ApiException) as refused:
        custom.create_namespaced_custom_object(G, V, ns, KSVC, kservice(
            "bad", "kubesim/echo", template_annotations={"serving.knative.dev/progress-deadline": value}))
    assert refused.value.status == 400
    assert f"{message}: spec.template.metadata.annotations.serving.knative.dev/progress-deadline" in \
        json.loads(refused.value.body)["message"]
