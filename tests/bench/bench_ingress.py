"""Webhook ingress benchmark: `python tests/bench/bench_ingress.py` (run by `make bench`).

In one run, against a warm echo handler (min_scale=1, never scaled to zero) in kubesim, with 32 concurrent
keep-alive connections POSTing 1 KiB of JSON for a fixed duration (1 s warm-up, then 5 s measured, median of
3 runs, the three targets interleaved), each figure next to the same handler hit DIRECTLY through kubesim's
gateway (`Host: <ksvc>.<namespace>.svc.cluster.local`):

- sync relay with delivery recording: throughput ratio (goal >= 0.3x direct), added p50/p99 latency
  (goal: p99 <= 15 ms added);
- async acknowledge (stored durably, then 202; the Celery publish happens, no worker consumes it):
  throughput ratio (goal >= 0.3x direct);
- cold-start burst: 200 concurrent requests to a trigger at zero -> all succeed, exactly one activation
  (the revision's Active condition going to Queued, and the pods created, both observed with watches on
  kubesim's API), slowest <= kubesim's activation delay (image pull + start) + 1 s.

Processes: kubesim (`python -m kubesim`) and relayweb (`python -m uvicorn relayweb.asgi:application`) are
subprocesses; the load generator (aiohttp) runs here, so it shares no interpreter or GIL with the servers
(it does share this machine's CPUs). Database: a fresh PostgreSQL database when DATABASE_URL names a
PostgreSQL server, else a temporary SQLite file; Redis: REDIS_URL, else the embedded one tests.settings
starts. Loopback only; everything is stopped and dropped at the end, also on error.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _setup  # noqa: E402

CONNECTIONS = 32
WARMUP = 1.0
DURATION = 5.0
RUNS = 3
BURST = 200
BODY = json.dumps({"event": "bench", "data": "x" * 997}, separators=(",", ":")).encode()
assert len(BODY) == 1024, len(BODY)
# kubesim: a short autoscaler window so the cold trigger reaches zero soon after its deploy.
SIM = dict(image_pull_delay=0.5, start_delay=0.5, stable_window=2.0, scale_to_zero_grace=0.5, activation_timeout=30,
           progress_deadline=20, route_ready_delay=0.0)
ACTIVATION_DELAY = SIM["image_pull_delay"] + SIM["start_delay"]


# ---------------------------------------------------------------- load generator


async def load(url: str, headers: dict, expect: int, seconds: float) -> tuple[float, list[float], dict]:
    """CONNECTIONS workers POSTing BODY back to back for `seconds`: (req/s, latencies in ms, unexpected statuses)."""
    latencies: list[float] = []
    unexpected: dict[int, int] = {}
    connector = aiohttp.TCPConnector(limit=CONNECTIONS, force_close=False)
    async with aiohttp.ClientSession(connector=connector, auto_decompress=False) as session:
        deadline = time.perf_counter() + seconds

        async def worker() -> None:
            while time.perf_counter() < deadline:
                t0 = time.perf_counter()
                async with session.post(url, data=BODY, headers=headers) as response:
                    await response.read()
                latencies.append((time.perf_counter() - t0) * 1000)
                if response.status != expect:
                    unexpected[response.status] = unexpected.get(response.status, 0) + 1

        t0 = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(CONNECTIONS)))
        elapsed = time.perf_counter() - t0
    return len(latencies) / elapsed, latencies, unexpected


async def settle(pids: list[int], timeout: float = 8.0) -> None:
    """Wait until the servers are idle (e.g. the delivery writer's backlog of the previous run is flushed)."""
    import psutil

    procs = [psutil.Process(pid) for pid in pids]

    def cpu() -> float:
        return sum(sum(p.cpu_times()[:2]) for p in procs)

    deadline = time.monotonic() + timeout
    before = cpu()
    while time.monotonic() < deadline:
        await asyncio.sleep(0.25)
        now = cpu()
        if now - before < 0.02:  # under 8 % of one core
            return
        before = now


async def unloaded(url: str, headers: dict, seconds: float = 2.0) -> list[float]:
    """One connection, one request at a time: latency without queueing."""
    latencies: list[float] = []
    async with aiohttp.ClientSession() as session:
        deadline = time.perf_counter() + seconds
        while time.perf_counter() < deadline:
            t0 = time.perf_counter()
            async with session.post(url, data=BODY, headers=headers) as response:
                await response.read()
            latencies.append((time.perf_counter() - t0) * 1000)
    return latencies


async def measure(targets: dict[str, tuple[str, dict, int]], pids: list[int]) -> dict[str, dict]:
    results = {name: {"rps": [], "lat": [], "unexpected": {}, "sent": 0, "single": []} for name in targets}
    for _ in range(RUNS):
        for name, (url, headers, expect) in targets.items():
            await settle(pids)
            _, warm, _ = await load(url, headers, expect, WARMUP)
            rps, lat, unexpected = await load(url, headers, expect, DURATION)
            results[name]["sent"] += len(warm) + len(lat)
            results[name]["rps"].append(rps)
            results[name]["lat"] += lat
            for status, n in unexpected.items():
                results[name]["unexpected"][status] = results[name]["unexpected"].get(status, 0) + n
    for name in ("direct", "sync"):
        url, headers, _ = targets[name]
        await settle(pids)
        results[name]["single"] = await unloaded(url, headers)
        results[name]["sent"] += len(results[name]["single"])
    return results


# ---------------------------------------------------------------- cold-start burst


async def watch(session: aiohttp.ClientSession, url: str, on_event, started: asyncio.Event) -> None:
    """Stream a Kubernetes watch (from the list's resourceVersion), calling on_event(type, object)."""
    async with session.get(url) as response:
        response.raise_for_status()
        rv = (await response.json())["metadata"]["resourceVersion"]
    sep = "&" if "?" in url else "?"
    async with session.get(f"{url}{sep}watch=true&resourceVersion={rv}&timeoutSeconds=120",
                           timeout=aiohttp.ClientTimeout(total=None, sock_read=None)) as response:
        response.raise_for_status()
        started.set()
        async for line in response.content:
            if line.strip():
                event = json.loads(line)
                on_event(event["type"], event["object"])


async def cold_burst(relay: str, trigger, sim: _setup.KubeSim) -> dict:
    ns, selector = trigger.namespace, f"relayweb.io/trigger={trigger.pk}"
    activations, pods_created, last_reason = [], set(), {}

    def on_revision(kind: str, obj: dict) -> None:
        active = next((c for c in (obj.get("status") or {}).get("conditions") or [] if c["type"] == "Active"), {})
        name = obj["metadata"]["name"]
        if active.get("reason") == "Queued" and last_reason.get(name) != "Queued":
            activations.append(name)
        last_reason[name] = active.get("reason")

    def on_pod(kind: str, obj: dict) -> None:
        if kind == "ADDED":
            pods_created.add(obj["metadata"]["name"])

    headers = {"Authorization": f"Bearer {sim.token}"}
    async with aiohttp.ClientSession(sim.api_url, headers=headers) as api:
        started = [asyncio.Event(), asyncio.Event()]
        watches = [
            asyncio.create_task(watch(api, f"/apis/serving.knative.dev/v1/namespaces/{ns}/revisions?labelSelector="
                                           f"{selector}", on_revision, started[0])),
            asyncio.create_task(watch(api, f"/api/v1/namespaces/{ns}/pods?labelSelector={selector}", on_pod,
                                      started[1])),
        ]
        await asyncio.wait_for(asyncio.gather(*(e.wait() for e in started)), 10)
        url = f"{relay}/hooks/{trigger.token}"
        connector = aiohttp.TCPConnector(limit=BURST)
        async with aiohttp.ClientSession(connector=connector) as session:
            async def one() -> tuple[int, float]:
                t0 = time.perf_counter()
                async with session.post(url, data=BODY, headers={"Content-Type": "application/json"},
                                        timeout=aiohttp.ClientTimeout(total=60)) as response:
                    await response.read()
                return response.status, time.perf_counter() - t0

            t0 = time.perf_counter()
            outcomes = await asyncio.gather(*(one() for _ in range(BURST)), return_exceptions=True)
            wall = time.perf_counter() - t0
        await asyncio.sleep(0.5)  # let the watches deliver the last status changes
        for task in watches:
            task.cancel()
        await asyncio.gather(*watches, return_exceptions=True)
    ok = [o for o in outcomes if not isinstance(o, BaseException) and o[0] == 200]
    failures: dict[str, int] = {}
    for o in outcomes:
        if isinstance(o, BaseException) or o[0] != 200:
            key = type(o).__name__ if isinstance(o, BaseException) else str(o[0])
            failures[key] = failures.get(key, 0) + 1
    return {"ok": len(ok), "failures": failures, "slowest": max((s for _, s in ok), default=float("nan")),
            "p50": _setup.pct([s for _, s in ok], 50), "wall": wall, "activations": len(activations),
            "pods": len(pods_created)}


# ---------------------------------------------------------------- setup


def wait_scaled_to_zero(cluster, trigger, timeout: float = 30.0) -> None:
    from triggers.models import Trigger

    selector = f"relayweb.io/trigger={trigger.pk}"

    def at_zero() -> bool:
        pods = cluster.core.list_namespaced_pod(trigger.namespace, label_selector=selector).items
        revision = cluster.custom.get_namespaced_custom_object(
            "serving.knative.dev", "v1", trigger.namespace, "revisions", trigger.latest_ready_revision)
        active = next((c for c in revision["status"].get("conditions", []) if c["type"] == "Active"), {})
        return not pods and active.get("status") == "False"

    _setup.wait_for(at_zero, timeout, "the cold trigger scaled to zero", interval=0.2)
    Trigger.objects.filter(pk=trigger.pk).update(ready_pods=0, pods=[])  # what the watcher would have written


def purge_queue() -> None:
    """The async runs published one Celery message per 202 and nobody consumed them: drop this run's queue."""
    import redis

    queue = os.environ.get("CELERY_TASK_DEFAULT_QUEUE", "")
    if not queue.startswith("relayweb-test-"):
        return
    client = redis.Redis.from_url(os.environ["REDIS_URL"])
    try:
        keys = list(client.scan_iter(match=f"{queue}*"))
        if keys:
            client.delete(*keys)
    finally:
        client.close()


def main() -> None:
    started = time.perf_counter()
    _setup.stop_on_sigterm()
    tmp = Path(tempfile.mkdtemp(prefix="relayweb-bench-ingress-"))
    with ExitStack() as stack:
        stack.callback(shutil.rmtree, tmp, ignore_errors=True)
        db_label = _setup.setup_django(stack, tmp, RELAY_KUBECONFIG=str(tmp / "kubeconfig"))
        stack.callback(purge_queue)
        from django.db import connections

        from triggers.cluster import kube
        from triggers.models import Delivery, Trigger

        sim = _setup.start_kubesim(stack, tmp, **SIM)
        cluster = kube.cluster()
        tenant = _setup.make_tenant("bench", cluster)
        sync_t = Trigger.objects.create(tenant=tenant, name="echo-sync", image="kubesim/echo", min_scale=1)
        async_t = Trigger.objects.create(tenant=tenant, name="echo-async", image="kubesim/echo", min_scale=1,
                                         mode=Trigger.Mode.ASYNC)
        cold_t = Trigger.objects.create(tenant=tenant, name="cold", image="kubesim/echo", min_scale=0)
        _setup.deploy(cluster, [sync_t, async_t, cold_t])
        connections.close_all()
        uvicorn, relay = _setup.start_uvicorn(stack, tmp, _setup.relay_env(sim))
        print(f"setup (database, kubesim, uvicorn; 3 triggers ready): {time.perf_counter() - started:.1f} s; "
              f"database: {db_label}; Redis: {os.environ['REDIS_URL']}; load average {os.getloadavg()[0]:.1f} "
              f"on {os.cpu_count()} CPUs")

        direct_host = kube.render_ksvc(sync_t)["metadata"]["name"] + f".{sync_t.namespace}.svc.cluster.local"
        json_ct = {"Content-Type": "application/json"}
        targets = {
            "direct": (f"{sim.gateway_url}/hook", {**json_ct, "Host": direct_host}, 200),
            "sync": (f"{relay}/hooks/{sync_t.token}/hook", json_ct, 200),
            "async": (f"{relay}/hooks/{async_t.token}/hook", json_ct, 202),
        }
        t0 = time.perf_counter()
        try:
            results = asyncio.run(measure(targets, [sim.proc.pid, uvicorn.pid]))
        except BaseException:
            print(f"uvicorn log (last lines):\n{uvicorn.tail()}", file=sys.stderr)
            raise
        print(f"throughput runs ({RUNS} x 3 targets x ({WARMUP:.0f} s warm-up + {DURATION:.0f} s), then 1 connection "
              f"for 2 s): {time.perf_counter() - t0:.0f} s; load average now {os.getloadavg()[0]:.1f} on "
              f"{os.cpu_count()} CPUs (other work on this machine skews every figure)")
        d, s, a = (results[k] for k in ("direct", "sync", "async"))
        d_rps, s_rps, a_rps = (_setup.median(r["rps"]) for r in (d, s, a))
        runs = lambda r: "/".join(f"{x:.0f}" for x in r["rps"])  # noqa: E731
        print(f"direct through kubesim's gateway, warm echo, {CONNECTIONS} connections, 1 KiB JSON POST: "
              f"{d_rps:.0f} req/s (runs {runs(d)}), latency p50 {_setup.pct(d['lat'], 50):.1f} ms, "
              f"p99 {_setup.pct(d['lat'], 99):.1f} ms (baseline for the figures below)")
        for name, r in (("sync relay", s), ("async acknowledge", a)):
            if r["unexpected"]:
                print(f"  WARNING: {name} answered unexpected statuses {r['unexpected']}")
        if d["unexpected"]:
            print(f"  WARNING: direct answered unexpected statuses {d['unexpected']}")
        print(f"sync relay with delivery recording ({db_label.split()[0]}): {s_rps:.0f} req/s (runs {runs(s)}), "
              f"throughput ratio {s_rps / d_rps:.2f}x direct (goal: >= 0.3x / baseline: direct {d_rps:.0f} req/s)")
        for p in (50, 99):
            sp, dp = _setup.pct(s["lat"], p), _setup.pct(d["lat"], p)
            goal = "goal: <= 15 ms added" if p == 99 else "goal: none set"
            print(f"sync relay added latency p{p} at {CONNECTIONS} connections: {sp - dp:+.1f} ms "
                  f"({sp:.1f} ms vs {dp:.1f} ms direct) ({goal} / baseline: direct p{p} {dp:.1f} ms)")
        sp, dp = _setup.pct(s["single"], 50), _setup.pct(d["single"], 50)
        sp99, dp99 = _setup.pct(s["single"], 99), _setup.pct(d["single"], 99)
        print(f"sync relay added latency, 1 connection (no queueing): p50 {sp - dp:+.1f} ms, p99 {sp99 - dp99:+.1f} ms "
              f"({sp:.1f}/{sp99:.1f} ms vs {dp:.1f}/{dp99:.1f} ms direct) (goal: p99 <= 15 ms added / "
              f"baseline: direct p50 {dp:.1f} ms)")
        print(f"async acknowledge (stored, 202): {a_rps:.0f} req/s (runs {runs(a)}), throughput ratio "
              f"{a_rps / d_rps:.2f}x direct, latency p50 {_setup.pct(a['lat'], 50):.1f} ms, "
              f"p99 {_setup.pct(a['lat'], 99):.1f} ms (goal: >= 0.3x / baseline: direct {d_rps:.0f} req/s)")

        # Every answered request was recorded (the writer commits in groups, shortly after answering).
        time.sleep(1.0)
        recorded = {k: Delivery.objects.filter(trigger=t).count() for k, t in (("sync", sync_t), ("async", async_t))}
        print(f"deliveries recorded (warm-ups included): sync {recorded['sync']} of {s['sent']} answered, "
              f"async {recorded['async']} of {a['sent']} answered (goal: all)")

        wait_scaled_to_zero(cluster, cold_t)
        connections.close_all()
        burst = asyncio.run(cold_burst(relay, cold_t, sim))
        cold_rows = Delivery.objects.filter(trigger=cold_t)
        flagged = cold_rows.filter(cold_start=True).count()
        limit = ACTIVATION_DELAY + 1.0
        print(f"cold-start burst, {BURST} concurrent requests to a trigger at zero: {burst['ok']}/{BURST} succeeded"
              + (f" (failures: {burst['failures']})" if burst["failures"] else "")
              + f", activations {burst['activations']}, pods created {burst['pods']}, slowest "
              f"{burst['slowest']:.2f} s, p50 {burst['p50']:.2f} s; {cold_rows.count()} recorded, {flagged} flagged "
              f"cold (goal: {BURST}/{BURST}, exactly 1 activation, slowest <= {limit:.2f} s = kubesim activation "
              f"delay {ACTIVATION_DELAY:.2f} s + 1 s)")
        verdict = burst["ok"] == BURST and burst["activations"] == 1 and burst["slowest"] <= limit
        print(f"cold-start burst goal: {'met' if verdict else 'NOT met'}")
    print(f"bench_ingress total: {time.perf_counter() - started:.0f} s (goal: < 180 s)")


if __name__ == "__main__":
    main()
