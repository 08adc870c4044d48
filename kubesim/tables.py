"""meta.k8s.io/v1 Table output, which kubectl asks for (`Accept: …;as=Table;…`) to print `get` listings.

Custom resources use their CRD's additionalPrinterColumns; the built-in kinds relayweb shows (pods,
deployments, services, namespaces…) get the columns the real apiserver prints.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

from .resources import Resource


def human_age(ts: str | None, now: datetime | None = None) -> str:
    """apimachinery's duration.HumanDuration of the time since `ts` ("5s", "3m20s", "2d")."""
    if not ts:
        return "<unknown>"
    try:
        t = datetime.strptime(ts, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    except ValueError:
        return "<unknown>"
    s = int(((now or datetime.now(UTC)) - t).total_seconds())
    if s < 0:
        return "0s"
    if s < 120:
        return f"{s}s"
    m = s // 60
    if m < 10:
        return f"{m}m{s % 60}s" if s % 60 else f"{m}m"
    if m < 180:
        return f"{m}m"
    h = m // 60
    if h < 8:
        return f"{h}h{m % 60}m" if m % 60 else f"{h}h"
    if h < 48:
        return f"{h}h"
    d = h // 24
    if d < 8:
        return f"{d}d{h % 24}h" if h % 24 else f"{d}d"
    if d < 365 * 2:
        return f"{d}d"
    return f"{d // 365}y{d % 365}d"


_FILTER = re.compile(r"^\[\?\(@\.([\w.]+)\s*==\s*'([^']*)'\)\]")
_INDEX = re.compile(r"^\['((?:[^'\\]|\\.)*)'\]")


def jsonpath(obj: Any, path: str) -> Any:
    """The subset of JSONPath CRD printer columns use: `.a.b`, `['k\\.x']`, `[?(@.type=='Ready')]`."""
    cur: list[Any] = [obj]
    rest = path.strip()
    while rest:
        if rest.startswith("."):
            m = re.match(r"^\.([\w-]+)", rest)
            if not m:
                return None
            cur = [c.get(m.group(1)) for c in cur if isinstance(c, dict)]
            rest = rest[m.end():]
        elif (m := _FILTER.match(rest)):
            field, value = m.group(1), m.group(2)
            cur = [x for c in cur if isinstance(c, list) for x in c
                   if isinstance(x, dict) and str(jsonpath(x, "." + field)) == value]
            rest = rest[m.end():]
        elif (m := _INDEX.match(rest)):
            k = m.group(1).replace("\\.", ".")
            cur = [c.get(k) for c in cur if isinstance(c, dict)]
            rest = rest[m.end():]
        else:
            return None
        cur = [c for c in cur if c is not None]
    return cur[0] if cur else None


def _col(name: str, type_: str = "string", fmt: str = "", priority: int = 0, desc: str = "") -> dict:
    return {"name": name, "type": type_, "format": fmt, "description": desc or name,
            "priority": priority}


def _pod_cells(o: dict) -> list:
    spec, st = o.get("spec") or {}, o.get("status") or {}
    statuses = st.get("containerStatuses") or []
    ready = sum(1 for c in statuses if c.get("ready"))
    restarts = sum(int(c.get("restartCount") or 0) for c in statuses)
    reason = st.get("reason") or st.get("phase") or "Pending"
    for c in statuses:
        state = c.get("state") or {}
        if state.get("waiting", {}).get("reason"):
            reason = state["waiting"]["reason"]
        elif state.get("terminated", {}).get("reason"):
            reason = state["terminated"]["reason"]
    if o["metadata"].get("deletionTimestamp"):
        reason = "Terminating"
    return [f"{ready}/{len(spec.get('containers') or [])}", reason, restarts,
            human_age(o["metadata"].get("creationTimestamp")), st.get("podIP") or "<none>",
            spec.get("nodeName") or "<none>"]


def _svc_cells(o: dict) -> list:
    spec = o.get("spec") or {}
    ports = ",".join(f"{p.get('port')}/{p.get('protocol', 'TCP')}" for p in spec.get("ports") or [])
    return [spec.get("type", "ClusterIP"), spec.get("clusterIP") or "<none>",
            spec.get("externalName") or "<none>", ports or "<none>",
            human_age(o["metadata"].get("creationTimestamp"))]


def _deploy_cells(o: dict) -> list:
    spec, st = o.get("spec") or {}, o.get("status") or {}
    return [f"{st.get('readyReplicas', 0)}/{spec.get('replicas', 1)}", st.get("updatedReplicas", 0),
            st.get("availableReplicas", 0), human_age(o["metadata"].get("creationTimestamp"))]


def _event_cells(o: dict) -> list:
    inv = o.get("involvedObject") or {}
    last = o.get("lastTimestamp") or o.get("eventTime") or o["metadata"].get("creationTimestamp")
    obj = f"{(inv.get('kind') or '').lower()}/{inv.get('name', '')}"
    return [human_age(last), o.get("type", ""), o.get("reason", ""), obj, o.get("message", "")]


_BUILTIN = {
    "pods": ([_col("Ready"), _col("Status"), _col("Restarts", "integer"), _col("Age"),
              _col("IP", priority=1), _col("Node", priority=1)], _pod_cells),
    "services": ([_col("Type"), _col("Cluster-IP"), _col("External-IP"), _col("Port(s)"), _col("Age")],
                 _svc_cells),
    "deployments.apps": ([_col("Ready"), _col("Up-to-date", "integer"), _col("Available", "integer"),
                          _col("Age")], _deploy_cells),
    "namespaces": ([_col("Status"), _col("Age")],
                   lambda o: [(o.get("status") or {}).get("phase", ""),
                              human_age(o["metadata"].get("creationTimestamp"))]),
    "configmaps": ([_col("Data", "integer"), _col("Age")],
                   lambda o: [len(o.get("data") or {}) + len(o.get("binaryData") or {}),
                              human_age(o["metadata"].get("creationTimestamp"))]),
    "secrets": ([_col("Type"), _col("Data", "integer"), _col("Age")],
                lambda o: [o.get("type", "Opaque"), len(o.get("data") or {}),
                           human_age(o["metadata"].get("creationTimestamp"))]),
}


def _cell(v: Any) -> Any:
    if v is None:
        return None
    return v if isinstance(v, int | float | str | bool) else str(v)


def table(res: Resource, objects: list[dict], resource_version: str, include: str = "Metadata") -> dict:
    """A Table for `objects` (one row each), columns chosen by resource."""
    name_col = _col("Name", fmt="name", desc="Name must be unique within a namespace.")
    if res.key == "events":  # the apiserver shows events without their (generated) names
        defs = [_col("Last Seen"), _col("Type"), _col("Reason"), _col("Object"), _col("Message"),
                {**name_col, "priority": 1}]
        rows = [{"cells": [*_event_cells(o), o["metadata"]["name"]], "object": _row_object(o, include)}
                for o in objects]
        return {"kind": "Table", "apiVersion": "meta.k8s.io/v1",
                "metadata": {"resourceVersion": resource_version}, "columnDefinitions": defs, "rows": rows}
    if res.key in _BUILTIN:
        cols, fn = _BUILTIN[res.key]
        defs = [name_col, *cols]
    else:
        defs = [name_col, *(_col(n, t) for n, t, _ in res.columns), _col("Age")]

        def fn(o: dict) -> list:
            return [_cell(jsonpath(o, p)) for _, _, p in res.columns] + \
                [human_age(o["metadata"].get("creationTimestamp"))]
    rows = [{"cells": [o["metadata"]["name"], *fn(o)], "object": _row_object(o, include)}
            for o in objects]
    return {"kind": "Table", "apiVersion": "meta.k8s.io/v1",
            "metadata": {"resourceVersion": resource_version}, "columnDefinitions": defs, "rows": rows}


def _row_object(o: dict, include: str) -> dict | None:
    if include == "None":
        return None
    if include == "Object":
        return o
    return {"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": o["metadata"]}


def wants_table(accept: str | None) -> bool:
    return bool(accept) and "as=Table" in accept
