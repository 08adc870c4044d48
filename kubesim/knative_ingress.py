"""Ambassador's side of KIngress: mark it Ready and turn it into the gateway's routing table.

Ambassador >= 1.5 makes one Mapping per (host x split) with `timeout_ms` 15 s unless the path has a
timeout (knative-ambassador.md §5.2; emissary v1.14.4 python/ambassador/fetch/knative.py
KnativeIngressProcessor._emit_mapping: `path.get('timeout', '15s')`; Knative 1.x paths have none), which
is SimConfig.route_timeout here. Here each host maps to a `HostRoute` holding its splits; the
gateway does one dict lookup per request, so everything per-request is precomputed here.
"""

from __future__ import annotations

import bisect
import itertools
import random
import re
import time
from typing import TYPE_CHECKING

from .knative_conditions import now_rfc3339
from .knative_controllers import (
    AMBASSADOR_CLASS,
    INGRESS_CLASS_KEY,
    KINGRESS,
    LB_DOMAIN,
    ROUTE_LABEL,
)

if TYPE_CHECKING:
    from .context import ServingContext

AMBASSADOR_ID_KEY = "getambassador.io/ambassador-id"
_names: dict[str, str] = {}
_counter = itertools.count()


def cluster_name(service: str, namespace: str) -> str:
    """Ambassador's cluster name: `cluster_` + service with non-word chars as `_` + `_<ns>`."""
    name = "cluster_" + re.sub("[^0-9A-Za-z_]", "_", service) + "_" + namespace
    if len(name) > 60:
        if name not in _names:
            _names[name] = f"{name[:40]}-{next(_counter)}"
        return _names[name]
    return name


class Split:
    __slots__ = ("namespace", "revision", "percent", "headers", "cluster", "service", "key")

    def __init__(self, namespace: str, revision: str, percent: int, headers: dict[str, str],
                 port: int | str = 80):
        self.namespace, self.revision, self.percent = namespace, revision, percent
        self.headers = headers
        self.service = f"{revision}.{namespace}:{port}"
        self.cluster = cluster_name(self.service, namespace)
        self.key = (namespace, revision)


class HostRoute:
    """One KIngress host: its splits (weighted) and what diag's route_info shows."""

    __slots__ = ("host", "kingress", "namespace", "splits", "cum", "total", "labels",
                 "mapping", "timeout", "visibility", "live_at")

    def __init__(self, host: str, kingress: str, namespace: str, splits: list[Split],
                 labels: dict, mapping: str, timeout: float | None, visibility: str):
        self.host, self.kingress, self.namespace = host, kingress, namespace
        self.splits = splits
        self.labels, self.mapping, self.timeout = labels, mapping, timeout
        self.visibility = visibility
        self.live_at = 0.0  # monotonic time Envoy serves this host from (0: already)
        acc, self.cum = 0, []
        for s in splits:
            acc += max(0, s.percent)
            self.cum.append(acc)
        self.total = acc

    def live(self) -> bool:
        if self.live_at > time.monotonic():
            return False
        self.live_at = 0.0
        return True

    def pick(self) -> Split | None:
        splits = self.splits
        if len(splits) == 1:
            return splits[0]
        if not splits or self.total <= 0:
            return None
        return splits[bisect.bisect_right(self.cum, random.random() * self.total)]


def reconcile_kingress(serving: ServingContext, ns: str, name: str) -> None:
    store = serving.store
    ki = store.peek(KINGRESS, ns, name)
    # Envoy keeps serving a host it already had while a new configuration loads; a new host is served
    # only once Envoy has it, `route_ready_delay` after Emissary wrote the KIngress status (Emissary marks
    # it Ready once it generated the Mappings, before Envoy loaded them: fetch/knative.py _process then
    # _update_status; Envoy gets its configuration later over ADS).
    before = {h: serving.hosts[h].live_at for h in serving.kingress_hosts.get((ns, name), ())
              if h in serving.hosts}
    serving.remove_hosts(ns, name)
    if ki is None or ki["metadata"].get("deletionTimestamp"):
        return
    meta = ki["metadata"]
    cls = (meta.get("annotations") or {}).get(INGRESS_CLASS_KEY)
    if cls and cls.lower() != AMBASSADOR_CLASS:
        return
    # Emissary ignores a KIngress meant for another Ambassador: its getambassador.io/ambassador-id
    # (default "default", python/ambassador/fetch/k8sobject.py) must be its own id
    # (fetch/knative.py KnativeIngressProcessor._has_required_annotations). Nothing is routed and the
    # KIngress never turns Ready, so the Route stays IngressNotConfigured.
    if (meta.get("annotations") or {}).get(AMBASSADOR_ID_KEY, "default") != serving.config.ambassador_id:
        return
    labels = meta.get("labels") or {}
    hosts: list[str] = []
    delay = serving.config.route_ready_delay
    live_at = time.monotonic() + delay if delay else 0.0
    for ri, rule in enumerate((ki.get("spec") or {}).get("rules") or []):
        for path in (rule.get("http") or {}).get("paths") or []:
            splits = []
            for sp in path.get("splits") or []:
                headers = dict(path.get("appendHeaders") or {})
                headers.update(sp.get("appendHeaders") or {})
                splits.append(Split(sp.get("serviceNamespace") or ns, sp.get("serviceName", ""),
                                    int(sp.get("percent", 100) or 0), headers,
                                    sp.get("servicePort", 80)))
            for host in rule.get("hosts") or []:
                h = host.lower()
                hr = HostRoute(h, name, ns, splits, labels, f"{name}-{ri}-{len(hosts)}",
                               serving.config.route_timeout, rule.get("visibility", "ExternalIP"))
                hr.live_at = before.get(h, live_at)
                serving.set_host(h, hr)
                hosts.append(h)
            break  # Ambassador maps the first path of a rule (prefix "/")
    serving.kingress_hosts[(ns, name)] = hosts
    st = ki.get("status") or {}
    if st.get("observedGeneration") == meta.get("generation") and st.get("conditions"):
        return
    now = now_rfc3339()
    status = {"conditions": [{"lastTransitionTime": now, "status": "True", "type": t}
                             for t in ("LoadBalancerReady", "NetworkConfigured", "Ready")],
              "observedGeneration": meta.get("generation", 1),
              "privateLoadBalancer": {"ingress": [{"domainInternal": LB_DOMAIN}]}}
    store.mutate(KINGRESS, ns, name, lambda o: o.__setitem__("status", status), status=True, ref=True)
    route = labels.get(ROUTE_LABEL)
    if route:
        serving.enqueue(("route", ns, route))
