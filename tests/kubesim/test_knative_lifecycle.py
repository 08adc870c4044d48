"""A ksvc through its real life: children, names, labels, conditions in order, URL, deletion."""

from __future__ import annotations

import threading

from kubernetes import client, watch

from tests.kubesim.helpers import gone
from tests.kubesim.kn_helpers import (
    KSVC,
    G,
    V,
    cond,
    conds,
    get_rev,
    gw,
    kservice,
    wait_for,
    wait_ready,
)


def test_ready_sequence_is_out_of_date_then_revision_missing_then_ready(k8s, custom, ns):
    seen: list[tuple] = []
    w = watch.Watch()
    rv = custom.list_namespaced_custom_object(G, V, ns, KSVC)["metadata"]["resourceVersion"]

    def run() -> None:
        for ev in w.stream(custom.list_namespaced_custom_object, G, V, ns, KSVC,
                           resource_version=rv, timeout_seconds=5):
            o = ev["object"]
            seen.append((ev["type"], cond(o), (o.get("status") or {}).get("observedGeneration")))
            if cond(o)[0] == "True":
                w.stop()

    t = threading.Thread(target=run)
    t.start()
    custom.create_namespaced_custom_object(G, V, ns, KSVC, kservice("hello"))
    t.join(6)
    readies = [c for _, c, _ in seen if c[0] is not None]
    reasons = [c[1] for c in readies]
    assert reasons[0] == "OutOfDate"
    assert readies[0][2] == ("The Route is still working to reflect the latest desired "
                             "specification.")
    waiting = ("Unknown", "RevisionMissing",
               'Configuration "hello" is waiting for a Revision to become ready.')
    assert waiting in readies
    assert readies.index(waiting) > 0
    assert readies[-1] == ("True", None, None)
    assert all(g == 1 for _, c, g in seen if c[0] is not None)


def test_children_names_labels_and_owners(k8s, custom, core, apps, ns):
    custom.create_namespaced_custom_object(G, V, ns, KSVC, kservice(
        "hello", labels={"team": "a"}, template_labels={"tier": "web"}, template_annotations={
            "autoscaling.knative.dev/min-scale": "1"}))
    svc = wait_ready(custom, ns, "hello")
    st = svc["status"]
    assert st["latestCreatedRevisionName"] == st["latestReadyRevisionName"] == "hello-00001"
    assert st["url"] == f"http://hello.{ns}.example.com"
    assert st["address"] == {"url": f"http://hello.{ns}.svc.cluster.local"}
    assert st["traffic"] == [{"latestRevision": True, "percent": 100,
                              "revisionName": "hello-00001"}]
    assert [c["type"] for c in st["conditions"]] == ["ConfigurationsReady", "Ready", "RoutesReady"]
    cfg = custom.get_namespaced_custom_object(G, V, ns, "configurations", "hello")
    assert cfg["metadata"]["ownerReferences"][0]["uid"] == svc["metadata"]["uid"]
    assert cfg["metadata"]["labels"]["serving.knative.dev/service"] == "hello"
    rev = get_rev(custom, ns, "hello-00001")
    assert rev["metadata"]["ownerReferences"][0]["kind"] == "Configuration"
    assert rev["metadata"]["labels"]["serving.knative.dev/configurationGeneration"] == "1"
    assert rev["status"]["actualReplicas"] == 1 and rev["status"]["desiredReplicas"] == 1
    assert cond(rev, "Active") == ("True", None, None)
    assert conds(rev)["Active"]["severity"] == "Info"
    dep = apps.read_namespaced_deployment("hello-00001-deployment", ns)
    assert dep.spec.replicas == 1 and dep.metadata.labels["app"] == "hello-00001"
    pods = core.list_namespaced_pod(ns, label_selector="serving.knative.dev/service=hello").items
    assert len(pods) == 1
    pod = pods[0]
    assert pod.metadata.name.startswith("hello-00001-deployment-")
    lab = pod.metadata.labels
    assert lab["serving.knative.dev/revision"] == "hello-00001"
    assert lab["serving.knative.dev/configuration"] == "hello"
    assert lab["serving.knative.dev/revisionUID"] == rev["metadata"]["uid"]
    assert lab["app"] == "hello-00001" and lab["tier"] == "web"
    assert "team" not in lab  # ksvc labels stop at Configuration/Route, as in Knative
    assert [c.name for c in pod.spec.containers] == ["user-container", "queue-proxy"]
    assert pod.status.phase == "Running"
    assert {c.type: c.status for c in pod.status.conditions}["Ready"] == "True"
    assert all(cs.ready for cs in pod.status.container_statuses)
    ki = custom.get_namespaced_custom_object("networking.internal.knative.dev", "v1alpha1", ns,
                                             "ingresses", "hello")
    ann = ki["metadata"]["annotations"]
    assert ann["networking.knative.dev/ingress.class"] == "ambassador.ingress.networking.knative.dev"
    hosts = [h for r in ki["spec"]["rules"] for h in r["hosts"]]
    assert hosts == [f"hello.{ns}", f"hello.{ns}.svc", f"hello.{ns}.svc.cluster.local",
                     f"hello.{ns}.example.com"]
    split = ki["spec"]["rules"][0]["http"]["paths"][0]["splits"][0]
    assert split == {"appendHeaders": {"Knative-Serving-Namespace": ns,
                                       "Knative-Serving-Revision": "hello-00001"},
                     "percent": 100, "serviceName": "hello-00001", "serviceNamespace": ns,
                     "servicePort": 80}
    assert cond(ki) == ("True", None, None)
    ext = core.read_namespaced_service("hello", ns)
    assert ext.spec.type == "ExternalName"
    assert ext.spec.external_name == "ambassador.ambassador.svc.cluster.local"


def test_both_visibility_labels_give_a_cluster_local_url(custom, ns):
    for name, key in (("a", "networking.knative.dev/visibility"),
                      ("b", "serving.knative.dev/visibility")):
        custom.create_namespaced_custom_object(G, V, ns, KSVC, kservice(
            name, labels={key: "cluster-local"}))
    for name in ("a", "b"):
        svc = wait_ready(custom, ns, name)
        assert svc["status"]["url"] == f"http://{name}.{ns}.svc.cluster.local"
        ki = custom.get_namespaced_custom_object("networking.internal.knative.dev", "v1alpha1",
                                                 ns, "ingresses", name)
        assert [r["visibility"] for r in ki["spec"]["rules"]] == ["ClusterLocal"]


def test_update_creates_the_next_revision_and_moves_traffic(sim, custom, ns):
    custom.create_namespaced_custom_object(G, V, ns, KSVC, kservice("up"))
    wait_ready(custom, ns, "up")
    custom.patch_namespaced_custom_object(G, V, ns, KSVC, "up", {"spec": {"template": {"spec": {
        "containers": [{"image": "ghcr.io/acme/echo:v2"}]}}}})
    svc = wait_ready(custom, ns, "up")
    assert svc["metadata"]["generation"] == 2
    assert svc["status"]["latestReadyRevisionName"] == "up-00002"
    status, body = wait_for(lambda: _echo(sim, f"up.{ns}.example.com"))
    assert body["headers"]["Knative-Serving-Revision"] == "up-00002"


def _echo(sim, host):
    import json
    status, _, body = gw(sim, host)
    if status == 200:
        data = json.loads(body)
        if data["headers"].get("Knative-Serving-Revision", "").endswith("00002"):
            return status, data
    return None


def test_deleting_the_ksvc_removes_its_children(custom, core, apps, ns):
    custom.create_namespaced_custom_object(G, V, ns, KSVC, kservice("bye"))
    wait_ready(custom, ns, "bye")
    custom.delete_namespaced_custom_object(G, V, ns, KSVC, "bye")
    for plural in ("configurations", "routes", "revisions"):
        wait_for(lambda p=plural: not custom.list_namespaced_custom_object(G, V, ns, p)["items"])
    wait_for(lambda: gone(lambda: apps.read_namespaced_deployment("bye-00001-deployment", ns)))
    wait_for(lambda: not core.list_namespaced_pod(ns).items)
    wait_for(lambda: gone(lambda: core.read_namespaced_service("bye", ns)))


def test_pod_events_tell_the_pod_story(custom, core, ns):
    custom.create_namespaced_custom_object(G, V, ns, KSVC, kservice("ev"))
    wait_ready(custom, ns, "ev")
    pod = core.list_namespaced_pod(ns).items[0]
    evs = core.list_namespaced_event(ns).items
    mine = [e for e in evs if e.involved_object.name == pod.metadata.name]
    reasons = [e.reason for e in mine]
    assert reasons[:5] == ["Scheduled", "Pulling", "Pulled", "Created", "Started"] or \
        set(reasons) >= {"Scheduled", "Pulling", "Pulled", "Created", "Started"}
    assert all(isinstance(e, client.CoreV1Event) and e.involved_object.kind == "Pod"
               for e in mine)
    pulled = next(e for e in mine if e.reason == "Pulled")
    assert 'Successfully pulled image "gcr.io/knative-samples/helloworld-go"' in pulled.message


def test_a_brand_new_revision_is_active_unknown_queued_while_it_deploys(custom, ns):
    custom.create_namespaced_custom_object(G, V, ns, KSVC, kservice("nq", "kubesim/slow-start:500ms"))

    def deploying():
        try:
            rev = get_rev(custom, ns, "nq-00001")
        except Exception:
            return None
        return rev if cond(rev, "Active")[0] else None

    rev = wait_for(deploying)
    assert cond(rev, "Active") == (
        "Unknown", "Queued", "Requests to the target are being buffered as resources are provisioned.")
    assert cond(rev, "Ready")[:2] == ("Unknown", "Deploying")
    wait_ready(custom, ns, "nq")
    assert cond(get_rev(custom, ns, "nq-00001"), "Active")[0] == "True"
