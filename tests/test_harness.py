"""The test harness itself: timed-out waits explain themselves, and the simulated cluster's clocks leave every
deliberately slow (but healthy) handler far from a failure deadline."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.cluster import FAST
from tests.flakes import base_name
from tests.waiting import describe_cluster, explain_with, wait_for

TESTS = Path(__file__).resolve().parent


def test_a_timed_out_wait_names_the_predicate_and_dumps_what_the_test_registered():
    with explain_with("the world", lambda: "answer=41"), pytest.raises(AssertionError) as e:
        wait_for(lambda: 6 * 7 == 41, timeout=0.05, interval=0.01)
    text = str(e.value)
    assert text.startswith("timed out after 0.05s waiting for wait_for(lambda: 6 * 7 == 41")
    assert "test_harness.py:" in text
    assert "--- the world ---\nanswer=41" in text


def test_a_broken_dump_does_not_hide_the_timeout_and_a_message_wins():
    def broken() -> str:
        raise RuntimeError("cluster gone")

    with explain_with("cluster", broken), pytest.raises(AssertionError) as e:
        wait_for(lambda: False, timeout=0.01, message="the handler ready")
    assert str(e.value).startswith("timed out after 0.01s waiting for the handler ready\n")
    assert "(could not be read: RuntimeError: cluster gone)" in str(e.value)
    with pytest.raises(AssertionError) as e:  # outside the block the dump is gone
        wait_for(lambda: False, timeout=0.01, message="x")
    assert "cluster" not in str(e.value)


def test_the_cluster_dump_shows_the_namespace_phase_conditions_pods_and_events(kubesim, k8s):
    ns = "harness-dump"
    k8s.core.create_namespace({"metadata": {"name": ns}})
    try:
        k8s.custom.create_namespaced_custom_object("serving.knative.dev", "v1", ns, "services", {
            "apiVersion": "serving.knative.dev/v1", "kind": "Service", "metadata": {"name": "broken"},
            "spec": {"template": {"spec": {"containers": [{"image": "kubesim/crash"}]}}}})
        wait_for(lambda: "ExitCode1" in describe_cluster(kubesim, {ns}), message="the crash reported")
        text = describe_cluster(kubesim, {ns})
        assert f"namespace {ns}: Active" in text
        assert re.search(r"ksvc broken: generation 1 observed 1; .*Ready=False", text), text
        assert "revision broken-00001: " in text and "ContainerHealthy=False ExitCode1" in text
        assert re.search(r"pod broken-00001-deployment-\S+: Running", text), text
        assert "event Normal Pulling" in text
        assert "harness-dump" not in describe_cluster(kubesim, {"elsewhere"})
    finally:
        k8s.core.delete_namespace(ns)
    wait_for(lambda: "Terminating" in describe_cluster(kubesim, {ns}) or ns not in describe_cluster(kubesim, {ns}),
             message="namespace terminating or gone")


def _slow_starts() -> dict[str, float]:
    """Every `kubesim/slow-start:<d>` a test deploys on the suite's shared simulator (tests/kubesim has its own)."""
    found = {}
    for path in [p for p in TESTS.rglob("test_*.py") if p.relative_to(TESTS).parts[0] != "kubesim"]:
        for m in re.finditer(r"kubesim/slow-start:(\d+)(ms|s)\b", path.read_text()):
            found[f"{path.name}: {m.group(0)}"] = int(m.group(1)) / (1000 if m.group(2) == "ms" else 1)
    return found


def test_every_deliberately_slow_start_is_far_inside_the_progress_deadline():
    """A healthy slow start (0.8 s + pull + start = 0.95 s) once sat within 50 ms of the 1 s progress
    deadline: under load the revision failed ProgressDeadlineExceeded and the browser test waited in vain."""
    starts = _slow_starts()
    assert starts, "no slow-start handler found: the scan is broken"
    for where, delay in starts.items():
        healthy = FAST["image_pull_delay"] + FAST["start_delay"] + delay
        assert 5 * healthy <= FAST["progress_deadline"], f"{where}: a {healthy:.2f} s start is too close to " \
            f"the {FAST['progress_deadline']} s progress deadline"


@pytest.mark.parametrize(("nodeid", "name"), [
    ("tests/test_x.py::test_a[3-5]", "tests/test_x.py::test_a"),
    ("tests/test_x.py::test_a[body1-3-5]", "tests/test_x.py::test_a[body1]"),
    ("tests/test_x.py::test_a[body1]", "tests/test_x.py::test_a[body1]"),
])
def test_repeated_runs_are_counted_under_the_test_they_repeat(nodeid, name):
    assert base_name(nodeid) == name
