"""Live status benchmark: `python tests/bench/bench_live.py` (run by `make bench`).

In one run, with kubesim (`python -m kubesim`), the watcher (`python manage.py watch_cluster`) and relayweb
(`python -m uvicorn relayweb.asgi:application`, serving the websockets over the Redis channel layer) each in
its own process, and the clients and drivers here:

- watcher memory (RSS) with 2,000 triggers: 2,000 triggers over 10 tenants, their ksvcs created in kubesim
  and every pod ready, their observed state written as a previous watcher run would have left it (the
  product's own functions, in bulk); the watcher then starts and relists everything: its RSS once it has
  relisted (CPU quiet for 2 s and, on PostgreSQL, at least one transaction per trigger made, the ksvc's
  observation: a watcher waiting for a slow list is quiet too), the relist's time, CPU, queries and database
  writes (which should be 0);
- 200, then 1,000 websocket clients on one tenant (`ws/tenants/<slug>/`, signed in with session cookies), held
  by CLIENT_PROCS processes (tests/bench/_ws_clients.py, aiohttp); a pod of one of the tenant's triggers is
  killed in kubesim (`POST /kubesim/pods/<ns>/<pod>/kill`), and the watcher turns that into its trigger.pods /
  trigger.status broadcast as in production -> time until each client has the `trigger.pods` frame that no
  longer shows that pod as ready: p50/p95/max over all clients and rounds (goal: p95 <= 250 ms); per round
  when kubesim sent the pod's event (this script's own watch), the first client and the last client had it;
  the CPU the client processes, uvicorn and the watcher used meanwhile (the clients must not be the
  bottleneck);
- watcher CPU time (its process, psutil, idle rate subtracted) per 1,000 cluster events, for ~1,000 no-op
  events (annotations merge-patched onto ksvcs) and ~1,000 events of pod churn (pods killed and replaced);
  the events are counted by this script's own watches on the same streams and selectors the watcher uses;
- database writes per 1,000 events, counted in the database (SQL triggers on this run's throwaway database
  count UPDATEs of trigger rows, INSERTs of scale events and UPDATEs of deployments, whoever makes them):
  no-op events should cost ~0 writes, pod changes the writes that show them;
- watcher memory (RSS) and relist time with 10,000 triggers (goals: <= 500 MiB, <= 30 s): 8,000 more triggers,
  copies of the bulk ones, whose objects are kubesim's own with the name and trigger label replaced, served
  with the originals by a static list server (tests/bench/_listserver.py: creating 10,000 ksvcs in kubesim takes
  minutes on 2 cores); a new watcher (leader election off: the list server has no Lease API) relists them all;
  it is given LARGE_RELIST_TIMEOUT, and an unfinished relist is reported as such.

Goals are printed with whether each is met; the exit status is non-zero only when something broke.

Database: a fresh PostgreSQL database when DATABASE_URL names a PostgreSQL server, else a temporary SQLite
file; Redis: REDIS_URL, else the embedded one tests.settings starts. Loopback only; everything is stopped and
dropped at the end, also on error.
"""

from __future__ import annotations

import asyncio
import json
import os
import resource
import shutil
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path

import aiohttp
import psutil

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import _setup  # noqa: E402

CLIENTS = 200  # the baseline, then CLIENTS_LARGE on the same tenant
CLIENTS_LARGE = 1000
CLIENT_PROCS = 4  # websocket client processes (tests/bench/_ws_clients.py)
USERS = 10
LIVE_TRIGGERS = 10
ROUNDS = 5
NOOP_EVENTS = 1000
CHURN_EVENTS = 1000
TOTAL_TRIGGERS = 2000
BULK_TENANTS = 9
RELIST_TIMEOUT = 80.0
LARGE_TRIGGERS = 10_000
LARGE_RELIST_TIMEOUT = 150.0
SIM = dict(image_pull_delay=0.05, start_delay=0.1, stable_window=600, scale_to_zero_grace=30, progress_deadline=10,
           route_ready_delay=0.0)
MANAGED = "app.kubernetes.io/managed-by=relayweb"
KSVCS = "/apis/serving.knative.dev/v1"
STREAMS = {
    "ksvcs": f"{KSVCS}/services?labelSelector={MANAGED}",
    "revisions": f"{KSVCS}/revisions?labelSelector={MANAGED}",
    "pods": f"/api/v1/pods?labelSelector={MANAGED}",
    "events": "/api/v1/events",
}


# ---------------------------------------------------------------- database write counters


def install_write_counters() -> None:
    """SQL triggers on this run's own database counting the watcher's writes (any process's, in fact)."""
    from django.db import connection

    from triggers.models import Deployment, ScaleEvent, Trigger

    counted = [("trigger_updates", "UPDATE", Trigger._meta.db_table),
               ("scale_event_inserts", "INSERT", ScaleEvent._meta.db_table),
               ("deployment_updates", "UPDATE", Deployment._meta.db_table)]
    with connection.cursor() as cur:
        cur.execute("CREATE TABLE bench_writes (name VARCHAR(40) PRIMARY KEY, n BIGINT NOT NULL)")
        for name, _, _ in counted:
            cur.execute("INSERT INTO bench_writes (name, n) VALUES (%s, 0)", [name])
        if connection.vendor == "postgresql":
            cur.execute("CREATE FUNCTION bench_count() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
                        "UPDATE bench_writes SET n = n + 1 WHERE name = TG_ARGV[0]; RETURN NULL; END $$")
            for name, op, table in counted:
                cur.execute(f'CREATE TRIGGER bench_{name} AFTER {op} ON "{table}" FOR EACH ROW '
                            f"EXECUTE FUNCTION bench_count('{name}')")
        else:
            for name, op, table in counted:
                cur.execute(f'CREATE TRIGGER bench_{name} AFTER {op} ON "{table}" FOR EACH ROW BEGIN '
                            f"UPDATE bench_writes SET n = n + 1 WHERE name = '{name}'; END")


def writes() -> dict[str, int]:
    from django.db import connection

    with connection.cursor() as cur:
        cur.execute("SELECT name, n FROM bench_writes")
        return dict(cur.fetchall())


def delta(after: dict, before: dict) -> dict:
    return {k: after[k] - before.get(k, 0) for k in after}


# ---------------------------------------------------------------- kubesim API (async, this process)


class Api:
    def __init__(self, sim: _setup.KubeSim):
        self.sim = sim
        self.session = aiohttp.ClientSession(sim.api_url, headers={"Authorization": f"Bearer {sim.token}"},
                                             connector=aiohttp.TCPConnector(limit=16))

    async def close(self) -> None:
        await self.session.close()

    async def get(self, path: str) -> dict:
        async with self.session.get(path) as r:
            r.raise_for_status()
            return await r.json()

    async def send(self, method: str, path: str, body: dict, content_type: str = "application/json") -> dict:
        async with self.session.request(method, path, data=json.dumps(body),
                                        headers={"Content-Type": content_type}) as r:
            if r.status >= 400:
                raise RuntimeError(f"{method} {path}: {r.status} {await r.text()}")
            return await r.json()

    async def kill(self, namespace: str, pod: str) -> None:
        await self.send("POST", f"/kubesim/pods/{namespace}/{pod}/kill", {})

    async def ready_pods(self, namespace: str) -> dict[str, list[str]]:
        """trigger id → names of its ready pods, in one namespace."""
        out: dict[str, list[str]] = {}
        for pod in (await self.get(f"/api/v1/namespaces/{namespace}/pods?labelSelector={MANAGED}"))["items"]:
            conds = (pod.get("status") or {}).get("conditions") or []
            ready = any(c["type"] == "Ready" and c["status"] == "True" for c in conds)
            if ready and not pod["metadata"].get("deletionTimestamp"):
                out.setdefault(pod["metadata"]["labels"]["relayweb.io/trigger"], []).append(pod["metadata"]["name"])
        return out


class EventCounter:
    """Watches the watcher's four streams (same selectors) and counts what kubesim sends on them."""

    def __init__(self, api: Api):
        self.api, self.counts, self.tasks = api, dict.fromkeys(STREAMS, 0), []

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    async def start(self) -> None:
        started = [asyncio.Event() for _ in STREAMS]
        self.tasks = [asyncio.create_task(self._watch(name, path, ev))
                      for (name, path), ev in zip(STREAMS.items(), started, strict=True)]
        await asyncio.wait_for(asyncio.gather(*(e.wait() for e in started)), 30)

    async def _watch(self, name: str, path: str, started: asyncio.Event) -> None:
        rv = (await self.api.get(path))["metadata"]["resourceVersion"]
        sep = "&" if "?" in path else "?"
        async with self.api.session.get(f"{path}{sep}watch=true&resourceVersion={rv}&timeoutSeconds=600",
                                        timeout=aiohttp.ClientTimeout(total=None, sock_read=None)) as r:
            r.raise_for_status()
            started.set()
            async for line in r.content:
                if line.strip() and json.loads(line).get("type") != "BOOKMARK":
                    self.counts[name] += 1

    async def stop(self) -> None:
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)


class PodWatch:
    """The bench's own watch on the live tenant's pods (the stream the watcher reads): when kubesim sent the event
    that shows a killed pod not ready. Splits a delivery time into kubesim's part and the rest (watcher, Redis,
    uvicorn, clients)."""

    def __init__(self, api: Api, namespace: str):
        self.api, self.namespace = api, namespace
        self.seen: dict[str, float] = {}
        self.task: asyncio.Task | None = None

    async def start(self) -> None:
        path = f"/api/v1/namespaces/{self.namespace}/pods?labelSelector={MANAGED}"
        rv = (await self.api.get(path))["metadata"]["resourceVersion"]
        started = asyncio.Event()
        self.task = asyncio.create_task(self._watch(f"{path}&watch=true&resourceVersion={rv}&timeoutSeconds=900",
                                                    started))
        await asyncio.wait_for(started.wait(), 30)

    async def _watch(self, path: str, started: asyncio.Event) -> None:
        async with self.api.session.get(path, timeout=aiohttp.ClientTimeout(total=None, sock_read=None)) as r:
            r.raise_for_status()
            started.set()
            async for line in r.content:
                now = time.perf_counter()
                if not line.strip():
                    continue
                obj = json.loads(line).get("object") or {}
                name = (obj.get("metadata") or {}).get("name")
                if name and name not in self.seen and (obj["metadata"].get("deletionTimestamp") or not is_ready(obj)):
                    self.seen[name] = now

    async def stop(self) -> None:
        if self.task is not None:
            self.task.cancel()
            await asyncio.gather(self.task, return_exceptions=True)


# ---------------------------------------------------------------- watcher process measurements


class Meter:
    def __init__(self, pid: int):
        self.proc = psutil.Process(pid)

    def cpu(self) -> float:
        t = self.proc.cpu_times()
        return t.user + t.system

    def rss_mib(self) -> float:
        return self.proc.memory_info().rss / 2**20

    async def idle_rate(self, seconds: float = 1.0) -> float:
        c0, t0 = self.cpu(), time.monotonic()
        await asyncio.sleep(seconds)
        return (self.cpu() - c0) / (time.monotonic() - t0)

    async def quiet(self, timeout: float, window: float = 0.5, threshold: float = 0.01) -> bool:
        """Wait until the process used less than `threshold` s of CPU over `window` (its queue is drained)."""
        deadline = time.monotonic() + timeout
        before = self.cpu()
        while time.monotonic() < deadline:
            await asyncio.sleep(window)
            now = self.cpu()
            if now - before < threshold:
                return True
            before = now
        return False


async def phase(name: str, meter: Meter, counter: EventCounter, drive, *, settle_timeout: float = 60.0) -> dict:
    """Run `drive()`, wait for the watcher to go quiet, return events, CPU and writes of the phase."""
    idle = await meter.idle_rate(1.0)
    events0, cpu0, writes0, t0 = counter.total, meter.cpu(), await asyncio.to_thread(writes), time.monotonic()
    counts0 = dict(counter.counts)
    await drive()
    drove = time.monotonic() - t0
    quiet = await meter.quiet(settle_timeout)
    elapsed = time.monotonic() - t0 - 0.5  # the last quiet window is idle
    cpu = meter.cpu() - cpu0 - idle * elapsed
    events = counter.total - events0
    by_stream = {k: counter.counts[k] - counts0[k] for k in counter.counts}
    w = delta(await asyncio.to_thread(writes), writes0)
    return {"name": name, "events": events, "by_stream": by_stream, "cpu": cpu, "writes": w, "drive": drove,
            "elapsed": elapsed, "quiet": quiet, "idle": idle}


def report_phase(p: dict) -> None:
    per_k = 1000 / p["events"] if p["events"] else float("nan")
    streams = ", ".join(f"{k} {v}" for k, v in p["by_stream"].items() if v)
    print(f"watcher CPU per 1,000 cluster events ({p['name']}): {p['cpu'] * per_k * 1000:.0f} ms "
          f"({p['events']} events: {streams}; {p['cpu'] * 1000:.0f} ms CPU in {p['elapsed']:.1f} s, idle "
          f"{p['idle'] * 1000:.1f} ms/s subtracted{'' if p['quiet'] else '; did NOT go quiet'}) "
          f"(goal: none set / baseline: first measurement)")
    w = p["writes"]
    print(f"database writes per 1,000 events ({p['name']}): {w['trigger_updates'] * per_k:.1f} trigger-row updates "
          f"+ {w['scale_event_inserts'] * per_k:.1f} scale events + {w['deployment_updates'] * per_k:.1f} "
          f"deployment updates ({p['events']} events -> {sum(w.values())} writes: {w}) "
          f"(goal: only real changes{', ~0' if 'no-op' in p['name'] else ''} / baseline: first measurement)")


# ---------------------------------------------------------------- websocket clients


class ClientPool:
    """The websocket clients, spread over CLIENT_PROCS processes (tests/bench/_ws_clients.py), so that reading
    1,000 frames is neither one event loop's turn-taking nor this process's work; their CPU is measured here."""

    def __init__(self, base: str, slug: str, tmp: Path):
        self.url = base.replace("http://", "ws://") + f"/ws/tenants/{slug}/"
        self.origin, self.tmp = base, tmp
        self.procs: list[asyncio.subprocess.Process] = []
        self.meters: list[psutil.Process] = []
        self.n = self.frames = 0

    async def start(self, count: int) -> None:
        for i in range(count):
            log = open(self.tmp / f"ws-clients-{i}.log", "w")  # noqa: SIM115 - the process keeps it
            proc = await asyncio.create_subprocess_exec(
                sys.executable, str(HERE / "_ws_clients.py"), self.url, self.origin, stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE, stderr=log, limit=2**24,
                preexec_fn=_setup._die_with_parent if sys.platform == "linux" else None)  # noqa: PLW1509
            log.close()
            self.procs.append(proc)
            self.meters.append(psutil.Process(proc.pid))

    def _write(self, proc: asyncio.subprocess.Process, cmd: dict) -> None:
        proc.stdin.write((json.dumps(cmd) + "\n").encode())

    async def _read(self, i: int) -> dict:
        line = await self.procs[i].stdout.readline()
        if not line:
            log = (self.tmp / f"ws-clients-{i}.log").read_text(errors="replace")[-2000:]
            raise RuntimeError(f"websocket client process {i} exited:\n{log}")
        return json.loads(line)

    def cpu(self) -> float:
        return sum(t.user + t.system for t in (m.cpu_times() for m in self.meters))

    async def connect(self, cookies: list[str], parallel: int = 20) -> float:
        """Open one socket per cookie (round robin over the processes, `parallel` handshakes in flight in all)."""
        t0 = time.perf_counter()
        k = len(self.procs)
        for i, proc in enumerate(self.procs):
            self._write(proc, {"op": "connect", "cookies": cookies[i::k], "parallel": max(1, parallel // k)})
        answers = await asyncio.gather(*(self._read(i) for i in range(k)))
        self.n = sum(a["n"] for a in answers)
        return time.perf_counter() - t0

    async def round(self, trigger: int, pod: str, kill, timeout: float = 10.0) -> dict:
        """Arm every process, call `kill()` (t0 just before), return when every socket has the frame (or timeout):
        seconds per socket, and the CPU the client processes used meanwhile."""
        for proc in self.procs:
            self._write(proc, {"op": "expect", "trigger": trigger, "pod": pod, "timeout": timeout})
        await asyncio.gather(*(self._read(i) for i in range(len(self.procs))))  # armed
        cpu0 = self.cpu()
        t0 = time.perf_counter()
        for proc in self.procs:
            self._write(proc, {"op": "go", "t0": t0})
        await kill()
        answers = await asyncio.gather(*(self._read(i) for i in range(len(self.procs))))
        wall, cpu = time.perf_counter() - t0, self.cpu() - cpu0
        frames, self.frames = sum(a["frames"] for a in answers) - self.frames, sum(a["frames"] for a in answers)
        return {"got": [s for a in answers for s in a["got"]], "frames": frames, "t0": t0,
                "closed": [c for a in answers for c in a["closed"]], "wall": wall, "client_cpu": cpu}

    async def close(self) -> None:
        for i, proc in enumerate(self.procs):
            if proc.returncode is None:
                try:
                    self._write(proc, {"op": "close"})
                    await asyncio.wait_for(self._read(i), 15)
                except (RuntimeError, TimeoutError, ConnectionError):
                    pass
        for proc in self.procs:
            if proc.returncode is None:
                proc.kill()
            await proc.wait()


# ---------------------------------------------------------------- the run


async def create_cluster_objects(sim: _setup.KubeSim, manifests: list[dict], pods: int, timeout: float) -> float:
    """Create the ksvcs in kubesim (16 in flight) and wait until `pods` managed pods and every ksvc are ready."""
    api = Api(sim)
    t0 = time.monotonic()
    try:
        gate = asyncio.Semaphore(16)

        async def create(manifest: dict) -> None:
            async with gate:
                await api.send("POST", f"{KSVCS}/namespaces/{manifest['metadata']['namespace']}/services", manifest)

        await asyncio.gather(*(create(m) for m in manifests))
        while True:  # every pod ready and every ksvc Ready (its status settles a little after the pod)
            items = (await api.get(f"/api/v1/pods?labelSelector={MANAGED}"))["items"]
            ksvcs = (await api.get(f"{KSVCS}/services?labelSelector={MANAGED}"))["items"]
            if sum(1 for p in items if is_ready(p)) >= pods and sum(1 for k in ksvcs if is_ready(k)) >= len(manifests):
                await asyncio.sleep(1.0)  # revisions' replica counts are written on the next reconcile
                return time.monotonic() - t0
            if time.monotonic() - t0 > timeout:
                raise RuntimeError(f"kubesim: fewer than {pods} ready pods / ksvcs after {timeout:.0f} s")
            sim.proc.check()
            await asyncio.sleep(0.5)
    finally:
        await api.close()


def is_ready(obj: dict) -> bool:
    conds = (obj.get("status") or {}).get("conditions") or []
    return any(c["type"] == "Ready" and c["status"] == "True" for c in conds)


def cluster_lists(cluster) -> dict[str, list[dict]]:
    """The watcher's four lists (ksvcs, revisions, pods, pods' events), as it reads them."""
    from triggers.cluster import kube

    custom, core = cluster.custom, cluster.core
    return {
        "ksvcs": custom.list_cluster_custom_object(**kube.KSVC, label_selector=MANAGED)["items"],
        "revisions": custom.list_cluster_custom_object("serving.knative.dev", "v1", "revisions",
                                                       label_selector=MANAGED)["items"],
        "pods": json.loads(core.list_pod_for_all_namespaces(label_selector=MANAGED, _preload_content=False).data)[
            "items"],
        "events": json.loads(core.list_event_for_all_namespaces(field_selector="involvedObject.kind=Pod",
                                                                _preload_content=False).data)["items"],
    }


def prefill_observed_state(lists: dict[str, list[dict]], pks: set[int] | None = None) -> list[str]:
    """Write what a previous watcher run would have observed (the product's own functions, bulk): the watcher
    started next finds the database in sync with the cluster, as after a restart, and relists. Every field
    observed_values() returns is written (a field left out, as traffic_status was, makes the relist rewrite and
    broadcast every trigger)."""
    from django.db import transaction

    from triggers.cluster import kube
    from triggers.cluster.status import condition, observed_values
    from triggers.cluster.watcher import pod_summary
    from triggers.models import Trigger

    def by_trigger(items: list[dict]) -> dict[int, list[dict]]:
        out: dict[int, list[dict]] = {}
        for item in items:
            out.setdefault(int(item["metadata"]["labels"][kube.TRIGGER_LABEL]), []).append(item)
        return out

    ksvcs, pods = by_trigger(lists["ksvcs"]), by_trigger(lists["pods"])
    revisions = {(r["metadata"]["namespace"], r["metadata"]["name"]): r for r in lists["revisions"]}
    rows = list(Trigger.objects.select_related("tenant").filter(**({"pk__in": pks} if pks is not None else {})))
    fields = [*observed_values(None), "observed_at", "pods", "ready_pods", "desired_replicas", "actual_replicas",
              "active_status", "active_reason"]
    for t in rows:
        for name, value in observed_values(ksvcs[t.pk][0]).items():
            setattr(t, name, value)
        t.observed_at = timezone_now()
        t.pods = sorted((pod_summary(p) for p in pods.get(t.pk, [])), key=lambda p: p["name"])
        t.ready_pods = sum(1 for p in t.pods if p["ready"])
        revision = revisions.get((t.namespace, t.latest_ready_revision or t.latest_created_revision))
        if revision is not None:
            status, active = revision.get("status") or {}, condition(revision, "Active")
            t.desired_replicas, t.actual_replicas = status.get("desiredReplicas"), status.get("actualReplicas")
            t.active_status, t.active_reason = active.get("status", ""), active.get("reason", "")
    with transaction.atomic():  # one UPDATE per row: much faster than bulk_update's CASE WHEN on SQLite
        for t in rows:
            Trigger.objects.filter(pk=t.pk).update(**{name: getattr(t, name) for name in fields})
    return fields


def observed_snapshot(fields: list[str]) -> dict[int, tuple]:
    from triggers.models import Trigger

    fields = [f for f in fields if f != "observed_at"]
    return {row[0]: dict(zip(fields, row[1:], strict=True))
            for row in Trigger.objects.values_list("pk", *fields)}


def timezone_now():
    from django.utils import timezone

    return timezone.now()


def verdict(ok: bool) -> str:
    return "met" if ok else "NOT met"


async def delivery_rounds(pool: ClientPool, api: Api, ctx: dict, offset: int) -> dict:
    """ROUNDS times: a pod of a live trigger killed in kubesim -> until every client has the trigger.pods frame
    that no longer shows it ready. The watcher produces that frame as in production (its watch, its write, its
    broadcast through Redis to uvicorn's consumers)."""
    tenant, live, watcher = ctx["tenant"], ctx["live"], ctx["watcher"]
    server, wmeter = Meter(ctx["uvicorn"].pid), Meter(watcher.pid)
    samples, rounds = [], []
    pod_watch = PodWatch(api, tenant.namespace)
    await pod_watch.start()
    for r in range(ROUNDS):
        trigger = live[(offset + r) % len(live)]
        pods = (await api.ready_pods(tenant.namespace)).get(str(trigger.pk), [])
        assert pods, f"{trigger.name} has no ready pod"
        await asyncio.sleep(0.3)  # the previous round's frames are all read
        s0, w0 = server.cpu(), wmeter.cpu()
        res = await pool.round(trigger.pk, pods[0], lambda ns=tenant.namespace, pod=pods[0]: api.kill(ns, pod))
        res["server_cpu"], res["watcher_cpu"] = server.cpu() - s0, wmeter.cpu() - w0
        got = sorted(res["got"])
        samples += [g * 1000 for g in got]
        res["first"] = got[0] * 1000 if got else float("nan")
        seen = pod_watch.seen.get(pods[0])
        res["kubesim"] = (seen - res["t0"]) * 1000 if seen else float("nan")
        res["last"] = got[-1] * 1000 if got else float("nan")
        rounds.append(res)
        while not (await api.ready_pods(tenant.namespace)).get(str(trigger.pk)):  # replacement ready
            watcher.check()
            await asyncio.sleep(0.05)
    await pod_watch.stop()
    return {"n": pool.n, "samples": samples, "rounds": rounds, "p95": _setup.pct(samples, 95)}


def report_delivery(d: dict, connect: float, procs: int, ctx: dict, baseline: dict | None) -> None:
    n, samples, rounds = d["n"], d["samples"], d["rounds"]
    closed = sorted({c for r in rounds for c in r["closed"] if c is not None})
    print(f"pod killed -> trigger.pods frame at each of {n} clients, {ROUNDS} rounds: p50 "
          f"{_setup.pct(samples, 50):.0f} ms, p95 {d['p95']:.0f} ms, max {max(samples, default=float('nan')):.0f} ms "
          f"({len(samples)}/{n * ROUNDS} frames received within 10 s"
          + (f"; sockets closed by the server, codes {closed}" if closed else "") + ") (goal: p95 <= 250 ms, "
          + verdict(d["p95"] <= 250) + (f" / baseline: p95 {baseline['p95']:.0f} ms with {baseline['n']} clients, "
                                        "this run" if baseline else "") + ")")
    print(f"  {n} sockets (in {procs} client processes, 20 handshakes in flight) connected and had their snapshot in "
          f"{connect:.1f} s")
    print("  per round, kubesim's pod event (at the bench's own watch) / first client / every client: " + ", ".join(
        f"{r['kubesim']:.0f}/{r['first']:.0f}/{r['last']:.0f} ms" + ("" if len(r["got"]) == n else
                                                                    f" ({len(r['got'])}/{n})") for r in rounds)
        + f"; median fan-out (every client - first) {_setup.median([r['last'] - r['first'] for r in rounds]):.0f} ms, "
        f"kubesim event -> first client {_setup.median([r['first'] - r['kubesim'] for r in rounds]):.0f} ms")
    wall = sum(r["last"] for r in rounds if r["got"]) / 1000
    client, server, watcher = (sum(r[k] for r in rounds) for k in ("client_cpu", "server_cpu", "watcher_cpu"))
    frames = sum(r["frames"] for r in rounds)
    busy = sum(r["wall"] for r in rounds)
    print(f"  CPU over the {ROUNDS} rounds ({busy:.1f} s from each kill to the last client's frame and the clients' "
          f"answer; {wall:.2f} s to the last frame): client processes {client * 1000:.0f} ms ({client / busy:.0%} of "
          f"one core; {frames:,} frames read, {client / max(frames, 1) * 1e6:.0f} us each), uvicorn "
          f"{server * 1000:.0f} ms ({server / busy:.0%}), watcher {watcher * 1000:.0f} ms; load average "
          f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")


async def run_live(ctx: dict) -> dict:
    api, tenant, live = Api(ctx["sim"]), ctx["tenant"], ctx["live"]
    meter = Meter(ctx["watcher"].pid)
    pool = ClientPool(ctx["base"], tenant.slug, ctx["tmp"])
    results: dict = {}
    try:
        # ---- websocket clients on one tenant, a pod killed → the frame at every client: 200 (the baseline),
        # then 1,000 (800 more sockets on the same processes)
        await pool.start(CLIENT_PROCS)
        took = await pool.connect(ctx["cookies"][:CLIENTS])
        small = await delivery_rounds(pool, api, ctx, 0)
        report_delivery(small, took, CLIENT_PROCS, ctx, None)
        took += await pool.connect(ctx["cookies"][CLIENTS:CLIENTS_LARGE])
        large = await delivery_rounds(pool, api, ctx, ROUNDS)
        report_delivery(large, took, CLIENT_PROCS, ctx, small)
        results["clients"] = {"small": small, "large": large}
        if any(r["closed"] for r in small["rounds"] + large["rounds"]):
            print("  uvicorn log (last lines):\n" + ctx["uvicorn"].tail(15))
        await pool.close()

        # ---- CPU and writes per 1,000 events
        counter = EventCounter(api)
        await counter.start()
        names = [(t.namespace, t.name) for t in live]

        async def annotate() -> None:
            gate = asyncio.Semaphore(8)

            async def one(i: int) -> None:
                ns, name = names[i % len(names)]
                async with gate:
                    await api.send("PATCH", f"{KSVCS}/namespaces/{ns}/services/{name}",
                                   {"metadata": {"annotations": {"bench.relayweb.io/tick": str(i)}}},
                                   "application/merge-patch+json")

            await asyncio.gather(*(one(i) for i in range(NOOP_EVENTS)))

        report_phase(await phase("no-op: ksvc annotations merge-patched", meter, counter, annotate))

        async def churn() -> None:
            start = counter.total
            for _ in range(40):  # bounded; ~15 events per killed pod
                if counter.total - start >= CHURN_EVENTS:
                    return
                ready = await api.ready_pods(tenant.namespace)
                killed = {tid: pods[0] for tid, pods in ready.items() if pods}
                await asyncio.gather(*(api.kill(tenant.namespace, pod) for pod in killed.values()))
                deadline = time.monotonic() + 15
                while time.monotonic() < deadline:
                    now = await api.ready_pods(tenant.namespace)
                    if all(now.get(tid) and pod not in now[tid] for tid, pod in killed.items()):
                        break
                    await asyncio.sleep(0.05)

        report_phase(await phase("pod churn: pods killed and replaced", meter, counter, churn))
        await counter.stop()
        print(f"watcher memory (RSS) with {TOTAL_TRIGGERS} triggers, after the phases above: {meter.rss_mib():.0f} MiB "
              f"(goal: none set / baseline: {ctx['rss']:.0f} MiB right after its relist)")
    finally:
        await pool.close()
        await api.close()
    return results


# ---------------------------------------------------------------- relists


def transactions() -> int | None:
    """PostgreSQL's count of committed and rolled back transactions in this database (each query the watcher
    makes outside a transaction is one); None on SQLite."""
    from django.db import connection

    if connection.vendor != "postgresql":
        return None
    with connection.cursor() as cur:
        cur.execute("SELECT xact_commit + xact_rollback FROM pg_stat_database WHERE datname = current_database()")
        return cur.fetchone()[0]


async def watch_relist(meter: Meter, timeout: float, triggers: int) -> dict:
    """Wait until a just-started watcher has relisted: its CPU quiet for 2 s, and (PostgreSQL) at least one
    transaction per trigger made (its ksvc's observation; the relist loads the triggers themselves in bulk): a
    watcher waiting for a slow list is quiet too. Samples its RSS meanwhile."""
    peak = 0.0

    async def sample() -> None:
        nonlocal peak
        while True:
            peak = max(peak, meter.rss_mib())
            await asyncio.sleep(0.2)

    sampler = asyncio.create_task(sample())
    x0 = await asyncio.to_thread(transactions)
    deadline = time.monotonic() + timeout
    await asyncio.sleep(2.0)
    quiet = False
    while time.monotonic() < deadline:
        quiet = await meter.quiet(deadline - time.monotonic(), window=2.0, threshold=0.02)
        if not quiet or x0 is None or await asyncio.to_thread(transactions) - x0 >= triggers:
            break
        quiet = False
    x1 = await asyncio.to_thread(transactions)
    sampler.cancel()
    return {"quiet": quiet, "peak": max(peak, meter.rss_mib()), "queries": None if x0 is None else x1 - x0}


def relist(stack: ExitStack, tmp: Path, name: str, env: dict, timeout: float, fields: list[str], triggers: int,
           sim: _setup.KubeSim | None = None) -> dict:
    """Start the watcher on a database in sync with the cluster (as after a restart): it lists everything. Its
    RSS once quiet, the relist's time and CPU, and the database writes it made (should be 0)."""
    before = observed_snapshot(fields)

    async def run() -> tuple:
        counter = None
        if sim is not None:  # cluster events during the relist (kubesim still settling) are work too: count them
            api = Api(sim)
            counter = EventCounter(api)
            await counter.start()
        try:
            writes0, t0 = await asyncio.to_thread(writes), time.monotonic()
            watcher = _setup.start(stack, name, [sys.executable, "manage.py", "watch_cluster"], env, tmp)
            seen = await watch_relist(Meter(watcher.pid), timeout, triggers)
            return watcher, writes0, t0, seen, dict(counter.counts) if counter else None
        finally:
            if counter is not None:
                await counter.stop()
                await api.close()

    watcher, writes0, t0, seen, events = asyncio.run(run())
    meter = Meter(watcher.pid)
    watcher.check()
    took = time.monotonic() - t0 - 1.0  # the last quiet window was idle
    w = delta(writes(), writes0)
    rewritten: dict[str, int] = {}
    for pk, values in observed_snapshot(fields).items():
        for field, value in values.items():
            if before[pk][field] != value:
                rewritten[field] = rewritten.get(field, 0) + 1
    return {"watcher": watcher, "meter": meter, "rss": meter.rss_mib(), "peak": seen["peak"], "quiet": seen["quiet"],
            "took": took, "cpu": meter.cpu(), "writes": w, "rewritten": rewritten, "events": events,
            "queries": seen["queries"]}


def report_relist(n: int, r: dict, timeout: float, source: str, goals: bool, baseline: dict | None = None) -> None:
    base = f" / baseline: {baseline['rss']:.0f} MiB with {TOTAL_TRIGGERS} triggers, this run" if baseline else ""
    print(f"watcher memory (RSS) with {n:,} triggers, after its startup relist: {r['rss']:.0f} MiB (peak "
          f"{r['peak']:.0f} MiB) (goal: " + (f"<= 500 MiB, {verdict(r['rss'] <= 500)}" if goals else "none set")
          + base + ")")
    done = r["quiet"]
    took = f"{r['took']:.1f} s" if done else f"more than {timeout:.0f} s (did NOT go quiet: still working"
    if not done and baseline and baseline["quiet"]:  # how far it got, if CPU grows with the triggers
        need = baseline["cpu"] / TOTAL_TRIGGERS * n
        took += (f"; ~{min(r['cpu'] / need, 1):.0%} done by CPU, if it needs the {TOTAL_TRIGGERS} relist's "
                 f"{baseline['cpu'] / TOTAL_TRIGGERS * 1000:.1f} ms per trigger: ~{need:.0f} s of CPU in all")
    took += "" if done else ")"
    base = f" / baseline: {baseline['took']:.1f} s with {TOTAL_TRIGGERS} triggers, this run" if baseline else ""
    print(f"  the relist ({n:,} ksvcs, revisions and pods, and their pods' events, {source}) took {took} and "
          f"{r['cpu']:.1f} s of watcher CPU"
          + (f", {r['queries']:,} database queries ({r['queries'] / n:.1f} per trigger)" if r["queries"] else "")
          + " (goal: " + (f"<= 30 s, {verdict(done and r['took'] <= 30)}" if goals
                                                       else "none set") + base + "); "
          f"{sum(r['writes'].values())} database writes {r['writes']} (goal: 0, nothing changed)"
          + (f"; fields that changed, by trigger count: {r['rewritten']}" if r["rewritten"] else "")
          + (f"; cluster events meanwhile (kubesim still settling): {r['events']}" if r["events"] is not None else ""))


def clone_lists(lists: dict[str, list[dict]], pairs: list[tuple]) -> dict[str, list[str]]:
    """kubesim's objects (JSON text) plus, for each (source, copy) trigger pair, the source's ksvc, revisions,
    pods and pods' events with the source's name and trigger label replaced by the copy's (same tenant)."""
    from triggers.cluster import kube

    owned: dict[int, dict[str, list[dict]]] = {}
    pod_owner: dict[tuple[str, str], int] = {}
    for kind in ("ksvcs", "revisions", "pods"):
        for obj in lists[kind]:
            pk = int(obj["metadata"]["labels"][kube.TRIGGER_LABEL])
            owned.setdefault(pk, {}).setdefault(kind, []).append(obj)
            if kind == "pods":
                pod_owner[(obj["metadata"]["namespace"], obj["metadata"]["name"])] = pk
    for event in lists["events"]:
        involved = event.get("involvedObject") or {}
        pk = pod_owner.get((involved.get("namespace", ""), involved.get("name", "")))
        if pk is not None:
            owned[pk].setdefault("events", []).append(event)
    out = {kind: [json.dumps(obj) for obj in items] for kind, items in lists.items()}
    for source, copy in pairs:
        assert len(source.name) == len(copy.name)
        label = (f'"{kube.TRIGGER_LABEL}": "{source.pk}"', f'"{kube.TRIGGER_LABEL}": "{copy.pk}"')
        for kind, items in owned[source.pk].items():
            for obj in items:
                out[kind].append(json.dumps(obj).replace(source.name, copy.name).replace(*label))
    return out


def large_relist(stack: ExitStack, tmp: Path, sim: _setup.KubeSim, cluster, fields: list[str]) -> dict:
    """LARGE_TRIGGERS triggers: the TOTAL_TRIGGERS in kubesim plus copies of their objects, served by a static
    list server (tests/bench/_listserver.py) to a new watcher, which relists them all."""
    from triggers.models import Trigger

    t0 = time.monotonic()
    lists = cluster_lists(cluster)
    sources = list(Trigger.objects.filter(name__startswith="bulk-").select_related("tenant").order_by("pk"))
    more = LARGE_TRIGGERS - TOTAL_TRIGGERS

    def copy(i: int) -> Trigger:
        """A copy of a bulk trigger, its observed state the source's with the name replaced (in sync with the
        copied objects, as prefill_observed_state would write it, without a row UPDATE each)."""
        source, name = sources[i % len(sources)], f"bulk-{len(sources) + i:04d}"
        values = json.loads(json.dumps({f: getattr(source, f) for f in fields if f != "observed_at"})
                          .replace(source.name, name))
        return Trigger(tenant=source.tenant, name=name, image=source.image, spec_version=source.spec_version,
                       observed_at=source.observed_at, **values)

    copies = Trigger.objects.bulk_create((copy(i) for i in range(more)), batch_size=1000)
    texts = clone_lists(lists, [(sources[i % len(sources)], c) for i, c in enumerate(copies)])
    del lists
    directory = tmp / "lists"
    directory.mkdir()
    kinds = {"ksvcs": "ServiceList", "revisions": "RevisionList", "pods": "PodList", "events": "EventList"}
    for kind, items in texts.items():
        with open(directory / f"{kind}.json", "w") as f:
            f.write(f'{{"kind": "{kinds[kind]}", "apiVersion": "v1", "metadata": {{"resourceVersion": "1"}}, '
                    f'"items": [{", ".join(items)}]}}')
    counts = {kind: f"{len(items):,} {kind} ({(directory / f'{kind}.json').stat().st_size / 2**20:.0f} MB)"
              for kind, items in texts.items()}
    del texts
    server = _setup.start(stack, "listserver", [sys.executable, str(HERE / "_listserver.py"), str(directory)],
                          {**os.environ}, tmp)
    line = server.wait_for(lambda: next((x for x in server.text().splitlines() if x.startswith("listserver ready")),
                                        None), 30, "ready line")
    url = line.split("url=", 1)[1].strip()
    kubeconfig = tmp / "kubeconfig-listserver"
    kubeconfig.write_text(Path(sim.kubeconfig).read_text().replace(sim.api_url, url))
    setup = time.monotonic() - t0
    print(f"setup: {more:,} more triggers (copies of the bulk ones: {LARGE_TRIGGERS:,} in all), their objects "
          f"({', '.join(counts.values())} of JSON) served by a static list server, their observed "
          f"state written: {setup:.1f} s")
    # Leader election off: the list server has no Lease API (a watcher that leads does exactly this relist)
    env = _setup.relay_env(sim, RELAY_DIAG_INTERVAL="3600", RELAY_KUBECONFIG=str(kubeconfig),
                           RELAY_LEADER_ELECTION="0")
    result = relist(stack, tmp, "watcher-large", env, LARGE_RELIST_TIMEOUT, fields, LARGE_TRIGGERS)
    result["watcher"].stop()
    server.stop()
    return result


def main() -> None:
    started = time.perf_counter()
    _setup.stop_on_sigterm()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)  # uvicorn (a child) holds one socket per client
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, max(soft, 8192)), hard))
    tmp = Path(tempfile.mkdtemp(prefix="relayweb-bench-live-"))
    with ExitStack() as stack:
        stack.callback(shutil.rmtree, tmp, ignore_errors=True)
        db_label = _setup.setup_django(stack, tmp, RELAY_KUBECONFIG=str(tmp / "kubeconfig"))
        install_write_counters()
        from importlib import import_module

        from django.conf import settings
        from django.contrib.auth import SESSION_KEY, get_user_model
        from django.db import connections

        from tenants.models import Membership, Role
        from triggers.cluster import kube
        from triggers.models import Trigger

        sim = _setup.start_kubesim(stack, tmp, **SIM)
        cluster = kube.cluster()
        tenant = _setup.make_tenant("live", cluster)
        store = import_module(settings.SESSION_ENGINE).SessionStore
        users = []
        for i in range(USERS):
            user = get_user_model().objects.create_user(f"viewer{i}", f"viewer{i}@example.com", "bench-password")
            Membership.objects.create(tenant=tenant, user=user, role=Role.VIEWER)
            users.append(user)
        cookies = []
        for i in range(CLIENTS_LARGE):
            user, session = users[i % USERS], store()
            session[SESSION_KEY] = str(user.pk)
            session["_auth_user_backend"] = "django.contrib.auth.backends.ModelBackend"
            session["_auth_user_hash"] = user.get_session_auth_hash()
            session.save()
            cookies.append(f"{settings.SESSION_COOKIE_NAME}={session.session_key}")
        live = [Trigger.objects.create(tenant=tenant, name=f"live-{i:02d}", image="kubesim/echo", min_scale=1)
                for i in range(LIVE_TRIGGERS)]
        bulk_tenants = [_setup.make_tenant(f"bulk-{i}", cluster) for i in range(BULK_TENANTS)]
        bulk = Trigger.objects.bulk_create(
            Trigger(tenant=bulk_tenants[i % BULK_TENANTS], name=f"bulk-{i:04d}", image="kubesim/echo", spec_version=1)
            for i in range(TOTAL_TRIGGERS - LIVE_TRIGGERS))
        manifests = [kube.render_ksvc(t) for t in live + bulk]
        took = asyncio.run(create_cluster_objects(sim, manifests, TOTAL_TRIGGERS, 180))
        t0 = time.monotonic()
        fields = prefill_observed_state(cluster_lists(cluster))
        print(f"setup: {TOTAL_TRIGGERS} triggers over {BULK_TENANTS + 1} tenants, their ksvcs created in kubesim and "
              f"every pod ready in {took:.1f} s, their observed state written in {time.monotonic() - t0:.1f} s; "
              f"{time.perf_counter() - started:.1f} s so far; database: {db_label}; Redis: {os.environ['REDIS_URL']}; "
              f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
        connections.close_all()
        stages = {"setup": time.perf_counter() - started}

        # The watcher starts on a database in sync with the cluster (as after a restart) and relists everything.
        # The diag poll (every RELAY_DIAG_INTERVAL) is not a cluster event: once at start, then not again.
        small = relist(stack, tmp, "watcher", _setup.relay_env(sim, RELAY_DIAG_INTERVAL="3600"), RELIST_TIMEOUT,
                       fields, TOTAL_TRIGGERS, sim)
        report_relist(TOTAL_TRIGGERS, small, RELIST_TIMEOUT, "from kubesim", goals=False)
        stages[f"{TOTAL_TRIGGERS:,}-trigger relist"] = time.perf_counter() - started - sum(stages.values())
        watcher = small["watcher"]
        uvicorn, base = _setup.start_uvicorn(stack, tmp, _setup.relay_env(sim))
        ctx = {"uvicorn": uvicorn, "sim": sim, "tenant": tenant, "live": live, "cookies": cookies, "base": base,
               "watcher": watcher, "rss": small["rss"], "tmp": tmp}
        try:
            live_results = asyncio.run(run_live(ctx))
        except BaseException:
            print(f"watcher log (last lines):\n{watcher.tail()}", file=sys.stderr)
            raise
        watcher.stop()  # one watcher at a time, as with leader election
        connections.close_all()
        stages["websocket clients and watcher phases"] = time.perf_counter() - started - sum(stages.values())

        large = large_relist(stack, tmp, sim, cluster, fields)
        report_relist(LARGE_TRIGGERS, large, LARGE_RELIST_TIMEOUT, "copies of kubesim's, from a static list server",
                      goals=True, baseline=small)
        connections.close_all()
        stages[f"{LARGE_TRIGGERS:,}-trigger setup and relist"] = time.perf_counter() - started - sum(stages.values())
    total = time.perf_counter() - started
    p95 = live_results["clients"]["large"]["p95"]
    print(f"goals: {CLIENTS_LARGE:,} clients, pod change -> frame p95 {p95:.0f} ms <= 250 ms: {verdict(p95 <= 250)}; "
          f"watcher RSS with {LARGE_TRIGGERS:,} triggers {large['rss']:.0f} MiB <= 500 MiB: "
          f"{verdict(large['rss'] <= 500)}; relist of {LARGE_TRIGGERS:,} "
          + (f"{large['took']:.1f} s" if large["quiet"] else f"> {LARGE_RELIST_TIMEOUT:.0f} s")
          + f" <= 30 s: {verdict(large['quiet'] and large['took'] <= 30)}")
    print(f"bench_live total: {total:.0f} s (goal: <= 300 s on 2 shared cores, {verdict(total <= 300)}): "
          + ", ".join(f"{k} {v:.0f} s" for k, v in stages.items())
          + f"; load average {os.getloadavg()[0]:.1f} / {os.getloadavg()[1]:.1f} (1 / 5 min) on {os.cpu_count()} CPUs")


if __name__ == "__main__":
    main()
