"""Failure modes with the reference's reasons and messages: missing image, pull back-off,
crash loop, and a broken update that keeps the old revision serving."""

from __future__ import annotations

import json

from tests.kubesim.kn_helpers import (
    KSVC,
    G,
    V,
    cond,
    get_ksvc,
    get_rev,
    gw,
    kservice,
    wait_for,
    wait_ready,
)


def _settled_false(custom, ns, name):
    def check():
        o = get_ksvc(custom, ns, name)
        if o.get("status", {}).get("observedGeneration") == o["metadata"]["generation"] and \
                cond(o)[0] == "False" and cond(o, "ConfigurationsReady")[0] == "False":
            return o
        return None
    return wait_for(check, 5)


def test_missing_image_is_container_missing(custom, ns):
    image = "docker.io/acme/pull-fail:latest"
    custom.create_namespaced_custom_object(G, V, ns, KSVC, kservice("bad", image))
    svc = _settled_false(custom, ns, "bad")
    rev = get_rev(custom, ns, "bad-00001")
    status, reason, message = cond(rev, "ContainerHealthy")
    assert (status, reason) == ("False", "ContainerMissing")
    assert message == (f'Unable to fetch image "{image}": failed to resolve image to digest: '
                       "GET https://index.docker.io/v2/acme/pull-fail/manifests/latest: "
                       "MANIFEST_UNKNOWN: manifest unknown; map[Tag:latest]")
    assert cond(rev) == ("False", "ContainerMissing", message)
    assert cond(svc, "ConfigurationsReady") == (
        "False", "RevisionFailed", f'Revision "bad-00001" failed with message: {message}.')
    not_ready = ("False", "RevisionMissing", 'Configuration "bad" does not have any ready Revision.')
    assert cond(svc, "RoutesReady") == not_ready
    assert cond(svc) == not_ready
    assert svc["status"]["latestCreatedRevisionName"] == "bad-00001"
    assert "latestReadyRevisionName" not in svc["status"]
    assert not svc["status"].get("traffic")


def test_image_pull_backoff_fails_after_the_progress_deadline(custom, core, ns):
    custom.create_namespaced_custom_object(G, V, ns, KSVC, kservice(
        "pb", "registry.example.com/team/pull-backoff:1"))
    wait_for(lambda: cond(get_ksvc(custom, ns, "pb")) == (
        "Unknown", "RevisionMissing", 'Configuration "pb" is waiting for a Revision to become ready.'))
    pod = wait_for(lambda: [p for p in core.list_namespaced_pod(ns).items
                            if p.status.container_statuses and any(
                                c.state.waiting and c.state.waiting.reason in
                                ("ErrImagePull", "ImagePullBackOff")
                                for c in p.status.container_statuses)])
    assert pod
    svc = _settled_false(custom, ns, "pb")
    rev = get_rev(custom, ns, "pb-00001")
    status, reason, message = cond(rev, "ResourcesAvailable")
    assert status == "False" and reason in ("ImagePullBackOff", "ErrImagePull")
    assert cond(rev)[1] == reason
    assert cond(svc, "ConfigurationsReady")[:2] == ("False", "RevisionFailed")
    evs = {e.reason for e in core.list_namespaced_event(ns).items}
    assert {"Pulling", "Failed"} <= evs


def test_crash_loop_is_exit_code_1(custom, core, ns):
    custom.create_namespaced_custom_object(G, V, ns, KSVC, kservice("cr", "ghcr.io/acme/crash:1"))
    svc = _settled_false(custom, ns, "cr")
    rev = get_rev(custom, ns, "cr-00001")
    msg = "Container failed with: kubesim: simulated crash, exit status 1"
    assert cond(rev, "ContainerHealthy") == ("False", "ExitCode1", msg)
    assert cond(svc, "ConfigurationsReady") == (
        "False", "RevisionFailed", f'Revision "cr-00001" failed with message: {msg}.')
    assert cond(svc) == ("False", "RevisionMissing",
                         'Configuration "cr" does not have any ready Revision.')
    evs = core.list_namespaced_event(ns).items
    backoff = [e for e in evs if e.reason == "BackOff"]
    assert backoff and backoff[0].type == "Warning"
    assert "Back-off restarting failed container user-container" in backoff[0].message


def test_crash_loop_pod_status(custom, core, ns):
    custom.create_namespaced_custom_object(G, V, ns, KSVC, kservice("cp", "crashloop"))

    def crashed():
        for p in core.list_namespaced_pod(ns).items:
            for c in p.status.container_statuses or []:
                if c.name == "user-container" and c.restart_count >= 1 and c.last_state and \
                        c.last_state.terminated:
                    return c
        return None
    c = wait_for(crashed)
    assert c.last_state.terminated.exit_code == 1
    assert c.last_state.terminated.reason == "Error"
    assert c.ready is False


def test_an_oom_killed_container_is_exit_code_137_with_reason_oomkilled(custom, core, ns):
    custom.create_namespaced_custom_object(G, V, ns, KSVC, kservice("om", "ghcr.io/acme/oom:1"))

    def crashed():
        for p in core.list_namespaced_pod(ns).items:
            for c in p.status.container_statuses or []:
                if c.name == "user-container" and c.last_state and c.last_state.terminated:
                    return c
        return None
    c = wait_for(crashed)
    t = c.last_state.terminated
    assert (t.exit_code, t.reason, t.message) == (137, "OOMKilled", None)
    wait_for(lambda: cond(get_rev(custom, ns, "om-00001"), "ContainerHealthy")[0] == "False")
    assert cond(get_rev(custom, ns, "om-00001"), "ContainerHealthy") == (
        "False", "ExitCode137", "Container failed with: ")


def test_broken_update_keeps_the_old_revision_serving(sim, custom, ns):
    custom.create_namespaced_custom_object(G, V, ns, KSVC, kservice(
        "br", "echo", template_annotations={"autoscaling.knative.dev/min-scale": "1"}))
    wait_ready(custom, ns, "br")
    custom.patch_namespaced_custom_object(G, V, ns, KSVC, "br", {"spec": {"template": {"spec": {
        "containers": [{"image": "ghcr.io/acme/crash:2"}]}}}})
    svc = _settled_false(custom, ns, "br")
    st = svc["status"]
    assert st["latestCreatedRevisionName"] == "br-00002"
    assert st["latestReadyRevisionName"] == "br-00001"
    assert cond(svc, "RoutesReady") == ("True", None, None)
    assert cond(svc, "ConfigurationsReady")[:2] == ("False", "RevisionFailed")
    assert cond(svc)[:2] == ("False", "RevisionFailed")
    assert st["traffic"] == [{"latestRevision": True, "percent": 100, "revisionName": "br-00001"}]
    status, _, body = gw(sim, f"br.{ns}.example.com")
    assert status == 200
    assert json.loads(body)["headers"]["Knative-Serving-Revision"] == "br-00001"
