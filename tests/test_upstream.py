"""The ingress's HTTP/1.1 client against scripted gateways on real loopback sockets."""

import asyncio

import pytest

from triggers.upstream import Upstream, UpstreamUnreachable

OK = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 2\r\n\r\nok"


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
                    await reply(writer)
                    return
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
            status, headers, body = await upstream.request(
                "POST", "/hook/a%20b?x=1&y=%C3%A9", [("Host", "h.ns.svc.cluster.local"), ("X-A", "1")], b"\x00\xff",
                timeout=5)
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
        assert (await upstream.request("GET", "/", [], b"", 5))[2] == b"abcde"
        assert (await upstream.request("HEAD", "/", [], b"", 5))[::2] == (200, b"")
        assert (await upstream.request("GET", "/", [], b"", 5))[::2] == (204, b"")
        assert (await upstream.request("POST", "/", [("Expect", "100-continue")], b"x", 5))[::2] == (200, b"ok")
        assert (await upstream.request("GET", "/", [], b"", 5))[::2] == (200, b"until the end")
        upstream.close()


async def test_a_reused_connection_that_breaks_before_any_answer_is_replaced_once():
    """The gateway closed the idle connection as the request went out: sent again on a new connection."""
    async with Gateway(b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\n1", close_after, OK) as gw:
        upstream = Upstream(gw.url)
        await upstream.request("GET", "/", [], b"", 5)
        assert (await upstream.request("POST", "/again", [], b"x", 5))[2] == b"ok"
        assert gw.connections == 2 and [r.split(b" ")[1] for r in gw.requests] == [b"/", b"/again", b"/again"]
        upstream.close()


async def test_a_new_connection_that_breaks_is_not_retried():
    async with Gateway(close_after, OK) as gw:
        upstream = Upstream(gw.url)
        with pytest.raises(UpstreamUnreachable, match="closed the connection"):
            await upstream.request("POST", "/", [], b"x", 5)
        assert len(gw.requests) == 1
        upstream.close()


async def test_a_connection_idle_for_longer_than_keepalive_is_not_reused():
    async with Gateway(OK, OK) as gw:
        upstream = Upstream(gw.url, keepalive=0.05)
        await upstream.request("GET", "/", [], b"", 5)
        await asyncio.sleep(0.1)
        await upstream.request("GET", "/", [], b"", 5)
        assert gw.connections == 2 and len(upstream.idle) == 1
        upstream.close()


async def test_connection_close_is_not_reused():
    close = b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 1\r\n\r\n1"
    async with Gateway(close, OK) as gw:
        upstream = Upstream(gw.url)
        await upstream.request("GET", "/", [], b"", 5)
        assert upstream.idle == []
        await upstream.request("GET", "/", [], b"", 5)
        assert gw.connections == 2
        upstream.close()


async def test_unreachable_broken_and_malformed_answers_raise_unreachable():
    upstream = Upstream("http://127.0.0.1:9")
    with pytest.raises(UpstreamUnreachable, match="cannot connect"):
        await upstream.request("GET", "/", [], b"", 5)
    half = b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc"
    async with Gateway(lambda w: close_after(w, half), b"NOT HTTP AT ALL\r\n\r\n") as gw:
        upstream = Upstream(gw.url)
        with pytest.raises(UpstreamUnreachable, match="closed the connection"):
            await upstream.request("GET", "/", [], b"", 5)
        with pytest.raises(UpstreamUnreachable, match="malformed"):
            await upstream.request("GET", "/", [], b"", 5)
        assert upstream.idle == []


async def test_a_timeout_drops_the_connection():
    async def never(writer):
        await asyncio.sleep(10)

    async with Gateway(never, OK) as gw:
        upstream = Upstream(gw.url)
        with pytest.raises(TimeoutError):
            await upstream.request("GET", "/slow", [], b"", 0.2)
        assert upstream.idle == []
        assert (await upstream.request("GET", "/", [], b"", 5))[2] == b"ok"
        assert gw.connections == 2
        upstream.close()


async def test_concurrent_requests_each_get_their_own_response():
    replies = [b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%d" % (len(str(i)), i) for i in range(50)]
    async with Gateway(*replies) as gw:
        upstream = Upstream(gw.url)
        bodies = await asyncio.gather(*(upstream.request("GET", f"/{i}", [], b"", 5) for i in range(50)))
        assert sorted(int(b) for _, _, b in bodies) == list(range(50))
        upstream.close()
