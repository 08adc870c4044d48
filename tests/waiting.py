"""Polling with a deadline that explains itself when it runs out.

`wait_for(predicate, ...)` polls until the predicate returns something truthy. On a timeout the error
names what it waited for (the `message`, or else the predicate's own source line) and appends the state
of everything the test registered with `explain_with()`: the fixtures that start a cluster register a
dump of it (namespace phases, ksvc / revision conditions, pods, recent events), so a flake in CI says
what the cluster looked like at the moment the wait gave up.
"""

from __future__ import annotations

import inspect
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

# What a timed-out wait prints after its message, registered by the fixtures a test uses.
_explainers: list[tuple[str, Callable[[], str]]] = []

SEED_NAMESPACES = {"default", "kube-system", "kube-public", "kube-node-lease", "knative-serving",
                   "ambassador"}


@contextmanager
def explain_with(title: str, dump: Callable[[], str]) -> Iterator[None]:
    """While the block runs, a timed-out `wait_for` appends `dump()` under `title`."""
    entry = (title, dump)
    _explainers.append(entry)
    try:
        yield
    finally:
        _explainers.remove(entry)


def describe_predicate(predicate: Callable[[], Any]) -> str:
    """The predicate's source line (for a lambda) or its name, and where it is."""
    try:
        lines, lineno = inspect.getsourcelines(predicate)
        where = f"{inspect.getsourcefile(predicate)}:{lineno}"
        text = " ".join(line.strip() for line in lines)
        if len(text) > 200:
            text = text[:200] + "…"
        return f"{text} ({where})"
    except (OSError, TypeError):
        return getattr(predicate, "__qualname__", repr(predicate))


def timeout_report(timeout: float, what: str) -> str:
    parts = [f"timed out after {timeout}s waiting for {what}"]
    seen = set()
    for title, dump in list(_explainers):
        if title in seen:
            continue
        seen.add(title)
        try:
            text = dump()
        except Exception as e:  # the report must never hide the timeout itself
            text = f"(could not be read: {type(e).__name__}: {e})"
        parts.append(f"--- {title} ---\n{text}")
    return "\n".join(parts)


def wait_for(predicate: Callable[[], Any], timeout: float = 20.0, interval: float = 0.05,
             message: str | None = None) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(timeout_report(timeout, message or describe_predicate(predicate)))
        time.sleep(interval)


# ------------------------------------------------------------------------------------ cluster state

def _conditions(obj: dict) -> str:
    conds = (obj.get("status") or {}).get("conditions") or []
    return ", ".join(
        f"{c.get('type')}={c.get('status')}" + (f" {c['reason']}" if c.get("reason") else "")
        + (f" ({c['message']})" if c.get("message") and c.get("status") != "True" else "")
        for c in conds) or "no conditions"


def _pod_line(pod: dict) -> str:
    meta, status = pod["metadata"], pod.get("status") or {}
    states = []
    for c in status.get("containerStatuses") or []:
        state = c.get("state") or {}
        kind = next(iter(state), "?")
        reason = (state.get(kind) or {}).get("reason", "")
        states.append(f"{c.get('name')}:{kind}{'/' + reason if reason else ''}"
                      f"{' ready' if c.get('ready') else ''} restarts={c.get('restartCount', 0)}")
    deleting = f" deleting since {meta['deletionTimestamp']}" if meta.get("deletionTimestamp") else ""
    return f"pod {meta['name']}: {status.get('phase')}{deleting} [{'; '.join(states)}]"


def describe_store(store: Any, namespaces: set[str] | None = None, events: int = 8) -> str:
    """Namespaces (phase), ksvcs and revisions (generation, conditions), pods, and the last events of each
    namespace not seeded by the simulator. Runs on the simulator's loop (see `describe_cluster`)."""
    lines = []
    for ns in store.iter_refs("namespaces"):
        name = ns["metadata"]["name"]
        if name in SEED_NAMESPACES or (namespaces is not None and name not in namespaces):
            continue
        deleting = " (deletionTimestamp set)" if ns["metadata"].get("deletionTimestamp") else ""
        lines.append(f"namespace {name}: {(ns.get('status') or {}).get('phase', 'Active')}{deleting}")
        for ksvc in store.iter_refs("services.serving.knative.dev", name):
            meta, status = ksvc["metadata"], ksvc.get("status") or {}
            lines.append(f"  ksvc {meta['name']}: generation {meta.get('generation')} observed "
                         f"{status.get('observedGeneration')}; {_conditions(ksvc)}")
        for rev in store.iter_refs("revisions.serving.knative.dev", name):
            status = rev.get("status") or {}
            lines.append(f"  revision {rev['metadata']['name']}: {_conditions(rev)}; replicas "
                         f"{status.get('actualReplicas')}/{status.get('desiredReplicas')}")
        for pod in store.iter_refs("pods", name):
            lines.append("  " + _pod_line(pod))
        recent = sorted(store.iter_refs("events", name),
                        key=lambda e: int(e["metadata"].get("resourceVersion") or 0))[-events:]
        for ev in recent:
            lines.append(f"  event {ev.get('type')} {ev.get('reason')} "
                         f"{(ev.get('involvedObject') or {}).get('name')}: {ev.get('message')}")
    return "\n".join(lines) or "(no namespaces besides the seeded ones)"


def describe_cluster(sim_thread: Any, namespaces: set[str] | None = None) -> str:
    """The state of a running `SimulatorThread`, read on its own loop (the store has no locks)."""
    return sim_thread.call(lambda: describe_store(sim_thread.sim.store, namespaces), timeout=5)
