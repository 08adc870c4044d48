"""Ambassador's admin port (8877): diag overview (JSON and HTML), check_alive, check_ready.

The JSON has the top-level key set and value types of a real Emissary diag (the 3.0.0-rc.0
fixture; >= 1.6 shape, so no `clusters` key), built from the current KIngress routing table:
one `route_info` entry per KIngress host in the >= 1.5 Knative Mapping shape, and
`cluster_stats` counted from real gateway traffic (knative-ambassador.md §7).
"""

from __future__ import annotations

import hashlib
import html
import json
import socket
import time
import uuid
from email.utils import formatdate
from typing import Any

from aiohttp import web

VERSION = "1.14.4"
AMBASSADOR_NS = "ambassador"
WEBUI_KEYS = ("system", "route_info", "source_map", "ambassador_resolvers",
              "ambassador_services", "envoy_status", "cluster_stats", "loginfo", "errors")


def hr_duration(seconds: float) -> str:
    """Ambassador's human-readable uptime, e.g. `23 minutes, 59 seconds`."""
    s = int(seconds)
    parts = []
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60), ("second", 1)):
        n, s = divmod(s, size)
        if n or (unit == "second" and not parts):
            parts.append(f"{n} {unit}{'' if n == 1 else 's'}")
    return ", ".join(parts)


def _cluster(split: Any, rkey: str, health: dict) -> dict:
    host, port = split.revision + "." + split.namespace, 80
    c = {"_active": True, "_cache_key": f"Cluster-{split.cluster}", "_errored": False,
         "_hostname": host, "_namespace": split.namespace, "_port": port,
         "_referenced_by": [rkey], "_resolver": "kubernetes-service", "_rkey": split.cluster,
         "connect_timeout_ms": 3000, "enable_endpoints": False, "enable_ipv4": True,
         "enable_ipv6": False, "envoy_name": split.cluster, "ignore_cluster": False,
         "kind": "IRCluster", "lb_type": "round_robin", "location": rkey, "name": split.cluster,
         "namespace": split.namespace, "respect_dns_ttl": False, "service": split.service,
         "stats_name": split.service.replace(".", "_").replace(":", "_").replace("-", "_"),
         "targets": [{"ip": host, "port": port, "target_kind": "DNSname"}],
         "type": "strict_dns", "urls": [f"tcp://{host}:{port}"], "weight": split.percent}
    c["_hcolor"], c["_hmetric"], c["_health"] = health["hcolor"], health["hmetric"], \
        health["health"]
    return c


def build_diag(sim: Any) -> dict[str, Any]:
    serving = sim.serving
    now = time.time()
    uptime = now - serving.boot_time
    routes = sorted(serving.hosts.values(), key=lambda r: (r.namespace, r.kingress, r.host))
    route_info, groups, cluster_info, cluster_stats = [], {}, {}, {}
    amb_elements: dict[str, dict] = {
        "--diagnostics--": {"kind": "Diagnostics", "location": "--diagnostics--"},
        "--internal--": {"kind": "Internal", "location": "--internal--"}}
    envoy_elements: dict[str, dict] = {}
    source_map: dict[str, dict] = {"--diagnostics--": {"--diagnostics--": True},
                                   "--internal--": {"--internal--": True}}
    for r in routes:
        rkey = f"{r.mapping}.{r.namespace}.1"
        group_id = hashlib.sha1(f"{r.host}|/|{r.namespace}|{r.mapping}".encode()).hexdigest()
        clusters = []
        mappings = []
        for s in r.splits:
            st = serving.stats.get(s.cluster)
            health = st.as_diag() if st else serving.cluster_stats(s.cluster).as_diag()
            cluster_stats[s.cluster] = health
            c = _cluster(s, rkey, health)
            clusters.append(c)
            cluster_info[s.cluster] = c
            mappings.append({
                "_active": True, "_cache_key": f"Mapping-v2-{r.mapping}-{r.namespace}",
                "_errored": False, "_rkey": rkey, "_weight": s.percent,
                "add_request_headers": {k: {"append": True, "value": v}
                                        for k, v in s.headers.items()},
                "add_response_headers": {}, "cluster": {k: v for k, v in c.items()
                                                        if k != "weight"},
                "cluster_key": f"Cluster-{s.cluster}", "default_class": "httpmapping",
                "group_id": group_id, "headers": [{"name": ":authority", "regex": False,
                                                   "value": r.host}],
                "host": r.host, "kind": "Mapping", "location": rkey,
                "metadata_labels": dict(r.labels), "name": r.mapping, "namespace": r.namespace,
                "precedence": 0, "prefix": "/", "query_parameters": [], "regex_rewrite": {},
                "resolver": "kubernetes-service", "rewrite": "/",
                "route_weight": [0, 1, 1, 0, "/", "GET", f":authority-{r.host}"],
                "serialization": "", "service": s.service,
                # the timeout the gateway enforces (None: none, Envoy's 0 = disabled)
                "timeout_ms": int((r.timeout or 0) * 1000), "weight": s.percent})
        group = {"_active": True, "_cache_key": f"IRHTTPMappingGroup-{group_id}",
                 "_errored": False, "_referenced_by": [rkey], "_rkey": rkey,
                 "default_class": "httpmapping", "group_id": group_id,
                 "group_weight": [0, 1, 1, 0, "/", "GET", f":authority-{r.host}"],
                 "headers": [{"name": ":authority", "regex": False, "value": r.host}],
                 "host": r.host, "kind": "IRHTTPMappingGroup", "location": rkey,
                 "mappings": mappings, "metadata_labels": dict(r.labels),
                 "name": f"GROUP: {r.mapping}", "namespace": r.namespace, "precedence": 0,
                 "prefix": "/", "prefix_regex": False, "query_parameters": [],
                 "regex_rewrite": {}, "rewrite": "/", "serialization": ""}
        groups[f"grp-{group_id}"] = group
        route_info.append({"_group_id": group_id, "_route": group, "_source": rkey,
                           "clusters": clusters, "headers": [], "host": r.host,
                           "key": f"http://{r.host}/", "method": "*", "precedence": 0,
                           "prefix": "/", "rewrite": "/"})
        amb_elements[rkey] = {"kind": "Mapping", "location": rkey,
                              "parent": f"{r.kingress}.{r.namespace}",
                              "serialization": f"apiVersion: getambassador.io/v2\nkind: Mapping"
                                               f"\nname: {r.mapping}\nhost: {r.host}\n"}
        envoy_elements[rkey] = {"cluster": [{"name": c["name"], "type": "STRICT_DNS",
                                             "lb_policy": "ROUND_ROBIN",
                                             "connect_timeout": "3.000s"} for c in clusters],
                                "route": [{"match": {"prefix": "/", "headers": [
                                    {"exact_match": r.host, "name": ":authority"}]},
                                    "route": {"weighted_clusters": {"clusters": [
                                        {"name": c["name"], "weight": c["weight"]}
                                        for c in clusters]}}}]}
        source_map.setdefault(f"{r.kingress}.{r.namespace}", {})[rkey] = True
    n = len(route_info)
    since = "within the last second"
    config = sim.config
    system = {"ambassador_id": config.ambassador_id, "ambassador_namespace": AMBASSADOR_NS,
              "boot_time": formatdate(serving.boot_time, usegmt=True),
              "cluster_id": str(uuid.uuid5(uuid.NAMESPACE_DNS, "kubesim")), "debug_mode": False,
              "endpoints_enabled": False, "env_failures": ["no TLS contexts"], "env_good": False,
              "env_status": {
                  "Error check": {"specifics": [[True, "No errors logged"]], "status": True},
                  "Mappings": {"specifics": [[True, f"{n} Mapping{'' if n == 1 else 's'} "
                                                    f"{'is' if n == 1 else 'are'} active"]],
                               "status": True},
                  "TLS": {"specifics": [[False, "No TLSContexts are active"]], "status": False}},
              "hostname": f"ambassador-{socket.gethostname()[:10]}",
              "hr_uptime": hr_duration(uptime), "knative_enabled": config.knative_support,
              "latest_snapshot": "snapshot", "single_namespace": False, "statsd_enabled": False,
              "version": VERSION}
    return {
        "system": system,
        "envoy_status": {"alive": True, "ready": True, "uptime": hr_duration(uptime),
                         "since_update": since},
        "loginfo": {"all": "error"},
        "notices": [],
        "banner_content": "",
        "cluster_stats": cluster_stats,
        "cluster_info": cluster_info,
        "route_info": route_info,
        "active_elements": sorted(amb_elements),
        "ambassador_resources": {},
        "envoy_resources": {},
        "source_map": source_map,
        "ambassador_services": [],
        "ambassador_resolvers": [{"_source": "--internal--", "groups": [],
                                  "kind": "KubernetesServiceResolver",
                                  "name": "kubernetes-service"}],
        "ambassador_elements": amb_elements,
        "envoy_elements": envoy_elements,
        "errors": [],
        "groups": groups,
        "tlscontexts": [],
    }


def _html(diag: dict) -> str:
    rows = "".join(
        f"<tr><td>{html.escape(r['key'])}</td><td>{html.escape(c['service'])}</td>"
        f"<td>{c['weight']}</td><td style='color:{c['_hcolor']}'>{html.escape(str(c['_health']))}"
        f"</td></tr>" for r in diag["route_info"] for c in r["clusters"])
    s = diag["system"]
    return ("<!DOCTYPE html><html><head><title>Ambassador Diagnostics</title></head><body>"
            f"<h1>Ambassador Diagnostics</h1><p>Ambassador {s['version']} (kubesim), up "
            f"{html.escape(s['hr_uptime'])}, Knative support enabled.</p>"
            "<table><tr><th>URL</th><th>Service</th><th>Weight</th><th>Health</th></tr>"
            f"{rows}</table></body></html>")


def make_admin_app(sim: Any) -> web.Application:
    async def diag(request: web.Request) -> web.Response:
        data = build_diag(sim)
        if not request.query.get("json"):
            return web.Response(text=_html(data), content_type="text/html")
        flt = request.query.get("filter")
        if flt == "webui":
            data = {k: data[k] for k in WEBUI_KEYS}
        elif flt:
            return web.Response(text=json.dumps(data.get(flt)), content_type="application/json")
        return web.Response(text=json.dumps(data), content_type="application/json")

    async def check_alive(request: web.Request) -> web.Response:
        return web.Response(text="Ambassador is alive and well\n")

    async def check_ready(request: web.Request) -> web.Response:
        # Simulator.gateway_stop(): Envoy is gone, so not ready.
        if not sim.gateway_running:
            return web.Response(status=503, text="Ambassador is not ready\n")
        return web.Response(text="Ambassador is ready and waiting\n")

    app = web.Application()
    app.router.add_get("/ambassador/v0/diag/", diag)
    app.router.add_get("/ambassador/v0/diag", diag)
    app.router.add_get("/ambassador/v0/check_alive", check_alive)
    app.router.add_get("/ambassador/v0/check_ready", check_ready)
    return app
