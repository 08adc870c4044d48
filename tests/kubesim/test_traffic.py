"""Knative traffic in kubesim (issue 16, item 6): weighted splits through the gateway, tag hosts, Route and
ksvc `status.traffic`, the webhook's `spec.traffic` validation, and revision GC per config-gc.

Everything goes through the official client over HTTP and real requests through the gateway; who served a
request is the `revision` the echo handler puts in its body (round2-facts.md §2).
"""

from __future__ import annotations

import json
import time
from collections import Counter

import pytest
from kubernetes.client.exceptions import ApiException

from tests.kubesim.conftest import api_client
from tests.kubesim.helpers import gone, status_of
from tests.kubesim.kn_helpers import KSVC, G, V, cond, get_ksvc, gw, kservice, wait_for, wait_ready

ECHO = "ghcr.io/acme/echo:1"
DENIED = 'admission webhook "validation.webhook.serving.knative.dev" denied the request: validation failed: '


def _ksvc_with_env(name: str, value: str, traffic: list | None = None) -> dict:
    obj = kservice(name, ECHO)
    obj["spec"]["template"]["spec"]["containers"][0]["env"] = [{"name": "V", "value": value}]
    if traffic is not None:
        obj["spec"]["traffic"] = traffic
    return obj


def _deploy(custom, ns: str, name: str, n: int, traffic: list | None = None,
            template_metadata: dict | None = None) -> dict:
    """Create (n == 1) or update the ksvc so that revision `<name>-0000n` exists, and wait until it is
    the latest ready one and the ksvc is Ready for this generation."""
    if n == 1:
        custom.create_namespaced_custom_object(G, V, ns, KSVC, _ksvc_with_env(name, "1", traffic))
    else:
        patch: dict = {"spec": {"template": {"spec": {"containers": [
            {"image": ECHO, "env": [{"name": "V", "value": str(n)}]}]}}}}
        if traffic is not None:
            patch["spec"]["traffic"] = traffic
        if template_metadata is not None:
            patch["spec"]["template"]["metadata"] = template_metadata
        custom.patch_namespaced_custom_object(G, V, ns, KSVC, name, patch)
    want = f"{name}-{n:05d}"

    def ready():
        svc = wait_ready(custom, ns, name)
        return svc if svc["status"].get("latestReadyRevisionName") == want else None
    return wait_for(ready, 10)


def _set_traffic(custom, ns: str, name: str, traffic: list) -> dict:
    """Replace spec.traffic and wait until the ksvc is Ready for that generation."""
    svc = custom.patch_namespaced_custom_object(G, V, ns, KSVC, name, {"spec": {"traffic": traffic}})
    gen = svc["metadata"]["generation"]

    def ready():
        s = get_ksvc(custom, ns, name)
        ok = s["status"].get("observedGeneration") == gen and cond(s)[0] == "True"
        return s if ok else None
    return wait_for(ready, 10)


def _served_by(sim, host: str) -> str:
    status, _, body = gw(sim, host)
    assert status == 200, (status, body)
    return json.loads(body)["revision"]


def _local(name: str, ns: str) -> str:
    return f"{name}.{ns}.svc.cluster.local"


# ------------------------------------------------------------------------------------ split


def test_echo_body_names_its_revision(sim, custom, ns):
    _deploy(custom, ns, "who", 1)
    status, headers, body = gw(sim, _local("who", ns))
    assert status == 200
    assert json.loads(body)["revision"] == "who-00001"
    # Knative adds no response header naming the revision: only the body says it
    assert not any("revision" in k.lower() for k in headers)


def test_fifty_fifty_split_over_400_requests(sim, custom, ns):
    _deploy(custom, ns, "split", 1)
    _deploy(custom, ns, "split", 2)
    svc = _set_traffic(custom, ns, "split", [{"revisionName": "split-00001", "percent": 50},
                                             {"latestRevision": True, "percent": 50}])
    assert [(t["revisionName"], t["percent"]) for t in svc["status"]["traffic"]] == \
        [("split-00001", 50), ("split-00002", 50)]
    counts = Counter(_served_by(sim, _local("split", ns)) for _ in range(400))
    assert set(counts) == {"split-00001", "split-00002"}
    for rev in ("split-00001", "split-00002"):
        assert 160 <= counts[rev] <= 240, counts   # 50 % ± 10 % of 400


def test_uneven_split_follows_the_percentages(sim, custom, ns):
    _deploy(custom, ns, "uneven", 1)
    _deploy(custom, ns, "uneven", 2)
    _set_traffic(custom, ns, "uneven", [{"revisionName": "uneven-00001", "percent": 90},
                                        {"latestRevision": True, "percent": 10}])
    counts = Counter(_served_by(sim, _local("uneven", ns)) for _ in range(300))
    assert 240 <= counts["uneven-00001"] <= 297, counts   # 90 % ± 10 %, and the 10 % does get some


def test_pin_to_an_old_revision_takes_effect_for_the_next_request(sim, custom, ns):
    _deploy(custom, ns, "pin", 1)
    _deploy(custom, ns, "pin", 2)
    host = _local("pin", ns)
    assert _served_by(sim, host) == "pin-00002"
    svc = _set_traffic(custom, ns, "pin", [{"revisionName": "pin-00001", "percent": 100}])
    assert svc["status"]["traffic"] == [{"latestRevision": False, "percent": 100, "revisionName": "pin-00001"}]
    assert {_served_by(sim, host) for _ in range(20)} == {"pin-00001"}
    # a new revision is created but gets no traffic while pinned
    _deploy(custom, ns, "pin", 3, traffic=[{"revisionName": "pin-00001", "percent": 100}])
    assert {_served_by(sim, host) for _ in range(10)} == {"pin-00001"}
    # follow latest again
    _set_traffic(custom, ns, "pin", [{"latestRevision": True, "percent": 100}])
    assert {_served_by(sim, host) for _ in range(10)} == {"pin-00003"}


# ------------------------------------------------------------------------------------- tags


def test_tag_host_reaches_its_revision_at_zero_percent(sim, custom, core, ns):
    _deploy(custom, ns, "tg", 1)
    svc = _deploy(custom, ns, "tg", 2, traffic=[
        {"latestRevision": True, "percent": 100},
        {"revisionName": "tg-00001", "percent": 0, "tag": "old"},
        {"latestRevision": True, "percent": 0, "tag": "current"}])
    want = [
        {"latestRevision": True, "percent": 100, "revisionName": "tg-00002"},
        {"latestRevision": False, "percent": 0, "revisionName": "tg-00001", "tag": "old",
         "url": f"http://old-tg.{ns}.example.com"},
        {"latestRevision": True, "percent": 0, "revisionName": "tg-00002", "tag": "current",
         "url": f"http://current-tg.{ns}.example.com"},
    ]
    route = custom.get_namespaced_custom_object(G, V, ns, "routes", "tg")
    assert route["status"]["traffic"] == want
    assert svc["status"]["traffic"] == want   # the ksvc copies the Route's status.traffic
    # the default host never reaches the 0 % revision; its tag host always does, in every form
    assert {_served_by(sim, _local("tg", ns)) for _ in range(30)} == {"tg-00002"}
    for host in (f"old-tg.{ns}", f"old-tg.{ns}.svc", _local("old-tg", ns), f"old-tg.{ns}.example.com"):
        assert _served_by(sim, host) == "tg-00001", host
    assert _served_by(sim, _local("current-tg", ns)) == "tg-00002"
    # one placeholder Service per tag, pointing at Ambassador
    placeholder = core.read_namespaced_service("old-tg", ns)
    assert placeholder.spec.type == "ExternalName"
    assert placeholder.spec.external_name == "ambassador.ambassador.svc.cluster.local"
    # dropping the tag removes its host and its placeholder
    _set_traffic(custom, ns, "tg", [{"latestRevision": True, "percent": 100}])
    assert gw(sim, _local("old-tg", ns))[0] == 404
    wait_for(lambda: gone(lambda: core.read_namespaced_service("old-tg", ns)))
    assert core.read_namespaced_service("tg", ns).spec.type == "ExternalName"


def test_cluster_local_tag_url(sim, custom, ns):
    obj = _ksvc_with_env("cl", "1", [{"latestRevision": True, "percent": 100, "tag": "now"}])
    obj["metadata"]["labels"] = {"networking.knative.dev/visibility": "cluster-local"}
    custom.create_namespaced_custom_object(G, V, ns, KSVC, obj)
    svc = wait_ready(custom, ns, "cl")
    assert svc["status"]["traffic"] == [{"latestRevision": True, "percent": 100, "revisionName": "cl-00001",
                                         "tag": "now", "url": f"http://now-cl.{ns}.svc.cluster.local"}]
    assert _served_by(sim, _local("now-cl", ns)) == "cl-00001"
    assert gw(sim, f"now-cl.{ns}.example.com")[0] == 404   # no public host for a cluster-local route


# ------------------------------------------------------------------------------- validation

_DNS1035 = ("a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an "
            "alphabetic character, and end with an alphanumeric character (e.g. 'my-name',  or 'abc-123', "
            "regex used for validation is '[a-z]([-a-z0-9]*[a-z0-9])?')")


@pytest.mark.parametrize("traffic,message", [
    ([{"latestRevision": True, "percent": 90}], "Traffic targets sum to 90, want 100: spec.traffic"),
    ([{"latestRevision": True, "percent": 60}, {"revisionName": "v-00001", "percent": 0, "tag": "a"}],
     "Traffic targets sum to 60, want 100: spec.traffic"),
    ([{"revisionName": "v-00001", "latestRevision": True, "percent": 100}],
     'may not set revisionName "v-00001" when latestRevision is true: spec.traffic[0].latestRevision'),
    ([{"latestRevision": False, "percent": 100}],
     'may not set revisionName "" when latestRevision is false: spec.traffic[0].latestRevision'),
    ([{"configurationName": "v", "percent": 100}],
     "must not set the field(s): spec.traffic[0].configurationName"),
    ([{"latestRevision": True, "percent": 100, "tag": "Bad_Tag"}],
     f"invalid value: not a DNS 1035 label: [{_DNS1035}]: spec.traffic.tag[0]"),
    ([{"latestRevision": True, "percent": 50, "tag": "a"}, {"latestRevision": True, "percent": 50, "tag": "a"}],
     'Multiple definitions for "a": spec.traffic[0].tag, spec.traffic[1].tag'),
    ([{"latestRevision": True, "percent": 101}],
     "Traffic targets sum to 101, want 100: spec.traffic\nexpected 0 <= 101 <= 100: spec.traffic[0].percent"),
    ([{"latestRevision": True, "percent": 100, "url": "http://x"}],
     "must not set the field(s): spec.traffic[0].url"),
])
def test_webhook_rejects_bad_traffic_with_knatives_message(custom, ns, traffic, message):
    with pytest.raises(ApiException) as exc:
        custom.create_namespaced_custom_object(G, V, ns, KSVC, _ksvc_with_env("v", "1", traffic))
    assert exc.value.status == 400
    body = status_of(exc.value)
    assert body["reason"] == "BadRequest"
    assert body["message"] == DENIED + message
    assert gone(lambda: get_ksvc(custom, ns, "v"))


def test_webhook_rejects_a_bad_traffic_update_and_keeps_the_old_spec(custom, ns):
    _deploy(custom, ns, "upd", 1)
    with pytest.raises(ApiException) as exc:
        custom.patch_namespaced_custom_object(G, V, ns, KSVC, "upd", {"spec": {"traffic": [
            {"latestRevision": True, "percent": 50, "tag": "x"},
            {"revisionName": "upd-00001", "percent": 40, "tag": "x"}]}})
    assert status_of(exc.value)["message"] == DENIED + (
        'Multiple definitions for "x": spec.traffic[0].tag, spec.traffic[1].tag\n'
        "Traffic targets sum to 90, want 100: spec.traffic")
    assert get_ksvc(custom, ns, "upd")["spec"]["traffic"] == [{"latestRevision": True, "percent": 100}]


def test_route_needs_a_revision_or_configuration(custom, ns):
    route = {"apiVersion": "serving.knative.dev/v1", "kind": "Route", "metadata": {"name": "r"},
             "spec": {"traffic": [{"percent": 100}]}}
    with pytest.raises(ApiException) as exc:
        custom.create_namespaced_custom_object(G, V, ns, "routes", route)
    assert status_of(exc.value)["message"] == DENIED + (
        "expected exactly one, got neither: spec.traffic[0].configurationName, spec.traffic[0].revisionName")
    route["spec"] = {}
    with pytest.raises(ApiException) as exc:
        custom.create_namespaced_custom_object(G, V, ns, "routes", route)
    assert status_of(exc.value)["message"] == DENIED + "Traffic targets sum to 0, want 100: spec.traffic"


def test_defaults_fill_latest_revision_and_percent(custom, ns):
    svc = custom.create_namespaced_custom_object(G, V, ns, KSVC, _ksvc_with_env("dflt", "1", [
        {"percent": 100}, {"revisionName": "dflt-00001", "tag": "t"}]))
    assert svc["spec"]["traffic"] == [{"latestRevision": True, "percent": 100},
                                      {"latestRevision": False, "percent": 0, "revisionName": "dflt-00001",
                                       "tag": "t"}]


def test_unknown_revision_leaves_the_route_not_ready(custom, ns):
    _deploy(custom, ns, "miss", 1)
    custom.patch_namespaced_custom_object(G, V, ns, KSVC, "miss", {"spec": {"traffic": [
        {"revisionName": "miss-00009", "percent": 100}]}})
    msg = 'Revision "miss-00009" referenced in traffic not found.'

    def failed():
        s = get_ksvc(custom, ns, "miss")
        return s if cond(s) == ("False", "RevisionMissing", msg) else None
    svc = wait_for(failed)
    assert cond(svc, "RoutesReady") == ("False", "RevisionMissing", msg)
    route = custom.get_namespaced_custom_object(G, V, ns, "routes", "miss")
    assert cond(route, "AllTrafficAssigned") == ("False", "RevisionMissing", msg)
    assert cond(route) == ("False", "RevisionMissing", msg)


# ----------------------------------------------------------------------------------------- GC

STATE = "serving.knative.dev/routingState"


def _rev_names(custom, ns: str) -> set[str]:
    return {r["metadata"]["name"] for r in
            custom.list_namespaced_custom_object(G, V, ns, "revisions")["items"]}


def _labels(custom, ns: str, rev: str) -> dict:
    return custom.get_namespaced_custom_object(G, V, ns, "revisions", rev)["metadata"]["labels"]


def _ns(core) -> str:
    import uuid
    name = f"t-{uuid.uuid4().hex[:8]}"
    core.create_namespace({"metadata": {"name": name}})
    return name


def test_routing_state_labels_follow_the_route(sim, custom, ns):
    _deploy(custom, ns, "rs", 1)
    assert _labels(custom, ns, "rs-00001")[STATE] == "active"
    _deploy(custom, ns, "rs", 2, traffic=[{"latestRevision": True, "percent": 100},
                                          {"revisionName": "rs-00001", "percent": 0, "tag": "keep"}])
    assert _labels(custom, ns, "rs-00001")[STATE] == "active"   # a 0 % tagged target is routed
    _deploy(custom, ns, "rs", 3, traffic=[{"latestRevision": True, "percent": 100}])
    wait_for(lambda: _labels(custom, ns, "rs-00001")[STATE] == "reserve")
    assert _labels(custom, ns, "rs-00002")[STATE] == "reserve"
    assert _labels(custom, ns, "rs-00003")[STATE] == "active"
    ann = custom.get_namespaced_custom_object(G, V, ns, "revisions", "rs-00001")["metadata"]["annotations"]
    assert ann["serving.knative.dev/routingStateModified"].endswith("Z")
    # the default config-gc (48h / 15h / min 20) collects nothing
    assert _rev_names(custom, ns) == {"rs-00001", "rs-00002", "rs-00003"}


def test_gc_collects_stale_revisions_but_keeps_routed_ones_and_the_minimum(make_sim):
    st = make_sim(extra={"config-gc": {"retain-since-create-time": "500ms",
                                       "retain-since-last-active-time": "500ms",
                                       "min-non-active-revisions": "1"}})
    from kubernetes import client
    k8s = api_client(st)
    custom, core = client.CustomObjectsApi(k8s), client.CoreV1Api(k8s)
    ns = _ns(core)
    _deploy(custom, ns, "gc", 1)
    _deploy(custom, ns, "gc", 2, traffic=[{"latestRevision": True, "percent": 100},
                                          {"revisionName": "gc-00001", "percent": 0, "tag": "pinned"}])
    _deploy(custom, ns, "gc", 3)
    _deploy(custom, ns, "gc", 4)
    # gc-00002 and gc-00003 are non-active; min 1 keeps one of them: the oldest goes once stale
    wait_for(lambda: "gc-00002" not in _rev_names(custom, ns), 6)
    time.sleep(1.5)
    assert _rev_names(custom, ns) == {"gc-00001", "gc-00003", "gc-00004"}
    # the routed 0 % tag target and the latest still serve
    assert _served_by(st, _local("pinned-gc", ns)) == "gc-00001"
    assert _served_by(st, _local("gc", ns)) == "gc-00004"
    k8s.close()


def test_gc_max_non_active_revisions(make_sim):
    st = make_sim(extra={"config-gc": {"retain-since-create-time": "disabled",
                                       "retain-since-last-active-time": "disabled",
                                       "min-non-active-revisions": "0", "max-non-active-revisions": "1"}})
    from kubernetes import client
    k8s = api_client(st)
    custom, core = client.CustomObjectsApi(k8s), client.CoreV1Api(k8s)
    ns = _ns(core)
    for n in (1, 2, 3, 4):
        _deploy(custom, ns, "mx", n)
    wait_for(lambda: _rev_names(custom, ns) == {"mx-00003", "mx-00004"}, 6)
    k8s.close()


def test_config_gc_configmap_overrides_and_no_gc_annotation(make_sim):
    st = make_sim()
    from kubernetes import client
    k8s = api_client(st)
    custom, core = client.CustomObjectsApi(k8s), client.CoreV1Api(k8s)
    core.create_namespaced_config_map("knative-serving", {"metadata": {"name": "config-gc"}, "data": {
        "retain-since-create-time": "disabled", "retain-since-last-active-time": "disabled",
        "min-non-active-revisions": "0", "max-non-active-revisions": "0"}})
    ns = _ns(core)
    obj = _ksvc_with_env("ng", "1")
    obj["spec"]["template"]["metadata"] = {"annotations": {"serving.knative.dev/no-gc": "true"}}
    custom.create_namespaced_custom_object(G, V, ns, KSVC, obj)
    wait_for(lambda: wait_ready(custom, ns, "ng")["status"].get("latestReadyRevisionName") == "ng-00001")
    _deploy(custom, ns, "ng", 2, template_metadata={"annotations": {"serving.knative.dev/no-gc": None}})
    _deploy(custom, ns, "ng", 3)
    # max 0: every non-active revision goes at once, except the one annotated no-gc
    wait_for(lambda: _rev_names(custom, ns) == {"ng-00001", "ng-00003"}, 6)
    k8s.close()


# ------------------------------------------------------------------------- KIngress tag-to-host


def test_kingress_carries_knatives_tag_to_host_annotation(sim, custom, ns):
    """knative/serving knative-v1.23.0 pkg/reconciler/route/resources/ingress.go: the KIngress names each tag's
    primary host per visibility in networking.internal.knative.dev/tag-to-host (compact JSON); no tag, no
    annotation."""
    _deploy(custom, ns, "th", 1, traffic=[{"latestRevision": True, "percent": 100},
                                          {"revisionName": "th-00001", "percent": 0, "tag": "old"}])
    ki = custom.get_namespaced_custom_object("networking.internal.knative.dev", "v1alpha1", ns, "ingresses", "th")
    assert ki["metadata"]["annotations"]["networking.internal.knative.dev/tag-to-host"] == \
        f'{{"old":["old-th.{ns}.svc.cluster.local","old-th.{ns}.example.com"]}}'
    _set_traffic(custom, ns, "th", [{"latestRevision": True, "percent": 100}])
    ki = custom.get_namespaced_custom_object("networking.internal.knative.dev", "v1alpha1", ns, "ingresses", "th")
    assert "networking.internal.knative.dev/tag-to-host" not in ki["metadata"]["annotations"]
