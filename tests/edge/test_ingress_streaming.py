"""Sync deliveries relay the handler's response as it arrives: head first, then the body part by part, never
held whole; the delivery log keeps RELAY_RESPONSE_BODY_CAP bytes. Under a real uvicorn, through kubesim's
gateway or a scripted gateway on a loopback socket."""

import hashlib
import http.client
import socket
import threading
import tracemalloc
from urllib.parse import urlsplit

import pytest
import requests
from django.utils import timezone

from kubesim.handlers import Generated
from tests.cluster import wait_for
from triggers.deliveries.retries import delivery_deliver
from triggers.models import Delivery, Trigger

pytestmark = pytest.mark.django_db(transaction=True)


def recorded(trigger):
    """The trigger's one delivery, once its outcome is written (not just claimed)."""
    return wait_for(lambda: Delivery.objects.filter(trigger=trigger).exclude(state__in=("received", "forwarded"))
                    .first(), message="the delivery's outcome recorded")


def pattern(size: int) -> bytes:
    return b"".join(Generated(size).chunks())


class ScriptedGateway:
    """A loopback gateway: each connection's request is read, then `script(sock)` writes the answer."""

    def __init__(self, script):
        self.script, self.errors = script, []
        self.server = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.server.getsockname()[1]}"
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                sock, _ = self.server.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(sock,), daemon=True).start()

    def _serve(self, sock):
        with sock:
            data = b""
            while b"\r\n\r\n" not in data:
                data += sock.recv(65536)
            head, _, body = data.partition(b"\r\n\r\n")
            length = next(int(line.split(b":")[1]) for line in head.split(b"\r\n")
                          if line.lower().startswith(b"content-length:"))
            while len(body) < length:
                body += sock.recv(65536)
            try:
                self.script(sock)
            except OSError as e:  # the relay closed this connection
                self.errors.append(e)

    def close(self):
        self.server.close()


@pytest.fixture
def scripted(settings):
    gateways = []

    def make(script) -> ScriptedGateway:
        gateways.append(ScriptedGateway(script))
        settings.RELAY_GATEWAY_URL = gateways[-1].url
        return gateways[-1]

    yield make
    for gateway in gateways:
        gateway.close()


def connect(relay, trigger, body: bytes = b"{}") -> http.client.HTTPResponse:
    url = urlsplit(relay)
    conn = http.client.HTTPConnection(url.hostname, url.port, timeout=15)
    conn.request("POST", f"/hooks/{trigger.token}", body=body, headers={"Content-Type": "application/json"})
    return conn.getresponse()


def test_a_response_larger_than_the_cap_is_delivered_whole_and_stored_capped(relay, live_trigger, settings):
    trigger = live_trigger(image="kubesim/big:3Mi")
    size, cap = 3 * 1024 * 1024, settings.RELAY_RESPONSE_BODY_CAP
    response = requests.post(f"{relay}/hooks/{trigger.token}", data=b"{}", timeout=30)
    assert response.status_code == 200 and response.headers["Content-Length"] == str(size)
    assert hashlib.sha256(response.content).hexdigest() == hashlib.sha256(pattern(size)).hexdigest()
    delivery = recorded(trigger)
    assert (delivery.state, delivery.response_status, delivery.error) == ("succeeded", 200, "")
    assert bytes(delivery.response_body) == pattern(size)[:cap] and 0 < cap < size


def test_the_sender_gets_the_head_and_first_part_before_the_handler_finished(relay, live_trigger, scripted):
    """The handler sends its second part only once the sender has received the first (a relay that buffers
    the whole response would never answer)."""
    first_part_seen = threading.Event()

    def script(sock):
        sock.sendall(b"HTTP/1.1 201 Created\r\nContent-Type: text/plain\r\nTransfer-Encoding: chunked\r\n\r\n"
                     b"6\r\nfirst \r\n")
        if first_part_seen.wait(10):
            sock.sendall(b"6\r\nsecond\r\n0\r\n\r\n")

    scripted(script)
    trigger = live_trigger()
    response = connect(relay, trigger)
    assert response.status == 201 and response.getheader("Content-Type") == "text/plain"
    assert response.read1() == b"first "  # read1: whatever has arrived, without waiting for the rest
    first_part_seen.set()
    assert response.read() == b"second"
    delivery = recorded(trigger)
    assert (delivery.state, delivery.response_status, bytes(delivery.response_body)) == ("succeeded", 201,
                                                                                         b"first second")


def test_a_response_that_breaks_off_aborts_the_senders_connection_and_fails_the_delivery(relay, live_trigger,
                                                                                          scripted):
    def script(sock):
        sock.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n" + b"x" * 100)

    scripted(script)
    trigger = live_trigger()
    response = connect(relay, trigger)
    assert response.status == 200 and response.getheader("Content-Length") == "1000"
    with pytest.raises(http.client.IncompleteRead) as truncated:
        response.read()
    assert truncated.value.partial == b"x" * 100
    delivery = recorded(trigger)
    assert (delivery.state, delivery.response_status) == ("failed", 200)
    assert "broke off after 100 bytes" in delivery.error and "closed the connection" in delivery.error
    assert bytes(delivery.response_body) == b"x" * 100


def test_a_response_that_stalls_mid_body_times_out_and_fails_the_delivery(relay, live_trigger, scripted, settings):
    release = threading.Event()

    def script(sock):
        sock.sendall(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nstart\r\n")
        release.wait(10)

    scripted(script)
    trigger = live_trigger(timeout_seconds=1)
    settings.RELAY_ACTIVATION_TIMEOUT = 0.2
    try:
        response = connect(relay, trigger)
        assert response.status == 200
        with pytest.raises(http.client.IncompleteRead):
            response.read()
    finally:
        release.set()
    delivery = recorded(trigger)
    assert delivery.state == "failed" and "sent no more of its response for 2 s (after 5 bytes)" in delivery.error


def test_a_sender_that_goes_away_mid_body_stops_the_read_from_the_handler(relay, live_trigger, scripted):
    size, written = 256 * 1024 * 1024, [0]

    def script(sock):
        sock.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % size)
        block = b"y" * 65536
        while written[0] < size:
            sock.sendall(block)
            written[0] += len(block)

    gateway = scripted(script)
    trigger = live_trigger()
    response = connect(relay, trigger)
    assert response.status == 200 and len(response.read(256 * 1024)) == 256 * 1024
    response.close()  # the sender goes away with most of the body unread
    delivery = recorded(trigger)
    assert (delivery.state, delivery.response_status) == ("failed", 200)
    assert "sender disconnected after" in delivery.error and "not read from the handler" in delivery.error
    wait_for(lambda: gateway.errors, message="the relay closing its connection to the gateway")
    assert written[0] < size // 2, f"{written[0]} of {size} bytes were read from the handler for nobody"


def test_relaying_a_large_response_does_not_hold_it_in_memory(relay, live_trigger):
    """The relay (uvicorn's thread of this process) and kubesim's gateway allocate a bounded amount for a
    64 MiB response; buffering it whole would allocate the whole size at least once."""
    trigger = live_trigger(image="kubesim/big:64Mi")
    requests.post(f"{relay}/hooks/{trigger.token}", data=b"{}", timeout=30).raise_for_status()  # warm
    tracemalloc.start()
    try:
        with requests.post(f"{relay}/hooks/{trigger.token}", data=b"{}", timeout=30, stream=True) as response:
            received = sum(len(part) for part in response.iter_content(65536))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert received == 64 * 1024 * 1024
    assert peak < 16 * 1024 * 1024, f"{peak / 2 ** 20:.1f} MiB allocated at the peak"


def test_an_async_attempt_reads_a_large_response_capped_without_holding_it(relay, live_trigger, settings):
    """The worker's attempt (delivery_deliver, run here in-process) keeps RELAY_RESPONSE_BODY_CAP bytes and
    drops the rest as it reads it."""
    trigger = live_trigger(image="kubesim/big:32Mi", mode=Trigger.Mode.ASYNC)
    delivery = Delivery.objects.create(trigger=trigger, mode=Trigger.Mode.ASYNC, method="POST", path="/",
                                       body=b"{}", body_size=2, next_attempt_at=timezone.now())
    tracemalloc.start()
    try:
        state = delivery_deliver(delivery.pk)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    delivery.refresh_from_db()
    assert (state, delivery.response_status) == ("succeeded", 200)
    assert bytes(delivery.response_body) == pattern(32 * 1024 * 1024)[: settings.RELAY_RESPONSE_BODY_CAP]
    assert peak < 8 * 1024 * 1024, f"{peak / 2 ** 20:.1f} MiB allocated at the peak"
