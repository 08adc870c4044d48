"""The admin port: diag JSON with the real fixture's key set and types, filters, HTML,
check_alive / check_ready, and cluster_stats counted from gateway traffic."""

from __future__ import annotations

import json
import urllib.request

from tests.kubesim.conftest import fixtures_dir
from tests.kubesim.kn_helpers import KSVC, G, V, cluster_of, gw, kservice, wait_ready


def _get(sim, path: str) -> tuple[int, str, str]:
    with urllib.request.urlopen(sim.admin_url + path, timeout=5) as r:
        return r.status, r.headers.get("Content-Type", ""), r.read().decode()


def _fixture() -> dict:
    return json.loads((fixtures_dir() / "ambassador" /
                       "emissary-diag-overview-3.0.0-rc.0.json").read_text())


def _jtype(v) -> str:
    return "null" if v is None else type(v).__name__


def test_diag_has_every_top_level_key_with_the_same_type(sim, custom, ns):
    custom.create_namespaced_custom_object(G, V, ns, KSVC, kservice("d"))
    wait_ready(custom, ns, "d")
    real = _fixture()
    _, ctype, text = _get(sim, "/ambassador/v0/diag/?json=true")
    assert ctype.startswith("application/json")
    ours = json.loads(text)
    assert set(ours) == set(real)
    assert "clusters" not in ours
    for k in real:
        assert _jtype(ours[k]) == _jtype(real[k]), k
    assert set(ours["system"]) == set(real["system"])
    for k, v in real["system"].items():
        assert _jtype(ours["system"][k]) == _jtype(v), k
    assert ours["system"]["knative_enabled"] is True
    assert set(ours["envoy_status"]) == set(real["envoy_status"])
    assert all(isinstance(e, list) and len(e) == 2 for e in ours["errors"])


def test_route_info_has_one_entry_per_kingress_host_in_the_real_shape(sim, custom, ns):
    custom.create_namespaced_custom_object(G, V, ns, KSVC, kservice("ri"))
    wait_ready(custom, ns, "ri")
    real = _fixture()
    ours = json.loads(_get(sim, "/ambassador/v0/diag/?json=true&filter=route_info")[2])
    mine = {r["host"]: r for r in ours if r["_route"]["namespace"] == ns}
    assert set(mine) == {f"ri.{ns}", f"ri.{ns}.svc", f"ri.{ns}.svc.cluster.local",
                         f"ri.{ns}.example.com"}
    ref = real["route_info"][1]
    e = mine[f"ri.{ns}.example.com"]
    assert set(e) == set(ref)
    assert e["key"] == f"http://ri.{ns}.example.com/" and e["prefix"] == "/"
    assert set(e["_route"]) >= set(ref["_route"])
    c = e["clusters"][0]
    assert set(c) >= set(ref["clusters"][0]) - {"_is_sidecar"}
    assert c["name"] == cluster_of("ri-00001", ns)
    assert c["service"] == f"ri-00001.{ns}:80" and c["weight"] == 100
    assert e["_route"]["metadata_labels"] == {"serving.knative.dev/route": "ri",
                                              "serving.knative.dev/routeNamespace": ns,
                                              "serving.knative.dev/service": "ri"}


def test_cluster_stats_count_gateway_traffic(sim, custom, ns):
    custom.create_namespaced_custom_object(G, V, ns, KSVC, kservice(
        "cs", "kubesim/flaky:1", template_annotations={"autoscaling.knative.dev/min-scale": "1"}))
    wait_ready(custom, ns, "cs")
    name = cluster_of("cs-00001", ns)
    stats = json.loads(_get(sim, "/ambassador/v0/diag/?json=true&filter=cluster_stats")[2])
    assert stats[name]["health"] == "no requests yet" and stats[name]["hcolor"] == "grey"
    codes = [gw(sim, f"cs.{ns}.example.com")[0] for _ in range(4)]
    assert codes == [500, 200, 200, 200]
    s = json.loads(_get(sim, "/ambassador/v0/diag/?json=true&filter=cluster_stats")[2])[name]
    assert (s["upstream_ok"], s["upstream_4xx"], s["upstream_5xx"]) == (3, 0, 1)
    assert s["healthy_percent"] == 75 and s["hmetric"] == 75 and s["hcolor"] == "yellow"
    assert s["health"] == "75% healthy" and s["valid"] is True
    assert set(s) == {"valid", "reason", "healthy_members", "total_members", "healthy_percent",
                      "update_attempts", "update_successes", "update_percent", "upstream_ok",
                      "upstream_4xx", "upstream_5xx", "upstream_bad", "health", "hmetric",
                      "hcolor"}


def test_filter_html_and_health_checks(sim):
    _, _, errors = _get(sim, "/ambassador/v0/diag/?json=true&filter=errors")
    assert json.loads(errors) == []
    webui = json.loads(_get(sim, "/ambassador/v0/diag/?json=true&filter=webui")[2])
    assert set(webui) == {"system", "route_info", "source_map", "ambassador_resolvers",
                          "ambassador_services", "envoy_status", "cluster_stats", "loginfo",
                          "errors"}
    status, ctype, html = _get(sim, "/ambassador/v0/diag/")
    assert status == 200 and ctype.startswith("text/html") and "<html>" in html
    assert _get(sim, "/ambassador/v0/check_alive")[::2] == (200, "Ambassador is alive and well\n")
    assert _get(sim, "/ambassador/v0/check_ready")[::2] == (200, "Ambassador is ready and waiting\n")
