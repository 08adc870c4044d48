"""Bounded input, isolated failure: the ingress's limits on method, URL and headers (a JSON 4xx before
anything is stored or forwarded), and one tenant's unstorable requests never failing another tenant's."""

import http.client
import json
import socket
import threading
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from tests.cluster import wait_for
from triggers.edge.delivery_writer import RowNotStored, TriggerGone
from triggers.edge.ingress import Ingress, not_stored, request_limit
from triggers.models import Delivery, Trigger

pytestmark = pytest.mark.django_db(transaction=True)


def hook(base, trigger, sub="", method="POST", **kwargs):
    return requests.request(method, f"{base}/hooks/{trigger.token}{sub}", timeout=60, **kwargs)


def raw(base, trigger, headers: list[tuple[str, str]]) -> tuple[int, dict]:
    """POST with exactly these headers (and no others) over a socket: (status, JSON body)."""
    host, port = base.removeprefix("http://").split(":")
    lines = [f"POST /hooks/{trigger.token} HTTP/1.1", *(f"{k}: {v}" for k, v in headers), "", "{}"]
    with socket.create_connection((host, int(port)), timeout=30) as sock:
        sock.sendall("\r\n".join(lines).encode())
        response = http.client.HTTPResponse(sock)
        response.begin()
        return response.status, json.loads(response.read() or b"null")


@pytest.fixture
def inbox(tenant_a):
    """An async trigger: what the ingress accepts is stored and answered 202, nothing is forwarded yet."""
    return Trigger.objects.create(tenant=tenant_a, name="inbox", image="kubesim/echo", mode="async")


@pytest.fixture(scope="module")
def h11_server():
    """The ingress under uvicorn's h11 parser, which passes any token as a method (httptools knows a fixed
    list of methods, the longest UNSUBSCRIBE): the ingress's own method limit is what answers."""
    import uvicorn

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    ingress = Ingress()
    server = uvicorn.Server(uvicorn.Config(ingress, host="127.0.0.1", port=port, http="h11", lifespan="off",
                                           log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    wait_for(lambda: server.started, message="h11 uvicorn started")
    yield f"http://127.0.0.1:{port}", ingress
    server.should_exit = True
    thread.join(10)


@pytest.fixture
def h11_relay(h11_server, relay):
    base, ingress = h11_server
    yield base
    wait_for(lambda: ingress.writer.idle, message="h11 ingress's delivery writer drained")


def scope(method="POST", path=b"/hooks/t", query=b"", headers=()):
    return {"type": "http", "method": method, "raw_path": path, "query_string": query, "headers": list(headers)}


# ---------------------------------------------------------------- method

def test_a_method_of_up_to_16_token_characters_is_accepted_and_recorded(relay, h11_relay, inbox):
    for base, method in ((relay, "UNSUBSCRIBE"), (h11_relay, "X-SIXTEEN-CHARS!")):
        response = hook(base, inbox, "/m", method=method, data=b"{}")
        assert response.status_code == 202, response.text
        assert Delivery.objects.get(pk=response.json()["delivery_id"]).method == method


def test_a_method_longer_than_16_characters_is_400_and_nothing_is_stored(h11_relay, inbox):
    response = hook(h11_relay, inbox, method="X-SEVENTEEN-CHARS", data=b"{}")
    assert response.status_code == 400
    assert response.json() == {"detail": "The HTTP method must be a token of at most 16 characters."}
    assert not Delivery.objects.exists()


@pytest.mark.parametrize("method", ["GE T", "GET\t", "", "PÖST", "X" * 17, "A(B)", "{}"])
def test_a_method_that_is_not_a_token_is_400(method):
    status, body = request_limit(scope(method=method))
    assert status == 400 and b"token of at most 16 characters" in body


# ---------------------------------------------------------------- URL

def test_a_url_longer_than_relay_max_url_bytes_is_414_and_nothing_is_stored(relay, inbox, settings):
    settings.RELAY_MAX_URL_BYTES = 300
    prefix = len(f"/hooks/{inbox.token}")
    fits = hook(relay, inbox, "/" + "p" * (300 - prefix - 1), data=b"{}")
    assert fits.status_code == 202, fits.text
    too_long = hook(relay, inbox, "/" + "p" * (300 - prefix), data=b"{}")
    assert too_long.status_code == 414
    assert too_long.json() == {"detail": "URL longer than 300 bytes (RELAY_MAX_URL_BYTES)."}
    with_query = hook(relay, inbox, "/" + "p" * (300 - prefix - 10), params={"q": "12345678"}, data=b"{}")
    assert with_query.status_code == 414  # the query counts: path + "?" + query
    assert Delivery.objects.count() == 1


def test_the_default_url_limit_is_8192_bytes(relay, inbox):
    assert hook(relay, inbox, "/" + "p" * 3000, data=b"{}").status_code == 202
    assert hook(relay, inbox, "/" + "p" * 8192, data=b"{}").status_code == 414


# ---------------------------------------------------------------- headers

def test_more_headers_than_relay_max_headers_is_431_and_nothing_is_stored(relay, inbox, settings):
    settings.RELAY_MAX_HEADERS = 30
    fits = [("Host", "x"), ("Content-Length", "2"), *((f"X-H{i}", "v") for i in range(28))]
    assert raw(relay, inbox, fits)[0] == 202
    assert raw(relay, inbox, [*fits, ("X-H", "same name, one more line")]) == (
        431, {"detail": "More than 30 request headers (RELAY_MAX_HEADERS)."})
    assert Delivery.objects.count() == 1


def test_header_bytes_over_relay_max_header_bytes_is_431_and_nothing_is_stored(relay, inbox, settings):
    settings.RELAY_MAX_HEADER_BYTES = 2000
    head = [("Host", "x"), ("Content-Length", "2")]  # 9 + 19 bytes on the wire, with ": " and CRLF
    assert raw(relay, inbox, [*head, ("X-Big", "v" * (2000 - 28 - 9))])[0] == 202  # exactly 2000 bytes
    assert raw(relay, inbox, [*head, ("X-Big", "v" * (2000 - 28 - 8))]) == (
        431, {"detail": "Request headers larger than 2000 bytes (RELAY_MAX_HEADER_BYTES)."})
    assert Delivery.objects.count() == 1


def test_the_default_header_limits_refuse_a_megabyte_of_headers_even_unsigned(relay, tenant_a):
    """Unsigned requests to a verified trigger are stored as rejected: the limits come first."""
    trigger = Trigger.objects.create(tenant=tenant_a, name="gh", image="kubesim/echo", verification="github")
    many = {f"X-H{i}": "v" for i in range(150)}
    assert hook(relay, trigger, data=b"{}", headers=many).status_code == 431
    assert hook(relay, trigger, data=b"{}", headers={f"X-H{i}": "v" * 10_000 for i in range(100)}).status_code == 431
    assert hook(relay, trigger, data=b"{}", headers={"X-Fine": "v" * 1000}).status_code == 401
    wait_for(lambda: Delivery.objects.filter(trigger=trigger).exists(), message="the rejected delivery recorded")
    assert Delivery.objects.get(trigger=trigger).state == "rejected"  # only the one within the limits


def test_the_limits_answer_before_the_route_is_looked_up(relay, settings):
    settings.RELAY_MAX_URL_BYTES = 100
    response = requests.post(f"{relay}/hooks/no-such-token/" + "p" * 100, timeout=10)
    assert response.status_code == 414 and response.headers["Content-Type"] == "application/json"


# ---------------------------------------------------------------- isolated failure

def test_one_tenants_long_urls_and_methods_never_fail_another_tenants_webhooks(relay, live_trigger, tenant_a,
                                                                               tenant_b):
    """Long paths and an 11-character method, sent to one tenant's trigger while another tenant's async and
    sync webhooks run: every request of the other tenant is answered and recorded, and so is every one of
    the first tenant within the limits."""
    victim_async = Trigger.objects.create(tenant=tenant_a, name="asy", image="kubesim/echo", mode="async")
    victim_sync = live_trigger(name="echo")
    hostile = Trigger.objects.create(tenant=tenant_b, name="bx", image="kubesim/echo", mode="async")

    def hostile_request(i):
        if i % 4 == 3:
            return hook(relay, hostile, "/a", method="UNSUBSCRIBE", data=b"x").status_code
        return hook(relay, hostile, "/" + "x" * (3000 if i % 4 else 9000), data=b"x").status_code

    jobs = [("hostile", lambda i=i: hostile_request(i)) for i in range(40)]
    jobs += [("async", lambda i=i: hook(relay, victim_async, f"/{i}", data=b'{"n": %d}' % i)) for i in range(40)]
    jobs += [("sync", lambda i=i: hook(relay, victim_sync, f"/{i}", data=b"{}").status_code) for i in range(40)]
    jobs = [jobs[i // 3 + (i % 3) * 40] for i in range(120)]  # interleaved
    with ThreadPoolExecutor(24) as pool:
        futures = [(kind, pool.submit(job)) for kind, job in jobs]
        results = [(kind, future.result()) for kind, future in futures]
    accepted = [r for kind, r in results if kind == "async"]
    assert Counter(r.status_code for r in accepted) == {202: 40}
    assert Counter(r for kind, r in results if kind == "sync") == {200: 40}
    assert Counter(r for kind, r in results if kind == "hostile") == {202: 30, 414: 10}
    assert set(Delivery.objects.filter(trigger=victim_async).values_list("pk", flat=True)) == {
        Delivery.objects.get(pk=r.json()["delivery_id"]).pk for r in accepted}
    wait_for(lambda: Delivery.objects.filter(trigger=victim_sync, state="succeeded").count() == 40,
             message="the 40 sync deliveries recorded")
    hostile_rows = Delivery.objects.filter(trigger=hostile)
    assert Counter((d.method, len(d.path)) for d in hostile_rows) == {("POST", 3001): 20, ("UNSUBSCRIBE", 2): 10}
    assert not hostile_rows.filter(truncated=True).exists()


def test_a_trigger_deleted_while_its_route_is_cached_is_404_not_a_duplicate(relay, inbox, monkeypatch):
    from relayweb.asgi import ingress

    monkeypatch.setattr(ingress.routes, "ttl", 60)  # RELAY_INGRESS_CACHE_TTL of a minute, for this trigger
    assert hook(relay, inbox, data=b"{}").status_code == 202  # the route is cached
    Trigger.objects.filter(pk=inbox.pk).delete()
    response = hook(relay, inbox, data=b"{}")
    assert response.status_code == 404 and response.json() == {"detail": "Unknown webhook URL."}
    assert "X-Relay-Duplicate-Of" not in response.headers


def test_a_delivery_the_log_refuses_is_a_json_503_and_a_deleted_trigger_a_404():
    status, body = not_stored(RowNotStored("delivery x could not be stored: CHECK"))
    assert status == 503 and json.loads(body)["detail"].startswith("The delivery could not be recorded")
    assert not_stored(TriggerGone("trigger 1 no longer exists")) == (404, b'{"detail": "Unknown webhook URL."}')
