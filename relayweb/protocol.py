"""The web process's HTTP protocol: uvicorn's httptools protocol, with deadlines for reading requests.

uvicorn closes idle keep-alive connections (`--timeout-keep-alive`) but has no deadline for reading a
request: a sender dripping one header line, or one body byte, every few seconds holds a connection (and
a slot of `--limit-concurrency`) as long as it likes. Here:

- a request's head must arrive within RELAY_CLIENT_TIMEOUT of the connection opening (on a reused
  connection, of the request's first byte): else 408 and the connection is closed (a connection that
  never sent a byte is closed without a word);
- its body within RELAY_CLIENT_TIMEOUT of the head, plus one second for every RELAY_CLIENT_MIN_RATE
  bytes received (a large body arriving steadily is not cut off, a dripping one is): else 408 if nothing
  was answered yet (the application sees the client disconnect), and the connection is closed. The rest
  of a body answered early (404, 413…) has the same deadline. Time the server itself stops reading
  (flow control: the application has not taken what it has), or has not sent the "100 Continue" a
  sender waits for, does not count against the sender.

And a size for the head: uvicorn holds a request's URL and headers until the head ends, with no limit of its
own, and the ingress's limits (414, 431) apply only to a complete head; a fast sender could make it buffer
megabytes. Here the bytes of a head are counted as they arrive, and once more than RELAY_MAX_URL_BYTES +
RELAY_MAX_HEADER_BYTES + HEAD_SLACK arrive without its end the sender gets a JSON 431 and the connection is
closed (what the server holds is bounded by that plus one read, 256 KiB). What it sends meanwhile is read and
discarded for LINGER seconds, so that the answer is not lost to a reset.

This runs for every path (webhooks, pages, API) and costs the common request nothing: a timer is armed
only when a read ends with a request incomplete.

Served with `uvicorn relayweb.asgi:application --http relayweb.protocol:HttpProtocol` (Procfile, the
Dockerfile, the Helm chart).
"""

from __future__ import annotations

import json
from asyncio import TimerHandle

from django.conf import settings
from uvicorn.protocols.http.flow_control import FlowControl
from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol

IDLE, FRESH, HEAD, BODY = "idle", "fresh", "head", "body"  # what the connection is waiting for from the sender
HEAD_SLACK = 1024  # the request line around the URL, whitespace around header values, the blank line
LINGER = 2.0  # seconds a refused sender's bytes are still read (and dropped) before the connection is closed


class Flow(FlowControl):
    """uvicorn's flow control, restarting the sender's clock when the server starts reading again (after a
    pause, or when it asks for a body announced with `Expect: 100-continue`)."""

    def __init__(self, transport, protocol: HttpProtocol) -> None:
        super().__init__(transport)
        self.protocol = protocol

    def resume_reading(self) -> None:
        if self.read_paused or self.protocol.held:
            self.protocol.held, self.protocol.since = False, self.protocol.loop.time()
        super().resume_reading()


class HttpProtocol(HttpToolsProtocol):
    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.client_timeout = float(settings.RELAY_CLIENT_TIMEOUT)
        self.min_rate = float(settings.RELAY_CLIENT_MIN_RATE)
        self.reading, self.since, self.received = IDLE, 0.0, 0
        self.held = False  # the sender waits for our "100 Continue": its clock does not run
        self.read_timer: TimerHandle | None = None
        self.max_head = int(settings.RELAY_MAX_URL_BYTES) + int(settings.RELAY_MAX_HEADER_BYTES) + HEAD_SLACK
        self.head_bytes = 0  # of the head being read, as far as counted
        self.head_continues = False  # the head being read began before the current read
        self.refused = False  # answered 431: what still arrives is dropped until the connection is closed

    def connection_made(self, transport) -> None:
        super().connection_made(transport)
        self.flow = Flow(transport, self)
        self.reading, self.since = FRESH, self.loop.time()
        self._arm(self.since + self.client_timeout)

    def connection_lost(self, exc: Exception | None) -> None:
        if self.read_timer is not None:
            self.read_timer.cancel()
            self.read_timer = None
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self.refused:
            return
        self.head_continues = self.reading is HEAD
        super().data_received(data)
        if self.reading is HEAD and not self.transport.is_closing():
            if self.head_continues:  # all of this read belongs to the head (else the callbacks counted it)
                self.head_bytes += len(data)
            if self.head_bytes > self.max_head:
                self._refuse_head()
                return
        if self.reading is not IDLE and self.read_timer is None and not self.transport.is_closing():
            self._arm(self._deadline())  # this read ended with a request incomplete

    # parser callbacks: where the request stands
    def on_message_begin(self) -> None:
        super().on_message_begin()
        if self.reading is not FRESH:  # a fresh connection's first head is timed from the connection's opening
            self.since = self.loop.time()
        self.reading, self.head_bytes, self.head_continues = HEAD, 0, False

    def on_url(self, url: bytes) -> None:
        super().on_url(url)
        if not self.head_continues:
            self.head_bytes += len(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        super().on_header(name, value)
        if not self.head_continues:
            self.head_bytes += len(name) + len(value) + 4  # "name: value\r\n", as the ingress counts them

    def on_headers_complete(self) -> None:
        super().on_headers_complete()
        self.reading, self.since, self.received = BODY, self.loop.time(), 0
        self.held = self.expect_100_continue

    def on_body(self, body: bytes) -> None:
        self.received += len(body)
        super().on_body(body)

    def on_message_complete(self) -> None:
        self.reading = IDLE  # also for a websocket handshake: the upgraded connection has no read deadline
        super().on_message_complete()

    # the deadline
    def _deadline(self) -> float:
        if self.reading is BODY:
            return self.since + self.client_timeout + self.received / self.min_rate
        return self.since + self.client_timeout

    def _arm(self, when: float) -> None:
        self.read_timer = self.loop.call_at(when, self._check)

    def _check(self) -> None:
        self.read_timer = None
        if self.reading is IDLE or self.transport.is_closing():
            return
        if self.flow.read_paused or self.held:  # we are not reading, or have not asked for the body yet
            self._arm(self.loop.time() + self.client_timeout)  # (Flow restarts the clock when we do)
            return
        deadline = self._deadline()
        if self.loop.time() < deadline:
            self._arm(deadline)
            return
        self._timed_out()

    def _timed_out(self) -> None:
        cycle = self.cycle
        if self.reading is HEAD and cycle is not None and not cycle.response_complete:
            cycle.keep_alive = False  # a pipelined request is the slow one: close after the current response
            return
        if self.reading is BODY and cycle is not None and not cycle.response_complete:
            if not cycle.response_started:
                self._send_408("Request body arrived too slowly: {timeout} s allowed, plus 1 s per "
                               f"{self.min_rate:g} bytes received (RELAY_CLIENT_TIMEOUT, RELAY_CLIENT_MIN_RATE).")
            cycle.disconnected = True  # the application's receive() answers http.disconnect; its sends are dropped
            cycle.message_event.set()
        elif self.reading is HEAD:
            self._send_408("Request headers not received within {timeout} s (RELAY_CLIENT_TIMEOUT).")
        self.transport.close()

    def _refuse_head(self) -> None:
        """More than max_head bytes of a head without its end: 431, then read and drop for LINGER s, and close.
        (Behind a response still being sent on this connection, the connection is closed at once.)"""
        cycle = self.cycle
        if self.read_timer is not None:
            self.read_timer.cancel()
        self.refused, self.headers, self.url = True, [], b""
        if cycle is not None and not cycle.response_complete:
            self.transport.close()
            return
        self._send_json(431, f"Request line and headers larger than {self.max_head} bytes "
                             "(RELAY_MAX_URL_BYTES + RELAY_MAX_HEADER_BYTES).")
        if self.transport.can_write_eof():
            self.transport.write_eof()
        self.read_timer = self.loop.call_later(LINGER, self.transport.close)

    def _send_408(self, detail: str) -> None:
        self._send_json(408, detail.format(timeout=f"{self.client_timeout:g}"))

    def _send_json(self, status: int, detail: str) -> None:
        body = json.dumps({"detail": detail}).encode()
        content = [STATUS_LINE[status]]
        for name, value in self.server_state.default_headers:
            content += [name, b": ", value, b"\r\n"]
        content += [b"content-type: application/json\r\n", b"content-length: %d\r\n" % len(body),
                    b"connection: close\r\n", b"\r\n", body]
        self.transport.write(b"".join(content))
