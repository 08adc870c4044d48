"""Per-cluster traffic counters of the gateway, read by the admin port's diag `cluster_stats`.

Plain integer attributes bumped on the hot path; the diag computes health from them the way
Ambassador's envoy_stats.py does (healthy_percent = (completed - 5xx) / completed).
"""

from __future__ import annotations

import time


class ClusterStats:
    __slots__ = ("name", "ok", "c4xx", "c5xx", "bad", "created")

    def __init__(self, name: str):
        self.name = name
        self.ok = 0      # 2xx/3xx
        self.c4xx = 0
        self.c5xx = 0
        self.bad = 0     # requests that never got an upstream answer (reset / timeout)
        self.created = int(time.time())

    def count(self, status: int) -> None:
        if status < 400:
            self.ok += 1
        elif status < 500:
            self.c4xx += 1
        else:
            self.c5xx += 1

    def as_diag(self) -> dict:
        """The `cluster_stats[<name>]` entry of a valid cluster (envoy_stats.py cluster_stats)."""
        completed = self.ok + self.c4xx + self.c5xx
        if completed:
            pct = int(round(100.0 * (completed - self.c5xx) / completed))
            health, hmetric = f"{pct}% healthy", pct
            hcolor = "green" if pct >= 90 else "yellow" if pct >= 70 else "red"
            healthy_percent: int | None = pct
        else:
            health, hmetric, hcolor, healthy_percent = "no requests yet", "waiting", "grey", None
        return {"valid": True, "reason": f"Cluster {self.name} updated at {int(time.time())}",
                "healthy_members": 1, "total_members": 1, "healthy_percent": healthy_percent,
                "update_attempts": completed, "update_successes": completed,
                "update_percent": 100, "upstream_ok": self.ok, "upstream_4xx": self.c4xx,
                "upstream_5xx": self.c5xx, "upstream_bad": self.bad, "health": health,
                "hmetric": hmetric, "hcolor": hcolor}
