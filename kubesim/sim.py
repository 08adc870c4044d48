"""The Simulator: one Store, the Knative controllers and three aiohttp servers on one event loop.

`Simulator` is for async code (the CLI, async tests); `SimulatorThread` runs one in its own thread and loop,
for synchronous tests and for relayweb's `make run`, and lets callers run code inside the sim loop (the
Store is not thread-safe by design: everything touching it runs on that loop).
"""

from __future__ import annotations

import asyncio
import base64
import importlib
import inspect
import logging
import os
import secrets
import threading
from collections.abc import Callable
from typing import Any

import yaml
from aiohttp import web

from .api import make_api_app
from .config import SimConfig
from .faults import Faults
from .leases import KEY as LEASES
from .leases import admit_lease
from .store import Store
from .watch import _CLOSE

log = logging.getLogger("kubesim.sim")

SEED_NAMESPACES = {
    "default": {},
    "kube-system": {},
    "kube-public": {},
    "knative-serving": {"app.kubernetes.io/name": "knative-serving"},
    "ambassador": {"app.kubernetes.io/name": "ambassador"},
}
# Knative's release manifest labels its namespace with the release (knative/serving knative-v1.23.0
# config/core/100-namespace.yaml: app.kubernetes.io/version, "devel" in git; hack/generate-yamls.sh
# writes the release tag without its "v" there, "1.23.0"): SimConfig.knative_version.
KNATIVE_VERSION_LABEL = "app.kubernetes.io/version"
# The API groups of Knative Serving's CRDs (serving-crds.yaml): not served without them.
KNATIVE_GROUP_SUFFIX = ".knative.dev"
# The Knative config maps as deploy/README.md has the operator apply them (deploy/knative/*.yaml):
# Ambassador as the ingress class (both keys: knative networking pkg/config/config.go NewConfigFromMap
# reads `ingress.class`, then `ingress-class`, the new key winning) and only the cluster-local domain.
SEED_CONFIG_MAPS = {
    "config-network": {"ingress.class": "ambassador.ingress.networking.knative.dev",
                       "ingress-class": "ambassador.ingress.networking.knative.dev"},
    "config-domain": {"svc.cluster.local": ""},
}


def _optional(module: str) -> Any:
    """Import a kubesim module that may not be written yet (the builders work in parallel)."""
    try:
        return importlib.import_module(f"kubesim.{module}")
    except ModuleNotFoundError as e:
        if e.name != f"kubesim.{module}":
            raise
        log.warning("kubesim.%s is missing: that part of the simulator is not running", module)
        return None


API_VERBS = ("get", "list", "watch", "create", "update", "patch", "delete", "deletecollection")


class Simulator:
    def __init__(self, config: SimConfig):
        self.config = config
        self.store = Store(history=config.watch_history)
        self.faults = Faults()
        self.token: str = config.token or secrets.token_urlsafe(24)
        config.token = self.token
        self.kubeconfig_path: str | None = config.kubeconfig
        self.serving: Any = None
        self.open_watches: set[asyncio.Queue] = set()
        self._runners: dict[str, web.AppRunner] = {}
        self._sites: dict[str, web.TCPSite] = {}
        self.ca_pem: bytes | None = None
        self._compactor: asyncio.Task | None = None
        # Kubernetes API requests served (everything under /api and /apis, watches and discovery
        # included, each request once; not /kubesim/ or /version), in total and by verb.
        self.api_requests = 0
        self.api_requests_by_verb: dict[str, int] = dict.fromkeys(API_VERBS, 0)
        for name, labels in SEED_NAMESPACES.items():
            if name == "knative-serving" and config.knative_version:
                labels = {**labels, KNATIVE_VERSION_LABEL: config.knative_version}
            self.store.create("namespaces", {"metadata": {"name": name, "labels": dict(labels)}})
        self.store.admission.setdefault(LEASES, []).append(admit_lease)
        for name, data in SEED_CONFIG_MAPS.items():
            self.store.create("configmaps", {"metadata": {"name": name, "namespace": "knative-serving",
                                                          "labels": {"app.kubernetes.io/name": "knative-serving"}},
                                             "data": dict(data)}, "knative-serving")

    def served(self, group: str) -> bool:
        """Whether the API server serves this API group (Knative's only with its CRDs installed)."""
        return self.config.knative_crds or not group.endswith(KNATIVE_GROUP_SUFFIX)

    def allowed(self, group: str, resource: str, verb: str, namespace: str | None) -> bool:
        """What RBAC would answer for the token: everything but SimConfig.denied."""
        for rule in self.config.denied:
            g, r, v, ns = (list(rule) + [None])[:4]
            if (g in (group, "*") and r in (resource, "*") and v in (verb, "*")
                    and (ns is None or ns == namespace)):
                return False
        return True

    @property
    def api_url(self) -> str:
        scheme = "https" if self.config.api_tls else "http"
        return f"{scheme}://{self.config.api_host}:{self.config.api_port}"

    @property
    def gateway_url(self) -> str:
        return f"http://{self.config.gateway_host}:{self.config.gateway_port}"

    @property
    def admin_url(self) -> str:
        return f"http://{self.config.admin_host}:{self.config.admin_port}"

    def count_request(self, verb: str) -> None:
        self.api_requests += 1
        self.api_requests_by_verb[verb] = self.api_requests_by_verb.get(verb, 0) + 1

    @property
    def gateway_running(self) -> bool:
        """False while the gateway is stopped by fault injection (gateway_stop) or not started."""
        return "gateway" in self._sites

    async def start(self) -> None:
        knative = _optional("knative")
        if knative is not None:
            self.serving = knative.Serving(self.store, self.config)
            await self.serving.start()
        ssl_context = None
        if self.config.api_tls:
            from .tlsutil import self_signed, server_context
            self.ca_pem, key_pem = self_signed(self.config.api_host)
            ssl_context = server_context(self.ca_pem, key_pem)
        self.config.api_port = await self._serve("api", make_api_app(self), self.config.api_host,
                                                 self.config.api_port, ssl_context)
        gateway = _optional("gateway")
        if gateway is not None:
            self.config.gateway_port = await self._serve(
                "gateway", gateway.make_gateway_app(self), self.config.gateway_host,
                self.config.gateway_port)
        admin = _optional("admin")
        if admin is not None:
            self.config.admin_port = await self._serve(
                "admin", admin.make_admin_app(self), self.config.admin_host, self.config.admin_port)
        if self.kubeconfig_path:
            write_kubeconfig(self.kubeconfig_path, self.api_url, self.token, self.ca_pem)
        if self.config.compact_interval > 0:
            self._compactor = asyncio.get_running_loop().create_task(self._compact_every())
        log.info("kubesim API %s, gateway %s, admin %s", self.api_url, self.gateway_url,
                 self.admin_url)

    async def _serve(self, name: str, app: web.Application, host: str, port: int,
                     ssl_context: Any = None) -> int:
        runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await runner.setup()
        site = web.TCPSite(runner, host, port, reuse_address=True, ssl_context=ssl_context)
        await site.start()
        self._runners[name], self._sites[name] = runner, site
        return runner.addresses[0][1]

    async def _compact_every(self) -> None:
        """kube-apiserver's compactor (kubernetes staging/src/k8s.io/apiserver/pkg/storage/etcd3/compact.go,
        `compactor`/`compact`): every interval it compacts etcd to the revision it saw at the previous
        interval, so one interval of history is always kept and an older resourceVersion is gone."""
        previous = 0
        while True:
            await asyncio.sleep(self.config.compact_interval)
            if previous > self.store.compacted_rv:
                log.info("compacted watch history at resourceVersion %d", self.store.compact(previous))
            previous = self.store.resource_version

    async def stop(self) -> None:
        if self._compactor is not None:
            self._compactor.cancel()
            self._compactor = None
        for q in list(self.open_watches):
            q.put_nowait(_CLOSE)
        await asyncio.sleep(0)
        if self.serving is not None:
            await _maybe_await(self.serving.stop())
        for runner in reversed(list(self._runners.values())):
            await runner.cleanup()
        self._runners.clear()
        self._sites.clear()

    async def gateway_stop(self) -> None:
        """Fault: the gateway port refuses connections (open connections are closed too)."""
        site = self._sites.pop("gateway", None)
        if site is not None:
            await site.stop()

    async def gateway_start(self) -> None:
        """Undo gateway_stop: listen again on the same port."""
        runner = self._runners.get("gateway")
        if runner is None or "gateway" in self._sites:
            return
        site = web.TCPSite(runner, self.config.gateway_host, self.config.gateway_port,
                           reuse_address=True)
        await site.start()
        self._sites["gateway"] = site


async def _maybe_await(value: Any) -> Any:
    return await value if inspect.isawaitable(value) else value


def kubeconfig_dict(server: str, token: str, ca_pem: bytes | None = None) -> dict:
    cluster: dict[str, Any] = {"server": server}
    if ca_pem:
        cluster["certificate-authority-data"] = base64.b64encode(ca_pem).decode()
    return {
        "apiVersion": "v1", "kind": "Config", "preferences": {},
        "clusters": [{"name": "kubesim", "cluster": cluster}],
        "users": [{"name": "kubesim", "user": {"token": token}}],
        "contexts": [{"name": "kubesim",
                      "context": {"cluster": "kubesim", "user": "kubesim", "namespace": "default"}}],
        "current-context": "kubesim",
    }


def write_kubeconfig(path: str, server: str, token: str, ca_pem: bytes | None = None) -> None:
    """Write a kubeconfig (mode 0600, it holds the token) pointing at the API server."""
    parent = os.path.dirname(os.path.abspath(path))
    os.makedirs(parent, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        yaml.safe_dump(kubeconfig_dict(server, token, ca_pem), f, sort_keys=False)


class SimulatorThread:
    """A Simulator running in a daemon thread with its own event loop."""

    def __init__(self, config: SimConfig):
        self.config = config
        self.sim: Simulator | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None

    def start(self, timeout: float = 30.0) -> SimulatorThread:
        """Start and block until all servers listen (re-raises a startup error)."""
        self._thread = threading.Thread(target=self._run, name="kubesim", daemon=True)
        self._thread.start()
        if not self._ready.wait(timeout):
            raise TimeoutError("kubesim did not start in time")
        if self._error is not None:
            raise self._error
        return self

    def _run(self) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        asyncio.set_event_loop(loop)
        try:
            self.sim = Simulator(self.config)
            loop.run_until_complete(self.sim.start())
        except BaseException as e:  # reported to start()
            self._error = e
            self._ready.set()
            loop.close()
            return
        self._ready.set()
        try:
            loop.run_forever()
        finally:
            try:
                loop.run_until_complete(self.sim.stop())
                pending = [t for t in asyncio.all_tasks(loop) if not t.done()]
                for t in pending:
                    t.cancel()
                if pending:
                    loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
            finally:
                loop.close()

    def stop(self, timeout: float = 15.0) -> None:
        if self._loop is None or self._thread is None or not self._thread.is_alive():
            return
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout)

    def call(self, fn: Callable[..., Any], *args: Any, timeout: float = 30.0) -> Any:
        """Run fn(*args) (plain or coroutine function) inside the sim loop and return its result."""
        if self._loop is None:
            raise RuntimeError("SimulatorThread is not started")

        async def run() -> Any:
            return await _maybe_await(fn(*args))

        return asyncio.run_coroutine_threadsafe(run(), self._loop).result(timeout)

    # conveniences for tests and relayweb
    @property
    def api_url(self) -> str:
        assert self.sim is not None
        return self.sim.api_url

    @property
    def gateway_url(self) -> str:
        assert self.sim is not None
        return self.sim.gateway_url

    @property
    def admin_url(self) -> str:
        assert self.sim is not None
        return self.sim.admin_url

    @property
    def token(self) -> str:
        assert self.sim is not None
        return self.sim.token

    @property
    def kubeconfig_path(self) -> str | None:
        return self.config.kubeconfig

    def __enter__(self) -> SimulatorThread:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
