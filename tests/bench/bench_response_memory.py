"""Response memory benchmark: `python tests/bench/bench_response_memory.py` (run by `make bench`).

A sync trigger whose handler (kubesim's `kubesim/big:200Mi`, min_scale=1) answers every webhook with a
200 MiB body. One webhook, then four at once, are sent through the relay and their responses read to the
end (64 KiB at a time, checked byte for byte, kept nowhere); the relay process's RSS is sampled every 10 ms.
Printed: the RSS before (baseline, after 20 small warm-up webhooks), the peak growth during (goal: < 100 MiB for
the single response, which buffering it whole would exceed twice over), the RSS after, the transfer rate,
and what the delivery log stored (RELAY_RESPONSE_BODY_CAP bytes).

Processes: kubesim and relayweb (uvicorn) are subprocesses (tests/bench/_setup.py), the client runs here.
Database: a fresh PostgreSQL database when DATABASE_URL names a PostgreSQL server, else a temporary SQLite
file; Redis: REDIS_URL, else the embedded one. Loopback only; everything is stopped at the end.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import shutil
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from pathlib import Path
from urllib.parse import urlsplit

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _setup  # noqa: E402

SIZE = 200 * 1024 * 1024
CONCURRENT = 4
GOAL_MIB = 100
MIB = 1024 * 1024


def expected_sha256() -> str:
    from kubesim.handlers import Generated

    digest = hashlib.sha256()
    for chunk in Generated(SIZE).chunks():
        digest.update(chunk)
    return digest.hexdigest()


def fetch(relay: str, token: str) -> tuple[int, int, str]:
    """(status, bytes received, sha256) of one webhook's response, read 64 KiB at a time."""
    url = urlsplit(relay)
    conn = http.client.HTTPConnection(url.hostname, url.port, timeout=60)
    try:
        conn.request("POST", f"/hooks/{token}", body=b"{}", headers={"Content-Type": "application/json"})
        response = conn.getresponse()
        digest, received = hashlib.sha256(), 0
        while part := response.read(65536):
            digest.update(part)
            received += len(part)
        return response.status, received, digest.hexdigest()
    finally:
        conn.close()


class RssSampler:
    """The peak RSS of a process while the `with` block runs (sampled every 10 ms)."""

    def __init__(self, pid: int):
        import psutil

        self.process, self.peak, self._stop = psutil.Process(pid), 0, threading.Event()

    def rss(self) -> int:
        return self.process.memory_info().rss

    def __enter__(self):
        self.peak = self.rss()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def _run(self):
        while not self._stop.wait(0.01):
            self.peak = max(self.peak, self.rss())

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self.rss())


def main() -> None:
    started = time.perf_counter()
    _setup.stop_on_sigterm()
    tmp = Path(tempfile.mkdtemp(prefix="relayweb-bench-memory-"))
    with ExitStack() as stack:
        stack.callback(shutil.rmtree, tmp, ignore_errors=True)
        db_label = _setup.setup_django(stack, tmp, RELAY_KUBECONFIG=str(tmp / "kubeconfig"))
        from django.conf import settings
        from django.db import connections

        from triggers.cluster import kube
        from triggers.models import Delivery, Trigger

        sim = _setup.start_kubesim(stack, tmp, image_pull_delay=0.2, start_delay=0.2)
        cluster = kube.cluster()
        tenant = _setup.make_tenant("bench", cluster)
        big = Trigger.objects.create(tenant=tenant, name="big", image=f"kubesim/big:{SIZE // MIB}Mi", min_scale=1)
        echo = Trigger.objects.create(tenant=tenant, name="echo", image="kubesim/echo", min_scale=1)
        _setup.deploy(cluster, [big, echo])
        connections.close_all()
        uvicorn, relay = _setup.start_uvicorn(stack, tmp, _setup.relay_env(sim))
        sha = expected_sha256()
        print(f"setup (database, kubesim, uvicorn; 2 triggers ready): {time.perf_counter() - started:.1f} s; "
              f"database: {db_label}; load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")

        sampler = RssSampler(uvicorn.pid)
        for _ in range(20):  # warm-up with small webhooks: code paths, pools, the delivery writer
            fetch(relay, echo.token)
        time.sleep(1.0)
        baseline = sampler.rss()
        t0 = time.perf_counter()
        with sampler:
            single = fetch(relay, big.token)
        elapsed = time.perf_counter() - t0
        ok = single == (200, SIZE, sha)
        growth = sampler.peak - baseline
        outcome = "whole and correct" if ok else f"WRONG (status, bytes) {single[:2]}"
        print(f"one {SIZE // MIB} MiB response through the relay: {outcome}, {SIZE / MIB / elapsed:.0f} MiB/s")
        print(f"relay RSS growth while relaying one {SIZE // MIB} MiB response: {growth / MIB:.1f} MiB "
              f"(peak {sampler.peak / MIB:.1f} MiB) (goal: < {GOAL_MIB} MiB growth / baseline: RSS before "
              f"{baseline / MIB:.1f} MiB)")

        time.sleep(0.5)
        before = sampler.rss()
        t0 = time.perf_counter()
        with sampler, ThreadPoolExecutor(CONCURRENT) as pool:
            results = list(pool.map(lambda _: fetch(relay, big.token), range(CONCURRENT)))
        elapsed = time.perf_counter() - t0
        all_ok = all(r == (200, SIZE, sha) for r in results)
        print(f"{CONCURRENT} concurrent {SIZE // MIB} MiB responses: {'all whole and correct' if all_ok else 'WRONG'}, "
              f"{CONCURRENT * SIZE / MIB / elapsed:.0f} MiB/s in total; relay RSS growth "
              f"{(sampler.peak - before) / MIB:.1f} MiB (goal: none set; buffering would be >= "
              f"{CONCURRENT * SIZE // MIB} MiB / baseline: RSS before {before / MIB:.1f} MiB)")
        time.sleep(1.0)
        print(f"relay RSS after: {sampler.rss() / MIB:.1f} MiB (baseline before the first big response "
              f"{baseline / MIB:.1f} MiB)")

        _setup.wait_for(lambda: Delivery.objects.filter(trigger=big, state="succeeded").count() == 1 + CONCURRENT,
                        10, "the deliveries recorded")
        stored = {len(bytes(d.response_body)) for d in Delivery.objects.filter(trigger=big)}
        print(f"delivery log: {1 + CONCURRENT} deliveries succeeded, response bodies stored: {sorted(stored)} bytes "
              f"(goal: RELAY_RESPONSE_BODY_CAP = {settings.RELAY_RESPONSE_BODY_CAP})")
        verdict = ok and all_ok and growth < GOAL_MIB * MIB and stored == {settings.RELAY_RESPONSE_BODY_CAP}
        print(f"response memory goal: {'met' if verdict else 'NOT met'}")
    print(f"bench_response_memory total: {time.perf_counter() - started:.0f} s (goal: < 60 s)")


if __name__ == "__main__":
    main()
