"""Fixtures for tests that need the cluster and a real Celery worker.

- `kubesim`: the simulated cluster (API server, Knative, gateway), in this process, on free ports,
  with short timings; relayweb talks to it over HTTP through the official client.
- `cluster`: points relayweb's settings at kubesim; a fresh `triggers.cluster.kube.Cluster`.
- `worker`: a real `celery -A relayweb worker` process on this run's queue, using the same test
  database and kubesim (tests using it need `transactional_db`, so the worker sees committed rows).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
from django.db import connection
from kubernetes import client as k8s_client
from kubernetes import config as k8s_config

from kubesim.config import SimConfig
from kubesim.sim import SimulatorThread
from tests.waiting import describe_cluster, explain_with, wait_for

__all__ = ["wait_for"]  # the tests' one polling helper lives in tests/waiting.py; imported from here too

REPO = Path(__file__).resolve().parents[2]
FIXTURES = REPO.parent / "shared" / "fixtures"

FAST = dict(image_pull_delay=0.05, start_delay=0.1, stable_window=1.0, scale_to_zero_grace=0.3,
            progress_deadline=10.0, activation_timeout=5.0, bookmark_interval=0.5, route_ready_delay=0.0)
FAST["termination_grace"] = 0.2  # deleted pods stay terminating this long


def shared_fixtures() -> Path:
    if not FIXTURES.is_dir():
        if os.environ.get("CI"):
            pytest.fail(f"shared fixtures missing at {FIXTURES}")
        pytest.skip(f"shared fixtures not found at {FIXTURES}")
    return FIXTURES


@pytest.fixture(scope="session")
def kubesim(tmp_path_factory):
    sim = SimulatorThread(SimConfig(kubeconfig=str(tmp_path_factory.mktemp("kubesim") / "kubeconfig"), **FAST))
    sim.start()
    yield sim
    sim.stop()


@pytest.fixture
def cluster(kubesim, settings):
    from triggers.cluster import kube

    settings.RELAY_KUBECONFIG = kubesim.kubeconfig_path
    kube.reset_cluster()
    with explain_with("kubesim", lambda: describe_cluster(kubesim)), explain_with("relayweb", relayweb_state):
        yield kube.cluster()
    kube.reset_cluster()
    kubesim.call(kubesim.sim.faults.clear)


@pytest.fixture
def k8s(kubesim):
    """Official clients for assertions on the cluster, independent of relayweb's wrapper."""
    api = k8s_config.new_client_from_config(config_file=kubesim.kubeconfig_path)
    yield type("K8s", (), {"core": k8s_client.CoreV1Api(api), "custom": k8s_client.CustomObjectsApi(api),
                           "networking": k8s_client.NetworkingV1Api(api), "api": api})
    api.close()


def relayweb_state() -> str:
    """What relayweb has observed of each trigger, and its latest deployments (for a timed-out wait)."""
    from triggers.models import Delivery, Deployment, Trigger

    lines = [f"trigger {t.tenant.slug}/{t.name}: ready={t.ready_status} {t.ready_reason} pods={t.ready_pods} "
             f"generation {t.observed_generation}/{t.generation} spec_version={t.spec_version}"
             for t in Trigger.objects.select_related("tenant").order_by("pk")[:20]]
    lines += [f"deployment {d.trigger.name} v{d.spec_version}: {d.status} {d.message[:200]}"
              for d in Deployment.objects.select_related("trigger").order_by("-pk")[:10]]
    lines += [f"delivery {d.pk} to {d.trigger.name} ({d.mode}): {d.state} attempts={d.attempts} "
              f"status={d.response_status} next={d.next_attempt_at} {d.error[:200]}"
              for d in Delivery.objects.select_related("trigger").order_by("-received_at")[:10]]
    return "\n".join(lines) or "(no triggers)"


def _database_url() -> str:
    s = connection.settings_dict
    if s["ENGINE"].endswith("sqlite3"):
        return f"sqlite:///{s['NAME']}"
    auth = s["USER"] + (f":{s['PASSWORD']}" if s["PASSWORD"] else "")
    return f"postgres://{auth}@{s['HOST'] or '127.0.0.1'}:{s['PORT'] or 5432}/{s['NAME']}"


class Worker:
    """A `celery worker` process. Its output goes to a file, never to a pipe nobody reads (a full pipe would
    block the worker's logging, and so its tasks); a timed-out wait shows the file's last lines."""

    def __init__(self, env: dict):
        self.env = env
        self.proc: subprocess.Popen | None = None
        self.log_path: Path | None = None

    def start(self) -> Worker:
        fd, name = tempfile.mkstemp(prefix="relayweb-worker-", suffix=".log")
        self.log_path = Path(name)
        with os.fdopen(fd, "w") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "celery", "-A", "relayweb", "worker", "--pool", "solo", "--loglevel", "INFO",
                 "--without-gossip", "--without-mingle", "--without-heartbeat"],
                cwd=REPO, env=self.env, stdout=log, stderr=subprocess.STDOUT, text=True,
            )
        wait_for(lambda: self.proc.poll() is not None or "ready." in self.log_path.read_text(errors="replace"),
                 timeout=30, message="the celery worker's 'ready.'")
        if self.proc.poll() is not None:
            raise RuntimeError(f"celery worker exited {self.proc.returncode}:\n{self.log_tail()}")
        return self

    def log_tail(self, lines: int = 40) -> str:
        if not self.log_path or not self.log_path.exists():
            return "(no log)"
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def kill(self) -> None:
        """SIGKILL: the worker dies mid-task, as in a node failure."""
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.kill()
        if self.log_path:
            self.log_path.unlink(missing_ok=True)


@pytest.fixture
def worker_env(kubesim, transactional_db, settings):
    settings.RELAY_KUBECONFIG = kubesim.kubeconfig_path
    return {
        **os.environ, "DJANGO_SETTINGS_MODULE": "tests.settings", "DATABASE_URL": _database_url(),
        "RELAY_KUBECONFIG": kubesim.kubeconfig_path, "RELAY_GATEWAY_URL": kubesim.gateway_url,
        # short clocks: stuck deploys resumed after 1 s, delivery leases without margin
        "RELAY_STUCK_AFTER": "1", "RELAY_DEPLOY_TIMEOUT": "30", "RELAY_DELIVERY_LEASE_MARGIN": "0",
        "RELAY_ACTIVATION_TIMEOUT": "5",
    }


@pytest.fixture
def worker(worker_env, cluster):
    """A running worker; `worker.kill()` / `make_worker()` for the failure tests."""
    started = Worker(worker_env).start()
    with explain_with("celery worker (last lines)", started.log_tail):
        yield started
    started.stop()


@pytest.fixture
def make_worker(worker_env, cluster):
    workers: list[Worker] = []

    def make() -> Worker:
        workers.append(Worker(worker_env).start())
        return workers[-1]

    with explain_with("celery workers (last lines)",
                      lambda: "\n--\n".join(w.log_tail(20) for w in workers) or "(none started)"):
        yield make
    for w in workers:
        w.stop()


@pytest.fixture(scope="session")
def relay_server():
    """relayweb's ASGI application under a real uvicorn with the Procfile's protocol, in a thread (the ingress
    runs as in production)."""
    import socket
    import threading

    import uvicorn

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config("relayweb.asgi:application", host="127.0.0.1", port=port,
                                           log_level="warning", lifespan="on", http="relayweb.protocol:HttpProtocol",
                                           proxy_headers=False))  # as the Procfile: the ingress sees the peer
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    wait_for(lambda: server.started, message="uvicorn started")
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(10)


@pytest.fixture
def relay(relay_server, kubesim, cluster, transactional_db, settings):
    settings.RELAY_GATEWAY_URL = kubesim.gateway_url
    yield relay_server
    from relayweb.asgi import ingress

    # rows a test's last webhook left to the group-commit writer are written before the database is flushed
    wait_for(lambda: ingress.writer.idle, message="delivery writer drained")


@pytest.fixture
def live_trigger(cluster, tenant_a, k8s):
    """make(name, **fields): a trigger whose ksvc is ready in kubesim, observed as the poll would."""
    from triggers.cluster import kube
    from triggers.cluster.status import observe_ksvc
    from triggers.models import Trigger

    cluster.apply_namespace(kube.render_namespace(tenant_a))

    def make(name="hello", image="kubesim/echo", **fields):
        trigger = Trigger.objects.create(tenant=tenant_a, name=name, image=image, **fields)
        cluster.apply_ksvc(kube.render_ksvc(trigger), exists=False)

        def ready():
            observe_ksvc(trigger, cluster.get_ksvc(trigger.namespace, name))
            return trigger.is_ready

        wait_for(ready, message=f"{name} ready")
        # and its pods, as the watcher would have written them (a Ready ksvc has its first pod up): a trigger
        # observed warm is forwarded to at once, without a wake-up first (tests about cold starts set 0). Only
        # when no watcher wrote them already: a running one may have seen more recent pods than this list.
        pods = k8s.core.list_namespaced_pod(trigger.namespace, label_selector=f"relayweb.io/trigger={trigger.pk}")
        ready = sum(1 for p in pods.items if any(c.type == "Ready" and c.status == "True"
                                                 for c in p.status.conditions or ()))
        if "ready_pods" not in fields:  # a test about what the watcher writes passes ready_pods=None
            Trigger.objects.filter(pk=trigger.pk, ready_pods__isnull=True).update(ready_pods=ready)
        trigger.refresh_from_db(fields=["ready_pods"])
        return trigger

    yield make
    k8s.core.delete_namespace(tenant_a.namespace)
    wait_for(lambda: tenant_a.namespace not in {n.metadata.name for n in k8s.core.list_namespace().items},
             message="namespace gone")


@pytest.fixture(scope="session", autouse=True)
def _release_test_database(django_db_setup, django_db_blocker):
    """Threads of the in-process servers keep database connections; end them so the test DB can be dropped."""
    yield
    with django_db_blocker.unblock():
        from django.db import connection

        # (a run of async tests only may have handed the test database back already)
        if connection.vendor == "postgresql" and connection.settings_dict["NAME"].startswith("test_"):
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                               "WHERE datname = current_database() AND pid <> pg_backend_pid()")


@pytest.fixture(autouse=True)
def _no_abandoned_transactions(request):
    """Before a transactional test's flush, end connections an in-process server thread left idle in a
    transaction (the flush would wait for their locks forever), and say so."""
    if "transactional_db" not in request.fixturenames and "live_server" not in request.fixturenames:
        yield
        return
    request.getfixturevalue("transactional_db")  # set up first, so this is torn down before the flush
    yield
    from django.db import connection

    if connection.vendor != "postgresql":
        return
    query = ("SELECT pid, left(query, 200) FROM pg_stat_activity WHERE datname = current_database() "
             "AND state LIKE 'idle in transaction%%' AND pid <> pg_backend_pid() "
             "AND state_change < now() - interval '1 second'")  # younger ones are between two statements
    with connection.cursor() as cursor:
        deadline = time.monotonic() + 3
        while True:
            cursor.execute(query)
            stuck = cursor.fetchall()
            if not stuck or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        for pid, _query in stuck:
            cursor.execute("SELECT pg_terminate_backend(%s)", [pid])
    if stuck:
        import warnings

        warnings.warn(f"{request.node.nodeid}: ended {len(stuck)} connection(s) idle in a transaction: {stuck}",
                      stacklevel=2)
