"""The web process's HTTP protocol: uvicorn's httptools protocol, with a deadline for reading requests.

uvicorn closes idle keep-alive connections (`--timeout-keep-alive`) but has no deadline for a request's
head: a sender dripping one header line every few seconds holds a connection (and a slot of
`--limit-concurrency`) for as long as it likes. Here the head must arrive within RELAY_CLIENT_TIMEOUT of
the connection opening (or, on a reused connection, of the request's first byte); otherwise the sender
gets 408 and the connection is closed (a connection that never sent a byte is closed without a word).
The body is the application's to read: the ingress gives it its own deadline (triggers/ingress.py). When
an answer went out before the body was read (404, 413, 408…), the rest of the body must still arrive
within RELAY_CLIENT_TIMEOUT, or the connection is closed.

Served with `uvicorn relayweb.asgi:application --http relayweb.protocol:HttpProtocol` (Procfile, the
Dockerfile, the Helm chart).
"""

from __future__ import annotations

import json
from asyncio import TimerHandle

from django.conf import settings
from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol


class HttpProtocol(HttpToolsProtocol):
    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.client_timeout = float(settings.RELAY_CLIENT_TIMEOUT)
        self.read_deadline: TimerHandle | None = None
        self.reading_head = False  # a request's first byte arrived, its head is not complete

    def connection_made(self, transport) -> None:
        super().connection_made(transport)
        self._arm()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self.reading_head = True
        if self.read_deadline is None:  # a fresh connection's deadline already runs from its opening
            self._arm()

    def on_headers_complete(self) -> None:
        self.reading_head = False
        self._disarm()
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        if self.cycle is not None and self.cycle.response_complete:
            self._disarm()  # the rest of an already answered request's body arrived in time
        super().on_message_complete()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        cycle = self.cycle
        if cycle is not None and cycle.response_complete and cycle.more_body and not self.transport.is_closing():
            self._arm()  # answered before its body was read: the rest must still come in time

    def _arm(self) -> None:
        self._disarm()
        self.read_deadline = self.loop.call_later(self.client_timeout, self._timed_out)

    def _disarm(self) -> None:
        if self.read_deadline is not None:
            self.read_deadline.cancel()
            self.read_deadline = None

    def _timed_out(self) -> None:
        self.read_deadline = None
        if self.transport.is_closing():
            return
        if self.cycle is not None and not self.cycle.response_complete:
            self.cycle.keep_alive = False  # a pipelined request is the slow one: close after this response
            return
        if self.reading_head:
            self._send_408()
        self.transport.close()

    def _send_408(self) -> None:
        body = json.dumps({"detail": f"Request headers not received within {self.client_timeout:g} s "
                                     "(RELAY_CLIENT_TIMEOUT)."}).encode()
        content = [STATUS_LINE[408]]
        for name, value in self.server_state.default_headers:
            content += [name, b": ", value, b"\r\n"]
        content += [b"content-type: application/json\r\n", b"content-length: %d\r\n" % len(body),
                    b"connection: close\r\n", b"\r\n", body]
        self.transport.write(b"".join(content))
