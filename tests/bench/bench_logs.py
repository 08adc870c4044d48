"""Handler-log benchmark: `python tests/bench/bench_logs.py` (run by `make bench`; issue 15, items 7 and 2).

Part A — collection at scale. 200 triggers (min_scale=1, image `kubesim/chatty:20`): 200 pods each logging 20
`tick N` lines a second, 4,000 lines/s offered. kubesim (`python -m kubesim`), the collector (`python manage.py
collect_logs`, RELAY_LEADER_ELECTION=0) and relayweb (`python -m uvicorn relayweb.asgi:application`) each run in
their own process, so the collector's CPU (/proc/<pid>/stat utime+stime) and memory (/proc/<pid>/status
VmRSS/VmHWM) are its own. After the pods are up and every trigger has a stored line, a warm-up, then a steady
window of WINDOW seconds:

- lines/s ingested (LogLine count delta / wall time) vs lines/s offered: what the pods wrote in the same window,
  read from kubesim (each pod's last `tick N` line and its kubelet timestamp, at both ends of the window);
- collector CPU seconds per 1,000 lines stored (kubesim's CPU per 1,000 lines written and served, for scale);
- end-to-end delay, a line's kubelet timestamp (LogLine.time) -> the line visible through the API
  (`GET /api/v1/tenants/<slug>/triggers/<name>/logs/?after=<newest id>` with an API token, over HTTP against
  uvicorn, every POLL_INTERVAL for DELAY_TRIGGERS triggers): p50/p95/max, next to the baseline of the same pods'
  logs followed straight from kubesim (`pods/<pod>/log?follow=true&timestamps=true`); the polled lines are also
  checked for gaps and repeats of their tick numbers;
- the collector's peak RSS (VmHWM) vs its RSS once started, before any pod existed;
- where the collector's storing thread spends a batch (in this process, after the window): one batch of 2,000
  lines over the 200 triggers stored with LogCollector._insert vs handed to log panels (one message per trigger,
  one BackgroundSender.submit), as LogCollector.flush does, and the sender's own time to send them.

Part B — retention at volume. LogLine rows spread evenly over 10 days and 50 triggers (one trigger holding a
quarter of them), inserted in time order by SQL (PostgreSQL: 2,000,000 with generate_series; SQLite: 300,000 with
a recursive CTE), then copied to an identical table (same columns and indexes):

- `LogLine.prune_older(now - 7 days)` (~30 % of the rows): rows deleted/s and its longest batch (the time from one
  batch's DELETE to the next, commit included: the longest a lock is held; the first and last batches, to show
  whether they slow down), vs the baseline of ONE unbatched `DELETE ... WHERE time < cutoff` on the copy; and the
  database's plan of one batch (a scan of the whole table per batch would be said);
- `LogLine.trim(big trigger, keep)`, vs one unbatched DELETE of the same rows on the copy.

Database: a fresh PostgreSQL database when DATABASE_URL names a PostgreSQL server, else a temporary SQLite file;
Redis: REDIS_URL, else the embedded one tests.settings starts. Loopback only; every process is stopped and the
database dropped at the end, also on error. Exits 1 (after printing every figure) when a figure is absurd:
ingested < 50 % of offered, p95 delay > 10 s, no delay sample, lines lost or repeated in the polled triggers,
a prune deleting other than ~30 % or other than the baseline.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import sys
import tempfile
import time
from contextlib import ExitStack
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _setup  # noqa: E402

TRIGGERS = 200
RATE = 20  # lines per second per pod
IMAGE = f"kubesim/chatty:{RATE}"
WARMUP = 6.0  # seconds after every trigger has a stored line
CATCH_UP = 60.0  # at most this long more, until the collector has drained what the pods logged before it followed
OFFERED = 4000  # lines/s: 200 pods x 20
WINDOW = 20.0
DELAY_TRIGGERS = 5
POLL_INTERVAL = 0.25
SIM = dict(image_pull_delay=0.05, start_delay=0.1, stable_window=600, scale_to_zero_grace=30, progress_deadline=60,
           route_ready_delay=0.0)
MANAGED = "app.kubernetes.io/managed-by=relayweb"
KSVCS = "/apis/serving.knative.dev/v1"

ROWS = {"postgresql": 2_000_000, "sqlite": 300_000}
PRUNE_TRIGGERS = 50  # one of them (the "big" one) holds every 4th row, the others share the rest
DAYS, KEEP_DAYS = 10, 7

CLK_TCK = os.sysconf("SC_CLK_TCK")
problems: list[str] = []


# ---------------------------------------------------------------- /proc


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK  # utime, stime (fields 14 and 15)


def mem_mib(pid: int, key: str) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1]) / 1024
    return float("nan")


def ratio(a: float, b: float) -> str:
    return f"{a / b:.3f}" if b else "n/a"


# ---------------------------------------------------------------- Part A: kubesim side


class Kube:
    def __init__(self, sim: _setup.KubeSim):
        self.sim = sim
        self.session = aiohttp.ClientSession(sim.api_url, headers={"Authorization": f"Bearer {sim.token}"},
                                             connector=aiohttp.TCPConnector(limit=32))

    async def close(self) -> None:
        await self.session.close()

    async def get(self, path: str, **params) -> dict:
        async with self.session.get(path, params=params) as r:
            r.raise_for_status()
            return await r.json()

    async def create_ksvcs(self, manifests: list[dict]) -> None:
        gate = asyncio.Semaphore(16)

        async def one(m: dict) -> None:
            async with gate, self.session.post(f"{KSVCS}/namespaces/{m['metadata']['namespace']}/services",
                                               json=m) as r:
                if r.status >= 400:
                    raise RuntimeError(f"creating ksvc {m['metadata']['name']}: {r.status} {await r.text()}")

        await asyncio.gather(*(one(m) for m in manifests))

    async def ready_pods(self) -> dict[int, tuple[str, str]]:
        """trigger id -> (namespace, pod) of one ready managed pod."""
        out = {}
        for pod in (await self.get("/api/v1/pods", labelSelector=MANAGED))["items"]:
            conds = (pod.get("status") or {}).get("conditions") or []
            if pod["metadata"].get("deletionTimestamp"):
                continue
            if any(c["type"] == "Ready" and c["status"] == "True" for c in conds):
                meta = pod["metadata"]
                out[int(meta["labels"]["relayweb.io/trigger"])] = (meta["namespace"], meta["name"])
        return out

    async def last_tick(self, ns: str, pod: str) -> tuple[float, int]:
        """(kubelet time, N) of the pod's latest `tick N` line."""
        async with self.session.get(f"/api/v1/namespaces/{ns}/pods/{pod}/log",
                                    params={"container": "user-container", "tailLines": "1",
                                            "timestamps": "true"}) as r:
            r.raise_for_status()
            text = (await r.text()).strip()
        stamp, _, rest = text.partition(" ")
        n = int(rest.split()[1]) if rest.startswith("tick ") else 0
        return parse_stamp(stamp), n

    async def ticks(self, pods: dict[int, tuple[str, str]]) -> dict[int, tuple[float, int]]:
        keys = list(pods)
        values = await asyncio.gather(*(self.last_tick(*pods[k]) for k in keys))
        return dict(zip(keys, values, strict=True))

    async def follow(self, ns: str, pod: str, sink: list[float], measuring: dict) -> None:
        """The baseline reader: the pod's log followed straight from kubesim; kubelet time -> received."""
        async with self.session.get(f"/api/v1/namespaces/{ns}/pods/{pod}/log",
                                    params={"container": "user-container", "follow": "true",
                                            "timestamps": "true", "sinceSeconds": "1"},
                                    timeout=aiohttp.ClientTimeout(total=None, sock_read=None)) as r:
            r.raise_for_status()
            async for raw in r.content:
                now = time.time()
                if measuring["on"]:
                    sink.append(now - parse_stamp(raw.split(b" ", 1)[0].decode()))


def parse_stamp(stamp: str) -> float:
    from triggers.cluster.logs import parse_time

    when = parse_time(stamp.encode())
    if when is None:
        raise ValueError(f"not a kubelet timestamp: {stamp!r}")
    return when.timestamp()


# ---------------------------------------------------------------- Part A: the API side


class Poller:
    """One trigger's logs through the API, `after=` the newest line seen, every POLL_INTERVAL."""

    def __init__(self, session: aiohttp.ClientSession, base: str, slug: str, name: str):
        self.session, self.url = session, f"{base}/api/v1/tenants/{slug}/triggers/{name}/logs/"
        self.delays: list[float] = []
        self.ticks: list[int] = []
        self.polls = 0
        self.errors: dict[int, int] = {}

    async def page(self, **params) -> dict | None:
        async with self.session.get(self.url, params={k: str(v) for k, v in params.items()}) as r:
            if r.status != 200:
                self.errors[r.status] = self.errors.get(r.status, 0) + 1
                return None
            return await r.json()

    async def run(self, measuring: dict, stop: asyncio.Event) -> None:
        first = None
        while first is None or not first["results"]:
            first = await self.page(page_size=1)
            if first is None or not first["results"]:
                await asyncio.sleep(POLL_INTERVAL)
        cursor = first["results"][-1]["id"]
        while not stop.is_set():
            t0 = time.monotonic()
            data = await self.page(after=cursor, page_size=200)
            now = time.time()
            self.polls += measuring["on"]
            if data is not None and data["results"]:
                for line in data["results"]:
                    if measuring["on"]:
                        self.delays.append(now - datetime.fromisoformat(line["time"]).timestamp())
                        if line["text"].startswith("tick "):
                            self.ticks.append(int(line["text"].split()[1]))
                cursor = data["results"][-1]["id"]
                if data["previous"]:  # more than a page is waiting: read it now
                    continue
            await asyncio.sleep(max(0.0, POLL_INTERVAL - (time.monotonic() - t0)))

    def gaps_and_repeats(self) -> tuple[int, int]:
        gaps = repeats = 0
        for a, b in zip(self.ticks, self.ticks[1:], strict=False):
            if b <= a:
                repeats += 1
            elif b > a + 1:
                gaps += b - a - 1
        return gaps, repeats


def stored_lines() -> int:
    from django.db import connection

    from triggers.models import LogLine

    try:
        return LogLine.objects.count()
    finally:
        connection.close()  # this runs in a worker thread: leave no connection behind


def triggers_with_lines() -> int:
    from django.db import connection

    from triggers.models import LogLine

    try:
        return LogLine.objects.values("trigger_id").distinct().count()
    finally:
        connection.close()


async def collect(ctx: dict) -> dict:
    sim, collector, uvicorn = ctx["sim"], ctx["collector"], ctx["uvicorn"]
    kube = Kube(sim)
    out: dict = {}
    try:
        t0 = time.monotonic()
        await kube.create_ksvcs(ctx["manifests"])
        while len(pods := await kube.ready_pods()) < TRIGGERS:
            if time.monotonic() - t0 > 120:
                raise RuntimeError(f"only {len(pods)} of {TRIGGERS} pods ready after 120 s")
            sim.proc.check()
            await asyncio.sleep(0.5)
        out["pods_ready"] = time.monotonic() - t0
        t1 = time.monotonic()
        while (have := await asyncio.to_thread(triggers_with_lines)) < TRIGGERS:
            if time.monotonic() - t1 > 90:
                raise RuntimeError(f"only {have} of {TRIGGERS} triggers have a stored line after 90 s")
            collector.check()
            await asyncio.sleep(0.5)
        out["all_followed"] = time.monotonic() - t1
        print(f"  {TRIGGERS} pods ready {out['pods_ready']:.1f} s after the ksvcs were sent; every trigger had a "
              f"stored line {out['all_followed']:.1f} s later; warm-up {WARMUP:.0f} s", flush=True)

        measuring, stop = {"on": False}, asyncio.Event()
        sampled = ctx["triggers"][:DELAY_TRIGGERS]
        direct: list[float] = []
        tasks = [asyncio.create_task(kube.follow(*pods[t.pk], direct, measuring)) for t in sampled]
        session = aiohttp.ClientSession(headers={"Authorization": f"Token {ctx['token']}"})
        pollers = [Poller(session, ctx["base"], ctx["slug"], t.name) for t in sampled]
        tasks += [asyncio.create_task(p.run(measuring, stop)) for p in pollers]
        await asyncio.sleep(WARMUP)
        # the follows start behind (each pod logged before it was followed): wait until the backlog is drained, i.e.
        # the stored rate over 2 s is no more than 10 % above the offered rate, for at most CATCH_UP seconds
        caught_up, before = time.monotonic(), await asyncio.to_thread(stored_lines)
        while time.monotonic() - caught_up < CATCH_UP:
            await asyncio.sleep(2.0)
            now = await asyncio.to_thread(stored_lines)
            if (now - before) / 2.0 <= OFFERED * 1.1:
                break
            before = now
        out["caught_up"] = time.monotonic() - caught_up
        print(f"  backlog drained {out['caught_up']:.0f} s after the warm-up (at most {CATCH_UP:.0f} s)", flush=True)
        for task in tasks:
            if task.done():
                task.result()  # raise what failed

        # ---- the window
        async def snapshot() -> dict:
            stored = await asyncio.to_thread(stored_lines)
            at = time.monotonic()
            cpu = {name: cpu_seconds(p.pid) for name, p in (("collector", collector), ("kubesim", sim.proc),
                                                              ("uvicorn", uvicorn))}
            return {"stored": stored, "at": at, "cpu": cpu, "ticks": await kube.ticks(pods)}

        measuring["on"] = True
        a = await snapshot()
        await asyncio.sleep(WINDOW)
        b = await snapshot()
        measuring["on"] = False
        stop.set()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await session.close()
        collector.check()

        out["elapsed"] = b["at"] - a["at"]
        out["ingested"] = (b["stored"] - a["stored"]) / out["elapsed"]
        rates, lines_offered = [], 0
        for k, (t_b, n_b) in b["ticks"].items():
            t_a, n_a = a["ticks"][k]
            if t_b > t_a:
                rates.append((n_b - n_a) / (t_b - t_a))
                lines_offered += n_b - n_a
        out["offered"] = sum(rates)
        out["offered_pods"] = len(rates)
        out["stored_lines"] = b["stored"] - a["stored"]
        out["cpu"] = {k: b["cpu"][k] - a["cpu"][k] for k in a["cpu"]}
        out["lines_offered"] = lines_offered
        out["direct"] = direct
        out["pollers"] = pollers
        out["api_errors"] = sum(sum(p.errors.values()) for p in pollers)
        return out
    finally:
        await kube.close()


def report_collection(r: dict, idle_rss: float, peak_rss: float, rss_now: float) -> None:
    ingested, offered, elapsed = r["ingested"], r["offered"], r["elapsed"]
    print(f"ingested {ingested:,.0f} lines/s of {offered:,.0f} offered ({ratio(ingested, offered)}) "
          f"[{r['stored_lines']:,} lines stored in {elapsed:.1f} s; offered = the {r['offered_pods']} pods' "
          f"`tick N` advance over the same window, read from kubesim; nominal {TRIGGERS * RATE:,}/s]")
    if offered and ingested < 0.5 * offered:
        problems.append(f"ingested {ingested:,.0f} lines/s < 50 % of the {offered:,.0f} offered")

    cpu = r["cpu"]
    per_k = cpu["collector"] / (r["stored_lines"] / 1000) if r["stored_lines"] else float("nan")
    sim_per_k = cpu["kubesim"] / (r["lines_offered"] / 1000) if r["lines_offered"] else float("nan")
    print(f"collector CPU per 1,000 lines stored: {per_k * 1000:.1f} ms ({cpu['collector']:.1f} s CPU in "
          f"{elapsed:.1f} s = {cpu['collector'] / elapsed:.2f} cores; at this cost one core stores "
          f"~{1 / per_k * 1000 if per_k else 0:,.0f} lines/s) vs kubesim writing and serving them "
          f"{sim_per_k * 1000:.1f} ms per 1,000 ({cpu['kubesim'] / elapsed:.2f} cores) "
          f"({ratio(per_k, sim_per_k)}); uvicorn answering the polls: {cpu['uvicorn'] / elapsed:.2f} cores")

    delays = [d for p in r["pollers"] for d in p.delays]
    direct = r["direct"]
    polls = sum(p.polls for p in r["pollers"])
    errors: dict[int, int] = {}
    for p in r["pollers"]:
        for k, v in p.errors.items():
            errors[k] = errors.get(k, 0) + v
    if delays and direct:
        p50, p95, base50, base95 = (_setup.pct(delays, 50), _setup.pct(delays, 95), _setup.pct(direct, 50),
                                    _setup.pct(direct, 95))
        print(f"delay kubelet time -> visible through the API: p50 {p50 * 1000:,.0f} ms, p95 {p95 * 1000:,.0f} ms, "
              f"max {max(delays) * 1000:,.0f} ms ({len(delays):,} lines of {DELAY_TRIGGERS} triggers, "
              f"{polls:,} polls of GET .../logs/?after=<id> over HTTP (uvicorn) every {POLL_INTERVAL * 1000:.0f} ms: "
              f"~{POLL_INTERVAL * 500:.0f} ms of the p50 is the poll interval) vs the same pods followed straight "
              f"from kubesim: p50 {base50 * 1000:.1f} ms, p95 {base95 * 1000:.1f} ms ({len(direct):,} lines); "
              f"added p50 {(p50 - base50) * 1000:,.0f} ms, p95 {(p95 - base95) * 1000:,.0f} ms"
              + (f"; API errors {errors}" if errors else ""))
        if p95 > 10:
            problems.append(f"p95 delay {p95:.1f} s > 10 s")
    else:
        print(f"delay: no sample (API lines {len(delays)}, direct lines {len(direct)}, API errors {errors})")
        problems.append("no delay sample")
    gaps = sum(p.gaps_and_repeats()[0] for p in r["pollers"])
    repeats = sum(p.gaps_and_repeats()[1] for p in r["pollers"])
    ticks = sum(len(p.ticks) for p in r["pollers"])
    print(f"  completeness of the polled triggers: {ticks:,} tick lines, {gaps} missing, {repeats} repeated or out "
          f"of order (goal: 0 and 0)")
    if gaps or repeats:
        problems.append(f"polled triggers: {gaps} tick lines missing, {repeats} repeated or out of order")
    print(f"collector peak RSS (VmHWM): {peak_rss:.0f} MiB vs {idle_rss:.0f} MiB once started, before any pod "
          f"({ratio(peak_rss, idle_rss)}); VmRSS at the end of the window {rss_now:.0f} MiB")


def flush_costs(triggers: list) -> None:
    """Where LogCollector.flush spends a batch: one batch of BATCH lines over every trigger, stored as flush stores
    it (LogCollector._insert) and handed to open log panels as flush hands them (one BackgroundSender.submit of a
    message per trigger: what the storing thread pays), then sent by the sender's own loop (what it pays, in its
    thread), in this process after Part A, median of 3."""
    from triggers.cluster.logs import BATCH, LogCollector
    from triggers.live import broadcast
    from triggers.models import LogLine

    store, tell, sent = [], [], []
    sender = broadcast.BackgroundSender()
    for _ in range(3):
        now = datetime.now(UTC)
        batch = [LogLine(trigger_id=t.pk, time=now, pod=f"{t.name}-pod", revision=f"{t.name}-00001",
                         container="user-container", text=f"tick {i}")
                 for i in range(BATCH // len(triggers)) for t in triggers]
        t0 = time.perf_counter()
        stored = LogCollector._insert(batch)
        store.append(time.perf_counter() - t0)
        by_trigger: dict[int, list] = {}
        for line in stored:
            by_trigger.setdefault(line.trigger_id, []).append(line)
        t0 = time.perf_counter()
        sender.submit([broadcast.log_lines_message(trigger_id, lines) for trigger_id, lines in by_trigger.items()])
        tell.append(time.perf_counter() - t0)
        while sender.pending:
            time.sleep(0.001)
        sent.append(time.perf_counter() - t0)
    sender.stop()
    s, t, w = _setup.median(store), _setup.median(tell), _setup.median(sent)
    n = len(triggers)
    print(f"  where the storing thread's time goes, one batch of {BATCH:,} lines over {n} triggers: handing the {n} "
          f"live messages to the sender {t * 1000:,.1f} ms vs storing the batch {s * 1000:,.0f} ms "
          f"(LogCollector._insert) ({ratio(t, s)}): that thread tops out near {BATCH / (s + t):,.0f} lines/s; "
          f"the sender's loop sends them in {w * 1000:,.0f} ms (no panel is open), beside it")


# ---------------------------------------------------------------- Part B: retention at volume


def fill(vendor: str, rows: int, trigger_ids: list[int], now: datetime) -> None:
    """`rows` LogLine rows in time order over DAYS days before `now`; every 4th row the first trigger's."""
    from django.db import connection

    from triggers.models import LogLine

    pg = vendor == "postgresql"
    mod = "%%" if pg else "%"  # PostgreSQL's statement has parameters (pyformat), SQLite's none
    table = LogLine._meta.db_table
    others = " ".join(f"WHEN {k} THEN {int(t)}" for k, t in enumerate(trigger_ids[1:]))
    trigger = (f"CASE WHEN i {mod} 4 = 0 THEN {int(trigger_ids[0])} "
               f"ELSE CASE i {mod} {len(trigger_ids) - 1} {others} END END")
    pod = f"'handler-' || (i {mod} 49) || '-00001-deployment-5d8f7c9b6d-' || (i {mod} 7)"
    revision = f"'handler-' || (i {mod} 49) || '-00001'"
    step_us = DAYS * 86_400_000_000 // rows
    start = now - timedelta(days=DAYS)
    columns = "trigger_id, time, pod, revision, container, stream, text, cut, delivery_id"
    with connection.cursor() as cur:
        if pg:
            cur.execute(
                f"INSERT INTO {table} ({columns}) SELECT {trigger}, "
                f"%s::timestamptz + (i::bigint * {step_us}) * interval '1 microsecond', {pod}, {revision}, "
                "'user-container', '', 'GET /hook 200 X-Relay-Delivery-Id=' || md5(i::text), 0, "
                "CASE WHEN i %% 10 = 0 THEN md5(i::text)::uuid END "
                "FROM generate_series(0, %s) AS i", [start, rows - 1])
        else:  # Django's format: UTC, 'YYYY-MM-DD HH:MM:SS.ffffff'; a UUID as 32 hex digits
            epoch, us = int(start.timestamp()), f"({start.microsecond} + i * {step_us})"
            cur.execute(
                f"WITH RECURSIVE s(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM s WHERE i < {rows - 1}) "
                f"INSERT INTO {table} ({columns}) SELECT {trigger}, "
                f"strftime('%Y-%m-%d %H:%M:%S', {epoch} + {us} / 1000000, 'unixepoch') "
                f"|| printf('.%06d', {us} % 1000000), {pod}, {revision}, 'user-container', '', "
                "'GET /hook 200 X-Relay-Delivery-Id=' || lower(hex(randomblob(16))), 0, "
                "CASE WHEN i % 10 = 0 THEN lower(hex(randomblob(16))) END FROM s")


def copy_table(vendor: str, copy: str) -> None:
    """An identical copy of the LogLine table (columns, indexes, rows in the same order)."""
    from django.db import connection

    from triggers.models import LogLine

    table = LogLine._meta.db_table
    with connection.cursor() as cur:
        if vendor == "postgresql":
            cur.execute(f"CREATE TABLE {copy} (LIKE {table} INCLUDING ALL)")
        else:
            cur.execute("SELECT type, name, sql FROM sqlite_master WHERE tbl_name = %s AND sql IS NOT NULL "
                        "ORDER BY type = 'index'", [table])
            for kind, name, sql in cur.fetchall():
                if kind == "table":
                    sql = sql.replace(f'"{table}"', f'"{copy}"', 1)
                else:
                    sql = sql.replace(f'"{name}"', f'"{copy}_{name}"', 1).replace(f'"{table}"', f'"{copy}"', 1)
                cur.execute(sql)
        cur.execute(f"INSERT INTO {copy} SELECT * FROM {table} ORDER BY id")


def analyze(vendor: str, tables: list[str]) -> None:
    from django.db import connection

    with connection.cursor() as cur:
        for table in tables:
            cur.execute(f"VACUUM ANALYZE {table}" if vendor == "postgresql" else f"ANALYZE {table}")


def checkpoint(vendor: str) -> None:
    """Start each timed delete on the same footing (PostgreSQL: a CHECKPOINT, if we may)."""
    from django.db import connection

    if vendor != "postgresql":
        return
    try:
        with connection.cursor() as cur:
            cur.execute("CHECKPOINT")
    except Exception:  # noqa: BLE001 - not a superuser: carry on without
        pass


class DeleteClock:
    """connection.execute_wrapper: when each DELETE statement started; batches = the gaps between them."""

    def __init__(self):
        self.starts: list[float] = []

    def __call__(self, execute, sql, params, many, context):
        if sql.lstrip().upper().startswith("DELETE"):
            self.starts.append(time.perf_counter())
        return execute(sql, params, many, context)

    def durations(self, end: float) -> list[float]:
        marks = [*self.starts, end]
        return [b - a for a, b in zip(marks, marks[1:], strict=False)]


def timed_batched(fn) -> tuple[int, float, list[float]]:
    """(rows deleted, seconds, each batch's seconds) of a batched delete (prune_older, trim)."""
    from django.db import connection

    clock = DeleteClock()
    with connection.execute_wrapper(clock):
        t0 = time.perf_counter()
        n = fn()
        end = time.perf_counter()
    return n, end - t0, clock.durations(end)


def batch_plan(vendor: str, cutoff: datetime) -> str:
    """How the database runs one prune_older batch (its DELETE ... WHERE id IN (the oldest ids)), in short."""
    from django.db import connection

    from triggers.models import LogLine

    table = LogLine._meta.db_table
    ids = LogLine.objects.filter(time__lt=cutoff).order_by("time").values("id")[:LogLine.PRUNE_BATCH]
    sql, params = ids.query.sql_with_params()
    with connection.cursor() as cur:
        if vendor == "postgresql":
            cur.execute(f"EXPLAIN DELETE FROM {table} WHERE id IN ({sql})", params)
            plan = [row[0] for row in cur.fetchall()]
        else:
            cur.execute(f"EXPLAIN QUERY PLAN DELETE FROM {table} WHERE id IN ({sql})", params)
            plan = [row[-1] for row in cur.fetchall()]
    nodes = [line.strip().lstrip("->").strip().split("  (")[0] for line in plan]
    return "; ".join(node for node in nodes if node and not node.startswith(("Index Cond", "Hash Cond", "Filter")))


def batches(durations: list[float]) -> str:
    k = min(5, len(durations))
    if not k:
        return "no batch"
    return (f"{len(durations)} batches, longest (lock held) {max(durations) * 1000:,.0f} ms, the first {k} "
            f"{_setup.median(durations[:k]) * 1000:,.0f} ms and the last {k} "
            f"{_setup.median(durations[-k:]) * 1000:,.0f} ms each (medians)")


def timed_sql(sql: str, params: list) -> tuple[int, float]:
    from django.db import connection

    # datetimes as Django writes them (SQLite: naive UTC text), so the comparison is the ORM's
    params = [connection.ops.adapt_datetimefield_value(p) if isinstance(p, datetime) else p for p in params]
    t0 = time.perf_counter()
    with connection.cursor() as cur:
        cur.execute(sql, params)
        n = cur.rowcount
    return n, time.perf_counter() - t0


def retention(vendor: str, trigger_ids: list[int]) -> None:
    from django.db import connection

    from triggers.models import LogLine

    table, copy = LogLine._meta.db_table, "bench_logline_copy"
    rows = ROWS[vendor]
    keep = rows // 10
    now = datetime.now(UTC).replace(microsecond=0)
    with connection.cursor() as cur:  # Part A's lines go; Part B starts on an empty table
        cur.execute(f"TRUNCATE {table}" if vendor == "postgresql" else f"DELETE FROM {table}")
    t0 = time.perf_counter()
    fill(vendor, rows, trigger_ids, now)
    took_fill = time.perf_counter() - t0
    t0 = time.perf_counter()
    copy_table(vendor, copy)
    analyze(vendor, [table, copy])
    took_copy = time.perf_counter() - t0
    big = trigger_ids[0]
    with connection.cursor() as cur:
        cur.execute(f"SELECT count(*), count(*) FILTER (WHERE trigger_id = %s) FROM {copy}"
                    if vendor == "postgresql" else
                    f"SELECT count(*), sum(trigger_id = %s) FROM {copy}", [big])
        copied, big_rows = cur.fetchone()
    label = "PostgreSQL, INSERT ... SELECT generate_series" if vendor == "postgresql" else \
        "SQLite: fewer rows than the 2,000,000 on PostgreSQL, INSERT ... WITH RECURSIVE"
    print(f"retention data: {rows:,} LogLine rows over {DAYS} days and {len(trigger_ids)} triggers (the big one "
          f"{big_rows:,}) inserted in {took_fill:.1f} s ({label}); an identical copy ({copied:,} rows, same "
          f"indexes) made and analyzed in {took_copy:.1f} s", flush=True)
    if copied != rows:
        problems.append(f"the copy has {copied:,} rows, not {rows:,}")

    cutoff = now - timedelta(days=KEEP_DAYS)
    plan = batch_plan(vendor, cutoff)
    checkpoint(vendor)
    n, took, durations = timed_batched(lambda: LogLine.prune_older(cutoff))
    checkpoint(vendor)
    base_n, base_took = timed_sql(f"DELETE FROM {copy} WHERE time < %s", [cutoff])
    longest = max(durations, default=0.0)
    print(f"LogLine.prune_older(now - {KEEP_DAYS} days): {n:,} rows deleted in {took:.2f} s = {n / took:,.0f} rows/s, "
          f"{batches(durations)} vs one unbatched DELETE ... WHERE time < cutoff on the copy: {base_n:,} rows in "
          f"{base_took:.2f} s = {base_n / base_took:,.0f} rows/s, all of it one lock (time {ratio(took, base_took)}; "
          f"longest lock {ratio(longest, base_took)})")
    print(f"  plan of one batch (before the prune): {plan}")
    if "Seq Scan on" in plan or plan.startswith("SCAN ") or "; SCAN " in plan:
        print("  (a scan of the whole table in every batch: the batches are not bounded by their size)")
    share = n / rows
    if abs(share - (DAYS - KEEP_DAYS) / DAYS) > 0.02:
        problems.append(f"prune_older deleted {share:.1%} of the rows, not ~{(DAYS - KEEP_DAYS) / DAYS:.0%}")
    if n != base_n:
        problems.append(f"prune_older deleted {n:,} rows, the unbatched baseline {base_n:,}")

    checkpoint(vendor)
    n, took, durations = timed_batched(lambda: LogLine.trim(big, keep))
    longest = max(durations, default=0.0)
    checkpoint(vendor)
    t0 = time.perf_counter()
    with connection.cursor() as cur:
        cur.execute(f"SELECT time, id FROM {copy} WHERE trigger_id = %s ORDER BY time DESC, id DESC "
                    f"LIMIT 1 OFFSET %s", [big, keep])
        boundary = cur.fetchone()
    base_n = 0
    if boundary is not None:
        base_n, _ = timed_sql(f"DELETE FROM {copy} WHERE trigger_id = %s AND (time < %s OR (time = %s AND id <= %s))",
                              [big, boundary[0], boundary[0], boundary[1]])
    base_took = time.perf_counter() - t0
    left = LogLine.objects.filter(trigger_id=big).count()
    print(f"LogLine.trim(big trigger, keep={keep:,}): {n:,} rows deleted in {took:.2f} s = {n / took:,.0f} rows/s, "
          f"{batches(durations)}, {left:,} rows left vs one unbatched DELETE of the "
          f"same rows on the copy (boundary lookup included): {base_n:,} rows in {base_took:.2f} s "
          f"(time {ratio(took, base_took)}; longest lock {ratio(longest, base_took)})")
    if left != keep or n != base_n:
        problems.append(f"trim left {left:,} rows (keep={keep:,}) and deleted {n:,} (baseline {base_n:,})")
    with connection.cursor() as cur:
        cur.execute(f"DROP TABLE {copy}")


# ---------------------------------------------------------------- the run


def main() -> int:
    started = time.perf_counter()
    _setup.stop_on_sigterm()
    tmp = Path(tempfile.mkdtemp(prefix="relayweb-bench-logs-"))
    with ExitStack() as stack:
        stack.callback(shutil.rmtree, tmp, ignore_errors=True)
        db_label = _setup.setup_django(stack, tmp, RELAY_KUBECONFIG=str(tmp / "kubeconfig"))
        from django.contrib.auth import get_user_model
        from django.db import connection, connections

        from tenants.models import ApiToken, Membership, Role
        from triggers.cluster import kube
        from triggers.models import Trigger

        vendor = connection.vendor
        sim = _setup.start_kubesim(stack, tmp, **SIM)
        cluster = kube.cluster()
        tenant = _setup.make_tenant("logs", cluster)
        user = get_user_model().objects.create_user("logreader", "logreader@example.com", "bench-password")
        Membership.objects.create(tenant=tenant, user=user, role=Role.VIEWER)
        _, token = ApiToken.generate(user=user, name="bench")
        triggers = Trigger.objects.bulk_create(
            Trigger(tenant=tenant, name=f"chatty-{i:03d}", image=IMAGE, min_scale=1, spec_version=1)
            for i in range(TRIGGERS))
        triggers = list(Trigger.objects.select_related("tenant").filter(tenant=tenant).order_by("pk"))
        manifests = [kube.render_ksvc(t) for t in triggers]
        connections.close_all()

        print(f"bench_logs: database {db_label}; Redis {os.environ.get('REDIS_URL')}; load average "
              f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs", flush=True)
        print(f"Part A — collection: {TRIGGERS} pods of {IMAGE} ({TRIGGERS * RATE:,} lines/s offered); kubesim, "
              f"`manage.py collect_logs` and uvicorn each in its own process", flush=True)
        collector = _setup.start(stack, "collector", [sys.executable, "manage.py", "collect_logs"],
                                 _setup.relay_env(sim, RELAY_LEADER_ELECTION="0"), tmp)
        collector.wait_for(lambda: "collect_logs: collecting" in collector.text(), 60, "collecting")
        uvicorn, base = _setup.start_uvicorn(stack, tmp, _setup.relay_env(sim))
        idle_rss = mem_mib(collector.pid, "VmRSS")
        ctx = {"sim": sim, "collector": collector, "uvicorn": uvicorn, "base": base, "token": token,
               "slug": tenant.slug, "triggers": triggers, "manifests": manifests}
        try:
            result = asyncio.run(collect(ctx))
        except BaseException:
            print(f"collector log (last lines):\n{collector.tail()}", file=sys.stderr)
            raise
        peak_rss, rss_now = mem_mib(collector.pid, "VmHWM"), mem_mib(collector.pid, "VmRSS")
        report_collection(result, idle_rss, peak_rss, rss_now)
        if "Traceback" in collector.text():
            problems.append("the collector logged a traceback")
            print(f"collector log (last lines):\n{collector.tail()}")
        if result["api_errors"]:
            reasons = [x for x in uvicorn.text().splitlines() if "answered 503" in x or "Error" in x]
            print("  uvicorn's log on the failed polls (last lines):\n    " + "\n    ".join(reasons[-3:]))
        for proc in (collector, uvicorn, sim.proc):  # Part B runs alone
            proc.stop()
        flush_costs(triggers)
        print(f"  Part A took {time.perf_counter() - started:.0f} s so far", flush=True)

        print(f"Part B — retention at volume ({'PostgreSQL' if vendor == 'postgresql' else 'SQLite'})", flush=True)
        retention(vendor, [t.pk for t in triggers[:PRUNE_TRIGGERS]])
        connections.close_all()
    took = time.perf_counter() - started
    print(f"bench_logs total: {took:.0f} s (goal: < 240 s)")
    if problems:
        print("ABSURD FIGURES:\n" + "\n".join(f"  - {p}" for p in problems))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
