"""A keep-alive HTTP/1.1 client for the one upstream the ingress talks to: the Knative gateway.

The ingress forwards every webhook to the same gateway, with a body it has already read in full, and
relays the response as it arrives. That needs a connection pool, one write per request and an HTTP/1.1
response parser (httptools, llhttp: the parser uvicorn uses), not a general-purpose client: measured on
the ingress benchmark, this costs a third of aiohttp's CPU per webhook.

`request()` returns once the response's status and headers arrived, with the part of the body that came
with them; a small response is then already whole (`done`) and its connection back in the pool. A larger
one is read with `read()`: at most `HIGH_WATER` bytes are buffered (reading from the socket pauses until
the caller takes them), so memory does not grow with the response. A connection goes back to the pool
only once its response was read to the end; `close()` before that drops it.

A response head is bounded as well: more than `MAX_HEADERS` headers or `MAX_HEADER_BYTES` of them (each
counted as "name: value" and CRLF, the request side's rule), or more than that plus `HEAD_SLACK` bytes received
without the end of the head (one endless header line, a huge reason phrase), fails the request with
`HandlerHeadersTooLarge` and drops the connection: the head is held in memory until it ends, so a handler
must not choose its size.

Errors: `UpstreamUnreachable` (cannot connect, or the connection broke before the whole response; its
subclass `HandlerHeadersTooLarge`, see above) and `TimeoutError` (no response head within the timeout, or
no more of the body for that long). A request that fails on a *reused* connection before any byte of a
response arrived is sent again once on a new connection: the gateway closed the idle connection as we
wrote to it, so nothing was handled (handlers dedupe on X-Relay-Delivery-Id).
"""

from __future__ import annotations

import asyncio
import ssl
from urllib.parse import urlsplit

import httptools

HIGH_WATER = 256 * 1024  # body bytes buffered per connection before reading from the socket pauses
MAX_HEADERS = 100  # response headers relayed at most (the request side's RELAY_MAX_HEADERS default)
MAX_HEADER_BYTES = 64 * 1024  # their total size (the request side's RELAY_MAX_HEADER_BYTES default)
HEAD_SLACK = 1024  # the status line and the blank line, around the headers


class UpstreamUnreachable(ConnectionError):
    pass


class HandlerHeadersTooLarge(UpstreamUnreachable):
    """The handler's response head is over the limits: not read further, its connection dropped."""

    def __init__(self, what: str):
        super().__init__(f"Handler response headers too large: {what} (at most {MAX_HEADERS} headers of "
                         f"{MAX_HEADER_BYTES} bytes in all are relayed)")


class _Connection(asyncio.Protocol):
    """One connection: one request at a time, its response parsed as it arrives."""

    def __init__(self):
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self.waiter: asyncio.Future | None = None  # the reader waiting for the head, or for more body
        self.head = False
        self.parser = self.status = self.headers = None
        self.body: list[bytes] = []  # received, not yet taken by the reader
        self.buffered = 0
        self.paused = False  # reading from the socket paused: the buffer is full
        self.started = False  # a byte of the response arrived
        self.headers_done = False
        self.framed = False  # the body has a length (Content-Length or chunked), not "until close"
        self.length: int | None = None  # Content-Length, when the response has one
        self.complete = False  # the whole response was received
        self.keep = False  # the gateway keeps the connection open after this response
        self.error: Exception | None = None
        self.head_bytes = self.header_bytes = 0  # received before the head's end; of the headers parsed
        self.oversize: HandlerHeadersTooLarge | None = None
        self.timer: asyncio.TimerHandle | None = None
        self.idle_since = 0.0

    # -- the request
    def send(self, data: bytes, head: bool, deadline: float) -> asyncio.Future:
        """Write the request; the future is done once the response's head arrived, or gets the error."""
        loop = asyncio.get_running_loop()
        self.waiter = loop.create_future()
        if self.closed or self.transport.is_closing():
            self.waiter.set_exception(UpstreamUnreachable("the gateway closed the connection"))
            return self.waiter
        self.timer = loop.call_at(deadline, self._expire)
        self.head, self.started, self.headers_done, self.framed = head, False, False, False
        self.complete, self.keep, self.error, self.length = False, False, None, None
        self.headers, self.body, self.buffered = [], [], 0
        self.head_bytes = self.header_bytes = 0
        self.oversize = None
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
        if not self.headers_done:
            self.head_bytes += len(data)
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError as e:
            self._fail(self.oversize or UpstreamUnreachable(f"malformed response from the gateway: {e}"))
            self.transport.close()
            return
        if not self.headers_done and self.head_bytes > MAX_HEADER_BYTES + HEAD_SLACK and self.error is None:
            self._fail(HandlerHeadersTooLarge(f"{self.head_bytes} bytes without the end of the head"))
            self.transport.close()
            return
        if self.buffered > HIGH_WATER and not self.complete and not self.paused:
            self.paused = True  # back-pressure: the reader resumes it once it took the buffer
            self.transport.pause_reading()

    def connection_lost(self, exc) -> None:
        self.closed = True
        if self.parser is None or self.complete or self.error is not None:
            return
        if self.headers_done and not self.framed:  # a body delimited by the end of the connection
            self.complete = True
            self._wake()
        else:
            self._fail(UpstreamUnreachable("the gateway closed the connection" + (f": {exc}" if exc else "")))

    # -- httptools callbacks
    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers.append((name, value))
        self.header_bytes += len(name) + len(value) + 4
        if len(self.headers) > MAX_HEADERS:
            self.oversize = HandlerHeadersTooLarge(f"more than {MAX_HEADERS} headers")
        elif self.header_bytes > MAX_HEADER_BYTES:
            self.oversize = HandlerHeadersTooLarge(f"more than {MAX_HEADER_BYTES} bytes of headers")
        if self.oversize is not None:
            raise self.oversize  # the parser stops; data_received fails the request with it

    def on_headers_complete(self) -> None:
        self.status = self.parser.get_status_code()
        if 100 <= self.status < 200:  # 100 Continue and the like: the real response follows
            self.headers, self.header_bytes = [], 0
            return
        self.headers_done = True
        self.timer.cancel()  # the head arrived in time; the body gets an idle timeout per read
        chunked = False
        for name, value in self.headers:
            name = name.lower()
            if name == b"transfer-encoding":
                chunked = True
            elif name == b"content-length" and value.strip().isdigit():
                self.length = int(value)
        if chunked:
            self.length = None
        self.framed = chunked or self.length is not None or self.head or self.status in (204, 304)
        if self.head:  # no body follows, whatever Content-Length says (and the connection is not reused)
            self.length, self.complete = None, True
        self._wake()

    def on_body(self, body: bytes) -> None:
        self.body.append(body)
        self.buffered += len(body)
        self._wake()

    def on_message_complete(self) -> None:
        if self.headers_done and not self.complete:
            self.complete, self.keep = True, self.parser.should_keep_alive()
            self._wake()

    def _wake(self) -> None:
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_result(None)

    def _fail(self, error: Exception) -> None:
        if self.error is None:
            self.error = error
        if self.timer is not None:
            self.timer.cancel()
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_exception(error)

    def _expire(self) -> None:
        self._fail(TimeoutError())
        self.transport.close()  # a late answer must not be read as the next request's


class Response:
    """A response whose status and headers arrived. `body` holds what came with them; when `done`, that is
    the whole body and the connection is already released. Else read the rest with `read()`, and call
    `close()` when finished (a connection whose body was not read to the end is dropped, not reused)."""

    __slots__ = ("status", "headers", "length", "body", "timeout", "_conn", "_upstream")

    def __init__(self, conn: _Connection, upstream: Upstream, timeout: float):
        self.status, self.headers, self.length = conn.status, conn.headers, conn.length
        self._conn, self._upstream, self.timeout = conn, upstream, timeout
        self.body = self._take() if conn.body else b""
        if conn.complete and conn.error is None:
            self._release()

    @property
    def done(self) -> bool:
        return self._conn is None

    async def read(self) -> bytes:
        """The next part of the body (at most about HIGH_WATER bytes); b"" once it was all read."""
        conn = self._conn
        if conn is None:
            return b""
        loop = asyncio.get_running_loop()
        while not conn.body:
            if conn.error is not None:
                self.close()
                raise conn.error
            if conn.complete:
                self._release()
                return b""
            conn.waiter = loop.create_future()
            conn.timer = loop.call_later(self.timeout, conn._expire)
            try:
                await conn.waiter
            except BaseException:  # the gateway failed, or our caller was cancelled: drop the connection
                self.close()
                raise
            finally:
                conn.timer.cancel()
        data = self._take()
        if conn.complete and conn.error is None:
            self._release()
        return data

    def close(self) -> None:
        """Done with this response: its connection is reused only if the body was read to the end."""
        conn, self._conn = self._conn, None
        if conn is None:
            return
        if conn.complete and conn.error is None:
            self._conn = conn
            self._release()
            return
        if conn.timer is not None:
            conn.timer.cancel()
        conn.parser = None
        conn.transport.close()

    def _take(self) -> bytes:
        conn = self._conn
        data = conn.body[0] if len(conn.body) == 1 else b"".join(conn.body)
        conn.body, conn.buffered = [], 0
        if conn.paused:
            conn.paused = False
            conn.transport.resume_reading()
        return data

    def _release(self) -> None:
        conn, self._conn = self._conn, None
        conn.parser, conn.waiter = None, None
        self._upstream._put(conn, conn.keep and not conn.head and not conn.closed)


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
                      timeout: float) -> Response:
        """Send one request (target: path and query, already encoded); returns once the response's head arrived."""
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
                await conn.send(data, method == "HEAD", deadline)
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
            return Response(conn, self, timeout)
        raise AssertionError("unreachable")

    def _put(self, conn: _Connection, keep: bool) -> None:
        if keep and len(self.idle) < self.max_idle:
            conn.idle_since = asyncio.get_running_loop().time()
            self.idle.append(conn)
        else:
            conn.transport.close()

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
