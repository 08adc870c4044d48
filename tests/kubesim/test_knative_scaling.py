"""KPA behaviour: scale to zero after stable window + grace, min-scale, scale up under load,
and a killed pod replaced by its Deployment."""

from __future__ import annotations

import threading
import time

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


def test_scale_to_zero_keeps_the_service_ready(custom, core, ns):
    custom.create_namespaced_custom_object(G, V, ns, KSVC, kservice("z"))
    wait_ready(custom, ns, "z")
    rev = wait_for(lambda: (r := get_rev(custom, ns, "z-00001"))["status"].get(
        "actualReplicas") == 0 and r, 5)
    assert cond(rev, "Active") == ("False", "NoTraffic", "The target is not receiving traffic.")
    assert rev["status"]["desiredReplicas"] == 0
    assert cond(rev) == ("True", None, None)
    wait_for(lambda: not core.list_namespaced_pod(ns).items)
    assert cond(get_ksvc(custom, ns, "z")) == ("True", None, None)


def test_min_scale_keeps_pods(custom, core, ns):
    custom.create_namespaced_custom_object(G, V, ns, KSVC, kservice(
        "m", template_annotations={"autoscaling.knative.dev/minScale": "2"}))
    wait_ready(custom, ns, "m")
    wait_for(lambda: len(core.list_namespaced_pod(ns).items) == 2)
    time.sleep(0.5 + 0.2 + 0.3)  # stable window + grace + margin (fast test timings)
    rev = get_rev(custom, ns, "m-00001")
    assert cond(rev, "Active") == ("True", None, None)
    assert rev["status"]["actualReplicas"] == 2
    assert len(core.list_namespaced_pod(ns).items) == 2


def test_scale_up_under_load_up_to_max_scale(sim, custom, apps, ns):
    custom.create_namespaced_custom_object(G, V, ns, KSVC, kservice(
        "load", "kubesim/slow:300ms", template_annotations={
            "autoscaling.knative.dev/target": "1", "autoscaling.knative.dev/max-scale": "3",
            "autoscaling.knative.dev/min-scale": "1"}))
    wait_ready(custom, ns, "load")
    stop = time.monotonic() + 1.5
    results: list[int] = []

    def client():
        while time.monotonic() < stop:
            results.append(gw(sim, f"load.{ns}.example.com")[0])

    threads = [threading.Thread(target=client) for _ in range(6)]
    for t in threads:
        t.start()
    replicas = wait_for(lambda: (r := apps.read_namespaced_deployment(
        "load-00001-deployment", ns).spec.replicas) > 1 and r, 3)
    for t in threads:
        t.join()
    assert 1 < replicas <= 3
    assert apps.read_namespaced_deployment("load-00001-deployment", ns).spec.replicas <= 3
    assert set(results) == {200}


def test_killed_pod_is_replaced(sim, custom, core, ns):
    custom.create_namespaced_custom_object(G, V, ns, KSVC, kservice(
        "k", template_annotations={"autoscaling.knative.dev/min-scale": "1"}))
    wait_ready(custom, ns, "k")
    old = core.list_namespaced_pod(ns).items[0].metadata.name
    sim.call(sim.sim.serving.kill_pod, ns, old)

    def replaced():
        pods = core.list_namespaced_pod(ns).items
        return [p for p in pods if p.metadata.name != old and p.status.phase == "Running" and
                {c.type: c.status for c in p.status.conditions}.get("Ready") == "True"]
    assert wait_for(replaced)
    assert old not in [p.metadata.name for p in core.list_namespaced_pod(ns).items]
    killing = [e for e in core.list_namespaced_event(ns).items
               if e.reason == "Killing" and e.involved_object.name == old]
    assert killing and killing[0].message == "Stopping container user-container"
