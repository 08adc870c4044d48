"""Flake hunting: `make test-flaky` runs the timing-sensitive tests repeatedly, in a random order, and
prints the flake rate per test.

- `--count N` (pytest-repeat) repeats each test; `--random-order` (pytest-random-order) shuffles them, so
  a test that depends on what ran before it (leftover cluster state, a namespace still terminating) is
  caught too.
- `--contend N` starts N threads in the test process that spin holding the GIL, as the full suite's
  in-process servers (relay, watcher, kubesim, the browser driver) do under load: a race between two
  timers of the simulated cluster shows up in a handful of runs instead of one CI run in twenty.
"""

from __future__ import annotations

import re
import threading
from collections import Counter

import pytest

_REPEAT_SUFFIX = re.compile(r"(\[|-)\d+-\d+\]$")  # pytest-repeat's "[2-5]" or "[param-2-5]"


def pytest_addoption(parser):
    parser.addoption("--contend", type=int, default=0, metavar="N",
                     help="N threads spinning in the test process (GIL contention), to make timing races show")


def _spin(stop: threading.Event) -> None:
    while not stop.is_set():
        sum(range(20_000))  # holds the GIL for a few hundred µs at a time, like request handling does


@pytest.fixture(scope="session", autouse=True)
def _contention(request):
    n = request.config.getoption("--contend")
    stop = threading.Event()
    threads = [threading.Thread(target=_spin, args=(stop,), name=f"contend-{i}", daemon=True) for i in range(n)]
    for t in threads:
        t.start()
    yield
    stop.set()


def base_name(nodeid: str) -> str:
    """The test a repeated item belongs to: `test_x[2-5]` → `test_x`, `test_x[a-2-5]` → `test_x[a]`."""
    m = _REPEAT_SUFFIX.search(nodeid)
    if not m:
        return nodeid
    return nodeid[: m.start()] + ("]" if m.group(1) == "-" else "")


def pytest_terminal_summary(terminalreporter, config):
    if (config.getoption("count", 1) or 1) <= 1:
        return
    seen: set[str] = set()
    broken: set[str] = set()
    for key in ("passed", "failed", "error"):
        for report in terminalreporter.stats.get(key, []):
            if getattr(report, "nodeid", None) is None or report.when is None:
                continue
            seen.add(report.nodeid)
            if key != "passed":
                broken.add(report.nodeid)
    runs = Counter(base_name(n) for n in seen)
    failed = Counter(base_name(n) for n in broken)
    terminalreporter.section("flake rate")
    for name, n in failed.most_common():
        terminalreporter.write_line(f"{n}/{runs[name]} runs failed: {name}")
    total, bad = sum(runs.values()), sum(failed.values())
    terminalreporter.write_line(f"flake rate: {bad} of {total} runs failed ({100 * bad / max(total, 1):.1f}%), "
                                f"{len(failed)} of {len(runs)} tests flaky")
