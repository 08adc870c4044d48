"""Gateway throughput to a warm echo handler vs a minimal aiohttp echo server.

Both servers run in this process's kubesim thread / a second thread, on 127.0.0.1; the same
load generator (an aiohttp client, 32 concurrent connections, 1 KiB JSON POST) drives each for a
fixed duration. The baseline answers with the same echo JSON (method, path, query, headers,
body size and sha256), so the ratio measures what the gateway adds. Medians of 3 runs.

    python tests/bench/bench_kubesim_gateway.py
"""

from __future__ import annotations

import asyncio
import json
import statistics
import sys
import threading
import time
from pathlib import Path

import aiohttp
from aiohttp import web

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from kubesim.config import SimConfig  # noqa: E402
from kubesim.handlers import Request, echo_payload  # noqa: E402
from kubesim.sim import SimulatorThread  # noqa: E402

DURATION = 3.0
CONCURRENCY = 32
RUNS = 3
BODY = json.dumps({"data": "x" * 1000}).encode()[:1024]


def start_baseline() -> tuple[int, threading.Event]:
    ready, stop = threading.Event(), threading.Event()
    port: list[int] = []

    async def echo(request: web.Request) -> web.Response:
        body = await request.read()
        req = Request(request.method, request.path, request.query_string,
                      request.headers.copy(), body)
        return web.Response(body=json.dumps(echo_payload(req)).encode(),
                            content_type="application/json")

    def run() -> None:
        async def main() -> None:
            app = web.Application()
            app.router.add_route("*", "/{tail:.*}", echo)
            runner = web.AppRunner(app, access_log=None)
            await runner.setup()
            site = web.TCPSite(runner, "127.0.0.1", 0)
            await site.start()
            port.append(runner.addresses[0][1])
            ready.set()
            while not stop.is_set():
                await asyncio.sleep(0.1)
            await runner.cleanup()
        asyncio.run(main())

    threading.Thread(target=run, daemon=True).start()
    ready.wait(10)
    return port[0], stop


async def load(url: str, host: str) -> float:
    done = 0
    deadline = time.monotonic() + DURATION
    conn = aiohttp.TCPConnector(limit=CONCURRENCY)
    async with aiohttp.ClientSession(connector=conn) as s:
        async def worker() -> None:
            nonlocal done
            while time.monotonic() < deadline:
                async with s.post(url, data=BODY, headers={
                        "Host": host, "Content-Type": "application/json"}) as r:
                    await r.read()
                    assert r.status == 200, r.status
                done += 1
        t0 = time.monotonic()
        await asyncio.gather(*[worker() for _ in range(CONCURRENCY)])
        return done / (time.monotonic() - t0)


def main() -> None:
    import tempfile

    from kubernetes import client, config
    tmp = tempfile.mkdtemp()
    st = SimulatorThread(SimConfig(kubeconfig=f"{tmp}/kubeconfig", image_pull_delay=0.01,
                                   start_delay=0.01, route_ready_delay=0.0)).start()
    try:
        api = client.CustomObjectsApi(config.new_client_from_config(config_file=st.kubeconfig_path))
        api.create_namespaced_custom_object("serving.knative.dev", "v1", "default", "services", {
            "metadata": {"name": "bench"}, "spec": {"template": {
                "metadata": {"annotations": {"autoscaling.knative.dev/min-scale": "1"}},
                "spec": {"containers": [{"image": "kubesim/echo"}]}}}})
        deadline = time.monotonic() + 10
        while not st.sim.serving.revisions.get(("default", "bench-00001")) or \
                not st.sim.serving.revisions[("default", "bench-00001")].ready_pods or \
                "bench.default.example.com" not in st.sim.serving.hosts:
            assert time.monotonic() < deadline, "ksvc not ready"
            time.sleep(0.05)
        port, stop = start_baseline()
        gw_rates, base_rates = [], []
        for _ in range(RUNS):
            base_rates.append(asyncio.run(load(f"http://127.0.0.1:{port}/hook", "x")))
            gw_rates.append(asyncio.run(load(st.gateway_url + "/hook", "bench.default.example.com")))
        stop.set()
    finally:
        st.stop()
    g, b = statistics.median(gw_rates), statistics.median(base_rates)
    print(f"gateway_echo_rps (warm echo pod, {CONCURRENCY} connections, 1 KiB POST, median of {RUNS}): {g:.0f} "
          f"(baseline: minimal aiohttp echo server {b:.0f} rps; ratio: {g / b:.2f})")


if __name__ == "__main__":
    main()
