"""Ambassador diag: parsing the real Emissary fixture and kubesim's live output, the stored state when
the diag is unreachable or malformed, change detection, and a tenant's view limited to its own hosts."""

from __future__ import annotations

import json
import socket
import threading
import uuid
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import redis
import requests

from tests.cluster import shared_fixtures
from triggers.gateway import diag

T0 = datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC)
T1 = datetime(2025, 1, 2, 3, 4, 15, tzinfo=UTC)
T2 = datetime(2025, 1, 2, 3, 4, 25, tzinfo=UTC)

ACME = "hello.relay-acme.svc.cluster.local"
GLOBEX = "hello.relay-globex.svc.cluster.local"


def knative_route(host: str, cluster: str, service: str, timeout_ms: int = 15000) -> dict:
    """A route_info entry in the >= 1.5 Knative Mapping shape (knative-ambassador.md §7)."""
    return {"_route": {"host": host, "kind": "IRHTTPMappingGroup", "prefix": "/",
                       "mappings": [{"name": "m", "timeout_ms": timeout_ms, "service": service}]},
            "_source": "x", "_group_id": "g", "key": f"http://{host}/", "prefix": "/", "rewrite": "/",
            "method": "*", "headers": [], "host": host, "precedence": 0,
            "clusters": [{"name": cluster, "service": service, "weight": 100, "_hcolor": "grey",
                          "_health": "no requests yet", "_hmetric": "waiting"}]}


def valid_stats(ok: int, c4: int, c5: int) -> dict:
    pct = round(100 * (ok + c4) / (ok + c4 + c5))
    return {"valid": True, "reason": "Cluster x updated at 1", "healthy_members": 1, "total_members": 1,
            "healthy_percent": pct, "upstream_ok": ok, "upstream_4xx": c4, "upstream_5xx": c5,
            "upstream_bad": 0, "health": f"{pct}% healthy", "hmetric": pct, "hcolor": "green" if pct >= 90 else "red"}


def plain_http_diag() -> dict:
    """A 1.x-style diag of a plain-HTTP Knative install: env_good false only for want of a TLSContext."""
    return {
        "system": {"version": "1.14.4", "hostname": "amb-1", "knative_enabled": True, "env_good": False,
                   "env_failures": ["no TLS contexts"],
                   "env_status": {"Mappings": {"specifics": [[True, "2 Mappings are active"]], "status": True},
                                  "TLS": {"specifics": [[False, "No TLSContexts are active"]], "status": False}}},
        "envoy_status": {"alive": True, "ready": True, "uptime": "1 minute, 2 seconds",
                         "since_update": "4 seconds ago"},
        "route_info": [knative_route(ACME, "cluster_hello_00001_relay_acme_80_relay_acme", "hello-00001.relay-acme:80"),
                       knative_route(GLOBEX, "cluster_hello_00001_relay_globex_80_relay_globex",
                                     "hello-00001.relay-globex:80", timeout_ms=30000)],
        "cluster_stats": {"cluster_hello_00001_relay_acme_80_relay_acme": valid_stats(9, 1, 0),
                          "cluster_hello_00001_relay_globex_80_relay_globex": valid_stats(1, 0, 3)},
        "errors": [], "notices": [],
    }


@pytest.fixture
def diag_key(settings):
    """A Redis key of this test's own, removed afterwards."""
    settings.RELAY_DIAG_KEY = f"relayweb:diag:test:{uuid.uuid4().hex}"
    yield settings.RELAY_DIAG_KEY
    with redis.Redis.from_url(settings.REDIS_URL) as r:
        r.delete(settings.RELAY_DIAG_KEY)


class _Handler(BaseHTTPRequestHandler):
    def do_GET(self):  # noqa: N802
        status, ctype, body = self.server.answer
        self.server.paths.append(self.path)
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def fake_admin(settings):
    """A loopback HTTP server standing in for Ambassador's admin port; set `.answer = (status, type, body)`."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    server.answer = (200, "application/json", json.dumps(plain_http_diag()).encode())
    server.paths = []
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    settings.RELAY_AMBASSADOR_ADMIN_URL = f"http://127.0.0.1:{server.server_address[1]}"
    yield server
    server.shutdown()
    server.server_close()


def closed_port_url() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{s.getsockname()[1]}"


# ------------------------------------------------------------------------------- the real fixture
def test_parse_reads_every_part_of_the_real_emissary_fixture():
    path = shared_fixtures() / "ambassador" / "emissary-diag-overview-3.0.0-rc.0.json"
    snap = diag.parse(json.loads(path.read_text()))
    json.dumps(snap)  # storable as is

    system = snap["system"]
    assert (system["version"], system["hostname"]) == ("3.0.0-rc.0", "edge-stack-66f8b6ccbc")
    assert (system["knative_enabled"], system["env_good"], system["env_failures"]) == (False, False, [])
    # env_good is false here because an error was logged, not for want of TLS: no reassuring note.
    assert system["env_note"] is None
    checks = {c["name"]: c for c in system["env_checks"]}
    assert checks["Error check"] == {"name": "Error check", "ok": False, "details": ["1 total error logged"]}
    assert checks["TLS"]["ok"] is True and checks["Mappings"]["details"] == ["68 Mappings are active"]

    assert snap["envoy"] == {"alive": True, "ready": True, "uptime": "23 minutes, 59 seconds",
                             "since_update": "4 seconds ago"}

    assert [r["host"] for r in snap["routes"]] == ["*", "staging-app.io"]
    internal, yaml = snap["routes"]
    assert (internal["prefix"], internal["key"], internal["timeout"]) == (
        "/.ambassador/", "http://*/ambassador/v0/", None)
    assert internal["clusters"] == [{"name": "cluster_0_0_0_1_8500_jargon", "service": "service-1:8500",
                                     "weight": 100}]
    assert yaml["prefix"] == "/yaml/(v2-docs|ambassador|ambassador-docs|edge-heap|emissary)/latest/.*"
    assert yaml["clusters"] == [{"name": "cluster_saas_beta", "service": "sso-beta:8080", "weight": 100}]

    stats = snap["clusters"]
    assert stats["cluster_system_a_ui_saas_beta_80_saas_beta"] == {
        "healthy_percent": None, "hcolor": "orange", "health": "undefined cluster", "upstream_ok": None,
        "upstream_4xx": None, "upstream_5xx": None, "valid": False}
    assert stats["cluster_tracing_trace_collector_monitoring_9411_monitoring"]["hcolor"] == "orange"
    # clusters of routes that cluster_stats does not list carry the route's own health
    assert stats["cluster_saas_beta"]["health"] == "undefined cluster"
    assert set(stats) == {"cluster_system_a_ui_saas_beta_80_saas_beta",
                          "cluster_tracing_trace_collector_monitoring_9411_monitoring",
                          "cluster_0_0_0_1_8500_jargon", "cluster_saas_beta"}

    assert snap["errors"] == [["ir.ratelimit",
                               'RateLimitService: protocol_version v2 is unsupported, protocol_version must be "v3"']]
    assert all(isinstance(e, list) and len(e) == 2 for e in snap["errors"])
    assert snap["notices"] == [{"level": "NOTICE", "message": "-global-: A future Ambassador version will change "
                                "the GRPC protocol version for AuthServices. See the CHANGELOG for details."}]


# ------------------------------------------------------------------------------- shapes and oddities
def test_missing_tls_context_is_noted_as_not_an_outage():
    snap = diag.parse(plain_http_diag())
    assert snap["system"]["env_good"] is False
    assert snap["system"]["env_note"] == diag.TLS_NOTE
    route = snap["routes"][0]
    assert (route["host"], route["prefix"], route["timeout"]) == (ACME, "/", 15.0)
    assert snap["clusters"]["cluster_hello_00001_relay_acme_80_relay_acme"]["healthy_percent"] == 100


def test_tls_plus_another_failure_gets_no_note():
    raw = plain_http_diag()
    raw["system"]["env_status"]["Error check"] = {"specifics": [[False, "1 total error logged"]], "status": False}
    assert diag.parse(raw)["system"]["env_note"] is None
    raw = plain_http_diag()
    raw["system"]["env_failures"].append("no IR loaded")
    assert diag.parse(raw)["system"]["env_note"] is None


def test_odd_entries_are_skipped_never_raised():
    raw = {
        "system": {"version": 3, "env_good": "yes", "env_failures": "x", "env_status": {"TLS": "bad"}},
        "envoy_status": ["not", "a", "dict"],
        "route_info": [None, "x", {"host": 5}, {"clusters": "x"},
                       {"host": "a.example:8080", "_route": [], "clusters": [None, {"weight": 1}, {"name": "c1"}]}],
        "cluster_stats": {"c1": "bad", "c2": {"healthy_percent": "90", "hcolor": 4}},
        "errors": [["only-one"], ["src", "msg"], "plain message", {"x": 1}, [None, 7]],
        "notices": [{"level": "WARNING", "message": "careful"}, {"message": 5}, "bare", 3],
    }
    snap = diag.parse(raw)
    json.dumps(snap)
    assert snap["system"]["version"] is None and snap["system"]["env_good"] is None
    assert snap["system"]["env_failures"] == [] and snap["system"]["env_note"] is None
    assert snap["envoy"] == {"alive": None, "ready": None, "uptime": None, "since_update": None}
    assert snap["routes"] == [
        {"host": "*", "prefix": None, "key": None, "timeout": None, "clusters": []},
        {"host": "a.example:8080", "prefix": None, "key": None, "timeout": None,
         "clusters": [{"name": "c1", "service": None, "weight": None}]},
    ]
    assert snap["clusters"] == {"c2": {"healthy_percent": None, "hcolor": "grey", "health": None,
                                       "upstream_ok": None, "upstream_4xx": None, "upstream_5xx": None,
                                       "valid": False}}
    assert snap["errors"] == [["src", "msg"], ["", "plain message"], ["", "7"]]
    assert snap["notices"] == [{"level": "WARNING", "message": "careful"}, {"level": "NOTICE", "message": "bare"}]


@pytest.mark.parametrize("raw", [[], "text", None, 5, {}, {"foo": 1},
                                 {"system": "x", "route_info": {}, "cluster_stats": [], "envoy_status": 1}])
def test_an_unusable_top_level_is_malformed(raw):
    with pytest.raises(diag.DiagError, match="malformed diag JSON"):
        diag.parse(raw)


# ------------------------------------------------------------------------------- fetch and stored state
def test_poll_stores_the_snapshot_in_redis(fake_admin, diag_key, settings):
    assert diag.load() is None
    state = diag.poll_once(now=T0)
    assert fake_admin.paths == ["/ambassador/v0/diag/?json=true"]
    assert state == {"reachable": True, "checked_at": T0.isoformat(), "last_good_at": T0.isoformat(),
                     "snapshot": diag.parse(plain_http_diag())}
    assert diag.load() == state
    with redis.Redis.from_url(settings.REDIS_URL) as r:
        assert json.loads(r.get(diag_key)) == state


@pytest.mark.parametrize("answer, message", [
    ((200, "text/html", b"<html>Ambassador Diagnostics</html>"), "did not return JSON"),
    ((200, "application/json", b"[1, 2, 3]"), "malformed diag JSON: top level is list"),
    ((200, "application/json", b'{"system": "x", "route_info": 7}'), "malformed diag JSON"),
    ((200, "application/json", b'{"system": {"version": '), "did not return JSON"),
    ((503, "text/plain", b"Can't do overview before configuration"), "HTTP 503: Can't do overview"),
    ((404, "text/plain", b"Not found\n"), "HTTP 404"),
])
def test_malformed_or_refused_diag_keeps_the_last_good_snapshot(fake_admin, diag_key, answer, message):
    good = diag.poll_once(now=T0)
    fake_admin.answer = answer
    bad = diag.poll_once(now=T1)
    assert bad["reachable"] is False and message in bad["error"]
    assert (bad["checked_at"], bad["last_good_at"]) == (T1.isoformat(), T0.isoformat())
    assert bad["snapshot"] == good["snapshot"]
    assert diag.load() == bad
    again = diag.poll_once(now=T2)
    assert not diag.changed(bad, again)  # the same failure twice: nothing to broadcast
    fake_admin.answer = (200, "application/json", json.dumps(plain_http_diag()).encode())
    recovered = diag.poll_once(now=T2)
    assert recovered["reachable"] is True and recovered["last_good_at"] == T2.isoformat()
    assert "error" not in recovered


def test_unreachable_diag_keeps_the_last_good_time(fake_admin, diag_key, settings):
    diag.poll_once(now=T0)
    settings.RELAY_AMBASSADOR_ADMIN_URL = closed_port_url()
    state = diag.poll_once(now=T1)
    assert state["reachable"] is False and "cannot reach Ambassador diag" in state["error"]
    assert state["last_good_at"] == T0.isoformat() and state["snapshot"]["system"]["version"] == "1.14.4"
    assert "0x" not in state["error"]  # stable text, so a lasting outage is not a change every poll
    assert not diag.changed(state, diag.poll_once(now=T2))


def test_unreachable_before_any_good_poll_has_no_snapshot(diag_key, settings):
    settings.RELAY_AMBASSADOR_ADMIN_URL = closed_port_url()
    state = diag.poll_once(now=T0)
    assert state == {"reachable": False, "error": state["error"], "checked_at": T0.isoformat(),
                     "last_good_at": None, "snapshot": None}


def test_fetch_raises_diag_error_for_each_failure(fake_admin):
    fake_admin.answer = (500, "text/plain", b"server error")
    with pytest.raises(diag.DiagError, match="HTTP 500"):
        diag.fetch(f"http://127.0.0.1:{fake_admin.server_address[1]}/")
    with pytest.raises(diag.DiagError, match="cannot reach"):
        diag.fetch(closed_port_url(), timeout=2)


def test_changed_ignores_poll_times_and_uptimes_only():
    a = {"reachable": True, "checked_at": "t0", "last_good_at": "t0", "snapshot": diag.parse(plain_http_diag())}
    later = plain_http_diag()
    later["envoy_status"].update(uptime="5 minutes, 1 second", since_update="within the last second")
    b = {"reachable": True, "checked_at": "t1", "last_good_at": "t1", "snapshot": diag.parse(later)}
    assert not diag.changed(a, b)
    busier = plain_http_diag()
    busier["cluster_stats"]["cluster_hello_00001_relay_acme_80_relay_acme"] = valid_stats(10, 1, 0)
    assert diag.changed(a, {**b, "snapshot": diag.parse(busier)})
    assert diag.changed(a, {**a, "reachable": False})
    assert diag.changed(None, a) and not diag.changed(None, None)


# ------------------------------------------------------------------------------- a tenant's view
def test_for_hosts_shows_only_the_given_hosts_routes_and_clusters():
    raw = plain_http_diag()
    raw["route_info"].append(knative_route("*", "cluster_internal", "127.0.0.1:8500"))  # Ambassador's own
    state = {"reachable": True, "checked_at": "t0", "last_good_at": "t0", "error": "internal",
             "snapshot": diag.parse(raw)}
    acme = diag.for_hosts(state, {ACME})
    assert [r["host"] for r in acme["routes"]] == [ACME]
    assert list(acme["clusters"]) == ["cluster_hello_00001_relay_acme_80_relay_acme"]
    assert set(acme) == {"polled", "reachable", "last_good_at", "has_snapshot", "routes", "clusters"}
    assert "relay-globex" not in json.dumps(acme) and "1.14.4" not in json.dumps(acme)
    assert "cluster_internal" not in json.dumps(acme) and "internal" not in acme.values()
    globex = diag.for_hosts(state, {GLOBEX + ":80"})  # with a port
    assert [r["host"] for r in globex["routes"]] == [GLOBEX] and "relay-acme" not in json.dumps(globex)
    assert diag.for_hosts(state, {"*", ""})["routes"] == []  # "*" is a wildcard, not a tenant's host
    assert diag.for_hosts(state, set())["routes"] == []


def test_for_hosts_matches_route_hosts_written_with_a_port_or_as_a_regex():
    raw = plain_http_diag()
    raw["route_info"][0]["host"] = ACME + ":80"
    raw["route_info"][1]["host"] = "^(hello.relay-globex.svc.cluster.local)$"
    state = {"reachable": True, "last_good_at": "t0", "snapshot": diag.parse(raw)}
    assert len(diag.for_hosts(state, {ACME})["routes"]) == 1
    assert [r["host"] for r in diag.for_hosts(state, {GLOBEX})["routes"]] == [raw["route_info"][1]["host"]]


def test_for_hosts_when_unreachable_or_never_polled():
    view = diag.for_hosts({"reachable": False, "error": "x", "last_good_at": None, "snapshot": None}, {ACME})
    assert view == {"polled": True, "reachable": False, "last_good_at": None, "has_snapshot": False,
                    "routes": [], "clusters": {}}
    assert diag.for_hosts(None, {ACME})["polled"] is False


# ------------------------------------------------------------------------------- kubesim's live output
@pytest.mark.django_db
def test_kubesim_diag_routes_the_live_trigger_and_counts_its_traffic(kubesim, live_trigger, diag_key, settings):
    hello = live_trigger()
    teapot = live_trigger("teapot", image="kubesim/status:418")
    for trigger, count in ((hello, 3), (teapot, 2)):
        host = diag.trigger_hosts(trigger)
        assert f"{trigger.name}.relay-acme.svc.cluster.local" in host
        for _ in range(count):
            requests.post(kubesim.gateway_url + "/", data=b"{}", timeout=30,
                          headers={"Host": f"{trigger.name}.relay-acme.svc.cluster.local"})

    snap = diag.parse(diag.fetch(kubesim.admin_url))
    system = snap["system"]
    assert system["knative_enabled"] is True and system["env_good"] is False
    assert system["env_note"] == diag.TLS_NOTE
    assert snap["envoy"]["alive"] is True and snap["errors"] == []
    route = next(r for r in snap["routes"] if r["host"] == ACME)
    assert route["prefix"] == "/" and route["key"] == f"http://{ACME}/" and route["timeout"] > 0
    (cluster,) = route["clusters"]
    assert cluster["weight"] == 100 and cluster["service"].startswith(f"{hello.latest_ready_revision}.relay-acme")
    stats = snap["clusters"][cluster["name"]]
    assert stats["valid"] is True and (stats["upstream_ok"], stats["upstream_4xx"], stats["upstream_5xx"]) == (3, 0, 0)
    assert (stats["healthy_percent"], stats["hcolor"]) == (100, "green")
    teapot_route = next(r for r in snap["routes"] if r["host"] == "teapot.relay-acme.svc.cluster.local")
    assert snap["clusters"][teapot_route["clusters"][0]["name"]]["upstream_4xx"] == 2

    settings.RELAY_AMBASSADOR_ADMIN_URL = kubesim.admin_url
    state = diag.poll_once()
    view = diag.trigger_diag(hello)
    assert state["reachable"] and [r["host"] for r in view["routes"] if r["host"] == ACME] == [ACME]
    assert all(r["host"].startswith("hello.") for r in view["routes"])
    assert list(view["clusters"]) == [cluster["name"]]


async def receive_within(layer, channel: str, seconds: float) -> dict:
    import asyncio

    try:
        return await asyncio.wait_for(layer.receive(channel), seconds)
    except TimeoutError:
        raise AssertionError(f"nothing arrived on {channel} within {seconds} s") from None


@pytest.mark.django_db
def test_each_tenant_gets_the_routes_of_its_triggers_hosts_as_its_websocket_snapshot_does(
        fake_admin, diag_key, tenant_a, tenant_b, django_capture_on_commit_callbacks):
    from asgiref.sync import async_to_sync
    from channels.layers import get_channel_layer

    from triggers.cluster.watcher import poll_diag
    from triggers.live import broadcast
    from triggers.models import Trigger

    # acme's route is known by the trigger's URL only (no address yet); globex's by its address
    Trigger.objects.create(tenant=tenant_a, name="hello", image="kubesim/echo", url=f"http://{ACME}")
    Trigger.objects.create(tenant=tenant_b, name="hello", image="kubesim/echo", address_url=f"http://{GLOBEX}")
    layer = get_channel_layer()
    inboxes = {t.pk: async_to_sync(layer.new_channel)() for t in (tenant_a, tenant_b)}
    for tenant_id, channel in inboxes.items():
        async_to_sync(layer.group_add)(broadcast.tenant_group(tenant_id), channel)
    try:
        with django_capture_on_commit_callbacks(execute=True):
            poll_diag()
        for tenant, host in ((tenant_a, ACME), (tenant_b, GLOBEX)):
            message = async_to_sync(receive_within)(layer, inboxes[tenant.pk], 5)
            assert message["event"] == "diag"
            assert [r["host"] for r in message["payload"]["routes"]] == [host]
            # the same view the tenant's websocket snapshot builds from its triggers
            triggers = Trigger.objects.filter(tenant=tenant)
            hosts = set().union(*(diag.trigger_hosts(t) for t in triggers))
            assert message["payload"] == json.loads(json.dumps(diag.for_hosts(diag.load(), hosts)))
    finally:
        for tenant_id, channel in inboxes.items():
            async_to_sync(layer.group_discard)(broadcast.tenant_group(tenant_id), channel)
