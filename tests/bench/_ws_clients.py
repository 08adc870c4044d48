"""A websocket client process of bench_live.py: holds N connections to `ws/tenants/<slug>/` and reports when each
one received an expected `trigger.pods` frame. Several of these run at once, so the clients' own CPU is spread
over processes (and measured by the driver with psutil) instead of one event loop timing 1,000 sockets in turn.

    python tests/bench/_ws_clients.py WS_URL ORIGIN

Commands arrive on stdin, one JSON object a line; each gets one JSON line on stdout:

- {"op": "connect", "cookies": [...], "parallel": 5} -> {"n": <sockets open>, "took": s} (adds sockets; every one
  has had its `snapshot` frame);
- {"op": "expect", "trigger": id, "pod": name, "timeout": s} -> {"armed": true}, then, once every socket has a
  `trigger.pods` frame of that trigger that no longer shows that pod ready (or `timeout` after the driver's
  "go"), {"got": [seconds after t0 for each socket that had it], "frames": n, "closed": [codes]};
- {"op": "go", "t0": perf_counter of the driver} -> nothing (t0 is the driver's clock: time.perf_counter is
  CLOCK_MONOTONIC on Linux, one clock for every process);
- {"op": "close"} -> {"closed": true}, then the process exits.
"""

from __future__ import annotations

import asyncio
import json
import resource
import sys
import time

import aiohttp


class Clients:
    def __init__(self, url: str, origin: str):
        self.url, self.origin = url, origin
        self.session: aiohttp.ClientSession | None = None
        self.sockets: list[aiohttp.ClientWebSocketResponse] = []
        self.readers: list[asyncio.Task] = []
        self.expect: dict | None = None
        self.done = asyncio.Event()
        self.frames = 0

    async def connect(self, cookies: list[str], parallel: int) -> dict:
        if self.session is None:
            self.session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0))
        gate = asyncio.Semaphore(parallel)

        async def one(cookie: str) -> None:
            async with gate:
                ws = await self.session.ws_connect(self.url, headers={"Cookie": cookie, "Origin": self.origin},
                                                   timeout=aiohttp.ClientWSTimeout(ws_close=5), autoping=True,
                                                   max_msg_size=0)
                first = await ws.receive_json(timeout=120)
                assert first["type"] == "snapshot", first
            # read from now on: a socket nobody reads does not answer the server's pings (uvicorn closes it after
            # 20 s + 20 s), and 1,000 handshakes take longer than that
            self.readers.append(asyncio.create_task(self._read(len(self.sockets), ws)))
            self.sockets.append(ws)

        t0 = time.perf_counter()
        await asyncio.gather(*(one(c) for c in cookies))
        return {"n": len(self.sockets), "took": time.perf_counter() - t0}

    async def _read(self, i: int, ws: aiohttp.ClientWebSocketResponse) -> None:
        async for msg in ws:
            if msg.type != aiohttp.WSMsgType.TEXT:
                continue
            now = time.perf_counter()
            self.frames += 1
            expect = self.expect
            # trigger.status frames (and the rest) are not parsed: the clients' CPU stays small next to the server's
            if expect is None or i in expect["got"] or '"trigger.pods"' not in msg.data:
                continue
            frame = json.loads(msg.data)
            if frame["type"] != "trigger.pods" or frame["payload"]["id"] != expect["trigger"]:
                continue
            if not any(p["name"] == expect["pod"] and p["ready"] for p in frame["payload"]["pods"]):
                expect["got"][i] = now
                if len(expect["got"]) == len(self.sockets):
                    self.done.set()

    async def round(self, expect: dict, out) -> None:
        self.done.clear()
        self.expect = {**expect, "got": {}, "t0": None}
        out({"armed": True})
        go = await self.go.get()
        try:
            await asyncio.wait_for(self.done.wait(), expect["timeout"])
        except TimeoutError:
            pass
        got, self.expect = self.expect["got"], None
        out({"got": [t - go for t in got.values()], "frames": self.frames,
             "closed": [ws.close_code for ws in self.sockets if ws.closed]})

    async def close(self) -> None:
        for ws in self.sockets:
            await ws.close()
        for task in self.readers:
            task.cancel()
        await asyncio.gather(*self.readers, return_exceptions=True)
        if self.session is not None:
            await self.session.close()


async def main(url: str, origin: str) -> None:
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=2**26)
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)

    def out(obj: dict) -> None:
        sys.stdout.write(json.dumps(obj) + "\n")
        sys.stdout.flush()

    clients = Clients(url, origin)
    clients.go = asyncio.Queue()
    rounds: list[asyncio.Task] = []
    while line := await reader.readline():
        cmd = json.loads(line)
        if cmd["op"] == "connect":
            out(await clients.connect(cmd["cookies"], cmd.get("parallel", 5)))
        elif cmd["op"] == "expect":
            rounds.append(asyncio.create_task(clients.round(cmd, out)))
        elif cmd["op"] == "go":
            clients.go.put_nowait(cmd["t0"])
        elif cmd["op"] == "close":
            await asyncio.gather(*rounds, return_exceptions=True)
            await clients.close()
            out({"closed": True})
            return


if __name__ == "__main__":
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, max(soft, 8192)), hard))
    asyncio.run(main(sys.argv[1], sys.argv[2]))
