"""A keep-alive HTTP/1.1 client for the one upstream the ingress talks to: the Knative gateway.

The ingress forwards every webhook to the same gateway, with a body it has already read in full and a
response it reads in full. That needs a connection pool, one write per request and an HTTP/1.1 response
parser (httptools, llhttp: the parser uvicorn uses), not a general-purpose client: measured on the
ingress benchmark, this costs a third of aiohttp's CPU per webhook.

Errors: `UpstreamUnreachable` (cannot connect, or the connection broke before a whole response) and
`TimeoutError` (no whole response within the timeout). A request that fails on a *reused* connection
before any byte of a response arrived is sent again once on a new connection: the gateway closed the
idle connection as we wrote to it, so nothing was handled (handlers dedupe on X-Relay-Delivery-Id).
"""

from __future__ import annotations

import asyncio
import ssl
from urllib.parse import urlsplit

import httptools


class UpstreamUnreachable(ConnectionError):
    pass


class _Connection(asyncio.Protocol):
    """One connection: one request at a time, its response parsed as it arrives."""

    def __init__(self):
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self.waiter: asyncio.Future | None = None
        self.head = False
        self.parser = self.status = self.headers = self.body = None
        self.started = False  # a byte of the response arrived
        self.headers_done = False
        self.framed = False  # the body has a length (Content-Length or chunked), not "until close"
        self.timer: asyncio.TimerHandle | None = None
        self.idle_since = 0.0

    # -- the request
    def send(self, data: bytes, head: bool, deadline: float) -> asyncio.Future:
        """Write the request; the future gets (status, headers, body, reusable) or the error."""
        loop = asyncio.get_running_loop()
        self.waiter = loop.create_future()
        if self.closed or self.transport.is_closing():
            self.waiter.set_exception(UpstreamUnreachable("the gateway closed the connection"))
            return self.waiter
        self.timer = loop.call_at(deadline, self._expire)
        self.head, self.started, self.headers_done, self.framed = head, False, False, False
        self.headers, self.body = [], []
        self.parser = httptools.HttpResponseParser(self)
        self.transport.write(data)
        return self.waiter

    # -- asyncio.Protocol
    def connection_made(self, transport) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.started = True
        if self.parser is None:  # bytes nobody asked for: this connection is not reusable
            self.transport.close()
            return
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError as e:
            self._fail(UpstreamUnreachable(f"malformed response from the gateway: {e}"))
            self.transport.close()

    def connection_lost(self, exc) -> None:
        self.closed = True
        if self.waiter is None or self.waiter.done():
            return
        if self.headers_done and not self.framed:  # a body delimited by the end of the connection
            self._finish()
        else:
            self._fail(UpstreamUnreachable("the gateway closed the connection" + (f": {exc}" if exc else "")))

    # -- httptools callbacks
    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers.append((name, value))

    def on_headers_complete(self) -> None:
        self.status = self.parser.get_status_code()
        if 100 <= self.status < 200:  # 100 Continue and the like: the real response follows
            self.headers = []
            return
        self.headers_done = True
        names = {name.lower() for name, _ in self.headers}
        self.framed = (b"content-length" in names or b"transfer-encoding" in names or self.head
                       or self.status in (204, 304))
        if self.head:  # no body follows, whatever Content-Length says
            self._finish()

    def on_body(self, body: bytes) -> None:
        self.body.append(body)

    def on_message_complete(self) -> None:
        if self.headers_done:
            self._finish()

    def _finish(self) -> None:
        if self.waiter is not None and not self.waiter.done():
            self.timer.cancel()
            keep = not self.head and not self.closed and self.parser.should_keep_alive()
            self.waiter.set_result((self.status, self.headers, b"".join(self.body), keep))

    def _fail(self, error: Exception) -> None:
        if self.waiter is not None and not self.waiter.done():
            self.timer.cancel()
            self.waiter.set_exception(error)

    def _expire(self) -> None:
        self._fail(TimeoutError())
        self.transport.close()  # a late answer must not be read as the next request's


class Upstream:
    """A pool of keep-alive connections to `base_url` (http or https)."""

    def __init__(self, base_url: str, max_idle: int = 256, keepalive: float = 30.0):
        url = urlsplit(base_url)
        self.base_url, self.host = base_url, url.hostname or "127.0.0.1"
        self.port = url.port or (443 if url.scheme == "https" else 80)
        self.ssl = ssl.create_default_context() if url.scheme == "https" else None
        self.prefix = url.path.rstrip("/")
        self.idle: list[_Connection] = []
        self.max_idle, self.keepalive = max_idle, keepalive

    async def request(self, method: str, target: str, headers: list[tuple[str, str]], body: bytes,
                      timeout: float) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
        """Send one request (target: path and query, already encoded); the whole response."""
        head = [f"{method} {self.prefix}{target} HTTP/1.1"]
        head += [f"{name}: {value}" for name, value in headers]
        head.append(f"Content-Length: {len(body)}\r\n\r\n")
        data = "\r\n".join(head).encode("latin-1") + body
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        for attempt in (0, 1):
            conn, reused = self._idle()
            if conn is None:
                conn = await self._connect(deadline - loop.time())
            try:
                status, response_headers, response_body, keep = await conn.send(data, method == "HEAD", deadline)
            except UpstreamUnreachable:
                conn.transport.close()
                if reused and not conn.started and attempt == 0:
                    continue  # the gateway had closed this idle connection: once more, on a new one
                raise
            except BaseException:  # the sender went away mid-request: this connection is unusable
                if conn.timer is not None:
                    conn.timer.cancel()
                conn.transport.close()
                raise
            conn.parser = None
            if keep and len(self.idle) < self.max_idle:
                conn.idle_since = loop.time()
                self.idle.append(conn)
            else:
                conn.transport.close()
            return status, response_headers, response_body
        raise AssertionError("unreachable")

    def _idle(self) -> tuple[_Connection | None, bool]:
        """The most recently used open connection (idle for less than `keepalive`), else None."""
        now = asyncio.get_running_loop().time()
        while self.idle:
            conn = self.idle.pop()
            if not conn.closed and now - conn.idle_since < self.keepalive:
                return conn, True
            conn.transport.close()
        return None, False

    async def _connect(self, timeout: float) -> _Connection:
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(max(timeout, 0)):
                _, conn = await loop.create_connection(_Connection, self.host, self.port, ssl=self.ssl)
        except OSError as e:
            raise UpstreamUnreachable(f"cannot connect to the gateway: {e.strerror or e}") from e
        return conn

    def close(self) -> None:
        for conn in self.idle:
            conn.transport.close()
        self.idle.clear()
