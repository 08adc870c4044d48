"""The webhook edge keeps origins and headers apart: a handler's response never acts on the origin it is
served from, a sender never speaks for relayweb, its proxies or the gateway, and webhooks can live on a
host of their own that serves nothing else."""

import http.server
import json
import os
import socket
import subprocess
import sys
import threading

import pytest
import requests
from channels.testing import HttpCommunicator
from django.test import Client

from tests.cluster import REPO, wait_for
from triggers.deliveries import retries as deliveries
from triggers.edge.headers import forwarded_headers
from triggers.models import Delivery, Trigger

pytestmark = pytest.mark.django_db(transaction=True)


HOOKS = "https://hooks.example-hooks.test"
SPOOFED = {
    "X-Relay-Trigger": "globex/theirs", "X-Relay-Delivery-Id": "spoofed-id", "X-Relay-Anything": "1",
    "X-Forwarded-For": "6.6.6.6", "X-Forwarded-Proto": "https", "X-Forwarded-Host": "evil.example",
    "X-Forwarded-Port": "443", "Forwarded": "for=6.6.6.6;proto=https",
    "x-envoy-max-retries": "50", "x-envoy-upstream-rq-timeout-ms": "1", "X-Envoy-Retry-On": "5xx",
    "Knative-Serving-Namespace": "relay-globex", "Knative-Serving-Revision": "theirs-00001",
    "K-Network-Hash": "x", "X-Custom": "kept", "Content-Type": "application/json",
}


def hook(relay, trigger, sub="", **kwargs):
    return requests.request(kwargs.pop("method", "POST"), f"{relay}/hooks/{trigger.token}{sub}", timeout=30, **kwargs)


def lowered(headers: dict) -> dict:
    return {k.lower(): v for k, v in headers.items()}


def assert_only_relay_headers(seen: dict, trigger, delivery_id: str) -> None:
    """What the handler got: relayweb's own X-Relay-*, and nothing a sender may not set."""
    assert seen["x-relay-trigger"] == f"acme/{trigger.name}" and seen["x-relay-delivery-id"] == delivery_id
    assert not {k for k in seen if k.startswith(("x-relay-anything", "x-envoy-", "k-"))}, seen
    # the gateway sets Knative's routing headers itself (as Knative's KIngress asks it to)
    assert seen.get("knative-serving-namespace", "relay-acme") == "relay-acme", seen
    assert seen["x-custom"] == "kept"


class HostileHandler(http.server.BaseHTTPRequestHandler):
    """A tenant's handler answering HTML with script, cookies and headers that would act on the whole origin."""

    protocol_version = "HTTP/1.1"
    BODY = b"<html><body><script>document.title = 'pwned:' + document.cookie</script></body></html>"

    def do_POST(self):
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self.send_response(200)
        for name, value in [
            ("Content-Type", "text/html; charset=utf-8"), ("Content-Length", str(len(self.BODY))),
            ("Set-Cookie", "sessionid=attacker-fixated; Path=/; HttpOnly"), ("Set-Cookie", "csrftoken=tossed; Path=/"),
            ("Content-Security-Policy", "default-src 'self'"), ("X-Content-Type-Options", "whatever"),
            ("Clear-Site-Data", '"cookies", "storage"'), ("Strict-Transport-Security", "max-age=0"),
            ("NEL", '{"report_to": "x", "max_age": 86400}'), ("Report-To", '{"group": "x"}'),
            ("Alt-Svc", 'h2="evil.example:443"'), ("X-Handler", "kept"), ("Cache-Control", "no-store"),
        ]:
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(self.BODY)

    def log_message(self, *args):
        pass


@pytest.fixture
def hostile_gateway(settings):
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), HostileHandler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    settings.RELAY_GATEWAY_URL = f"http://127.0.0.1:{server.server_address[1]}"
    yield
    server.shutdown()
    server.server_close()


# ------------------------------------------------------------------ the handler's response (finding: origin)


def test_a_handlers_cookies_and_origin_wide_headers_never_reach_the_sender_and_its_html_is_sandboxed(
        relay, live_trigger, hostile_gateway):
    trigger = live_trigger(dedupe_header="Idempotency-Key")
    first = hook(relay, trigger, data=b"{}", headers={"Idempotency-Key": "evt-1"})
    again = hook(relay, trigger, data=b"{}", headers={"Idempotency-Key": "evt-1"})  # answered from the log
    assert again.headers["X-Relay-Duplicate-Of"]
    for response in (first, again):
        headers = response.raw.headers  # every header line, repeated ones too
        assert response.status_code == 200 and response.content == HostileHandler.BODY
        assert headers.getlist("Set-Cookie") == [] and not response.cookies
        assert sorted(headers.getlist("Content-Security-Policy")) == ["default-src 'self'", "sandbox"]
        assert headers.getlist("X-Content-Type-Options") == ["nosniff"]
        for name in ("Clear-Site-Data", "Strict-Transport-Security", "NEL", "Report-To", "Alt-Svc"):
            assert name not in headers, name
        assert headers["X-Handler"] == "kept" and headers["Cache-Control"] == "no-store"
        assert headers["Content-Type"] == "text/html; charset=utf-8"


def test_our_own_answers_on_the_relay_path_are_sandboxed_too(relay, live_trigger, settings):
    trigger = live_trigger()
    settings.RELAY_GATEWAY_URL = "http://127.0.0.1:9"  # gateway down: relayweb's JSON 502
    response = hook(relay, trigger, data=b"x")
    assert response.status_code == 502
    assert response.headers["Content-Security-Policy"] == "sandbox"
    assert response.headers["X-Content-Type-Options"] == "nosniff"


# ------------------------------------------------------------------ the sender's request (finding: headers)


@pytest.mark.parametrize("trusted", [[], ["10.0.0.0/8", "::1/128"]], ids=["no-trusted-proxy", "peer-not-trusted"])
def test_a_senders_relay_forwarding_envoy_and_knative_headers_never_reach_the_handler(
        relay, live_trigger, settings, trusted):
    settings.RELAY_TRUSTED_PROXIES = trusted
    trigger = live_trigger()
    response = hook(relay, trigger, "/x", data=b"{}", headers=SPOOFED)
    assert response.status_code == 200, response.text
    assert response.headers["Content-Security-Policy"] == "sandbox"  # the echo is relayed content too
    seen = lowered(response.json()["headers"])
    (delivery,) = wait_for(lambda: list(Delivery.objects.filter(trigger=trigger)), message="recorded")
    assert_only_relay_headers(seen, trigger, str(delivery.pk))
    assert seen["x-forwarded-for"] == "127.0.0.1"  # the TCP peer, not what the sender claims
    assert seen["x-forwarded-proto"] == "http" and seen["x-forwarded-host"].startswith("127.0.0.1:")
    assert "forwarded" not in seen and "x-forwarded-port" not in seen
    assert dict(delivery.headers)["x-forwarded-for"] == "6.6.6.6"  # the log keeps what arrived


class CapturingHandler(http.server.BaseHTTPRequestHandler):
    """Records every header line relayweb sends the gateway, repeated ones included."""

    protocol_version = "HTTP/1.1"
    seen: list = []

    def do_POST(self):
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self.seen.append([(k.lower(), v) for k, v in self.headers.items()])
        self.send_response(204)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args):
        pass


def test_the_gateway_gets_one_of_each_relay_header_and_none_of_the_senders_internal_ones(
        relay, live_trigger, settings):
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), CapturingHandler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    trigger = live_trigger()
    settings.RELAY_GATEWAY_URL = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        assert hook(relay, trigger, data=b"{}", headers=SPOOFED).status_code == 204
    finally:
        server.shutdown()
        server.server_close()
    sent = CapturingHandler.seen[-1]
    names = [k for k, _ in sent]
    for name in ("x-relay-trigger", "x-relay-delivery-id", "x-forwarded-for", "x-forwarded-proto", "x-forwarded-host",
                 "host"):
        assert names.count(name) == 1, (name, sent)
    assert dict(sent)["x-relay-trigger"] == "acme/hello" and dict(sent)["x-forwarded-for"] == "127.0.0.1"
    assert not [k for k in names if k.startswith(("x-envoy-", "knative-", "k-", "x-relay-anything", "forwarded",
                                                  "x-forwarded-port"))], sent


def test_a_signed_in_browsers_dashboard_cookies_never_reach_a_handler(relay, live_trigger):
    """A dashboard user following a link to a webhook URL on the dashboard's host sends its cookies along."""
    trigger = live_trigger()
    mixed = "sessionid=operators-session; csrftoken=tok; theirs=1; django_language=en; messages=m; other=2"
    seen = lowered(hook(relay, trigger, method="GET", headers={"Cookie": mixed}).json()["headers"])
    assert seen["cookie"] == "theirs=1; other=2"
    seen = lowered(hook(relay, trigger, method="GET", headers={"Cookie": "sessionid=s; csrftoken=t"}).json()["headers"])
    assert "cookie" not in seen


def test_a_trusted_proxys_forwarding_headers_are_kept_and_its_chain_continued(relay, live_trigger, settings):
    settings.RELAY_TRUSTED_PROXIES = ["127.0.0.0/8"]
    trigger = live_trigger()
    headers = {**SPOOFED, "X-Forwarded-For": "203.0.113.7, 10.0.0.2", "X-Forwarded-Host": "hooks.example.com",
               "Forwarded": "for=203.0.113.7;proto=https"}
    response = hook(relay, trigger, data=b"{}", headers=headers)
    seen = lowered(response.json()["headers"])
    (delivery,) = wait_for(lambda: list(Delivery.objects.filter(trigger=trigger)), message="recorded")
    assert_only_relay_headers(seen, trigger, str(delivery.pk))  # a trusted proxy is not relayweb either
    assert seen["x-forwarded-for"] == "203.0.113.7, 10.0.0.2, 127.0.0.1"
    assert seen["x-forwarded-proto"] == "https" and seen["x-forwarded-host"] == "hooks.example.com"
    assert seen["x-forwarded-port"] == "443"
    assert seen["forwarded"] == "for=203.0.113.7;proto=https, for=127.0.0.1"


def test_forwarded_headers_for_ipv6_and_ipv4_mapped_peers(settings):
    settings.RELAY_TRUSTED_PROXIES = ["10.0.0.0/8", "fd00::/8"]
    sent = [("host", "hooks.example.com"), ("x-forwarded-for", "198.51.100.1"), ("forwarded", "for=198.51.100.1")]
    assert forwarded_headers(sent, "fd00::5", "http") == [
        ("X-Forwarded-For", "198.51.100.1, fd00::5"), ("X-Forwarded-Proto", "http"),
        ("X-Forwarded-Host", "hooks.example.com"), ("Forwarded", 'for=198.51.100.1, for="[fd00::5]"')]
    mapped = dict(forwarded_headers(sent, "::ffff:10.1.2.3", "http"))  # an IPv4 proxy seen on a dual-stack socket
    assert mapped["X-Forwarded-For"] == "198.51.100.1, ::ffff:10.1.2.3"
    untrusted = forwarded_headers(sent, "2001:db8::1", "https")
    assert untrusted == [("X-Forwarded-For", "2001:db8::1"), ("X-Forwarded-Proto", "https"),
                         ("X-Forwarded-Host", "hooks.example.com")]
    assert dict(forwarded_headers(sent, "", "http")).get("X-Forwarded-For") is None  # a Unix socket: no peer


def delivered(pk) -> Delivery:
    """One attempt of an async delivery, here or by a worker that got its message first."""
    deliveries.delivery_deliver(pk)
    return wait_for(lambda: Delivery.objects.filter(pk=pk, state__in=("succeeded", "failed", "dead")).first(),
                    message=f"delivery {pk} attempted")


def test_async_deliveries_and_replays_never_send_a_senders_relay_forwarding_or_envoy_headers(relay, live_trigger):
    trigger = live_trigger(mode="async")
    response = hook(relay, trigger, data=b"{}", headers=SPOOFED)
    assert response.status_code == 202, response.text
    pk = response.json()["delivery_id"]
    delivery = delivered(pk)
    assert (delivery.state, delivery.response_status) == ("succeeded", 200)
    seen = lowered(json.loads(bytes(delivery.response_body))["headers"])
    assert_only_relay_headers(seen, trigger, pk)
    assert not {k for k in seen if k.startswith("x-forwarded-") or k == "forwarded"}, seen
    replay = delivered(deliveries.delivery_replay(delivery).pk)
    seen = lowered(json.loads(bytes(replay.response_body))["headers"])
    assert_only_relay_headers(seen, trigger, str(replay.pk))
    assert "x-forwarded-for" not in seen


# ------------------------------------------------------------------ webhooks on a host of their own


def raw_get(base: str, path: str, host: str, extra: str = "Connection: close\r\n") -> bytes:
    """One HTTP/1.1 request with exactly this Host header; the whole answer (the server closes)."""
    address = base.removeprefix("http://").split(":")
    with socket.create_connection((address[0], int(address[1])), timeout=10) as sock:
        sock.sendall(f"GET {path} HTTP/1.1\r\nHost: {host}\r\n{extra}\r\n".encode())
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


WEBSOCKET = ("Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
             "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n")


def test_on_a_hooks_host_of_its_own_nothing_but_hooks_is_served(relay, live_trigger, settings):
    settings.SITE_URL, settings.RELAY_HOOKS_URL = "http://localhost:8000", HOOKS
    trigger = live_trigger()
    for host in ("hooks.example-hooks.test", "HOOKS.Example-Hooks.test:443", "hooks.example-hooks.test."):
        for path in ("/", "/t/acme/triggers/", "/api/v1/tenants/", "/admin/login/", "/healthz", "/hooks"):
            answer = raw_get(relay, path, host)
            assert answer.startswith(b"HTTP/1.1 404 "), (host, path, answer[:200])
            assert b"serves webhooks only" in answer and b"set-cookie" not in answer.lower()
        assert raw_get(relay, f"/hooks/{trigger.token}", host).startswith(b"HTTP/1.1 200 "), host
    websocket = raw_get(relay, "/ws/tenants/acme/", "hooks.example-hooks.test", WEBSOCKET)
    assert websocket.startswith(b"HTTP/1.1 404 ") and b"serves webhooks only" in websocket, websocket[:300]
    on_hooks_host = hook(relay, trigger, data=b"{}", headers={"Host": "hooks.example-hooks.test"})
    assert on_hooks_host.status_code == 200 and on_hooks_host.json()["path"] == "/"
    # the dashboard's host keeps everything, /hooks/ included (senders set up before the split)
    assert raw_get(relay, "/healthz", "localhost").startswith(b"HTTP/1.1 200 ")
    assert raw_get(relay, "/admin/login/", "localhost").startswith(b"HTTP/1.1 200 ")
    assert hook(relay, trigger, data=b"{}", headers={"Host": "localhost:8000"}).status_code == 200
    websocket = raw_get(relay, "/ws/tenants/acme/", "localhost", WEBSOCKET + "Origin: http://localhost\r\n")
    assert b"serves webhooks only" not in websocket  # Channels answers it (an anonymous user is refused)


async def test_webhooks_on_the_dashboards_own_host_name_refuse_nothing(settings):
    settings.SITE_URL, settings.RELAY_HOOKS_URL = "http://localhost:8000", "https://localhost:8443"
    from relayweb.asgi import application

    communicator = HttpCommunicator(application, "GET", "/healthz", headers=[(b"host", b"localhost")])
    assert (await communicator.get_response())["status"] == 200


def test_every_webhook_url_shown_uses_the_hooks_url(api, alice, tenant_a, settings):
    settings.SITE_URL, settings.RELAY_HOOKS_URL = "https://relay.example.com", HOOKS
    trigger = Trigger.objects.create(tenant=tenant_a, name="hello", image="kubesim/echo", created_by=alice)
    url = f"{HOOKS}/hooks/{trigger.token}"
    body = api(alice).get("/api/v1/tenants/acme/triggers/hello/").json()
    assert body["webhook_url"] == url
    client = Client()
    client.force_login(alice)
    for page in ("/t/acme/triggers/hello/", "/t/acme/triggers/hello/deliveries/"):
        html = client.get(page).content.decode()
        assert f"curl -i -X POST &#x27;{url}&#x27;" in html or f"curl -i -X POST '{url}'" in html, page
        assert "relay.example.com/hooks/" not in html, page


@pytest.mark.parametrize("name, value, message", [
    ("RELAY_TRUSTED_PROXIES", "10.0.0.0/8, not-a-cidr", "RELAY_TRUSTED_PROXIES: 'not-a-cidr' is not an IP"),
    ("RELAY_HOOKS_URL", "hooks.example.com", "RELAY_HOOKS_URL must be an http(s) URL"),
])
def test_a_malformed_edge_setting_stops_startup_with_its_name(name, value, message):
    env = {**os.environ, "DEBUG": "1", name: value}
    result = subprocess.run([sys.executable, "-c", "import relayweb.settings"], cwd=REPO, env=env,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode != 0 and message in result.stderr, result.stderr


def test_the_chart_serves_webhooks_from_hooks_host_trusts_the_proxies_it_is_told_and_no_others():
    from tests.deploy.charts import RELAYWEB_REQUIRED, find, render

    values = {**RELAYWEB_REQUIRED, "ingress": {"hooksHost": "hooks.example-hooks.com"},
              "relay": {"trustedProxies": "10.244.0.0/16"}}
    objects = render("relayweb", values)
    data = find(objects, "ConfigMap", "relayweb")["data"]
    assert data["RELAY_HOOKS_URL"] == "https://hooks.example-hooks.com" and data["SITE_URL"] == "https://relay.example.com"
    assert data["RELAY_TRUSTED_PROXIES"] == "10.244.0.0/16"
    defaults = find(render("relayweb", RELAYWEB_REQUIRED), "ConfigMap", "relayweb")["data"]
    assert defaults["RELAY_HOOKS_URL"] == "" and defaults["RELAY_TRUSTED_PROXIES"] == ""
    web = next(o for o in objects if o["kind"] == "Deployment" and o["metadata"]["name"].endswith("-web"))
    # uvicorn must not rewrite the peer address from X-Forwarded-For: relayweb decides whom to trust
    assert "--no-proxy-headers" in web["spec"]["template"]["spec"]["containers"][0]["command"]
    procfile = (REPO / "Procfile").read_text()
    assert "--no-proxy-headers" in next(line for line in procfile.splitlines() if line.startswith("web:"))
    assert '"--no-proxy-headers"' in (REPO / "deploy" / "Dockerfile").read_text()
