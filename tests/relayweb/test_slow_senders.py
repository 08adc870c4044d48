"""Slow senders under the real web server (uvicorn with relayweb.protocol, as the Procfile runs it): a
request's head and a webhook's body have RELAY_CLIENT_TIMEOUT; a dripping sender gets 408 and is
disconnected, a large body arriving steadily is not cut off."""

import asyncio
import json
import select
import shlex
import socket
import time
from urllib.parse import urlsplit

import pytest

from tests.cluster import wait_for
from tests.deploy.charts import RELAYWEB_REQUIRED, REPO, render
from tests.deploy.test_helm_charts import container, deployments
from triggers.models import Delivery, Trigger

pytestmark = pytest.mark.django_db(transaction=True)
TIMEOUT = 0.5  # (the server starts its clock when it accepts, a little before the sender starts its own)


@pytest.fixture
def server(relay, settings):
    settings.RELAY_CLIENT_TIMEOUT = TIMEOUT  # read by each new connection and each body read
    return urlsplit(relay).port


def drip(port: int | socket.socket, first: bytes, pieces, interval: float = 0.3, give_up: float = 6.0):
    """Send `first`, then one of `pieces` every `interval` s until the server answers or closes.
    Returns (seconds from the first byte until the server closed, what it answered); closed=None if it never did."""
    sock = port if isinstance(port, socket.socket) else socket.create_connection(("127.0.0.1", port))
    sock.settimeout(give_up)
    started, received = time.monotonic(), b""
    try:
        sock.sendall(first)
        for piece in pieces:
            if select.select([sock], [], [], interval)[0] or time.monotonic() - started > give_up:
                break
            try:
                sock.sendall(piece)
            except OSError:
                break
        while chunk := sock.recv(65536):
            received += chunk
        return time.monotonic() - started, received
    except TimeoutError:
        return None, received
    except ConnectionResetError:
        return time.monotonic() - started, received
    finally:
        sock.close()


def answer(raw: bytes) -> tuple[int, dict, bytes]:
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = dict(line.lower().split(": ", 1) for line in lines[1:])
    return int(lines[0].split()[1]), headers, body


def header_lines(n=100):
    return (b"X-Drip-%d: 1\r\n" % i for i in range(n))


def test_a_sender_dripping_header_lines_gets_408_at_the_timeout(server):
    closed_after, raw = drip(server, b"POST /hooks/whatever HTTP/1.1\r\nHost: 127.0.0.1\r\n", header_lines())
    assert closed_after is not None, "a dripping sender kept the connection open"
    assert TIMEOUT - 0.1 < closed_after < TIMEOUT + 1.0
    status, headers, body = answer(raw)
    assert status == 408 and headers["connection"] == "close"
    assert headers["content-type"] == "application/json" and "RELAY_CLIENT_TIMEOUT" in json.loads(body)["detail"]


def test_the_next_request_on_a_kept_alive_connection_has_the_same_deadline(server):
    sock = socket.create_connection(("127.0.0.1", server))
    sock.sendall(b"GET /hooks/ HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
    first = b""
    while not first.endswith(b"}"):
        first += sock.recv(65536)
    assert first.startswith(b"HTTP/1.1 404")
    time.sleep(TIMEOUT)  # idle between requests is --timeout-keep-alive's (5 s), not this deadline
    closed_after, raw = drip(sock, b"POST /hooks/x HTTP/1.1\r\n", header_lines())
    assert closed_after is not None and TIMEOUT - 0.1 < closed_after < TIMEOUT + 1.0
    assert answer(raw)[0] == 408


def test_a_connection_that_sends_nothing_is_closed_without_an_answer(server):
    closed_after, raw = drip(server, b"", [])
    assert closed_after is not None and TIMEOUT - 0.1 < closed_after < TIMEOUT + 1.0 and raw == b""


def test_a_sender_dripping_the_body_gets_408_and_nothing_is_recorded(server, tenant_a):
    trigger = Trigger.objects.create(tenant=tenant_a, name="slow", image="kubesim/echo")
    head = (f"POST /hooks/{trigger.token} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            "Content-Length: 100\r\n\r\n").encode()
    closed_after, raw = drip(server, head, [b"x"] * 100)
    assert closed_after is not None and TIMEOUT - 0.1 < closed_after < TIMEOUT + 1.0
    status, headers, body = answer(raw)
    assert status == 408 and headers["connection"] == "close"
    assert "RELAY_CLIENT_TIMEOUT" in json.loads(body)["detail"]
    time.sleep(0.2)
    assert not Delivery.objects.filter(trigger=trigger).exists()


def test_pages_and_the_api_have_the_same_body_deadline(server):
    head = (b"POST /api/v1/tokens/ HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            b"Content-Length: 100\r\n\r\n")
    closed_after, raw = drip(server, head, [b" "] * 100)
    assert closed_after is not None and TIMEOUT - 0.1 < closed_after < TIMEOUT + 1.0
    assert answer(raw)[0] == 408


def test_a_websocket_outlives_the_read_deadline(server, tenant_a, alice):
    from django.conf import settings
    from django.test import Client
    from websockets.sync.client import connect

    browser = Client()
    browser.force_login(alice)
    cookie = f"{settings.SESSION_COOKIE_NAME}={browser.cookies[settings.SESSION_COOKIE_NAME].value}"
    with connect(f"ws://127.0.0.1:{server}/ws/tenants/{tenant_a.slug}/", origin=f"http://127.0.0.1:{server}",
                 additional_headers={"Cookie": cookie}, open_timeout=10) as ws:
        assert json.loads(ws.recv(timeout=10))  # the snapshot
        time.sleep(3 * TIMEOUT)
        ws.ping().wait(5)  # still open, still answering


def test_the_rest_of_an_answered_body_must_still_arrive_in_time(server):
    """An unknown URL is answered at once; a sender that keeps dripping the body it announced is cut off."""
    head = b"POST /hooks/not-a-token HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 1000\r\n\r\n"
    closed_after, raw = drip(server, head, [b"x"] * 100)
    assert closed_after is not None and closed_after < TIMEOUT + 1.0
    assert answer(raw)[0] == 404


def test_a_large_body_arriving_steadily_is_not_cut_off(server, live_trigger):
    trigger = live_trigger()
    chunk, count = b"y" * 32 * 1024, 16  # 512 KiB over ~1.6 s: three times the timeout, well above the rate
    head = (f"POST /hooks/{trigger.token}/big HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
            f"Content-Length: {len(chunk) * count}\r\n\r\n").encode()
    closed_after, raw = drip(server, head + chunk, [chunk] * (count - 1), interval=0.1)
    status, _, body = answer(raw)
    assert closed_after is not None and closed_after > 3 * TIMEOUT
    assert status == 200, body[:300]
    assert json.loads(body)["body_size"] == len(chunk) * count


def flood(port: int, first: bytes, piece: bytes, total: int = 4 * 1024 * 1024) -> tuple[int, bytes]:
    """Send `first`, then `piece` after piece, quickly, up to `total` bytes, never the end of the head; stop as
    soon as the server answers or closes. Returns (bytes sent by then, what it answered)."""
    sock = socket.create_connection(("127.0.0.1", port))
    sock.settimeout(10)
    sent, received = 0, b""
    try:
        sock.sendall(first)
        while sent < total and not select.select([sock], [], [], 0.01)[0]:
            try:
                sock.sendall(piece)
            except OSError:
                break
            sent += len(piece)
        while chunk := sock.recv(65536):
            received += chunk
    except (ConnectionResetError, TimeoutError):
        pass
    finally:
        sock.close()
    return sent, received


@pytest.mark.parametrize("shape", ["header lines", "one header value", "the url"])
def test_megabytes_of_head_sent_quickly_are_refused_431_before_they_are_all_sent(relay, shape):
    from django.conf import settings

    from relayweb.protocol import HEAD_SLACK

    port = urlsplit(relay).port
    line = b"X-Flood: " + b"a" * 1013 + b"\r\n"  # 1 KiB a line
    first, piece = {
        "header lines": (b"POST /hooks/whatever HTTP/1.1\r\nHost: 127.0.0.1\r\n", line * 64),
        "one header value": (b"POST /hooks/whatever HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Flood: ", b"a" * 65536),
        "the url": (b"GET /hooks/", b"a" * 65536),
    }[shape]
    sent, raw = flood(port, first, piece)
    limit = settings.RELAY_MAX_URL_BYTES + settings.RELAY_MAX_HEADER_BYTES + HEAD_SLACK
    assert raw, f"no answer after {sent} bytes"
    assert sent < 1024 * 1024, f"answered only after {sent} bytes: the server buffered them"
    status, headers, body = answer(raw)
    assert status == 431 and headers["content-type"] == "application/json" and headers["connection"] == "close"
    assert "RELAY_MAX_HEADER_BYTES" in json.loads(body)["detail"] and str(limit) in json.loads(body)["detail"]


def test_heads_within_the_limits_are_not_refused_however_they_arrive(relay):
    """Counting the head as it arrives refuses nothing the ingress would take: a head just under
    RELAY_MAX_HEADER_BYTES sent in small pieces, and 200 small requests pipelined, 90 KB in one write."""
    from django.conf import settings

    port = urlsplit(relay).port
    lines = [b"X-Pad-%03d: %s\r\n" % (i, b"p" * 600) for i in range(settings.RELAY_MAX_HEADER_BYTES // 700)]
    closed_after, raw = drip(port, b"POST /hooks/whatever HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 0\r\n",
                             [*lines, b"Connection: close\r\n\r\n"], interval=0.001)
    assert answer(raw)[0] == 404, raw[:200]
    requests = b"GET /hooks/whatever HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Pad: %s\r\n\r\n" % (b"q" * 400)
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    last = requests.replace(b"\r\n\r\n", b"\r\nConnection: close\r\n\r\n")
    sock.sendall(requests * 199 + last[:100])  # the read ends within the last head
    time.sleep(0.2)
    sock.sendall(last[100:])
    received = b""
    while chunk := sock.recv(65536):
        received += chunk
    sock.close()
    assert received.count(b"HTTP/1.1 404") == 200 and b" 431 " not in received


def web_commands() -> dict[str, list[str]]:
    procfile = dict(line.split(": ", 1) for line in (REPO / "Procfile").read_text().splitlines() if line)
    cmd = next(line for line in (REPO / "deploy" / "Dockerfile").read_text().splitlines() if line.startswith("CMD"))
    return {"Procfile": shlex.split(procfile["web"]), "Dockerfile": json.loads(cmd[3:]),
            "chart": container(deployments(render("relayweb", RELAYWEB_REQUIRED))["web"])["command"]}


@pytest.mark.django_db(transaction=False)
def test_every_web_server_runs_the_protocol_with_explicit_limits():
    for where, command in web_commands().items():
        options = {name: value for name, value in zip(command, [*command[1:], ""], strict=True)
                   if name.startswith("--") and not value.startswith("--")}
        assert options.get("--http") == "relayweb.protocol:HttpProtocol", where
        assert int(options["--limit-concurrency"]) > 0 and int(options["--timeout-keep-alive"]) > 0, where
        assert int(options["--backlog"]) > 0, where


async def reads_late(scope, receive, send):
    """An application that takes 4 x TIMEOUT before reading the body (the server stops reading meanwhile)."""
    if scope["type"] != "http":
        return
    await asyncio.sleep(4 * TIMEOUT)
    size, more = 0, True
    while more:
        message = await receive()
        size, more = size + len(message.get("body", b"")), message.get("more_body", False)
    body = str(size).encode()
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"%d" % len(body))]})
    await send({"type": "http.response.body", "body": body})


@pytest.fixture
def late_reader(settings):
    """A uvicorn with relayweb's protocol serving `reads_late`; no allowance for a body's size."""
    import threading

    import uvicorn

    settings.RELAY_CLIENT_TIMEOUT, settings.RELAY_CLIENT_MIN_RATE = TIMEOUT, 10**12
    server = uvicorn.Server(uvicorn.Config(reads_late, host="127.0.0.1", port=0, log_level="warning",
                                           lifespan="off", http="relayweb.protocol:HttpProtocol"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        wait_for(lambda: server.started, message="uvicorn started")
        yield server.servers[0].sockets[0].getsockname()[1]
    finally:
        server.should_exit = True
        thread.join(10)


@pytest.mark.django_db(transaction=False)
def test_time_the_server_is_not_reading_does_not_count_against_the_sender(late_reader):
    import requests

    body = b"z" * (4 * 1024 * 1024)  # far beyond what the server buffers before it stops reading
    response = requests.post(f"http://127.0.0.1:{late_reader}/", data=body, timeout=30)
    assert (response.status_code, response.text) == (200, str(len(body)))


@pytest.mark.django_db(transaction=False)
def test_a_sender_waiting_for_100_continue_is_not_late(late_reader):
    sock = socket.create_connection(("127.0.0.1", late_reader), timeout=10)
    sock.sendall(b"POST / HTTP/1.1\r\nHost: 127.0.0.1\r\nExpect: 100-continue\r\nContent-Length: 5\r\n"
                 b"Connection: close\r\n\r\n")
    assert sock.recv(65536).startswith(b"HTTP/1.1 100 Continue")  # once the application reads, 4 x TIMEOUT later
    closed_after, raw = drip(sock, b"hello", [])
    assert closed_after is not None and answer(raw)[0] == 200 and answer(raw)[2] == b"5"
