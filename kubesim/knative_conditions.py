"""Knative's condition sets (knative.dev/pkg apis/condition_set.go), reproduced closely.

Conditions are kept sorted by type; `lastTransitionTime` moves only when a condition really
changes; True conditions carry no reason/message; the happy condition (`Ready`) follows its
dependents: MarkFalse on a dependent makes Ready False with the same reason and message,
MarkUnknown makes it Unknown unless another dependent is False, MarkTrue makes it True once all
dependents are True (otherwise Ready copies an unhappy dependent).
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

from .store import now_rfc3339

READY = "Ready"




def rfc3339(ts: float | None = None) -> str:
    return datetime.fromtimestamp(ts if ts is not None else time.time(), UTC) \
        .strftime("%Y-%m-%dT%H:%M:%SZ")


class Conditions:
    """Edits a status' `conditions` list in place with Knative's semantics."""

    def __init__(self, status: dict[str, Any], dependents: tuple[str, ...],
                 info: tuple[str, ...] = ()):
        self.status = status
        self.dependents = dependents
        self.info = info  # condition types with severity Info (never affect Ready)
        self.by_type: dict[str, dict] = {c["type"]: c for c in status.get("conditions") or []
                                         if isinstance(c, dict) and "type" in c}

    def get(self, ctype: str) -> dict | None:
        return self.by_type.get(ctype)

    def is_true(self, ctype: str) -> bool:
        c = self.by_type.get(ctype)
        return bool(c and c["status"] == "True")

    def status_of(self, ctype: str) -> str | None:
        c = self.by_type.get(ctype)
        return c["status"] if c else None

    def _set(self, ctype: str, status: str, reason: str = "", message: str = "") -> None:
        new: dict[str, Any] = {"type": ctype, "status": status}
        if ctype in self.info:
            new["severity"] = "Info"
        if reason:
            new["reason"] = reason
        if message:
            new["message"] = message
        old = self.by_type.get(ctype)
        if old is not None:
            same = {k: v for k, v in old.items() if k != "lastTransitionTime"}
            if same == new:
                return
        new["lastTransitionTime"] = now_rfc3339()
        # key order as the Go serializer writes them
        ordered = {k: new[k] for k in ("lastTransitionTime", "message", "reason", "severity",
                                       "status", "type") if k in new}
        self.by_type[ctype] = ordered
        self.status["conditions"] = [self.by_type[t] for t in sorted(self.by_type)]

    def initialize(self) -> None:
        for t in (READY, *self.dependents):
            if t not in self.by_type:
                self._set(t, "Unknown")

    def mark_true(self, ctype: str) -> None:
        self._set(ctype, "True")
        if ctype in self.info or ctype == READY:
            return
        unhappy = self._unhappy()
        if unhappy is None:
            self._set(READY, "True")
        else:
            self._set(READY, unhappy["status"], unhappy.get("reason", ""), unhappy.get("message", ""))

    def mark_unknown(self, ctype: str, reason: str = "", message: str = "") -> None:
        self._set(ctype, "Unknown", reason, message)
        if ctype in self.info or ctype == READY:
            return
        for d in self.dependents:
            c = self.by_type.get(d)
            if d != ctype and c is not None and c["status"] == "False":
                return
        self._set(READY, "Unknown", reason, message)

    def mark_false(self, ctype: str, reason: str = "", message: str = "") -> None:
        self._set(ctype, "False", reason, message)
        if ctype in self.info or ctype == READY:
            return
        self._set(READY, "False", reason, message)

    def _unhappy(self) -> dict | None:
        deps = [self.by_type[d] for d in self.dependents if d in self.by_type]
        missing = [d for d in self.dependents if d not in self.by_type]
        if missing:
            return {"status": "Unknown"}
        for want in ("False", "Unknown"):
            for c in deps:
                if c["status"] == want:
                    return c
        return None
