"""What the servers and controllers use of the Simulator and of Serving, as Protocols.

api.py, faults.py and watch.py are handed the Simulator; the knative_* modules are handed Serving. They
annotate with these Protocols instead of importing sim.py or knative.py (which import them): the imports go
one way (the kubesim-layers contract). Simulator and Serving satisfy them structurally; annotations only.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

from .config import SimConfig
from .store import Store


class FaultRules(Protocol):
    """faults.Faults, as the API server and watches use it."""

    rules: list

    def add(self, status: int | None = None, hang: float | None = None, count: int | None = None,
            verb: str | None = None, resource: str | None = None, namespace: str | None = None,
            message: str | None = None) -> Any: ...
    def clear(self) -> None: ...
    def take(self, verb: str, key: str, namespace: str | None) -> Any: ...
    def register_watch(self, drop: Callable[[str], None]) -> Callable[[], None]: ...
    def drop_watches(self, mode: str = "close") -> int: ...


class SimContext(Protocol):
    """sim.Simulator, as api.py, faults.py and watch.py use it."""

    config: SimConfig
    store: Store
    token: str
    faults: FaultRules
    serving: Any  # knative.Serving (kill_pod), when Knative is simulated
    open_watches: set
    api_requests: int
    api_requests_by_verb: dict[str, int]

    def allowed(self, group: str, resource: str, verb: str, namespace: str | None) -> bool: ...
    def count_request(self, verb: str) -> None: ...
    async def gateway_stop(self) -> None: ...
    async def gateway_start(self) -> None: ...


class ServingContext(Protocol):
    """knative.Serving, as the knative_* controllers and the runtime use it."""

    config: SimConfig
    store: Store
    revisions: dict
    pods: dict
    hosts: dict
    kingress_hosts: dict
    routed: set
    pod_logs: Any  # podlogs.PodLogRegistry

    def enqueue(self, item: tuple[str, str, str]) -> None: ...
    def enqueue_later(self, delay: float, item: tuple[str, str, str]) -> None: ...
    def set_host(self, host: str, route: Any) -> None: ...
    def remove_hosts(self, ns: str, name: str) -> None: ...
    def set_route_deps(self, ns: str, name: str, deps: set) -> None: ...
    def drop_route_deps(self, ns: str, name: str) -> None: ...
    def drop_revision(self, ns: str, name: str) -> None: ...
    def scale(self, rt: Any, replicas: int) -> None: ...
