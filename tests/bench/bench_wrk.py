"""Webhook path under `wrk`: `python tests/bench/bench_wrk.py` (run by `make bench`).

bench_ingress.py drives the relay with an aiohttp load generator, which saturates (in Python, on the same
cores) before the relay does. Here the load comes from `wrk` (C; Debian's `wrk`), side by side in one run,
each target POSTed 1 KiB of JSON (a small Lua script) by 2 wrk threads over 32 keep-alive connections,
2 s warm-up then 10 s measured (`--latency`), all four against the same warm echo handler in kubesim
(min_scale=1, never scaled to zero):

  (a) direct: kubesim's gateway with `Host: <ksvc>.<namespace>.svc.cluster.local` (the baseline, 1.00x);
  (b) nginx (Debian's nginx-light, a temporary config: one worker process, a keep-alive upstream to the
      gateway, `proxy_set_header Host <ksvc host>`): what a plain proxy in C costs on this path;
  (c) relayweb, sync trigger: every delivery recorded, the handler's answer relayed;
  (d) relayweb, async trigger: 202 once the delivery is stored, a Celery worker delivering meanwhile
      (how many it delivered during the run, and within DRAIN_MAX s after, is printed; what is left is
      purged from the queue so that it does not run into the next measurement).

relayweb runs as the Procfile says: its `web:` line (uvicorn with relayweb.protocol:HttpProtocol and its
flags) and its `worker:` line (`celery -A relayweb worker --concurrency 2`), read from the Procfile, with
the project's settings (relayweb.settings; DEBUG off) on a fresh database: PostgreSQL when DATABASE_URL
names a PostgreSQL server (a new database on it, dropped at the end), else a temporary SQLite file;
Redis: REDIS_URL, else the embedded one tests.settings starts; a Celery queue of this run's own.

The four targets are measured ROUNDS times, the order reversed every other round; each figure printed is
the median over the rounds (p50/p99: the median of each round's wrk percentile). Per run: req/s and its
ratio to direct, p50 and p99 latency and p99 added vs direct, non-2xx (wrk counts statuses >= 400) and
socket errors, the 1-minute load average as the run ends, and the CPU (user+sys) each process spent per
request: the servers with their children, this database's PostgreSQL backends, wrk. On a shared machine the
throughput follows the sum of those (the cores are saturated), so they say what a change saves. The goals
(issue 17: sync >= 0.5x direct with p99 <= 10 ms added; async >= 0.5x direct) are printed with whether each
is met; missing one does not fail the script. It exits non-zero when something broke: a server died, more
than 1 % of a run's requests failed, or a sync delivery answered was not recorded.

Nothing is pinned: wrk, kubesim, nginx or uvicorn, the Celery worker and PostgreSQL share this machine's
cores (and whatever else runs on it; the load averages show it). Everything started here is stopped, and
the temporary files and the database removed, at the end, also on error or SIGTERM.

`--profile PREFIX` then profiles the sync path under the same wrk load with py-spy (`pip install py-spy`):
PREFIX.txt (py-spy's raw collapsed stacks), PREFIX.svg (a flame graph), and a summary of where the web
process's CPU goes by module and by function. `--rounds 0 --profile PREFIX` profiles only.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections import Counter
from contextlib import ExitStack
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _setup  # noqa: E402

THREADS = 2
CONNECTIONS = 32
WARMUP = 2  # seconds
DURATION = 10  # seconds
ROUNDS = 2
DRAIN_MAX = 15.0  # seconds the Celery worker is given after an async run before its backlog is purged
MAX_ERROR_RATE = 0.01
PROFILE_SECONDS = 10
BODY = json.dumps({"event": "bench", "data": "x" * 997}, separators=(",", ":"))
assert len(BODY) == 1024, len(BODY)
SIM = dict(image_pull_delay=0.2, start_delay=0.2, route_ready_delay=0.0)
# What tests.settings sets for the test suite and the project's settings leave at their production defaults.
TEST_ONLY_ENV = ("RELAY_DEPLOY_POLL_INTERVAL", "RELAY_RETRY_BASE", "RELAY_TEST_CHANNEL_PREFIX")
GOALS = {"sync": 0.5, "async": 0.5}  # throughput ratio to direct
GOAL_SYNC_P99_ADDED = 10.0  # ms
CPU_SHOWN = {  # the processes whose CPU per request is shown for each target
    "direct": ("kubesim", "wrk"),
    "nginx": ("nginx", "kubesim", "wrk"),
    "sync": ("uvicorn", "postgres", "kubesim", "wrk"),
    "async": ("uvicorn", "postgres", "worker", "kubesim", "wrk"),  # kubesim: the worker's deliveries
}
LABELS = {
    "direct": "(a) direct: kubesim gateway",
    "nginx": "(b) nginx -> gateway",
    "sync": "(c) relayweb sync",
    "async": "(d) relayweb async (202)",
}

LUA = """wrk.method = "POST"
wrk.body = '%(body)s'
wrk.headers["Content-Type"] = "application/json"
%(host)s
function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format('WRKJSON {"requests": %%d, "duration_us": %%d, "connect": %%d, "read": %%d, ' ..
    '"write": %%d, "status": %%d, "timeout": %%d, "p50_us": %%d, "p90_us": %%d, "p99_us": %%d, "max_us": %%d}\\n',
    summary.requests, summary.duration, e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max))
end
"""

NGINX_CONF = """daemon off;
master_process on;
worker_processes 1;
pid {tmp}/nginx.pid;
error_log {tmp}/nginx-error.log warn;
events {{ worker_connections 1024; }}
http {{
    access_log off;
    client_body_temp_path {tmp}/body;
    proxy_temp_path {tmp}/proxy;
    fastcgi_temp_path {tmp}/fastcgi;
    uwsgi_temp_path {tmp}/uwsgi;
    scgi_temp_path {tmp}/scgi;
    upstream kubesim_gateway {{
        server {gateway};
        keepalive 64;
    }}
    server {{
        listen 127.0.0.1:{port};
        location / {{
            proxy_pass http://kubesim_gateway;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host {host};
        }}
    }}
}}
"""


# ---------------------------------------------------------------- wrk


def lua_script(tmp: Path, name: str, host: str | None) -> Path:
    path = tmp / f"{name}.lua"
    path.write_text(LUA % {"body": BODY, "host": f'wrk.headers["Host"] = "{host}"' if host else ""})
    return path


def wrk(url: str, script: Path, seconds: float) -> dict:
    """One wrk run: its counts and latency percentiles (ms) from the script's done() line."""
    argv = ["wrk", "-t", str(THREADS), "-c", str(CONNECTIONS), "-d", f"{seconds:g}s", "--timeout", "10s", "--latency",
            "-s", str(script), url]
    out = subprocess.run(argv, capture_output=True, text=True, timeout=seconds + 60, stdin=subprocess.DEVNULL)
    line = next((x for x in out.stdout.splitlines() if x.startswith("WRKJSON ")), None)
    if out.returncode != 0 or line is None:
        raise RuntimeError(f"wrk failed ({out.returncode}): {' '.join(argv)}\n{out.stdout}\n{out.stderr}")
    r = json.loads(line[len("WRKJSON "):])
    r["rps"] = r["requests"] / (r["duration_us"] / 1e6)
    for p in ("p50", "p90", "p99", "max"):
        r[p] = r.pop(f"{p}_us") / 1000
    r["socket_errors"] = r["connect"] + r["read"] + r["write"] + r["timeout"]
    return r


# ---------------------------------------------------------------- processes


def procfile(name: str, port: int | None = None) -> list[str]:
    """The Procfile's `name:` line as argv, run with this interpreter (`python -m uvicorn`, `python -m celery`)."""
    for line in (_setup.REPO / "Procfile").read_text().splitlines():
        if line.startswith(f"{name}:"):
            argv = shlex.split(line.split(":", 1)[1])
            argv = [str(port) if a == "${RELAY_PORT:-8000}" else a for a in argv]
            return [sys.executable, "-m", *argv]
    raise RuntimeError(f"no {name}: line in the Procfile")


def http_ok(url: str, headers: dict | None = None) -> bool:
    try:
        request = urllib.request.Request(url, data=BODY.encode(), headers={"Content-Type": "application/json",
                                                                           **(headers or {})})
        with urllib.request.urlopen(request, timeout=2) as r:
            return 200 <= r.status < 300
    except OSError:
        return False


def start_uvicorn(stack: ExitStack, tmp: Path, env: dict) -> tuple[_setup.Proc, str]:
    """The Procfile's web line, as `make run` starts it."""
    return _setup.start_uvicorn(stack, tmp, env, command=lambda port: procfile("web", port))


def start_worker(stack: ExitStack, tmp: Path, env: dict) -> _setup.Proc:
    proc = _setup.start(stack, "worker", procfile("worker"), env, tmp)
    proc.wait_for(lambda: " ready." in proc.text(), 60, "ready")
    return proc


def start_nginx(stack: ExitStack, tmp: Path, gateway_url: str, host: str) -> tuple[_setup.Proc, str]:
    root = tmp / "nginx"
    root.mkdir()
    port = _setup.free_port()
    conf = root / "nginx.conf"
    conf.write_text(NGINX_CONF.format(tmp=root, gateway=gateway_url.split("://", 1)[1], port=port, host=host))
    proc = _setup.start(stack, "nginx", ["nginx", "-p", str(root), "-e", str(root / "nginx-error.log"),
                                         "-c", str(conf)], {**os.environ}, tmp)
    base = f"http://127.0.0.1:{port}"
    proc.wait_for(lambda: http_ok(f"{base}/hook"), 20, "answering through the gateway")
    return proc, base


def family(procs: list[_setup.Proc]):
    import psutil

    out = []
    for proc in procs:
        try:
            p = psutil.Process(proc.pid)
            out += [p, *p.children(recursive=True)]
        except psutil.NoSuchProcess:
            pass
    return out


def settle(procs: list[_setup.Proc], timeout: float = 8.0) -> None:
    """Wait until the servers are idle (the previous run's writer backlog flushed, the worker's tasks done)."""
    import psutil

    members = family(procs)

    def cpu() -> float:
        total = 0.0
        for p in members:
            try:
                total += sum(p.cpu_times()[:2])
            except psutil.NoSuchProcess:
                pass
        return total

    deadline = time.monotonic() + timeout
    before = cpu()
    while time.monotonic() < deadline:
        time.sleep(0.25)
        now = cpu()
        if now - before < 0.03:  # under 12 % of one core, all of them together
            return
        before = now


def cpu_seconds(procs: list[_setup.Proc]) -> float:
    import psutil

    total = 0.0
    for p in family(procs):
        try:
            total += sum(p.cpu_times()[:2])
        except psutil.NoSuchProcess:
            pass
    return total


def postgres_backends() -> list[int]:
    """The PostgreSQL backends of this run's database (relayweb's connections), not the bench's own."""
    from django.db import connection

    if connection.vendor != "postgresql":
        return []
    with connection.cursor() as cursor:
        cursor.execute("SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND pid <> "
                       "pg_backend_pid()")
        return [pid for (pid,) in cursor.fetchall()]


class CpuMeter:
    """User+system CPU seconds of each server (with its children), this database's PostgreSQL backends (when
    this user may read their /proc) and wrk (this process's waited-for children)."""

    def __init__(self, servers: list[_setup.Proc]):
        self.servers = servers

    def snapshot(self) -> dict[str, float]:
        import psutil

        out: dict = {proc.name: cpu_seconds([proc]) for proc in self.servers}
        out["postgres"] = {}
        for pid in postgres_backends():
            try:
                out["postgres"][pid] = sum(psutil.Process(pid).cpu_times()[:2])
            except (psutil.NoSuchProcess, psutil.AccessDenied):
                pass
        usage = resource.getrusage(resource.RUSAGE_CHILDREN)
        out["wrk"] = usage.ru_utime + usage.ru_stime
        return out

    @staticmethod
    def spent(before: dict, after: dict) -> dict[str, float]:
        """CPU seconds between two snapshots; a backend that ended meanwhile is not counted (a worker's
        connection per task, one the ingress recycled after DB_CONN_MAX_AGE), a new one counts in full."""
        out = {k: after[k] - before[k] for k in after if k != "postgres" and k in before}
        if after["postgres"]:
            out["postgres"] = sum(cpu - before["postgres"].get(pid, 0.0) for pid, cpu in after["postgres"].items())
        return out


def purge_queue(final: bool = False) -> None:
    """Drop this run's Celery queue (messages the worker has not taken); at the end its bindings as well."""
    import redis

    queue = os.environ.get("CELERY_TASK_DEFAULT_QUEUE", "")
    if not queue.startswith("relayweb-test-"):
        return
    client = redis.Redis.from_url(os.environ["REDIS_URL"])
    try:
        # the queue and its priority lists ("<queue>:5" with CELERY_TASK_DEFAULT_PRIORITY, or "<queue>\x06\x165")
        own = re.compile(rf"{re.escape(queue)}(?:(?::|\x06\x16)\d+)?")
        keys = [k for k in client.scan_iter(match=f"{queue}*") if own.fullmatch(k.decode("latin-1"))]
        if final:
            keys += [f"_kombu.binding.{queue}", f"_kombu.binding_permanent.{queue}"]
        if keys:
            client.delete(*keys)
    finally:
        client.close()


# ---------------------------------------------------------------- measuring


class Bench:
    def __init__(self, targets: dict, servers: list[_setup.Proc], async_trigger, sync_trigger):
        self.targets, self.servers = targets, servers
        self.async_trigger, self.sync_trigger = async_trigger, sync_trigger
        self.runs: dict[str, list[dict]] = {name: [] for name in targets}
        self.answered: Counter = Counter()  # responses wrk completed (warm-ups included), per target
        self.broken: list[str] = []
        self.meter = CpuMeter(servers)

    def check_servers(self) -> None:
        for proc in self.servers:
            proc.check()  # raises if it exited

    def delivered(self) -> int:
        from triggers.models import Delivery

        return Delivery.objects.filter(trigger=self.async_trigger, state=Delivery.State.SUCCEEDED).count()

    def run(self, name: str, round_no: int) -> dict:
        url, script = self.targets[name]
        settle(self.servers)
        self.check_servers()
        before = self.delivered() if name == "async" else 0
        t0 = time.monotonic()
        warm = wrk(url, script, WARMUP)
        cpu0 = self.meter.snapshot()
        measured_from = self.delivered() if name == "async" else 0
        r = wrk(url, script, DURATION)
        r["load1"] = os.getloadavg()[0]
        cpu1 = self.meter.snapshot()
        # CPU per request (us) of the processes that work for this target
        spent = CpuMeter.spent(cpu0, cpu1)
        r["cpu"] = {k: spent[k] / max(r["requests"], 1) * 1e6 for k in CPU_SHOWN[name] if k in spent}
        self.check_servers()
        self.answered[name] += warm["requests"] + r["requests"]
        failed = warm["status"] + warm["socket_errors"] + r["status"] + r["socket_errors"]
        total = warm["requests"] + r["requests"] + warm["socket_errors"] + r["socket_errors"]
        r["failed"] = failed
        if failed > MAX_ERROR_RATE * max(total, 1):
            self.broken.append(f"{name}, round {round_no}: {failed} of {total} requests failed "
                               f"(non-2xx {warm['status'] + r['status']}, socket errors "
                               f"{warm['socket_errors'] + r['socket_errors']})")
        line = (f"  round {round_no} {LABELS[name]:<28} {r['rps']:7.0f} req/s  p50 {r['p50']:6.1f} ms  "
                f"p99 {r['p99']:6.1f} ms  non-2xx {r['status']}, socket errors {r['socket_errors']}  "
                f"load1 {r['load1']:.2f}"
                f"\n    CPU per request (user+sys): " + ", ".join(f"{k} {v:.0f} us" for k, v in r["cpu"].items()))
        if name == "async":
            now_delivered = self.delivered()
            during, in_window = now_delivered - before, now_delivered - measured_from
            worker_s = spent.get("worker", 0.0)
            run_s = time.monotonic() - t0
            accepted = warm["requests"] + r["requests"] - warm["status"] - r["status"]
            drained = time.monotonic() + DRAIN_MAX
            after = during
            while after < accepted and time.monotonic() < drained:
                time.sleep(0.5)
                after = self.delivered() - before
            waited = DRAIN_MAX - max(0.0, drained - time.monotonic())
            per = worker_s / in_window * 1000 if in_window else float("nan")
            r.update(accepted=accepted, during=during, after=after, run_s=run_s, waited=waited, worker_ms=per)
            line += (f"\n    Celery worker: {during} of the {accepted} accepted (warm-up included) delivered "
                     f"during the {run_s:.0f} s run ({during / run_s:.0f}/s), {after} by {waited:.1f} s after it"
                     + (f"; the other {accepted - after} purged from the queue" if after < accepted else "")
                     + f"; worker CPU {per:.1f} ms per webhook it delivered while measured (its fan-out of "
                       "the accepted ones included)")
            purge_queue()
            settle(self.servers)
            purge_queue()  # what a batch being dispatched meanwhile queued
        print(line, flush=True)
        self.runs[name].append(r)
        return r

    def recorded(self) -> None:
        """Every sync delivery answered is recorded (the writer commits in groups, just after answering)."""
        from triggers.models import Delivery

        rows = Delivery.objects.filter(trigger=self.sync_trigger)
        last, stable_since = -1, time.monotonic()
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            n = rows.count()
            if n != last:
                last, stable_since = n, time.monotonic()
            elif time.monotonic() - stable_since > 1.0:
                break
            time.sleep(0.2)
        ok = rows.filter(state=Delivery.State.SUCCEEDED, response_status=200).count()
        answered = self.answered["sync"]
        print(f"sync deliveries recorded: {last} ({ok} succeeded with the handler's 200) for {answered} responses "
              f"wrk completed (warm-ups included; requests cut off when wrk stops are recorded too) (goal: all)")
        if ok < answered - sum(r["status"] for r in self.runs["sync"]):
            self.broken.append(f"sync: {answered} answered but only {ok} recorded as succeeded")


def med(values) -> float:
    return _setup.median(values) if values else float("nan")


def report(bench: Bench) -> None:
    runs = bench.runs
    d_rps, d_p50, d_p99 = (med([r[k] for r in runs["direct"]]) for k in ("rps", "p50", "p99"))
    print(f"\nmedians of {len(runs['direct'])} rounds ({THREADS} wrk threads, {CONNECTIONS} keep-alive connections, "
          f"1 KiB JSON POST, {WARMUP} s warm-up + {DURATION} s measured per run):")
    print(f"  {'target':<30}{'req/s':>8}{'x direct':>10}{'p50 ms':>9}{'p99 ms':>9}{'p99 added':>11}"
          f"{'non-2xx/errors':>16}  load1 per run")
    figures = {}
    for name, label in LABELS.items():
        if not runs.get(name):
            continue
        rps, p50, p99 = (med([r[k] for r in runs[name]]) for k in ("rps", "p50", "p99"))
        failed = sum(r["status"] + r["socket_errors"] for r in runs[name])
        figures[name] = (rps, p99)
        added = "" if name == "direct" else f"{p99 - d_p99:+.1f} ms"
        loads = "/".join(f"{r['load1']:.1f}" for r in runs[name])
        print(f"  {label:<30}{rps:8.0f}{rps / d_rps:9.2f}x{p50:9.1f}{p99:9.1f}{added:>11}{failed:>16}  {loads}")
    per_round = ", ".join(f"{n} " + "/".join(f"{r['rps']:.0f}" for r in runs[n]) for n in figures)
    print(f"  (req/s per round: {per_round})")
    print("  CPU per request (user+sys, us; median of the rounds; postgres: this database's backends "
          "that lasted the run; async: the worker's CPU and kubesim's for its deliveries, per webhook accepted):")
    for name in figures:
        keys = dict.fromkeys(k for r in runs[name] for k in r["cpu"])
        cpu = {k: med([r["cpu"][k] for r in runs[name] if k in r["cpu"]]) for k in keys}
        print(f"    {LABELS[name]:<30}" + ", ".join(f"{k} {v:.0f}" for k, v in cpu.items())
              + f" (sum {sum(cpu.values()):.0f})")
    if runs.get("async"):
        a = runs["async"]
        print("  async deliveries by the Celery worker (--concurrency 2) per run: "
              + "; ".join(f"{r['during']} of {r['accepted']} during the run ({r['during'] / r['run_s']:.0f}/s), "
                          f"{r['after']} by {r['waited']:.0f} s after, {r['worker_ms']:.1f} ms of worker CPU each"
                          for r in a))
    print(f"  wrk ({THREADS} threads) shares the {os.cpu_count()} cores with kubesim, nginx/uvicorn, the Celery worker "
          f"and PostgreSQL (nothing pinned); the load averages show what else ran")
    print("goals (issue 17; not meeting one does not fail this script):")
    if "sync" in figures:
        rps, p99 = figures["sync"]
        met = rps / d_rps >= GOALS["sync"]
        print(f"  sync >= {GOALS['sync']}x direct: {rps / d_rps:.2f}x ({rps:.0f} vs {d_rps:.0f} req/s) -> "
              f"{'met' if met else 'NOT met'}")
        met = p99 - d_p99 <= GOAL_SYNC_P99_ADDED
        print(f"  sync p99 added <= {GOAL_SYNC_P99_ADDED:.0f} ms: {p99 - d_p99:+.1f} ms ({p99:.1f} vs {d_p99:.1f} ms) "
              f"-> {'met' if met else 'NOT met'}")
    if "async" in figures:
        rps, _ = figures["async"]
        met = rps / d_rps >= GOALS["async"]
        print(f"  async >= {GOALS['async']}x direct: {rps / d_rps:.2f}x ({rps:.0f} vs {d_rps:.0f} req/s) -> "
              f"{'met' if met else 'NOT met'}")
    if "nginx" in figures:
        print(f"  (reference: nginx, a plain proxy in C, {figures['nginx'][0] / d_rps:.2f}x direct, "
              f"p99 {figures['nginx'][1] - d_p99:+.1f} ms)")


# ---------------------------------------------------------------- profile


CATEGORIES = [  # (category, start of a frame's file as py-spy prints it), first match wins
    ("uvicorn: HTTP parsing (httptools), ASGI glue, response writes", ("uvicorn/", "httptools/")),
    ("relayweb/protocol.py (read deadlines)", ("relayweb/protocol.py",)),
    ("relayweb/asgi.py (dispatch)", ("relayweb/asgi.py",)),
    ("ingress (triggers/edge/ingress.py)", ("triggers/edge/ingress.py",)),
    ("upstream client (triggers/edge/upstream.py)", ("triggers/edge/upstream.py",)),
    ("headers (triggers/edge/headers.py)", ("triggers/edge/headers.py",)),
    ("signatures, sealing (triggers/security)", ("triggers/security/",)),
    ("route cache invalidation listener", ("triggers/edge/invalidation.py",)),
    ("writer (triggers/edge/delivery_writer.py: COPY rows, commit)", ("triggers/edge/delivery_writer.py",)),
    ("live events (triggers/live, channels, msgpack)", ("triggers/live/", "channels", "msgpack")),
    ("Celery publish (celery, kombu, redis)", ("celery/", "kombu/", "redis/", "triggers/enqueue.py")),
    ("Django ORM / db backends", ("django/db/",)),
    ("Django (settings, timezone, other)", ("django/",)),
    ("psycopg2", ("psycopg2/",)),
    ("asgiref (sync_to_async)", ("asgiref/",)),
    ("executor threads, locks, queues", ("concurrent/futures/", "threading.py", "queue.py", "_weakrefset.py")),
    ("json", ("json/",)),
    ("uuid", ("uuid.py",)),
    ("event loop (uvloop's C loop: polling, socket I/O, callbacks)", ("asyncio/runners.py",)),
    ("asyncio (futures, tasks, events, locks)", ("asyncio/",)),
]


def frame_file(frame: str) -> str:
    """py-spy's frame "function (path:line)" -> path (site-packages and the repository relative)."""
    return frame.rsplit(" (", 1)[-1].rsplit(":", 1)[0]


def category(frame: str) -> str:
    path = frame_file(frame)
    for name, starts in CATEGORIES:
        if path.startswith(starts):
            return name
    return f"other ({path})"


def analyse(raw: Path, top: int = 25) -> None:
    """Where the samples are: per category by the innermost frame (self) and by any frame (inclusive), per
    thread, and the functions with the most self samples."""
    own, inclusive, functions, threads, total = Counter(), Counter(), Counter(), Counter(), 0
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        frames = [f for f in stack.split(";") if f.endswith(")") and " (" in f]
        if not frames or not count.isdigit():
            continue
        n = int(count)
        total += n
        files = [frame_file(f) for f in frames]
        threads["executor threads (sync_to_async: writer, route loads)" if "concurrent/futures/thread.py" in files
                else "event loop thread" if any(f.startswith(("asyncio/", "uvicorn/")) for f in files)
                else "other threads"] += n
        own[category(frames[-1])] += n
        functions[frames[-1]] += n
        for cat in {category(f) for f in frames}:
            inclusive[cat] += n
    if not total:
        print("profile: no samples")
        return
    print(f"profile: {total} samples of the web process (threads on a CPU when sampled, 100/s)")
    print("  by thread: " + ", ".join(f"{k} {v / total:.0%}" for k, v in threads.most_common()))
    print("  (py-spy counts a thread that is runnable but preempted as busy: on a loaded machine a socket write that "
          "wakes the peer (wrk, kubesim) collects the samples of the preemption that follows; user+sys CPU per request "
          "above is the measure of cost)")
    print("  by module, self (innermost Python frame, with the C it calls) and inclusive (anywhere on the stack):")
    for cat, n in own.most_common():
        print(f"    {n / total:6.1%} self {inclusive[cat] / total:6.1%} incl  {cat}")
    print(f"  top {top} functions by self samples:")
    for fn, n in functions.most_common(top):
        print(f"    {n / total:6.1%}  {fn}")


def profile(prefix: str, uvicorn: _setup.Proc, url: str, script: Path) -> None:
    pyspy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    if not Path(pyspy).exists() and not shutil.which(pyspy):
        raise RuntimeError("--profile needs py-spy (pip install py-spy)")
    seconds = WARMUP + 2 * PROFILE_SECONDS + 3
    argv = ["wrk", "-t", str(THREADS), "-c", str(CONNECTIONS), "-d", f"{seconds}s", "--timeout", "10s", "--latency",
            "-s", str(script), url]
    load = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        time.sleep(WARMUP)
        for fmt, path in (("raw", f"{prefix}.txt"), ("flamegraph", f"{prefix}.svg")):
            subprocess.run([pyspy, "record", "--pid", str(uvicorn.pid), "--duration", str(PROFILE_SECONDS),
                            "--rate", "100", "--format", fmt, "-o", path], check=True, capture_output=True,
                           timeout=PROFILE_SECONDS + 30)
        out, _ = load.communicate(timeout=seconds + 30)
    finally:
        if load.poll() is None:
            load.kill()
            load.wait()
    line = next((x for x in out.splitlines() if x.startswith("WRKJSON ")), None)
    if line:
        r = json.loads(line[len("WRKJSON "):])
        print(f"profile: sync path under wrk, {r['requests'] / (r['duration_us'] / 1e6):.0f} req/s while py-spy "
              f"sampled 100/s ({r['status']} non-2xx); {prefix}.txt (raw stacks), {prefix}.svg (flame graph)")
    analyse(Path(f"{prefix}.txt"))


# ---------------------------------------------------------------- setup


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=ROUNDS, help="rounds of the four targets (default %(default)s)")
    parser.add_argument("--profile", metavar="PREFIX", help="then profile the sync path with py-spy")
    args = parser.parse_args()
    started = time.perf_counter()
    missing = [tool for tool in ("wrk", "nginx") if not shutil.which(tool)]
    if "wrk" in missing:
        print("bench_wrk: SKIPPED, wrk is not installed (Debian: apt-get install wrk nginx-light)")
        return 0
    _setup.stop_on_sigterm()
    given_env = set(os.environ)
    tmp = Path(tempfile.mkdtemp(prefix="relayweb-bench-wrk-"))
    with ExitStack() as stack:
        stack.callback(shutil.rmtree, tmp, ignore_errors=True)
        db_label = _setup.setup_django(stack, tmp, RELAY_KUBECONFIG=str(tmp / "kubeconfig"))
        stack.callback(purge_queue, final=True)
        from django.db import connections

        from triggers.cluster import kube
        from triggers.models import Trigger

        sim = _setup.start_kubesim(stack, tmp, **SIM)
        cluster = kube.cluster()
        tenant = _setup.make_tenant("bench", cluster)
        sync_t = Trigger.objects.create(tenant=tenant, name="echo-sync", image="kubesim/echo", min_scale=1)
        async_t = Trigger.objects.create(tenant=tenant, name="echo-async", image="kubesim/echo", min_scale=1,
                                         mode=Trigger.Mode.ASYNC)
        _setup.deploy(cluster, [sync_t, async_t])
        connections.close_all()
        env = _setup.relay_env(sim, DJANGO_SETTINGS_MODULE="relayweb.settings")
        for key in TEST_ONLY_ENV:
            if key not in given_env:
                env.pop(key, None)
        host = kube.render_ksvc(sync_t)["metadata"]["name"] + f".{sync_t.namespace}.svc.cluster.local"
        uvicorn, relay = start_uvicorn(stack, tmp, env)
        worker = start_worker(stack, tmp, env)
        servers = [sim.proc, uvicorn, worker]
        targets = {"direct": (f"{sim.gateway_url}/hook", lua_script(tmp, "direct", host))}
        if "nginx" in missing:
            print("nginx is not installed (Debian: apt-get install nginx-light): target (b) left out")
        else:
            nginx, proxy = start_nginx(stack, tmp, sim.gateway_url, host)
            servers.append(nginx)
            targets["nginx"] = (f"{proxy}/hook", lua_script(tmp, "nginx", None))
        targets["sync"] = (f"{relay}/hooks/{sync_t.token}/hook", lua_script(tmp, "relay", None))
        targets["async"] = (f"{relay}/hooks/{async_t.token}/hook", targets["sync"][1])
        print(f"setup (database, kubesim, uvicorn and a Celery worker as in the Procfile, nginx; 2 triggers ready): "
              f"{time.perf_counter() - started:.1f} s; database: {db_label}; Redis: {os.environ['REDIS_URL']}; "
              f"settings: relayweb.settings; load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
        print(f"wrk {THREADS} threads, {CONNECTIONS} connections, 1 KiB JSON POST, {WARMUP} s warm-up + {DURATION} s "
              f"per run, {args.rounds} rounds (order reversed every other round); wrk shares the cores with the "
              f"servers, nothing pinned")
        bench = Bench(targets, servers, async_t, sync_t)
        try:
            order = list(targets)
            for round_no in range(1, args.rounds + 1):
                for name in order if round_no % 2 else order[::-1]:
                    bench.run(name, round_no)
            if args.rounds:
                bench.recorded()
                report(bench)
            if args.profile:
                settle(servers)
                profile(args.profile, uvicorn, *targets["sync"])
        except BaseException:
            for proc in servers:
                print(f"{proc.name} log (last lines):\n{proc.tail(15)}", file=sys.stderr)
            raise
    print(f"bench_wrk total: {time.perf_counter() - started:.0f} s (goal: < 240 s)")
    if bench.broken:
        print("BROKEN:\n  " + "\n  ".join(bench.broken))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
