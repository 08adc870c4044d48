"""Live status benchmark: `python tests/bench/bench_live.py` (run by `make bench`).

In one run, with kubesim (`python -m kubesim`), the watcher (`python manage.py watch_cluster`) and relayweb
(`python -m uvicorn relayweb.asgi:application`, serving the websockets over the Redis channel layer) each in
its own process, and the clients and drivers here:

- watcher memory (RSS) with 2,000 triggers: 2,000 triggers over 10 tenants, their ksvcs created in kubesim
  and every pod ready, their observed state written as a previous watcher run would have left it (the
  product's own functions, in bulk); the watcher then starts and relists everything: its RSS once it is
  quiet (and the relist's time, CPU and database writes, which should be 0), and again at the end;
- 200 websocket clients on one tenant (`ws/tenants/<slug>/`, signed in with session cookies); a pod of one of
  the tenant's triggers is killed in kubesim (`POST /kubesim/pods/<ns>/<pod>/kill`) -> time until each client
  has the `trigger.pods` frame that no longer shows that pod as ready: p50/p95/max over all clients and rounds
  (goal: p95 <= 250 ms), and per round the time until every client had it;
- watcher CPU time (its process, psutil, idle rate subtracted) per 1,000 cluster events, for ~1,000 no-op
  events (annotations merge-patched onto ksvcs) and ~1,000 events of pod churn (pods killed and replaced);
  the events are counted by this script's own watches on the same streams and selectors the watcher uses;
- database writes per 1,000 events, counted in the database (SQL triggers on this run's throwaway database
  count UPDATEs of trigger rows, INSERTs of scale events and UPDATEs of deployments, whoever makes them):
  no-op events should cost ~0 writes, pod changes the writes that show them.

Database: a fresh PostgreSQL database when DATABASE_URL names a PostgreSQL server, else a temporary SQLite
file; Redis: REDIS_URL, else the embedded one tests.settings starts. Loopback only; everything is stopped and
dropped at the end, also on error.
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
import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _setup  # noqa: E402

CLIENTS = 200
USERS = 10
LIVE_TRIGGERS = 10
ROUNDS = 5
NOOP_EVENTS = 1000
CHURN_EVENTS = 1000
TOTAL_TRIGGERS = 2000
BULK_TENANTS = 9
RELIST_TIMEOUT = 80.0
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


class Clients:
    def __init__(self, base: str, slug: str, cookies: list[str]):
        self.url = base.replace("http://", "ws://") + f"/ws/tenants/{slug}/"
        self.origin, self.cookies = base, cookies
        self.session: aiohttp.ClientSession | None = None
        self.sockets: list[aiohttp.ClientWebSocketResponse] = []
        self.readers: list[asyncio.Task] = []
        self.expect: dict | None = None  # {"trigger": id, "pod": name, "t0": perf_counter, "got": {i: seconds}}
        self.frames = 0

    async def connect(self, parallel: int = 20) -> float:
        self.session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0))
        gate = asyncio.Semaphore(parallel)

        async def one(cookie: str) -> aiohttp.ClientWebSocketResponse:
            async with gate:
                ws = await self.session.ws_connect(self.url, headers={"Cookie": cookie, "Origin": self.origin},
                                                   timeout=aiohttp.ClientWSTimeout(ws_close=5), autoping=True)
                first = await ws.receive_json(timeout=30)
                assert first["type"] == "snapshot", first
                return ws

        t0 = time.perf_counter()
        self.sockets = list(await asyncio.gather(*(one(c) for c in self.cookies)))
        took = time.perf_counter() - t0
        self.readers = [asyncio.create_task(self._read(i, ws)) for i, ws in enumerate(self.sockets)]
        return took

    async def _read(self, i: int, ws: aiohttp.ClientWebSocketResponse) -> None:
        async for msg in ws:
            if msg.type != aiohttp.WSMsgType.TEXT:
                continue
            now = time.perf_counter()
            self.frames += 1
            expect = self.expect
            if expect is None or i in expect["got"]:
                continue
            frame = json.loads(msg.data)
            if frame["type"] != "trigger.pods" or frame["payload"]["id"] != expect["trigger"]:
                continue
            if not any(p["name"] == expect["pod"] and p["ready"] for p in frame["payload"]["pods"]):
                expect["got"][i] = now - expect["t0"]

    async def close(self) -> None:
        for ws in self.sockets:
            await ws.close()
        for task in self.readers:
            task.cancel()
        await asyncio.gather(*self.readers, return_exceptions=True)
        if self.session is not None:
            await self.session.close()


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


def prefill_observed_state(cluster) -> None:
    """Write what a previous watcher run would have observed (the product's own functions, bulk): the watcher
    started next finds the database in sync with the cluster, as after a restart, and relists."""
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

    custom, core = cluster.custom, cluster.core
    ksvcs = by_trigger(custom.list_cluster_custom_object(**kube.KSVC, label_selector=MANAGED)["items"])
    revisions = {(r["metadata"]["namespace"], r["metadata"]["name"]): r for r in custom.list_cluster_custom_object(
        "serving.knative.dev", "v1", "revisions", label_selector=MANAGED)["items"]}
    pods = by_trigger(json.loads(core.list_pod_for_all_namespaces(label_selector=MANAGED,
                                                                  _preload_content=False).data)["items"])
    rows = list(Trigger.objects.select_related("tenant"))
    fields = ["ready_status", "ready_reason", "ready_message", "url", "address_url", "latest_created_revision",
              "latest_ready_revision", "observed_generation", "generation", "observed_at", "pods", "ready_pods",
              "desired_replicas", "actual_replicas", "active_status", "active_reason"]
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


async def run_live(ctx: dict) -> None:
    api, tenant, live = Api(ctx["sim"]), ctx["tenant"], ctx["live"]
    watcher, meter = ctx["watcher"], Meter(ctx["watcher"].pid)
    try:
        # ---- 200 websocket clients, a pod killed → the frame at every client
        clients = Clients(ctx["base"], tenant.slug, ctx["cookies"])
        took = await clients.connect()
        print(f"{CLIENTS} websocket clients on tenant {tenant.slug!r} ({LIVE_TRIGGERS} triggers) connected, snapshot "
              f"received: {took:.1f} s")
        samples, per_round = [], []
        for r in range(ROUNDS):
            trigger = live[r % len(live)]
            pods = (await api.ready_pods(tenant.namespace)).get(str(trigger.pk), [])
            assert pods, f"{trigger.name} has no ready pod"
            await asyncio.sleep(0.3)  # the previous round's frames are all read
            clients.expect = {"trigger": trigger.pk, "pod": pods[0], "t0": time.perf_counter(), "got": {}}
            await api.kill(tenant.namespace, pods[0])
            deadline = time.monotonic() + 10
            while len(clients.expect["got"]) < CLIENTS and time.monotonic() < deadline:
                await asyncio.sleep(0.01)
            got = clients.expect["got"]
            clients.expect = None
            samples += [s * 1000 for s in got.values()]
            per_round.append((len(got), max(got.values(), default=float("nan")) * 1000))
            while not (await api.ready_pods(tenant.namespace)).get(str(trigger.pk)):  # replacement ready
                watcher.check()
                await asyncio.sleep(0.05)
        received = sum(n for n, _ in per_round)
        closed = [ws.close_code for ws in clients.sockets if ws.closed]
        print(f"pod killed -> trigger.pods frame at each of {CLIENTS} clients, {ROUNDS} rounds: p50 "
              f"{_setup.pct(samples, 50):.0f} ms, p95 {_setup.pct(samples, 95):.0f} ms, max {max(samples):.0f} ms "
              f"({received}/{CLIENTS * ROUNDS} frames received within 10 s"
              + (f"; {len(closed)} sockets closed by the server, codes {sorted(set(closed))}" if closed else "")
              + ") (goal: p95 <= 250 ms)")
        if closed:
            print("  uvicorn log (last lines):\n" + ctx["uvicorn"].tail(15))
        print("  time until every client had it, per round: "
              + ", ".join(f"{m:.0f} ms" + ("" if n == CLIENTS else f" ({n}/{CLIENTS})") for n, m in per_round)
              + f"; {clients.frames} frames read in all")
        await clients.close()

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
        await api.close()


def main() -> None:
    started = time.perf_counter()
    _setup.stop_on_sigterm()
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
        for i in range(CLIENTS):
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
        took = asyncio.run(create_cluster_objects(sim, manifests, TOTAL_TRIGGERS, 90))
        t0 = time.monotonic()
        fields = prefill_observed_state(cluster)
        before = observed_snapshot(fields)
        print(f"setup: {TOTAL_TRIGGERS} triggers over {BULK_TENANTS + 1} tenants, their ksvcs created in kubesim and "
              f"every pod ready in {took:.1f} s, their observed state written in {time.monotonic() - t0:.1f} s; "
              f"{time.perf_counter() - started:.1f} s so far; database: {db_label}; Redis: {os.environ['REDIS_URL']}; "
              f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
        connections.close_all()

        # The watcher starts on a database in sync with the cluster (as after a restart) and relists everything.
        # The diag poll (every RELAY_DIAG_INTERVAL) is not a cluster event: once at start, then not again.
        watcher_env = _setup.relay_env(sim, RELAY_DIAG_INTERVAL="3600")
        writes0, t0 = writes(), time.monotonic()
        watcher = _setup.start(stack, "watcher", [sys.executable, "manage.py", "watch_cluster"], watcher_env, tmp)
        meter = Meter(watcher.pid)

        async def relisted() -> bool:
            await asyncio.sleep(2.0)
            return await meter.quiet(RELIST_TIMEOUT, window=1.0, threshold=0.02)

        quiet = asyncio.run(relisted())
        watcher.check()
        rss = meter.rss_mib()
        w = delta(writes(), writes0)
        rewritten: dict[str, int] = {}
        for pk, values in observed_snapshot(fields).items():
            for name, value in values.items():
                if before[pk][name] != value:
                    rewritten[name] = rewritten.get(name, 0) + 1
        print(f"watcher memory (RSS) with {TOTAL_TRIGGERS} triggers, after its startup relist: {rss:.0f} MiB "
              f"(goal: none set / baseline: first measurement)")
        print(f"  the relist ({TOTAL_TRIGGERS} ksvcs, revisions and pods, and their Kubernetes events) took "
              f"{time.monotonic() - t0 - 1.0:.1f} s and {meter.cpu():.1f} s of watcher CPU"
              f"{'' if quiet else ' (did NOT go quiet: still working)'}; {sum(w.values())} database writes {w} "
              f"(goal: 0, nothing changed)" + (f"; fields that changed, by trigger count: {rewritten}" if w else ""))
        uvicorn, base = _setup.start_uvicorn(stack, tmp, _setup.relay_env(sim))
        ctx = {"uvicorn": uvicorn, "sim": sim, "tenant": tenant, "live": live, "cookies": cookies, "base": base,
               "watcher": watcher, "rss": rss}
        try:
            asyncio.run(run_live(ctx))
        except BaseException:
            print(f"watcher log (last lines):\n{watcher.tail()}", file=sys.stderr)
            raise
        connections.close_all()
    print(f"bench_live total: {time.perf_counter() - started:.0f} s (goal: < 180 s)")


if __name__ == "__main__":
    main()
