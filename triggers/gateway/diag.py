"""Ambassador diagnostics: fetch `/ambassador/v0/diag/?json=true`, keep a compact snapshot in Redis.

The watcher calls `poll_once()` every RELAY_DIAG_INTERVAL seconds and broadcasts when `changed()`.
Operators see the whole state (`load()`); a tenant sees only its own triggers' routes (`for_hosts()`).
JSON shape: knative-ambassador.md §7. Parsing is tolerant: odd entries are skipped, and only a top
level that is not a usable diag object is an error. Route timeouts are in seconds.
"""

from __future__ import annotations

import json
import logging
import re
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

import redis
import requests
from django.conf import settings
from django.utils import timezone

log = logging.getLogger(__name__)

DIAG_PATH = "/ambassador/v0/diag/?json=true"
TLS_NOTE = "No TLSContext: normal for a plain-HTTP Knative install, not an outage"
# Fields that change on every poll without meaning anything (Envoy uptime strings, poll times).
VOLATILE_TOP = ("checked_at", "last_good_at")
VOLATILE_ENVOY = ("uptime", "since_update")
_SECTIONS = {"system": dict, "envoy_status": dict, "route_info": list, "cluster_stats": dict}


class DiagError(Exception):
    """Ambassador's diag could not be read or understood (the message says which)."""


def _reason(exc: requests.RequestException) -> str:
    """A stable, short reason (requests' messages carry object addresses that differ each time)."""
    if isinstance(exc, requests.Timeout):
        return "timed out"
    text = str(exc)
    errno = re.search(r"\[Errno -?\d+\][^'\")]*", text)
    if errno:
        return errno.group(0).strip()
    return re.sub(r"<[^>]* at 0x[0-9a-f]+>:?\s*", "", text)[:200] or type(exc).__name__


def fetch(base_url: str, timeout: float = 5) -> dict:
    url = base_url.rstrip("/") + DIAG_PATH
    session = requests.Session()
    session.trust_env = False  # the admin port is in-cluster: never through an HTTP proxy
    try:
        response = session.get(url, timeout=timeout, headers={"Accept": "application/json"})
    except requests.RequestException as exc:
        raise DiagError(f"cannot reach Ambassador diag at {url}: {_reason(exc)}") from exc
    finally:
        session.close()
    if response.status_code != 200:
        raise DiagError(f"Ambassador diag at {url} answered HTTP {response.status_code}: "
                        f"{response.text.strip()[:200]}")
    try:
        raw = response.json()
    except ValueError as exc:
        raise DiagError(f"malformed diag JSON: {url} did not return JSON") from exc
    if not isinstance(raw, dict):
        raise DiagError(f"malformed diag JSON: top level is {type(raw).__name__}, not an object")
    return raw


# ---------------------------------------------------------------------------------------- parse
def _str(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _bool(value: Any) -> bool | None:
    return value if isinstance(value, bool) else None


def _num(value: Any) -> int | float | None:
    return value if isinstance(value, int | float) and not isinstance(value, bool) else None


def _dict(value: Any) -> dict:
    return value if isinstance(value, dict) else {}


def _list(value: Any) -> list:
    return value if isinstance(value, list) else []


def _is_tls(text: str) -> bool:
    text = text.lower()
    return "tls" in text and "context" in text


def _system(raw: dict) -> dict:
    env_good = _bool(raw.get("env_good"))
    failures = [f for f in _list(raw.get("env_failures")) if isinstance(f, str)]
    checks = []
    for name, check in _dict(raw.get("env_status")).items():
        check = _dict(check)
        details = [str(s[1]) for s in _list(check.get("specifics")) if isinstance(s, list) and len(s) == 2]
        checks.append({"name": str(name), "ok": _bool(check.get("status")), "details": details})
    failing = [c["name"] for c in checks if c["ok"] is False]
    only_tls = (env_good is False and bool(failures or failing)
                and all(_is_tls(f) for f in failures) and all(n == "TLS" for n in failing))
    return {"version": _str(raw.get("version")), "hostname": _str(raw.get("hostname")),
            "knative_enabled": _bool(raw.get("knative_enabled")), "env_good": env_good,
            "env_failures": failures, "env_checks": checks, "env_note": TLS_NOTE if only_tls else None}


def _envoy(raw: dict) -> dict:
    return {"alive": _bool(raw.get("alive")), "ready": _bool(raw.get("ready")),
            "uptime": _str(raw.get("uptime")), "since_update": _str(raw.get("since_update"))}


def _timeout(group: dict) -> float | None:
    ms = _num(group.get("timeout_ms"))
    if ms is None:  # Knative groups carry it on their mappings
        found = [_num(_dict(m).get("timeout_ms")) for m in _list(group.get("mappings"))]
        found = [t for t in found if t is not None]
        ms = max(found) if found else None
    return ms / 1000 if ms is not None else None


def _route(entry: Any) -> tuple[dict, dict] | None:
    """One route_info entry → (route, {cluster name: health from the route's own cluster dicts})."""
    if not isinstance(entry, dict) or not isinstance(entry.get("host", "*"), str):
        return None
    clusters, health = [], {}
    for c in _list(entry.get("clusters")):
        if not isinstance(c, dict) or not isinstance(c.get("name"), str):
            continue
        clusters.append({"name": c["name"], "service": _str(c.get("service")), "weight": _num(c.get("weight"))})
        if isinstance(c.get("_hcolor"), str):
            health[c["name"]] = {"healthy_percent": None, "hcolor": c["_hcolor"], "health": _str(c.get("_health")),
                                 "upstream_ok": None, "upstream_4xx": None, "upstream_5xx": None, "valid": False}
    route = {"host": entry.get("host", "*"), "prefix": _str(entry.get("prefix")), "key": _str(entry.get("key")),
             "timeout": _timeout(_dict(entry.get("_route"))), "clusters": clusters}
    return route, health


def _cluster(stats: dict) -> dict:
    return {"healthy_percent": _num(stats.get("healthy_percent")), "hcolor": _str(stats.get("hcolor")) or "grey",
            "health": _str(stats.get("health")), "upstream_ok": _num(stats.get("upstream_ok")),
            "upstream_4xx": _num(stats.get("upstream_4xx")), "upstream_5xx": _num(stats.get("upstream_5xx")),
            "valid": stats.get("valid") is True}


def _errors(raw: list) -> list[list[str]]:
    out = []
    for e in raw:
        if isinstance(e, list | tuple) and len(e) == 2:
            out.append([str(e[0]) if e[0] is not None else "", str(e[1])])
        elif isinstance(e, str):
            out.append(["", e])
    return out


def _notices(raw: list) -> list[dict]:
    out = []
    for n in raw:
        if isinstance(n, dict) and isinstance(n.get("message"), str):
            out.append({"level": str(n.get("level") or "NOTICE"), "message": n["message"]})
        elif isinstance(n, str):
            out.append({"level": "NOTICE", "message": n})
    return out


def parse(raw: dict) -> dict:
    if not isinstance(raw, dict):
        raise DiagError(f"malformed diag JSON: top level is {type(raw).__name__}, not an object")
    if not any(isinstance(raw.get(k), t) for k, t in _SECTIONS.items()):
        raise DiagError("malformed diag JSON: none of system, envoy_status, route_info, cluster_stats "
                        "is present with the right type")
    routes, route_health = [], {}
    for entry in _list(raw.get("route_info")):
        parsed = _route(entry)
        if parsed:
            routes.append(parsed[0])
            route_health.update(parsed[1])
    clusters = {str(name): _cluster(s) for name, s in _dict(raw.get("cluster_stats")).items() if isinstance(s, dict)}
    for name, health in route_health.items():  # clusters Envoy has no stats for: the route's own health
        clusters.setdefault(name, health)
    return {"system": _system(_dict(raw.get("system"))), "envoy": _envoy(_dict(raw.get("envoy_status"))),
            "routes": routes, "clusters": clusters, "errors": _errors(_list(raw.get("errors"))),
            "notices": _notices(_list(raw.get("notices")))}


# ---------------------------------------------------------------------------------------- state
def _key() -> str:
    return getattr(settings, "RELAY_DIAG_KEY", "relayweb:diag")


def _redis() -> redis.Redis:
    return redis.Redis.from_url(settings.REDIS_URL, socket_timeout=5, socket_connect_timeout=5)


def load() -> dict | None:
    """The last stored state, or None when nothing was polled yet (or Redis cannot be read)."""
    try:
        with _redis() as r:
            data = r.get(_key())
    except redis.RedisError:
        log.warning("diag: cannot read the state from Redis", exc_info=True)
        return None
    try:
        state = json.loads(data) if data else None
    except ValueError:
        return None
    return state if isinstance(state, dict) else None


def poll_once(now: datetime | None = None) -> dict:
    """Fetch, parse and store; an unreachable or malformed diag keeps the last good snapshot. Never raises."""
    checked_at = (now or timezone.now()).isoformat(timespec="seconds")
    base = getattr(settings, "RELAY_AMBASSADOR_ADMIN_URL", "http://127.0.0.1:8877")
    try:
        state = {"reachable": True, "checked_at": checked_at, "last_good_at": checked_at,
                 "snapshot": parse(fetch(base))}
    except DiagError as exc:
        previous = load() or {}
        state = {"reachable": False, "error": str(exc), "checked_at": checked_at,
                 "last_good_at": previous.get("last_good_at"), "snapshot": previous.get("snapshot")}
    except Exception as exc:  # a parser bug must not stop the watcher
        log.exception("diag: unexpected error")
        previous = load() or {}
        state = {"reachable": False, "error": f"unexpected error reading diag: {type(exc).__name__}",
                 "checked_at": checked_at, "last_good_at": previous.get("last_good_at"),
                 "snapshot": previous.get("snapshot")}
    try:
        with _redis() as r:
            r.set(_key(), json.dumps(state))
    except redis.RedisError:
        log.warning("diag: cannot store the state in Redis", exc_info=True)
    return state


def _stable(state: dict | None) -> dict | None:
    if not isinstance(state, dict):
        return state
    out = {k: v for k, v in state.items() if k not in VOLATILE_TOP}
    snapshot = out.get("snapshot")
    if isinstance(snapshot, dict) and isinstance(snapshot.get("envoy"), dict):
        envoy = {k: v for k, v in snapshot["envoy"].items() if k not in VOLATILE_ENVOY}
        out["snapshot"] = {**snapshot, "envoy": envoy}
    return out


def changed(old: dict | None, new: dict | None) -> bool:
    """Whether a broadcast is due: poll times and Envoy's uptime strings do not count."""
    return _stable(old) != _stable(new)


# ---------------------------------------------------------------------------------------- tenants
def _bare_host(host: str) -> str:
    host = host.strip().lower()
    if host.startswith("^(") and host.endswith(")$"):  # Ambassador <= 1.4 writes Knative hosts as a regex
        host = host[2:-2].replace("\\.", ".")
    if host.startswith("["):  # [v6]:port
        return host.split("]")[0] + "]"
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


def for_hosts(state: dict | None, hosts: set[str]) -> dict:
    """A tenant's view: the routes for `hosts` (with or without a port) and the clusters they use."""
    wanted = {_bare_host(h) for h in hosts if h and "*" not in h}  # "*" routes are nobody's own
    snapshot = _dict((state or {}).get("snapshot"))
    routes = [r for r in _list(snapshot.get("routes"))
              if isinstance(r, dict) and isinstance(r.get("host"), str) and _bare_host(r["host"]) in wanted]
    names = {c["name"] for r in routes for c in r.get("clusters", [])}
    stats = _dict(snapshot.get("clusters"))
    return {"polled": state is not None, "reachable": bool(state and state.get("reachable")),
            "last_good_at": (state or {}).get("last_good_at"), "has_snapshot": bool(snapshot),
            "routes": routes, "clusters": {n: stats[n] for n in sorted(names) if n in stats}}


def trigger_hosts(trigger) -> set[str]:
    """The hosts Ambassador routes for one trigger: its cluster-local address and its URL."""
    return {urlsplit(u).hostname or "" for u in (trigger.address_url, trigger.url) if u} - {""}


def trigger_diag(trigger) -> dict | None:
    """Context for templates/triggers/_diag.html (`diag`); None when the watcher never polled."""
    state = load()
    if state is None:
        return None
    view = for_hosts(state, trigger_hosts(trigger))
    view["last_good_time"] = parse_time(view["last_good_at"])
    view["rows"] = [{"route": r, "cluster": c, "health": view["clusters"].get(c["name"])}
                    for r in view["routes"] for c in r["clusters"] or [{"name": "", "service": None, "weight": None}]]
    return view


def parse_time(value: Any) -> datetime | None:
    try:
        return datetime.fromisoformat(value) if isinstance(value, str) else None
    except ValueError:
        return None
