"""Shared setup of the process-separated benchmarks (bench_ingress.py, bench_live.py).

Django is configured in the benchmark process (tests.settings: embedded Redis unless REDIS_URL is set, a
per-run Celery queue) on a fresh database — SQLite in a temporary directory, or, when DATABASE_URL names
PostgreSQL, a new database on that server, dropped at the end. kubesim, uvicorn and the watcher run as
subprocesses with their own interpreters (no shared GIL with the load generator); every process started
here is stopped when the ExitStack closes, also on error, and dies with us if we are killed.
"""

from __future__ import annotations

import os
import secrets
import signal
import socket
import statistics
import subprocess
import sys
import time
import urllib.request
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))


# ---------------------------------------------------------------- small helpers


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(predicate, timeout: float, message: str, interval: float = 0.05):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise RuntimeError(f"timed out after {timeout:.0f} s waiting for {message}")


def pct(values: list[float], p: float) -> float:
    """Percentile p (0-100) with linear interpolation between closest ranks."""
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    k = (len(ordered) - 1) * p / 100
    lo = int(k)
    hi = min(lo + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)


def median(values) -> float:
    return statistics.median(values)


def stop_on_sigterm() -> None:
    """SIGTERM unwinds like Ctrl-C, so the ExitStack still stops the subprocesses and drops the database."""
    def raise_interrupt(*_):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, raise_interrupt)


def _die_with_parent() -> None:  # runs in the child between fork and exec (Linux only)
    import ctypes

    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except OSError:
        pass


# ---------------------------------------------------------------- database and Django


def fresh_database(stack: ExitStack, tmp: Path) -> tuple[str, str]:
    """(DATABASE_URL, label) of a database nobody else uses; a PostgreSQL one is dropped at the end."""
    given = os.environ.get("DATABASE_URL", "")
    if not given.startswith(("postgres://", "postgresql://")):
        return f"sqlite:///{tmp / 'bench.sqlite3'}", "SQLite (temporary file; DATABASE_URL not set)"
    import psycopg2

    parts = urlsplit(given)
    name = f"relayweb_bench_{os.getpid()}"
    maintenance = urlunsplit(parts._replace(path="/postgres"))

    def run(sql: str) -> None:
        conn = psycopg2.connect(maintenance)
        conn.autocommit = True
        try:
            with conn.cursor() as cur:
                cur.execute(sql)
        finally:
            conn.close()

    run(f'CREATE DATABASE "{name}"')

    def drop() -> None:
        try:
            from django.db import connections

            connections.close_all()
        except Exception:  # noqa: BLE001 - Django may not be set up yet
            pass
        run(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    stack.callback(drop)
    host = parts.hostname or "127.0.0.1"
    label = f"PostgreSQL {host}:{parts.port or 5432}/{name} (fresh, dropped at the end)"
    return urlunsplit(parts._replace(path=f"/{name}")), label


def setup_django(stack: ExitStack, tmp: Path, **env: str) -> str:
    """Configure Django on a fresh, migrated database; returns the database label."""
    os.environ["DJANGO_SETTINGS_MODULE"] = "tests.settings"
    url, label = fresh_database(stack, tmp)
    os.environ["DATABASE_URL"] = url
    os.environ.setdefault("LOG_LEVEL", "WARNING")
    os.environ.update(env)

    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    return label


# ---------------------------------------------------------------- subprocesses


class Proc:
    """A subprocess logging to a file (a pipe nobody reads would fill up), stopped with SIGTERM then SIGKILL."""

    def __init__(self, name: str, argv: list[str], env: dict, log_path: Path):
        self.name, self.argv, self.env, self.log_path = name, argv, env, log_path
        self.proc: subprocess.Popen | None = None
        self.log = None

    def start(self) -> Proc:
        self.log = open(self.log_path, "w")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            self.argv, cwd=REPO, env=self.env, stdout=self.log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            preexec_fn=_die_with_parent if sys.platform == "linux" else None,  # noqa: PLW1509
        )
        return self

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def text(self) -> str:
        return self.log_path.read_text(errors="replace")

    def tail(self, lines: int = 30) -> str:
        return "\n".join(self.text().splitlines()[-lines:])

    def check(self) -> None:
        if self.proc is not None and self.proc.poll() is not None:
            raise RuntimeError(f"{self.name} exited ({self.proc.returncode}):\n{self.tail()}")

    def wait_for(self, predicate, timeout: float, message: str):
        def ready():
            self.check()
            return predicate()

        try:
            return wait_for(ready, timeout, f"{self.name}: {message}")
        except RuntimeError as e:
            raise RuntimeError(f"{e}\n{self.name} log:\n{self.tail()}") from None

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        if self.log is not None:
            self.log.close()
            self.log = None


def start(stack: ExitStack, name: str, argv: list[str], env: dict, tmp: Path) -> Proc:
    proc = Proc(name, argv, env, tmp / f"{name}.log")
    stack.callback(proc.stop)
    return proc.start()


@dataclass
class KubeSim:
    proc: Proc
    api_url: str
    gateway_url: str
    admin_url: str
    kubeconfig: str
    token: str


def start_kubesim(stack: ExitStack, tmp: Path, **timings: float) -> KubeSim:
    """`python -m kubesim` on free loopback ports; timings are SimConfig knobs (image_pull_delay=…)."""
    kubeconfig, token = str(tmp / "kubeconfig"), secrets.token_urlsafe(24)
    argv = [sys.executable, "-m", "kubesim", "--api", "127.0.0.1:0", "--gateway", "127.0.0.1:0",
            "--admin", "127.0.0.1:0", "--kubeconfig", kubeconfig, f"--token={token}", "--log-level", "WARNING"]
    for knob, value in timings.items():
        argv += [f"--{knob.replace('_', '-')}", str(value)]
    proc = start(stack, "kubesim", argv, {**os.environ}, tmp)
    line = proc.wait_for(lambda: next((x for x in proc.text().splitlines() if x.startswith("kubesim ready ")), None),
                         30, "ready line")
    fields = dict(part.split("=", 1) for part in line.split()[2:])
    return KubeSim(proc, fields["api"], fields["gateway"], fields["admin"], kubeconfig, token)


def relay_env(sim: KubeSim, **extra: str) -> dict:
    """The environment of relayweb's own processes: this run's database, Redis, queue and kubesim."""
    return {**os.environ, "DJANGO_SETTINGS_MODULE": "tests.settings", "RELAY_KUBECONFIG": sim.kubeconfig,
            "RELAY_GATEWAY_URL": sim.gateway_url, "RELAY_AMBASSADOR_ADMIN_URL": sim.admin_url,
            # production defaults where tests.settings shortens them
            "RELAY_INGRESS_CACHE_TTL": "2.0", **extra}


def start_uvicorn(stack: ExitStack, tmp: Path, env: dict, command=None) -> tuple[Proc, str]:
    """relayweb.asgi under uvicorn in its own process; returns it and its base URL once /healthz answers.
    `command(port)`, when given, is the argv to run instead (with RELAY_PORT set to the port)."""
    port = free_port()
    if command is not None:
        argv, env = command(port), {**env, "RELAY_PORT": str(port)}
    else:
        argv = [sys.executable, "-m", "uvicorn", "relayweb.asgi:application", "--host", "127.0.0.1",
                "--http", "relayweb.protocol:HttpProtocol", "--port", str(port), "--log-level", "warning",
                "--no-access-log", "--lifespan", "on"]
    proc = start(stack, "uvicorn", argv, env, tmp)
    base = f"http://127.0.0.1:{port}"

    def healthy() -> bool:
        try:
            with urllib.request.urlopen(f"{base}/healthz", timeout=2) as r:
                return r.status == 200
        except OSError:
            return False

    proc.wait_for(healthy, 60, "/healthz answering")
    return proc, base


# ---------------------------------------------------------------- tenants and triggers


def make_tenant(slug: str, cluster):
    """A ready tenant and its namespace in kubesim (what provisioning would have done)."""
    from tenants.models import Tenant
    from triggers.cluster import kube

    tenant = Tenant.objects.create(slug=slug, name=slug.title(), state=Tenant.State.READY)
    cluster.apply_namespace(kube.render_namespace(tenant))
    return tenant


def deploy(cluster, triggers, timeout: float = 60.0) -> None:
    """Apply the triggers' ksvcs, wait until each is ready and observed (address and revision written)."""
    from triggers.cluster import kube
    from triggers.cluster.status import observe_ksvc

    for trigger in triggers:
        cluster.apply_ksvc(kube.render_ksvc(trigger), exists=False)

    def ready() -> bool:
        for trigger in triggers:
            if not trigger.is_ready:
                observe_ksvc(trigger, cluster.get_ksvc(trigger.namespace, trigger.name))
        return all(t.is_ready for t in triggers)

    wait_for(ready, timeout, "triggers ready", interval=0.1)
