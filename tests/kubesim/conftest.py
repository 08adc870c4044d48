"""Shared kubesim fixtures: a running simulator on free ports with fast timings, and official clients.

`sim` is session-scoped (starting one takes ~50 ms but tests must not leak state into each other, so each
test works in its own namespace from the `ns` fixture). Tests that need a fresh simulator (faults that
stop things, benchmarks) use `make_sim`.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path

import pytest
from kubernetes import client, config

from kubesim.config import SimConfig
from kubesim.sim import SimulatorThread
from tests.waiting import describe_cluster, explain_with

REPO = Path(__file__).resolve().parents[2]
SHARED = REPO.parent / "shared"
FIXTURES = SHARED / "fixtures"

FAST = dict(image_pull_delay=0.05, start_delay=0.05, stable_window=0.5, scale_to_zero_grace=0.2,
            progress_deadline=1.0, activation_timeout=3.0, bookmark_interval=0.3,
            route_ready_delay=0.0)
FAST["termination_grace"] = 0.1  # deleted pods stay terminating this long


def fixtures_dir() -> Path:
    """The shared fixtures folder; skip (or fail under CI) when it is absent."""
    if not FIXTURES.is_dir():
        if os.environ.get("CI"):
            pytest.fail(f"shared fixtures missing at {FIXTURES}")
        pytest.skip(f"shared fixtures not found at {FIXTURES}")
    return FIXTURES


def _start(tmp: Path, **overrides) -> SimulatorThread:
    cfg = SimConfig(kubeconfig=str(tmp / "kubeconfig"), **{**FAST, **overrides})
    return SimulatorThread(cfg).start()


@pytest.fixture(scope="session")
def sim(tmp_path_factory) -> Iterator[SimulatorThread]:
    st = _start(tmp_path_factory.mktemp("kubesim"))
    yield st
    st.stop()


@pytest.fixture
def make_sim(tmp_path) -> Iterator[Callable[..., SimulatorThread]]:
    started: list[SimulatorThread] = []

    def make(**overrides) -> SimulatorThread:
        st = _start(tmp_path / f"s{len(started)}", **overrides)
        started.append(st)
        stack.enter_context(explain_with(f"kubesim #{len(started)} (make_sim)", lambda: describe_cluster(st)))
        return st

    with ExitStack() as stack:
        yield make
    for st in started:
        st.stop()


def api_client(st: SimulatorThread) -> client.ApiClient:
    return config.new_client_from_config(config_file=st.kubeconfig_path)


@pytest.fixture
def k8s(sim) -> Iterator[client.ApiClient]:
    api = api_client(sim)
    with explain_with("kubesim", lambda: describe_cluster(sim)):
        yield api
    api.close()


@pytest.fixture
def core(k8s) -> client.CoreV1Api:
    return client.CoreV1Api(k8s)


@pytest.fixture
def custom(k8s) -> client.CustomObjectsApi:
    return client.CustomObjectsApi(k8s)


@pytest.fixture
def apps(k8s) -> client.AppsV1Api:
    return client.AppsV1Api(k8s)


@pytest.fixture
def ns(core) -> Iterator[str]:
    """A fresh namespace per test (deleted afterwards)."""
    name = f"t-{uuid.uuid4().hex[:8]}"
    core.create_namespace({"metadata": {"name": name}})
    yield name
    try:
        core.delete_namespace(name)
    except client.ApiException:
        pass
