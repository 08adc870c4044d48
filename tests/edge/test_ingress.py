"""The webhook ingress under a real uvicorn, forwarding through kubesim's gateway to simulated handlers."""

import hashlib
import hmac
import json
import socket
import threading
import time

import pytest
import requests
from django.utils import timezone

from tests.cluster import wait_for
from triggers.deliveries.retries import trigger_rotate_token
from triggers.models import Delivery, Trigger
from triggers.security import crypto

pytestmark = pytest.mark.django_db(transaction=True)


def hook(relay, trigger, sub="", **kwargs):
    method = kwargs.pop("method", "POST")
    return requests.request(method, f"{relay}/hooks/{trigger.token}{sub}", timeout=30, **kwargs)


def recorded(trigger, count=1):
    return wait_for(lambda: list(Delivery.objects.filter(trigger=trigger).order_by("received_at"))
                    if Delivery.objects.filter(trigger=trigger).count() >= count else None,
                    message=f"{count} deliveries recorded")


def test_echo_receives_method_path_query_body_and_headers(relay, live_trigger):
    trigger = live_trigger()
    body = bytes(range(256)) * 4
    response = hook(relay, trigger, "/events/push", params={"a": "1", "b": "two words"}, data=body,
                    headers={"Content-Type": "application/octet-stream", "X-Custom": "yes",
                             "Authorization": "Bearer abc", "Connection": "keep-alive, X-Drop", "X-Drop": "1"})
    assert response.status_code == 200, response.text
    echo = response.json()
    assert echo["method"] == "POST"
    assert echo["path"] == "/events/push"
    assert echo["query"] in ("a=1&b=two+words", {"a": "1", "b": "two words"}) or "two" in json.dumps(echo["query"])
    assert echo["body_size"] == len(body) and echo["body_sha256"] == hashlib.sha256(body).hexdigest()
    headers = {k.lower(): v for k, v in echo["headers"].items()}
    assert headers["host"] == "hello.relay-acme.svc.cluster.local"
    assert headers["content-type"] == "application/octet-stream" and headers["x-custom"] == "yes"
    assert headers["x-relay-trigger"] == "acme/hello" and headers["x-forwarded-for"] == "127.0.0.1"
    assert headers["x-forwarded-proto"] == "http" and headers["x-forwarded-host"].startswith("127.0.0.1")
    assert "x-drop" not in headers
    (delivery,) = recorded(trigger)
    assert headers["x-relay-delivery-id"] == str(delivery.pk)
    assert (delivery.state, delivery.response_status, delivery.attempts) == ("succeeded", 200, 1)
    assert bytes(delivery.body) == body and delivery.path == "/events/push"
    assert dict(delivery.headers)["authorization"] == "[redacted]"
    (attempt,) = delivery.attempt_history()
    assert delivery.latency_ms > 0 and (attempt.number, attempt.status) == (1, 200)


@pytest.mark.parametrize("content_type, payload", [("application/json", b'{"k": [1, 2]}'),
                                                   ("text/plain; charset=utf-8", "héllo".encode()),
                                                   ("application/x-www-form-urlencoded", b"a=1&b=2")])
def test_any_content_type_passes_through(relay, live_trigger, content_type, payload):
    trigger = live_trigger()
    response = hook(relay, trigger, data=payload, headers={"Content-Type": content_type}, method="PUT")
    echo = response.json()
    assert echo["method"] == "PUT" and echo["body_sha256"] == hashlib.sha256(payload).hexdigest()


def test_handler_status_codes_pass_through_in_sync_mode(relay, live_trigger):
    trigger = live_trigger(image="kubesim/status:418")
    response = hook(relay, trigger, data=b"{}")
    assert response.status_code == 418
    (delivery,) = recorded(trigger)
    assert (delivery.state, delivery.response_status) == ("failed", 418)


def test_unknown_token_is_404(relay):
    response = requests.post(f"{relay}/hooks/not-a-token", data=b"x", timeout=10)
    assert response.status_code == 404 and response.json() == {"detail": "Unknown webhook URL."}
    assert requests.post(f"{relay}/hooks/", timeout=10).status_code == 404


def test_suspended_trigger_is_410(relay, live_trigger):
    trigger = live_trigger()
    Trigger.objects.filter(pk=trigger.pk).update(suspended=True)
    time.sleep(0.3)  # the ingress caches routes for RELAY_INGRESS_CACHE_TTL
    response = hook(relay, trigger, data=b"x")
    assert response.status_code == 410 and "suspended" in response.json()["detail"]


def test_never_deployed_is_503_with_retry_after(relay, tenant_a):
    trigger = Trigger.objects.create(tenant=tenant_a, name="later", image="kubesim/echo")
    response = hook(relay, trigger, data=b"x")
    assert response.status_code == 503 and response.headers["Retry-After"] == "30"
    assert "no ready revision" in response.json()["detail"]
    (delivery,) = recorded(trigger)
    assert delivery.state == "failed"


def test_too_large_body_is_413_without_reading_it(relay, live_trigger, settings):
    trigger = live_trigger()
    settings.RELAY_MAX_BODY_BYTES = 1000
    response = hook(relay, trigger, data=b"x" * 1001)
    assert response.status_code == 413 and "1000 bytes" in response.json()["detail"]

    def chunks():
        for _ in range(100):
            yield b"y" * 100

    response = hook(relay, trigger, data=chunks())  # chunked, no Content-Length
    assert response.status_code == 413


def test_gateway_unreachable_is_502(relay, live_trigger, settings):
    trigger = live_trigger()
    settings.RELAY_GATEWAY_URL = "http://127.0.0.1:9"
    response = hook(relay, trigger, data=b"x")
    assert response.status_code == 502 and "gateway is unreachable" in response.json()["detail"]
    (delivery,) = recorded(trigger)
    assert delivery.state == "failed" and "unreachable" in delivery.error


def test_gateway_timeout_is_504(relay, live_trigger, settings):
    trigger = live_trigger(timeout_seconds=1)
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen()
    settings.RELAY_GATEWAY_URL = f"http://127.0.0.1:{silent.getsockname()[1]}"
    settings.RELAY_ACTIVATION_TIMEOUT = 0.2
    time.sleep(0.3)
    try:
        response = hook(relay, trigger, data=b"x")
    finally:
        silent.close()
    assert response.status_code == 504 and "did not answer within" in response.json()["detail"]


def github_signed(secret: str, body: bytes, delivery_id: str) -> dict:
    signature = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return {"X-Hub-Signature-256": f"sha256={signature}", "X-GitHub-Delivery": delivery_id,
            "Content-Type": "application/json"}


def test_github_signature_is_verified_at_the_edge(relay, live_trigger):
    trigger = live_trigger(verification="github", verification_secret=crypto.encrypt("gh-secret"))
    body = b'{"action": "opened"}'
    assert hook(relay, trigger, data=body, headers=github_signed("gh-secret", body, "d-1")).status_code == 200
    response = hook(relay, trigger, data=body, headers=github_signed("wrong", body, "d-2"))
    assert response.status_code == 401 and "Signature verification failed" in response.json()["detail"]
    tampered = hook(relay, trigger, data=body + b" ", headers=github_signed("gh-secret", body, "d-3"))
    assert tampered.status_code == 401
    deliveries = recorded(trigger, 3)
    assert [d.state for d in deliveries] == ["succeeded", "rejected", "rejected"]
    assert all(d.attempts == 0 for d in deliveries[1:])  # the handler was never called
    assert dict(deliveries[0].headers)["x-hub-signature-256"] == "[redacted]"


def test_repeated_provider_delivery_id_gets_the_first_outcome(relay, live_trigger):
    trigger = live_trigger(verification="github", verification_secret=crypto.encrypt("s"))
    body = b'{"n": 1}'
    first = hook(relay, trigger, data=body, headers=github_signed("s", body, "same-id"))
    again = hook(relay, trigger, data=body, headers=github_signed("s", body, "same-id"))
    assert first.status_code == again.status_code == 200
    echo = first.json()
    echo["headers"]["x-hub-signature-256"] = "[redacted]"  # the log's copy keeps no secret of the request
    assert again.json() == echo  # the same echo, including the delivery id the handler saw
    assert again.headers["X-Relay-Duplicate-Of"]
    wait_for(lambda: Delivery.objects.filter(trigger=trigger, state="succeeded").exists(), message="outcome")
    assert Delivery.objects.filter(trigger=trigger).count() == 1


def test_slack_url_verification_is_answered_at_the_edge(relay, tenant_a):
    trigger = Trigger.objects.create(tenant=tenant_a, name="slack", image="kubesim/echo", verification="slack",
                                     verification_secret=crypto.encrypt("slack-secret"))
    body = json.dumps({"type": "url_verification", "challenge": "abc123"}).encode()
    ts = str(int(time.time()))
    signature = "v0=" + hmac.new(b"slack-secret", b"v0:" + ts.encode() + b":" + body, hashlib.sha256).hexdigest()
    response = hook(relay, trigger, data=body, headers={"X-Slack-Request-Timestamp": ts, "X-Slack-Signature": signature,
                                                       "Content-Type": "application/json"})
    assert response.status_code == 200 and response.json() == {"challenge": "abc123"}  # not even deployed


def test_rotated_token_keeps_working_for_the_overlap(relay, live_trigger):
    trigger = live_trigger()
    old = trigger.token
    trigger_rotate_token(trigger)
    assert requests.post(f"{relay}/hooks/{trigger.token}", data=b"x", timeout=10).status_code == 200
    assert requests.post(f"{relay}/hooks/{old}", data=b"x", timeout=10).status_code == 200
    Trigger.objects.filter(pk=trigger.pk).update(previous_token_expires_at=timezone.now())
    time.sleep(0.3)
    assert requests.post(f"{relay}/hooks/{old}", data=b"x", timeout=10).status_code == 404


def test_concurrent_requests_during_one_cold_start_all_succeed(relay, live_trigger, kubesim, k8s):
    trigger = live_trigger()

    def active_status():
        revision = k8s.custom.get_namespaced_custom_object(
            "serving.knative.dev", "v1", "relay-acme", "revisions", "hello-00001")
        return next(c for c in revision["status"]["conditions"] if c["type"] == "Active")

    wait_for(lambda: active_status()["status"] == "False", timeout=10, message="scaled to zero")
    results = []

    def send():
        results.append(hook(relay, trigger, data=b"{}").status_code)

    threads = [threading.Thread(target=send) for _ in range(100)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert results == [200] * 100
    assert len(recorded(trigger, 100)) == 100


def test_an_undecryptable_secret_is_503_not_500(relay, live_trigger):
    trigger = live_trigger(verification="github", verification_secret="not-a-fernet-token")
    response = hook(relay, trigger, data=b"{}")
    assert response.status_code == 503 and "RELAY_ENCRYPTION_KEYS" in response.json()["detail"]


def test_an_undecryptable_secret_is_logged_once_not_on_every_route_reload(live_trigger, caplog):
    from triggers.edge.ingress import Route

    trigger = live_trigger(verification="github", verification_secret="not-a-fernet-token")
    with caplog.at_level("ERROR", logger="triggers.edge.ingress"):
        assert all(Route.of(trigger).broken for _ in range(3))
        assert len(caplog.records) == 1 and f"trigger {trigger.pk}" in caplog.records[0].getMessage()
        trigger.verification_secret = crypto.encrypt("fixed")
        assert not Route.of(trigger).broken
        trigger.verification_secret = "broken-again"
        assert Route.of(trigger).broken and len(caplog.records) == 2


def test_handlers_cookies_never_reach_another_handler(relay, live_trigger, settings):
    """One connection pool serves every tenant: a Set-Cookie from one handler is never stored and replayed
    to the next handler (gateways have hostnames, where a cookie jar would keep it)."""
    import http.server

    seen = []

    class Gateway(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self):
            self.rfile.read(int(self.headers.get("Content-Length", 0)))
            seen.append((self.headers["Host"], self.headers.get("Cookie")))
            body = b'{"ok": true}'
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Set-Cookie", "session=secret-of-the-first-handler; Path=/")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Gateway)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    first, second = live_trigger("first"), live_trigger("second")
    settings.RELAY_GATEWAY_URL = f"http://localhost:{server.server_address[1]}"
    try:
        one = hook(relay, first, data=b"{}")
        two = hook(relay, second, data=b"{}")
        three = hook(relay, first, data=b"{}")
    finally:
        server.shutdown()
        server.server_close()
    assert one.status_code == two.status_code == three.status_code == 200
    assert "Set-Cookie" not in one.headers  # nor does its sender (tests/edge/test_ingress_edge_origin.py)
    assert [cookie for _, cookie in seen] == [None, None, None], seen


def test_members_get_each_delivery_live_a_few_messages_a_second(relay, live_trigger, tenant_a):
    """Every delivery reaches the tenant's group as a "delivery" event; a burst shares channel-layer messages."""
    import asyncio

    from asgiref.sync import async_to_sync
    from channels.layers import get_channel_layer

    from triggers.live import broadcast

    trigger = live_trigger()
    layer = get_channel_layer()

    async def listen_while(send):
        channel = await layer.new_channel()
        await layer.group_add(broadcast.tenant_group(tenant_a.pk), channel)
        ids = await asyncio.to_thread(send)
        messages, seen = [], set()
        while not set(ids) <= seen:
            message = await asyncio.wait_for(layer.receive(channel), 10)
            messages.append(message)
            seen |= {payload["id"] for event, payload in message["events"] if event == "delivery"}
        await layer.group_discard(broadcast.tenant_group(tenant_a.pk), channel)
        return messages

    def send():  # 8 webhooks over ~200 ms: each in its own write batch
        for i in range(8):
            assert hook(relay, trigger, data=b'{"n": %d}' % i).status_code == 200
            time.sleep(0.025)
        return [str(delivery.pk) for delivery in recorded(trigger, 8)]

    messages = async_to_sync(listen_while)(send)
    events = [payload for m in messages for event, payload in m["events"] if event == "delivery"]
    assert len(events) == 8 and {e["trigger_id"] for e in events} == {trigger.pk}
    assert all(e["state"] == "succeeded" and e["status"] == 200 for e in events)
    assert len(messages) <= 4, f"{len(messages)} channel-layer messages for 8 deliveries"


def test_chunked_request_bodies_and_head_requests_are_forwarded(relay, live_trigger):
    trigger = live_trigger()

    def chunks():
        yield b'{"part": 1,'
        yield b' "part2": true}'

    response = hook(relay, trigger, "/c", data=chunks(), headers={"Content-Type": "application/json"})
    echo = response.json()
    assert response.status_code == 200 and echo["body_size"] == 26
    assert echo["body_sha256"] == hashlib.sha256(b'{"part": 1, "part2": true}').hexdigest()
    assert "transfer-encoding" not in {k.lower() for k in echo["headers"]}
    head = hook(relay, trigger, "/h", method="HEAD")
    assert head.status_code == 200 and head.content == b""
    methods = [d.method for d in recorded(trigger, 2)]
    assert methods == ["POST", "HEAD"]
