"""Deploy benchmark: `python tests/bench/bench_deploy.py` (run by `make bench`).

One run against kubesim (in this process, short timings) with ONE real Celery worker process:

- 200 triggers over 10 tenants created and deployed through the API (DRF's APIClient; the deploy
  tasks run in the worker): deploys per second from the first deploy request to the last deployment
  settled, time-to-ready p50/p95 minus kubesim's configured start delay; all must end ready.
- Kubernetes API calls per deploy on the happy path, counted server-side by kubesim (tenant
  provisioning excluded), with the breakdown by verb.
- Kubernetes API calls per reconcile pass (triggers.cluster.deploys.reconcile_all, in this process) at 200
  and at 2,000 triggers; the extra 1,800 are bulk-inserted rows whose ksvcs are created in kubesim
  directly through the official client.

The database is fresh: SQLite in a temporary directory, or, when DATABASE_URL names PostgreSQL, a new
database on that server, dropped at the end. Redis: REDIS_URL, else the embedded one tests.settings starts.
Everything listens on loopback and is stopped at the end, also on error.
"""

from __future__ import annotations

import collections
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(Path(__file__).resolve().parent))
import _setup  # noqa: E402

N_TENANTS = 10
N_TRIGGERS = 200
N_RECONCILE_LARGE = 2000
RECONCILE_REPEATS = 3
IMAGE = "kubesim/echo"
# kubesim handler timings: time-to-ready is reported minus image_pull_delay + start_delay.
SIM_TIMINGS = dict(image_pull_delay=0.05, start_delay=0.1, stable_window=600.0, scale_to_zero_grace=30.0,
                   progress_deadline=10.0, route_ready_delay=0.0)
START_DELAY = SIM_TIMINGS["image_pull_delay"] + SIM_TIMINGS["start_delay"]
POLL_INTERVAL = "0.2"
DEPLOY_TIMEOUT = 90.0  # seconds for all 200 deployments to settle before the benchmark gives up
KSVC = {"group": "serving.knative.dev", "version": "v1", "plural": "services"}


# ---------------------------------------------------------------- setup


class Worker:
    """`celery -A relayweb worker --pool solo`, logging to a file (a pipe nobody reads would fill up)."""

    def __init__(self, env: dict, log_path: Path):
        self.env, self.log_path, self.proc = env, log_path, None

    def start(self, timeout: float = 60.0) -> None:
        self.log = open(self.log_path, "w")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "relayweb", "worker", "--pool", "solo", "--loglevel", "INFO",
             "--without-gossip", "--without-mingle", "--without-heartbeat"],
            cwd=REPO, env=self.env, stdout=self.log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + timeout
        while "ready." not in self.log_path.read_text(errors="replace"):
            if self.proc.poll() is not None:
                raise RuntimeError(f"celery worker exited ({self.proc.returncode}):\n{self.tail()}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"celery worker did not start:\n{self.tail()}")
            time.sleep(0.1)

    def tail(self, lines: int = 30) -> str:
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        if self.proc:
            self.log.close()


wait_for, pct = _setup.wait_for, _setup.pct


def verbs(before: dict, after: dict) -> str:
    delta = {k: after.get(k, 0) - before.get(k, 0) for k in after}
    return ", ".join(f"{k} {v}" for k, v in sorted(delta.items(), key=lambda kv: -kv[1]) if v) or "none"


class Bench:
    def __init__(self, sim, worker: Worker):
        self.sim, self.worker = sim, worker

    def counter(self) -> tuple[int, dict]:
        def read(sim=self.sim.sim):
            return sim.api_requests, dict(sim.api_requests_by_verb)

        return self.sim.call(read)

    # ------------------------------------------------ tenants, triggers, deploys through the API
    def run_deploys(self) -> None:
        from django.contrib.auth import get_user_model
        from rest_framework.test import APIClient

        from tenants.models import Tenant
        from triggers.models import Deployment

        user = get_user_model().objects.create_user("bench", "bench@example.com", "bench-password")
        api = APIClient()
        api.force_authenticate(user)
        slugs = [f"bench-{i:02d}" for i in range(N_TENANTS)]
        for slug in slugs:
            response = api.post("/api/v1/tenants/", {"slug": slug, "name": slug.title()}, format="json")
            assert response.status_code == 201, response.content
        wait_for(lambda: Tenant.objects.filter(state=Tenant.State.READY).count() == N_TENANTS, 60,
                 "tenants provisioned")
        assert not Tenant.objects.exclude(state=Tenant.State.READY).exists()

        names = [(slugs[i % N_TENANTS], f"hook-{i:04d}") for i in range(N_TRIGGERS)]
        t0 = time.perf_counter()
        for slug, name in names:
            response = api.post(f"/api/v1/tenants/{slug}/triggers/", {"name": name, "image": IMAGE}, format="json")
            assert response.status_code == 201, response.content
        created_s = time.perf_counter() - t0

        calls0, verbs0 = self.counter()
        first_request = time.time()
        t0 = time.perf_counter()
        for slug, name in names:
            response = api.post(f"/api/v1/tenants/{slug}/triggers/{name}/deploy/")
            assert response.status_code == 202, response.content
        requested_s = time.perf_counter() - t0
        active = Deployment.objects.filter(status__in=Deployment.ACTIVE)
        wait_for(lambda: not active.exists(), DEPLOY_TIMEOUT, "deployments settled", interval=0.02)
        calls1, verbs1 = self.counter()

        deployments = list(Deployment.objects.all())
        statuses = collections.Counter(d.status for d in deployments)
        last_settled = max(d.finished_at.timestamp() for d in deployments)
        ready_times = [(d.finished_at - d.created_at).total_seconds() - START_DELAY for d in deployments]
        print(f"create {N_TRIGGERS} triggers over {N_TENANTS} tenants through the API: {created_s:.1f} s "
              f"({N_TRIGGERS / created_s:.0f}/s); {N_TRIGGERS} deploy requests took {requested_s:.1f} s")
        print(f"deployments ready: {statuses.get('ready', 0)}/{N_TRIGGERS} "
              f"({dict(statuses)}) (goal: {N_TRIGGERS}/{N_TRIGGERS})")
        print(f"deploys per second, first deploy request to last settled, 1 worker: "
              f"{N_TRIGGERS / (last_settled - first_request):.1f}/s "
              f"({last_settled - first_request:.1f} s) (baseline: first measurement)")
        print(f"time-to-ready p50 minus kubesim start delay ({START_DELAY:.2f} s): "
              f"{pct(ready_times, 50):.2f} s (baseline: first measurement)")
        print(f"time-to-ready p95 minus kubesim start delay ({START_DELAY:.2f} s): "
              f"{pct(ready_times, 95):.2f} s (baseline: first measurement)")
        print(f"Kubernetes API calls per deploy (happy path, counted server-side in kubesim, provisioning excluded): "
              f"{(calls1 - calls0) / N_TRIGGERS:.2f} ({calls1 - calls0} calls for {N_TRIGGERS} deploys; "
              f"by verb: {verbs(verbs0, verbs1)}) (goal: <= 3)")
        # Polls still queued when the last deployment settled may list a few more times.
        self.worker_idle()
        calls2, verbs2 = self.counter()
        if calls2 != calls1:
            print(f"  + {calls2 - calls1} calls after the last deployment settled, until the worker was idle "
                  f"(by verb: {verbs(verbs1, verbs2)})")
        if statuses.get("ready", 0) != N_TRIGGERS:
            failed = [d for d in deployments if d.status != "ready"][:5]
            raise SystemExit("not all deployments ended ready: "
                             + "; ".join(f"{d}: {d.reason} {d.message}" for d in failed))

    def worker_idle(self, quiet: float = 1.0, timeout: float = 15.0) -> None:
        """Wait until kubesim has seen no request for `quiet` seconds (the worker's queue drained)."""
        deadline = time.monotonic() + timeout
        last, since = self.counter()[0], time.monotonic()
        while time.monotonic() < deadline:
            time.sleep(0.1)
            now = self.counter()[0]
            if now != last:
                last, since = now, time.monotonic()
            elif time.monotonic() - since >= quiet:
                return

    # ------------------------------------------------ reconcile passes
    def reconcile_passes(self, label: str) -> int:
        from triggers.cluster import deploys, kube
        from triggers.models import Trigger

        n = Trigger.objects.count()
        results = []
        for i in range(RECONCILE_REPEATS):
            calls0, verbs0 = self.counter()
            client0 = kube.CountingApiClient.calls
            t0 = time.perf_counter()
            report = deploys.reconcile_all()
            elapsed = time.perf_counter() - t0
            calls1, verbs1 = self.counter()
            if kube.CountingApiClient.calls - client0 != calls1 - calls0:
                print(f"  note: kubesim counted {calls1 - calls0} calls, CountingApiClient in this process "
                      f"{kube.CountingApiClient.calls - client0}")
            results.append((calls1 - calls0, elapsed, report, verbs(verbs0, verbs1)))
            if i == 0 and (report.created or report.updated or report.deleted or report.errors):
                print(f"  note: reconcile pass 1 at {n} triggers changed something: {report}")
        calls = statistics.median(r[0] for r in results)
        report = results[-1][2]
        print(f"Kubernetes API calls per reconcile pass at {n} triggers: {calls:.0f} "
              f"(median of {RECONCILE_REPEATS}; {report.namespaces} namespaces; by verb: {results[-1][3]}; "
              f"{statistics.median(r[1] for r in results) * 1000:.0f} ms per pass) "
              f"(goal: {label})")
        assert report.checked == n and not (report.created or report.updated or report.deleted), str(report)
        kube.reset_cluster()
        return int(calls)

    def add_triggers(self, total: int) -> None:
        """Bulk rows (Trigger + its applied Deployment) and their ksvcs created directly in kubesim."""
        from django.utils import timezone
        from kubernetes import client as k8s_client
        from kubernetes import config as k8s_config

        from tenants.models import Tenant
        from triggers.cluster import kube
        from triggers.models import Deployment, Trigger

        tenants = list(Tenant.objects.order_by("slug"))
        have = Trigger.objects.count()
        now = timezone.now()
        t0 = time.perf_counter()
        triggers = Trigger.objects.bulk_create(
            Trigger(tenant=tenants[i % len(tenants)], name=f"bulk-{i:04d}", image=IMAGE, spec_version=1)
            for i in range(total - have)
        )
        manifests = [kube.render_ksvc(t) for t in triggers]
        Deployment.objects.bulk_create(
            Deployment(trigger=t, spec_version=1, status=Deployment.Status.READY, manifest=m, generation=1,
                       applied_at=now, finished_at=now)
            for t, m in zip(triggers, manifests, strict=True)
        )
        rows_s = time.perf_counter() - t0

        api = k8s_config.new_client_from_config(config_file=self.sim.kubeconfig_path)
        custom = k8s_client.CustomObjectsApi(api)
        t0 = time.perf_counter()
        try:
            with ThreadPoolExecutor(4) as pool:
                list(pool.map(lambda m: custom.create_namespaced_custom_object(
                    namespace=m["metadata"]["namespace"], body=m, **KSVC), manifests))
        finally:
            api.close()
        created_s = time.perf_counter() - t0
        print(f"  setup for {total} triggers: {len(triggers)} Trigger+Deployment rows bulk-inserted in "
              f"{rows_s:.1f} s; their ksvcs created in kubesim (official client, 4 threads) in {created_s:.1f} s "
              f"({len(triggers) / created_s:.0f}/s)")


def main() -> None:
    started = time.perf_counter()
    tmp = Path(tempfile.mkdtemp(prefix="relayweb-bench-deploy-"))
    with ExitStack() as stack:
        stack.callback(shutil.rmtree, tmp, ignore_errors=True)
        kubeconfig = str(tmp / "kubeconfig")
        os.environ["DJANGO_SETTINGS_MODULE"] = "tests.settings"
        os.environ["DATABASE_URL"], db_label = _setup.fresh_database(stack, tmp)
        os.environ["RELAY_KUBECONFIG"] = kubeconfig
        os.environ["RELAY_DEPLOY_POLL_INTERVAL"] = POLL_INTERVAL
        os.environ.setdefault("LOG_LEVEL", "WARNING")

        import django

        django.setup()  # tests.settings: embedded Redis unless REDIS_URL is set, a per-run Celery queue
        from django.core.management import call_command

        from kubesim import sim as sim_module
        from kubesim.config import SimConfig

        call_command("migrate", verbosity=0)

        sim = sim_module.SimulatorThread(SimConfig(kubeconfig=kubeconfig, **SIM_TIMINGS)).start()
        stack.callback(sim.stop)

        env = {**os.environ}  # DJANGO_SETTINGS_MODULE, DATABASE_URL, REDIS_URL, CELERY_TASK_DEFAULT_QUEUE, …
        worker = Worker(env, tmp / "worker.log")
        stack.callback(worker.stop)
        worker.start()
        print(f"setup (database, kubesim, worker): {time.perf_counter() - started:.1f} s; "
              f"database {db_label}, kubesim start delay {START_DELAY:.2f} s; "
              "API calls counted by kubesim (Simulator.api_requests)")

        bench = Bench(sim, worker)
        try:
            bench.run_deploys()
        except BaseException:
            print(f"worker log (last lines):\n{worker.tail()}", file=sys.stderr)
            raise
        worker.stop()  # reconcile runs in this process; nothing else talks to kubesim from here on

        small = bench.reconcile_passes("equal at 200 and 2,000: one list per namespace plus a constant")
        bench.add_triggers(N_RECONCILE_LARGE)
        large = bench.reconcile_passes(f"equal to the {small} at {N_TRIGGERS}")
        print(f"reconcile calls at {N_RECONCILE_LARGE} vs {N_TRIGGERS} triggers: {large} vs {small} "
              f"({'equal' if large == small else 'NOT equal'}) (goal: equal)")
    print(f"bench_deploy total: {time.perf_counter() - started:.0f} s (goal: < 180 s)")


if __name__ == "__main__":
    main()
