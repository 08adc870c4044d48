"""The ingress's HTTP/1.1 client against scripted gateways on real loopback sockets."""

import asyncio

import pytest

from triggers.edge.upstream import (
    HIGH_WATER,
    MAX_HEADER_BYTES,
    MAX_HEADERS,
    HandlerHeadersTooLarge,
    Upstream,
    UpstreamUnreachable,
)

OK = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 2\r\n\r\nok"


async def fetch(upstream: Upstream, method: str, target: str, headers, body: bytes, timeout: float):
    """(status, headers, whole body) of one request."""
    response = await upstream.request(method, target, headers, body, timeout)
    parts = [response.body]
    while not response.done:
        parts.append(await response.read())
    return response.status, response.headers, b"".join(parts)


class Gateway:
    """A loopback server answering each request with the next scripted reply (bytes, or a callable)."""

    def __init__(self, *replies):
        self.replies, self.requests, self.connections = list(replies), [], 0

    async def __aenter__(self):
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.url = f"http://127.0.0.1:{self.server.sockets[0].getsockname()[1]}"
        return self

    async def __aexit__(self, *exc):
        self.server.close()

    async def _serve(self, reader, writer):
        self.connections += 1
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = next((int(line.split(b":")[1]) for line in head.split(b"\r\n")
                               if line.lower().startswith(b"content-length:")), 0)
                self.requests.append(head + await reader.readexactly(length))
                reply = self.replies.pop(0)
                if callable(reply):
                    if not await reply(writer):  # True: the connection stays open for the next request
                        return
                    continue
                writer.write(reply)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()


async def close_after(writer, data: bytes = b""):
    writer.write(data)
    await writer.drain()


async def test_sends_the_request_as_given_and_reuses_the_connection():
    async with Gateway(OK, OK) as gw:
        upstream = Upstream(gw.url)
        for _ in range(2):
            status, headers, body = await fetch(
                upstream, "POST", "/hook/a%20b?x=1&y=%C3%A9", [("Host", "h.ns.svc.cluster.local"), ("X-A", "1")],
                b"\x00\xff", timeout=5)
            assert (status, body) == (200, b"ok") and (b"Content-Type", b"text/plain") in headers
        assert gw.connections == 1
        head, _, body = gw.requests[0].partition(b"\r\n\r\n")
        lines = head.split(b"\r\n")
        assert lines[0] == b"POST /hook/a%20b?x=1&y=%C3%A9 HTTP/1.1"
        assert b"Host: h.ns.svc.cluster.local" in lines and b"X-A: 1" in lines and b"Content-Length: 2" in lines
        assert body == b"\x00\xff"
        upstream.close()


async def test_chunked_close_delimited_head_204_and_100_continue():
    chunked = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n"
    head = b"HTTP/1.1 200 OK\r\nContent-Length: 999\r\n\r\n"
    no_content = b"HTTP/1.1 204 No Content\r\n\r\n"
    continued = b"HTTP/1.1 100 Continue\r\n\r\n" + OK
    until_close = b"HTTP/1.0 200 OK\r\n\r\nuntil the end"
    async with Gateway(chunked, head, no_content, continued, lambda w: close_after(w, until_close)) as gw:
        upstream = Upstream(gw.url)
        assert (await fetch(upstream, "GET", "/", [], b"", 5))[2] == b"abcde"
        assert (await fetch(upstream, "HEAD", "/", [], b"", 5))[::2] == (200, b"")
        assert (await fetch(upstream, "GET", "/", [], b"", 5))[::2] == (204, b"")
        assert (await fetch(upstream, "POST", "/", [("Expect", "100-continue")], b"x", 5))[::2] == (200, b"ok")
        assert (await fetch(upstream, "GET", "/", [], b"", 5))[::2] == (200, b"until the end")
        upstream.close()


async def test_a_reused_connection_that_breaks_before_any_answer_is_replaced_once():
    """The gateway closed the idle connection as the request went out: sent again on a new connection."""
    async with Gateway(b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\n1", close_after, OK) as gw:
        upstream = Upstream(gw.url)
        await fetch(upstream, "GET", "/", [], b"", 5)
        assert (await fetch(upstream, "POST", "/again", [], b"x", 5))[2] == b"ok"
        assert gw.connections == 2 and [r.split(b" ")[1] for r in gw.requests] == [b"/", b"/again", b"/again"]
        upstream.close()


async def test_a_new_connection_that_breaks_is_not_retried():
    async with Gateway(close_after, OK) as gw:
        upstream = Upstream(gw.url)
        with pytest.raises(UpstreamUnreachable, match="closed the connection"):
            await fetch(upstream, "POST", "/", [], b"x", 5)
        assert len(gw.requests) == 1
        upstream.close()


async def test_a_connection_idle_for_longer_than_keepalive_is_not_reused():
    async with Gateway(OK, OK) as gw:
        upstream = Upstream(gw.url, keepalive=0.05)
        await fetch(upstream, "GET", "/", [], b"", 5)
        await asyncio.sleep(0.1)
        await fetch(upstream, "GET", "/", [], b"", 5)
        assert gw.connections == 2 and len(upstream.idle) == 1
        upstream.close()


async def test_connection_close_is_not_reused():
    close = b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 1\r\n\r\n1"
    async with Gateway(close, OK) as gw:
        upstream = Upstream(gw.url)
        await fetch(upstream, "GET", "/", [], b"", 5)
        assert upstream.idle == []
        await fetch(upstream, "GET", "/", [], b"", 5)
        assert gw.connections == 2
        upstream.close()


async def test_unreachable_broken_and_malformed_answers_raise_unreachable():
    upstream = Upstream("http://127.0.0.1:9")
    with pytest.raises(UpstreamUnreachable, match="cannot connect"):
        await fetch(upstream, "GET", "/", [], b"", 5)
    half = b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc"
    async with Gateway(lambda w: close_after(w, half), b"NOT HTTP AT ALL\r\n\r\n") as gw:
        upstream = Upstream(gw.url)
        with pytest.raises(UpstreamUnreachable, match="closed the connection"):
            await fetch(upstream, "GET", "/", [], b"", 5)
        with pytest.raises(UpstreamUnreachable, match="malformed"):
            await fetch(upstream, "GET", "/", [], b"", 5)
        assert upstream.idle == []


async def test_a_timeout_drops_the_connection():
    async def never(writer):
        await asyncio.sleep(10)

    async with Gateway(never, OK) as gw:
        upstream = Upstream(gw.url)
        with pytest.raises(TimeoutError):
            await fetch(upstream, "GET", "/slow", [], b"", 0.2)
        assert upstream.idle == []
        assert (await fetch(upstream, "GET", "/", [], b"", 5))[2] == b"ok"
        assert gw.connections == 2
        upstream.close()


async def test_concurrent_requests_each_get_their_own_response():
    replies = [b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%d" % (len(str(i)), i) for i in range(50)]
    async with Gateway(*replies) as gw:
        upstream = Upstream(gw.url)
        bodies = await asyncio.gather(*(fetch(upstream, "GET", f"/{i}", [], b"", 5) for i in range(50)))
        assert sorted(int(b) for _, _, b in bodies) == list(range(50))
        upstream.close()


async def test_a_small_response_arrives_whole_and_its_connection_is_back_in_the_pool_at_once():
    async with Gateway(OK) as gw:
        upstream = Upstream(gw.url)
        response = await upstream.request("GET", "/", [], b"", 5)
        assert response.done and response.body == b"ok" and response.length == 2 and len(upstream.idle) == 1
        assert await response.read() == b""
        upstream.close()


def write_slowly(*parts: bytes, pause: float = 0.2, keep: bool = False):
    """A reply written in parts, `pause` seconds apart; the connection is closed after it unless `keep`."""
    async def reply(writer):
        for part in parts:
            writer.write(part)
            await writer.drain()
            await asyncio.sleep(pause)
        return keep
    return reply


async def test_the_head_is_returned_before_the_body_which_is_read_as_it_arrives():
    head = b"HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\n"
    async with Gateway(write_slowly(head, b"abc", b"def", pause=0.3)) as gw:
        upstream = Upstream(gw.url)
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        response = await upstream.request("GET", "/", [], b"", 5)
        assert loop.time() - t0 < 0.25 and (response.status, response.length, response.done) == (200, 6, False)
        assert response.body == b"" and await response.read() == b"abc"
        assert await response.read() == b"def" and response.done
        upstream.close()


async def test_chunked_and_close_delimited_bodies_stream_in_parts():
    chunked = [b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", b"3\r\nabc\r\n", b"2\r\nde\r\n0\r\n\r\n"]
    until_close = [b"HTTP/1.0 200 OK\r\n\r\n", b"until ", b"the end"]
    async with Gateway(write_slowly(*chunked, pause=0.1)) as gw:
        upstream = Upstream(gw.url)
        response = await upstream.request("GET", "/", [], b"", 5)
        assert response.length is None and not response.done
        parts = [await response.read() for _ in range(2)]
        assert parts == [b"abc", b"de"] and response.done
    async with Gateway(write_slowly(*until_close, pause=0.1)) as gw:
        upstream = Upstream(gw.url)
        response = await upstream.request("GET", "/", [], b"", 5)
        parts = [await response.read(), await response.read()]
        assert parts == [b"until ", b"the end"]
        assert await response.read() == b"" and response.done and upstream.idle == []


async def test_a_body_read_to_the_end_returns_its_connection_to_the_pool_and_one_left_early_does_not():
    head = b"HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\n"
    in_two = write_slowly(head + b"abc", b"def", pause=0.1, keep=True)
    async with Gateway(in_two, OK, in_two, OK) as gw:
        upstream = Upstream(gw.url)
        response = await upstream.request("GET", "/", [], b"", 5)
        assert response.body == b"abc" and await response.read() == b"def" and response.done
        assert len(upstream.idle) == 1 and (await fetch(upstream, "GET", "/", [], b"", 5))[2] == b"ok"
        assert gw.connections == 1
        response = await upstream.request("GET", "/", [], b"", 5)
        assert response.body == b"abc"
        response.close()  # the rest is never read: the connection cannot carry the next request
        assert upstream.idle == []
        assert (await fetch(upstream, "GET", "/", [], b"", 5))[2] == b"ok" and gw.connections == 2
        upstream.close()


async def test_a_body_that_breaks_off_raises_and_its_connection_is_dropped():
    half = b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc"
    chunked = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n"
    async with Gateway(write_slowly(half, pause=0.05), write_slowly(chunked, pause=0.05)) as gw:
        upstream = Upstream(gw.url)
        for _ in range(2):
            response = await upstream.request("GET", "/", [], b"", 5)
            received = response.body + (b"" if response.body else await response.read())
            assert received == b"abc"
            with pytest.raises(UpstreamUnreachable, match="closed the connection"):
                await response.read()
            assert response.done and upstream.idle == []


async def test_a_body_that_stalls_times_out_per_read():
    async with Gateway(write_slowly(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc", pause=5)) as gw:
        upstream = Upstream(gw.url)
        response = await upstream.request("GET", "/", [], b"", 0.3)
        assert response.body == b"abc"
        with pytest.raises(TimeoutError):
            await response.read()
        assert upstream.idle == []


async def test_reading_from_the_gateway_waits_for_the_reader_with_a_bounded_buffer():
    """Back-pressure: a reader that does not read stops the gateway from sending (socket buffers fill up);
    each read returns at most about HIGH_WATER bytes, whatever the body's size."""
    size, sent = 64 * 1024 * 1024, [0]

    async def flood(writer):
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % size)
        block = b"x" * (1024 * 1024)
        for _ in range(size // len(block)):
            writer.write(block)
            await writer.drain()
            sent[0] += len(block)

    async with Gateway(flood) as gw:
        upstream = Upstream(gw.url)
        response = await upstream.request("GET", "/", [], b"", 5)
        await asyncio.sleep(0.5)  # the reader takes nothing for a while
        assert sent[0] < size // 4, f"the gateway sent {sent[0]} bytes to a reader that read none"
        received, largest = len(response.body), 0
        while not response.done:
            part = await response.read()
            received, largest = received + len(part), max(largest, len(part))
        assert received == size and largest <= 2 * HIGH_WATER
        assert len(upstream.idle) == 1
        upstream.close()


def with_headers(headers: list[bytes], body: bytes = b"ok") -> bytes:
    return b"HTTP/1.1 200 OK\r\n" + b"".join(h + b"\r\n" for h in headers) + b"Content-Length: %d\r\n\r\n%s" % (
        len(body), body)


async def test_response_headers_over_the_count_or_the_size_fail_the_request_and_drop_the_connection():
    most = [b"X-H%03d: v" % i for i in range(MAX_HEADERS - 1)]  # and Content-Length: MAX_HEADERS in all
    big = b"X-Big: " + b"v" * (MAX_HEADER_BYTES - 64)  # 64 bytes left for Content-Length's line and more
    async with Gateway(with_headers(most), with_headers([*most, b"X-One-More: v"]), with_headers([big]),
                       with_headers([big, b"X-Pad: " + b"v" * 64])) as gw:
        upstream = Upstream(gw.url)
        status, headers, body = await fetch(upstream, "GET", "/", [], b"", 5)
        assert (status, len(headers), body) == (200, MAX_HEADERS, b"ok")
        with pytest.raises(HandlerHeadersTooLarge, match=f"more than {MAX_HEADERS} headers"):
            await fetch(upstream, "GET", "/", [], b"", 5)
        assert upstream.idle == []
        assert (await fetch(upstream, "GET", "/", [], b"", 5))[2] == b"ok"  # within MAX_HEADER_BYTES
        with pytest.raises(HandlerHeadersTooLarge, match=f"more than {MAX_HEADER_BYTES} bytes of headers"):
            await fetch(upstream, "GET", "/", [], b"", 5)
        assert upstream.idle == [] and gw.connections == 2  # each refused head dropped its connection
        upstream.close()


@pytest.mark.parametrize("opening", [b"HTTP/1.1 200 OK\r\nX-Endless: ", b"HTTP/1.1 200 ", b"HTTP/1.1 200 OK\r\n"])
async def test_a_head_that_never_ends_is_cut_off_long_before_it_is_all_sent(opening):
    """One endless header line, an endless reason phrase, endless short header lines sent quickly: the
    client gives up once more than the limits arrived, and the gateway's writes fail."""
    size, sent = 64 * 1024 * 1024, [0]
    block = b"a" * (1024 * 1024) if opening.endswith(b" ") else b"X-A: b\r\n" * (128 * 1024)

    async def flood(writer):
        writer.write(opening)
        for _ in range(size // len(block)):
            writer.write(block)
            await writer.drain()
            sent[0] += len(block)

    async with Gateway(flood) as gw:
        upstream = Upstream(gw.url)
        with pytest.raises(HandlerHeadersTooLarge, match="too large"):
            await fetch(upstream, "GET", "/", [], b"", 10)
        await asyncio.sleep(0.2)
        assert sent[0] < size // 4, f"the client read {sent[0]} bytes of a head"
        assert upstream.idle == []
        upstream.close()


@pytest.mark.django_db(transaction=True)
def test_a_handler_sending_too_many_headers_gets_a_recorded_502(relay, live_trigger, settings):
    import json
    import socket
    import threading

    import requests

    from tests.cluster import wait_for
    from triggers.models import Delivery

    trigger = live_trigger()
    server, seen = socket.create_server(("127.0.0.1", 0)), []
    flood = with_headers([b"Set-Thing-%d: v" % i for i in range(MAX_HEADERS * 10)], body=b"{}")

    def serve():  # the gateway, in a thread (the ingress runs its own loop under uvicorn)
        while True:
            try:
                conn, _ = server.accept()
            except OSError:
                return
            with conn:
                data = b""
                while b"\r\n\r\n" not in data and (chunk := conn.recv(65536)):
                    data += chunk
                head, _, body = data.partition(b"\r\n\r\n")
                length = next(int(line.split(b":")[1]) for line in head.split(b"\r\n")
                              if line.lower().startswith(b"content-length:"))
                while len(body) < length and (chunk := conn.recv(65536)):
                    body += chunk
                seen.append(head)
                try:
                    conn.sendall(flood)
                except OSError:
                    pass

    threading.Thread(target=serve, daemon=True).start()
    settings.RELAY_GATEWAY_URL = f"http://127.0.0.1:{server.getsockname()[1]}"
    try:
        response = requests.post(f"{relay}/hooks/{trigger.token}/x", data=b'{"a": 1}', timeout=30)
    finally:
        server.close()
    assert response.status_code == 502 and response.headers["Content-Type"] == "application/json"
    detail = response.json()["detail"]
    assert detail.startswith("Handler response headers too large") and f"more than {MAX_HEADERS} headers" in detail
    assert not any(name.startswith("Set-Thing") for name in response.headers)
    delivery = wait_for(lambda: Delivery.objects.filter(trigger=trigger).exclude(state="forwarded").first(),
                        message="the delivery recorded")
    assert len(seen) == 1 and str(delivery.pk).encode() in seen[0]  # forwarded once, recorded as that one
    assert (delivery.state, delivery.response_status, delivery.error) == ("failed", 502, detail)
    assert json.loads(bytes(delivery.response_body)) == {"detail": detail}
