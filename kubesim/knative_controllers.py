"""Knative Serving's reconcilers for Service, Configuration and Route, one step each.

Every reconcile reads the current objects, writes children whose spec differs, and writes the
status with the reasons and messages of knative-ambassador.md §1.4 (the Service shows the
Configuration's state first, then the Route's, so Ready usually carries the Route's reason).
`observedGeneration` is set at the end of every reconcile, failed ones included.
"""

from __future__ import annotations

import hashlib
import json
import time
import weakref
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from .knative_admission import CREATOR, LAST_MODIFIER, VISIBILITY_LABELS
from .knative_conditions import Conditions, rfc3339
from .knative_runtime import go_duration
from .store import deep_copy

if TYPE_CHECKING:
    from .context import ServingContext

KSVC = "services.serving.knative.dev"
CONFIG = "configurations.serving.knative.dev"
REVISION = "revisions.serving.knative.dev"
ROUTE = "routes.serving.knative.dev"
KINGRESS = "ingresses.networking.internal.knative.dev"
K8S_SERVICE = "services"
SERVICE_LABEL = "serving.knative.dev/service"
CONFIG_LABEL = "serving.knative.dev/configuration"
ROUTE_LABEL = "serving.knative.dev/route"
INGRESS_CLASS_KEY = "networking.knative.dev/ingress.class"
TAG_TO_HOST_KEY = "networking.internal.knative.dev/tag-to-host"
AMBASSADOR_CLASS = "ambassador.ingress.networking.knative.dev"
LB_DOMAIN = "ambassador.ambassador.svc.cluster.local"
ROUTING_STATE = "serving.knative.dev/routingState"
ROUTING_STATE_MODIFIED = "serving.knative.dev/routingStateModified"
ROUTES_ANNOTATION = "serving.knative.dev/routes"
NO_GC = "serving.knative.dev/no-gc"

MSG_CFG_OUT_OF_DATE = "The Configuration is still working to reflect the latest desired specification."
MSG_RT_OUT_OF_DATE = "The Route is still working to reflect the latest desired specification."
MSG_NOT_MIGRATED = "Traffic is not yet migrated to the latest revision."
MSG_INGRESS_NOT_CONFIGURED = "Ingress has not yet been reconciled."


def owner_ref(obj: dict) -> dict:
    return {"apiVersion": obj["apiVersion"], "kind": obj["kind"], "name": obj["metadata"]["name"],
            "uid": obj["metadata"]["uid"], "controller": True, "blockOwnerDeletion": True}


def owned_by(obj: dict, owner: dict) -> bool:
    uid = owner["metadata"]["uid"]
    return any(r.get("uid") == uid for r in obj["metadata"].get("ownerReferences") or [])


def child_name(parent: str, suffix: str) -> str:
    """kmeta.ChildName: parent+suffix, kept within 63 characters with an md5 in the middle."""
    if len(parent) + len(suffix) <= 63:
        return parent + suffix
    h = hashlib.md5(parent.encode()).hexdigest()
    return parent[: max(0, 63 - len(suffix) - len(h))] + h + suffix


def is_cluster_local(labels: dict) -> bool:
    return any(labels.get(k) == "cluster-local" for k in VISIBILITY_LABELS)


def local_url(name: str, ns: str) -> str:
    return f"http://{name}.{ns}.svc.cluster.local"


def ready_of(obj: dict | None) -> dict | None:
    for c in ((obj or {}).get("status") or {}).get("conditions") or []:
        if c.get("type") == "Ready":
            return c
    return None


def _write_status(serving: ServingContext, key: str, ns: str, name: str, status: dict) -> dict | None:
    return serving.store.mutate(key, ns, name, lambda o: o.__setitem__("status", status), status=True, ref=True)


# -------------------------------------------------------------------------------- Service

def reconcile_service(serving: ServingContext, ns: str, name: str) -> None:
    store = serving.store
    svc = store.peek(KSVC, ns, name)
    if svc is None or svc["metadata"].get("deletionTimestamp"):
        return
    meta, spec = svc["metadata"], svc.get("spec") or {}
    labels = dict(meta.get("labels") or {}, **{SERVICE_LABEL: name})
    ann = {k: v for k, v in (meta.get("annotations") or {}).items()
           if not k.startswith("kubectl.kubernetes.io/")}
    status = deep_copy(svc.get("status") or {})
    conds = Conditions(status, ("ConfigurationsReady", "RoutesReady"))
    conds.initialize()

    cfg_spec = {"template": deep_copy(spec.get("template") or {})}
    cfg = _ensure_child(serving, CONFIG, svc, labels, ann, cfg_spec)
    traffic = []
    for t in spec.get("traffic") or [{"latestRevision": True, "percent": 100}]:
        t = dict(t)
        if not t.get("revisionName") and t.get("latestRevision", True):
            t.setdefault("configurationName", name)
            t["latestRevision"] = True
        traffic.append(t)
    route = _ensure_child(serving, ROUTE, svc, labels, ann, {"traffic": traffic})

    if cfg is None:
        conds.mark_false("ConfigurationsReady", "NotOwned",
                         f'There is an existing Configuration "{name}" that we do not own.')
    elif cfg["metadata"].get("generation") != (cfg.get("status") or {}).get("observedGeneration"):
        conds.mark_unknown("ConfigurationsReady", "OutOfDate", MSG_CFG_OUT_OF_DATE)
    else:
        cst = cfg.get("status") or {}
        for f in ("latestCreatedRevisionName", "latestReadyRevisionName"):
            if cst.get(f):
                status[f] = cst[f]
        _propagate(conds, "ConfigurationsReady", ready_of(cfg))
    if route is None:
        conds.mark_false("RoutesReady", "NotOwned",
                         f'There is an existing Route "{name}" that we do not own.')
    elif route["metadata"].get("generation") != (route.get("status") or {}).get(
            "observedGeneration"):
        conds.mark_unknown("RoutesReady", "OutOfDate", MSG_RT_OUT_OF_DATE)
    else:
        rst = route.get("status") or {}
        for f in ("url", "address", "traffic"):
            if f in rst:
                status[f] = deep_copy(rst[f])
            else:
                status.pop(f, None)
        _propagate(conds, "RoutesReady", ready_of(route))
        if conds.is_true("RoutesReady") and cfg is not None:
            _check_traffic_migrated(conds, cfg, route)
    if "url" not in status:
        cl = is_cluster_local(labels)
        status["url"] = local_url(name, ns) if cl else f"http://{name}.{ns}.{serving.config.domain}"
        status["address"] = {"url": local_url(name, ns)}
    status["observedGeneration"] = meta.get("generation", 1)
    _write_status(serving, KSVC, ns, name, status)


def _propagate(conds: Conditions, ctype: str, ready: dict | None) -> None:
    if ready is None:
        return
    if ready["status"] == "True":
        conds.mark_true(ctype)
    elif ready["status"] == "False":
        conds.mark_false(ctype, ready.get("reason", ""), ready.get("message", ""))
    else:
        conds.mark_unknown(ctype, ready.get("reason", ""), ready.get("message", ""))


def _check_traffic_migrated(conds: Conditions, cfg: dict, route: dict) -> None:
    want = route.get("spec", {}).get("traffic") or []
    got = (route.get("status") or {}).get("traffic") or []
    latest = (cfg.get("status") or {}).get("latestReadyRevisionName")
    if len(want) != len(got):
        conds.mark_unknown("RoutesReady", "TrafficNotMigrated", MSG_NOT_MIGRATED)
        return
    for w, g in zip(want, got, strict=True):
        rev = latest if w.get("latestRevision") else w.get("revisionName")
        if rev != g.get("revisionName"):
            conds.mark_unknown("RoutesReady", "TrafficNotMigrated", MSG_NOT_MIGRATED)
            return


def _ensure_child(serving: ServingContext, key: str, svc: dict, labels: dict, ann: dict,
                  spec: dict) -> dict | None:
    """Create or update the Service's Configuration/Route; None when another owner has it."""
    store = serving.store
    ns, name = svc["metadata"]["namespace"], svc["metadata"]["name"]
    child = store.peek(key, ns, name)
    if child is None:
        obj = {"metadata": {"name": name, "namespace": ns, "labels": labels, "annotations": ann,
                            "ownerReferences": [owner_ref(svc)]}, "spec": spec}
        return store.create(key, obj, ns, ref=True)
    if not owned_by(child, svc):
        return None
    cm = child["metadata"]
    if child.get("spec") != spec or cm.get("labels") != labels or cm.get("annotations") != ann:
        def fn(o: dict) -> None:
            o["spec"] = spec
            o["metadata"]["labels"] = labels
            o["metadata"]["annotations"] = ann
        child = store.mutate(key, ns, name, fn, ref=True) or child
    return child


# -------------------------------------------------------------------------- Configuration

def reconcile_configuration(serving: ServingContext, ns: str, name: str) -> None:
    store = serving.store
    cfg = store.peek(CONFIG, ns, name)
    if cfg is None or cfg["metadata"].get("deletionTimestamp"):
        return
    meta = cfg["metadata"]
    gen = meta.get("generation", 1)
    tmpl = (cfg.get("spec") or {}).get("template") or {}
    tmeta = tmpl.get("metadata") or {}
    rev_name = tmeta.get("name") or child_name(name, f"-{gen:05d}")
    status = deep_copy(cfg.get("status") or {})
    conds = Conditions(status, ())
    conds.initialize()
    rev = store.peek(REVISION, ns, rev_name)
    if rev is None:
        labels = dict(tmeta.get("labels") or {})
        labels.update({CONFIG_LABEL: name, "serving.knative.dev/configurationGeneration": str(gen),
                       "serving.knative.dev/configurationUID": meta["uid"]})
        cl = meta.get("labels") or {}
        if SERVICE_LABEL in cl:
            labels[SERVICE_LABEL] = cl[SERVICE_LABEL]
        ann = dict(tmeta.get("annotations") or {})
        ann[CREATOR] = (meta.get("annotations") or {}).get(LAST_MODIFIER, "")
        # A new revision is `pending` until a route names it (pkg/reconciler/configuration/resources/
        # revision.go MakeRevision: SetRoutingState(RoutingStatePending, now)).
        labels[ROUTING_STATE] = "pending"
        ann[ROUTING_STATE_MODIFIED] = rfc3339()
        rev = {"metadata": {"name": rev_name, "namespace": ns, "labels": labels,
                            "annotations": ann, "ownerReferences": [owner_ref(cfg)]},
               "spec": deep_copy(tmpl.get("spec") or {})}
        try:
            rev = store.create(REVISION, rev, ns, ref=True)
        except Exception as e:  # noqa: BLE001 - surfaced as Knative does
            conds.mark_false("Ready", "RevisionFailed",
                             f"Revision creation failed with message: {getattr(e, 'message', e)}.")
            status["observedGeneration"] = gen
            _write_status(serving, CONFIG, ns, name, status)
            return
    status["latestCreatedRevisionName"] = rev_name
    ready = ready_of(rev)
    if ready and ready["status"] == "True":
        status["latestReadyRevisionName"] = rev_name
        conds.mark_true("Ready")
    elif ready and ready["status"] == "False":
        conds.mark_false("Ready", "RevisionFailed", f'Revision "{rev_name}" failed with message: '
                         f'{ready.get("message", "")}.')
    elif status.get("latestReadyRevisionName") != rev_name:
        conds.mark_unknown("Ready")
    status["observedGeneration"] = gen
    cfg = _write_status(serving, CONFIG, ns, name, status) or cfg
    # The GC reconciler runs per Configuration (pkg/reconciler/gc/reconciler.go ReconcileKind -> Collect).
    collect_revisions(serving, cfg)


# ---------------------------------------------------------------------------------- Route

def reconcile_route(serving: ServingContext, ns: str, name: str) -> None:
    store = serving.store
    route = store.peek(ROUTE, ns, name)
    if route is None or route["metadata"].get("deletionTimestamp"):
        serving.drop_route_deps(ns, name)
        _sync_routing_state(serving, ns, name, set())
        return
    meta = route["metadata"]
    labels = meta.get("labels") or {}
    cl = is_cluster_local(labels)
    status = deep_copy(route.get("status") or {})
    conds = Conditions(status, ("AllTrafficAssigned", "IngressReady"))
    conds.initialize()
    domain_host = f"{name}.{ns}.{serving.config.domain}"
    status["url"] = local_url(name, ns) if cl else f"http://{domain_host}"
    status["address"] = {"url": local_url(name, ns)}
    targets, error, deps = _resolve_traffic(serving, ns, route, cl)
    serving.set_route_deps(ns, name, deps)
    if error is not None:
        state, reason, message = error
        if state == "False":
            conds.mark_false("AllTrafficAssigned", reason, message)
        else:
            conds.mark_unknown("AllTrafficAssigned", reason, message)
    else:
        conds.mark_true("AllTrafficAssigned")
        # The labeler runs once the traffic resolved (pkg/reconciler/route/route.go configureTraffic,
        # then labeler.SyncLabels): every revision the traffic names, at any percent, is `active`.
        _sync_routing_state(serving, ns, name, {t["revisionName"] for t in targets})
        ki = _ensure_kingress(serving, route, targets, cl, domain_host)
        _ensure_placeholders(serving, route, ki, targets, cl)
        kst = ki.get("status") or {}
        if ki["metadata"].get("generation") != kst.get("observedGeneration") or \
                (ready_of(ki) or {}).get("status") != "True":
            conds.mark_unknown("IngressReady", "IngressNotConfigured", MSG_INGRESS_NOT_CONFIGURED)
        else:
            conds.mark_true("IngressReady")
            # status.traffic is written only once the ingress is ready (route.go: the traffic status
            # follows the programmed KIngress), so it never names a split Envoy does not serve yet.
            status["traffic"] = targets
    status["observedGeneration"] = meta.get("generation", 1)
    _write_status(serving, ROUTE, ns, name, status)


def tag_host(name: str, tag: str) -> str:
    """config-network's default tag-template `{{.Tag}}-{{.Name}}`; the route's own name without a tag
    (knative/serving knative-v1.23.0 pkg/reconciler/route/domains/domains.go HostnameFromTemplate;
    knative/networking release-1.23 pkg/config/config.go DefaultTagTemplate)."""
    return f"{tag}-{name}" if tag else name


def target_url(serving: ServingContext, name: str, ns: str, tag: str, cl: bool) -> str:
    """A tag's URL: `http://<tag>-<route>.<ns>.<domain>`, with domain `svc.cluster.local` for a
    cluster-local route (domains.go DomainNameFromTemplate with the default domain-template
    `{{.Name}}.{{.Namespace}}.{{.Domain}}`; traffic.go GetRevisionTrafficTargets: scheme http)."""
    host = tag_host(name, tag)
    return local_url(host, ns) if cl else f"http://{host}.{ns}.{serving.config.domain}"


def _resolve_traffic(serving: ServingContext, ns: str, route: dict,
                     cl: bool = False) -> tuple[list[dict], Any, set]:
    """Route spec.traffic -> status.traffic: one entry per spec entry, in spec order, each with the
    resolved `revisionName` (a configurationName target follows its latestReadyRevisionName and is
    never shown with configurationName), `percent`, `latestRevision`, `tag` and, for a tagged entry
    only, `url` (pkg/reconciler/route/traffic/traffic.go BuildTrafficConfiguration and
    GetRevisionTrafficTargets; route_types.go:166-171). Errors are the AllTrafficAssigned reasons of
    route_lifecycle.go:126-181 (the first False one wins over Unknown ones)."""
    store = serving.store
    rname = route["metadata"]["name"]
    targets: list[dict] = []
    deps: set = set()
    error = None

    def fail(state: str, reason: str, message: str) -> None:
        nonlocal error
        if error is None or (error[0] != "False" and state == "False"):
            error = (state, reason, message)

    for t in route.get("spec", {}).get("traffic") or []:
        percent = t.get("percent", 0) or 0
        if t.get("revisionName"):
            rn = t["revisionName"]
            deps.add(("rev", rn))
            rev = store.peek(REVISION, ns, rn)
            r = ready_of(rev)
            if rev is None:
                fail("False", "RevisionMissing", f'Revision "{rn}" referenced in traffic not found.')
            elif r is None or r["status"] == "Unknown":
                fail("Unknown", "RevisionMissing", f'Revision "{rn}" is not yet ready.')
            elif r["status"] == "False":
                fail("False", "RevisionMissing", f'Revision "{rn}" failed to become ready.')
            target = {"latestRevision": False, "percent": percent, "revisionName": rn}
        else:
            cn = t.get("configurationName") or rname
            deps.add(("cfg", cn))
            cfg = store.peek(CONFIG, ns, cn)
            latest = ((cfg or {}).get("status") or {}).get("latestReadyRevisionName")
            if cfg is None:
                fail("False", "ConfigurationMissing",
                     f'Configuration "{cn}" referenced in traffic not found.')
            elif not latest:
                if (ready_of(cfg) or {}).get("status") == "False":
                    fail("False", "RevisionMissing",
                         f'Configuration "{cn}" does not have any ready Revision.')
                else:
                    fail("Unknown", "RevisionMissing",
                         f'Configuration "{cn}" is waiting for a Revision to become ready.')
            target = {"latestRevision": True, "percent": percent, "revisionName": latest or ""}
        if t.get("tag"):
            target["tag"] = t["tag"]
            target["url"] = target_url(serving, rname, ns, t["tag"], cl)
        targets.append(target)
    return targets, error, deps


def _splits(ns: str, targets: list[dict]) -> list[dict]:
    """KIngress splits for one target name: one per revision (the same revision named twice is
    consolidated), zero-percent targets skipped (pkg/reconciler/route/resources/ingress.go
    makeBaseIngressPath), Knative-Serving-* headers appended for the activator."""
    percents: dict[str, int] = {}
    for t in targets:
        if t["percent"]:
            percents[t["revisionName"]] = percents.get(t["revisionName"], 0) + t["percent"]
    return [{"appendHeaders": {"Knative-Serving-Namespace": ns, "Knative-Serving-Revision": rn},
             "percent": p, "serviceName": rn, "serviceNamespace": ns, "servicePort": 80}
            for rn, p in percents.items()]


def _ensure_kingress(serving: ServingContext, route: dict, targets: list[dict], cl: bool,
                     domain_host: str) -> dict:
    store = serving.store
    ns, name = route["metadata"]["namespace"], route["metadata"]["name"]
    # Target names: "" (every target, at its percent) and each tag (its one target at 100 %: traffic.go
    # BuildTrafficConfiguration gives a tagged target 100 % of its own tag's traffic), sorted; per name a
    # ClusterLocal rule for `h.ns`, `h.ns.svc`, `h.ns.svc.cluster.local` and, for a public route, an
    # ExternalIP rule for `h.ns.<domain>` (ingress.go MakeIngressSpec, makeIngressRule;
    # knative/networking pkg/ingress/ingress.go ExpandedHosts).
    by_name: dict[str, list[dict]] = {"": targets}
    for t in targets:
        if t.get("tag"):
            by_name[t["tag"]] = [dict(t, percent=100)]
    rules = []
    for tname in sorted(by_name):
        host = tag_host(name, tname)
        splits = _splits(ns, by_name[tname])
        rules.append({"hosts": [f"{host}.{ns}", f"{host}.{ns}.svc", f"{host}.{ns}.svc.cluster.local"],
                      "http": {"paths": [{"splits": splits}]}, "visibility": "ClusterLocal"})
        if not cl:
            rules.append({"hosts": [f"{host}.{ns}.{serving.config.domain}"],
                          "http": {"paths": [{"splits": deep_copy(splits)}]},
                          "visibility": "ExternalIP"})
    spec = {"httpOption": "Enabled", "rules": rules}
    labels = {ROUTE_LABEL: name, "serving.knative.dev/routeNamespace": ns}
    rl = route["metadata"].get("labels") or {}
    if SERVICE_LABEL in rl:
        labels[SERVICE_LABEL] = rl[SERVICE_LABEL]
    # The Route's annotations (the ksvc's, e.g. getambassador.io/ambassador-id) over the class
    # (knative/serving knative-v1.23.0 pkg/reconciler/route/resources/ingress.go MakeIngress:
    # UnionMaps(class, route annotations) minus ExcludedAnnotations, filters.go).
    ann = {INGRESS_CLASS_KEY: AMBASSADOR_CLASS,
           **{k: v for k, v in (route["metadata"].get("annotations") or {}).items()
              if k != "kubectl.kubernetes.io/last-applied-configuration"}}
    # Each tag's primary host per visibility, cluster-local first then the public one, as compact JSON with
    # sorted keys (Go's json.Marshal of a map), only when a tag exists (knative/serving knative-v1.23.0
    # pkg/reconciler/route/resources/ingress.go MakeIngressWithRollout and makeIngressSpec: tagToHost[name] =
    # append(…, domains.Primary); TagToHostAnnotationKey = networking.internal.knative.dev/tag-to-host).
    tag_to_host = {
        tname: [f"{tag_host(name, tname)}.{ns}.svc.cluster.local"]
        + ([] if cl else [f"{tag_host(name, tname)}.{ns}.{serving.config.domain}"])
        for tname in sorted(by_name) if tname
    }
    if tag_to_host:
        ann[TAG_TO_HOST_KEY] = json.dumps(tag_to_host, separators=(",", ":"), sort_keys=True)
    ki = store.peek(KINGRESS, ns, name)
    if ki is None:
        return store.create(KINGRESS, {"metadata": {
            "name": name, "namespace": ns, "labels": labels, "annotations": ann,
            "ownerReferences": [owner_ref(route)]}, "spec": spec}, ns, ref=True)
    if (ki.get("spec") != spec or ki["metadata"].get("labels") != labels
            or ki["metadata"].get("annotations") != ann):
        def fn(o: dict) -> None:
            o["spec"] = spec
            o["metadata"]["labels"] = labels
            o["metadata"]["annotations"] = ann
        ki = store.mutate(KINGRESS, ns, name, fn, ref=True) or ki
    return ki


def _ensure_placeholders(serving: ServingContext, route: dict, ki: dict, targets: list[dict],
                         cl: bool) -> None:
    """One ExternalName Service per target name, `<route>` and `<tag>-<route>`, pointing at
    Ambassador's LB once it reported one (its own domain before); placeholders of removed tags are
    deleted (pkg/reconciler/route/reconcile_resources.go reconcilePlaceholderServices,
    resources/service.go MakeK8sPlaceholderService)."""
    store = serving.store
    ns, name = route["metadata"]["namespace"], route["metadata"]["name"]
    lb = ((ki.get("status") or {}).get("privateLoadBalancer") or {}).get("ingress") or []
    lb_host = (lb[0].get("domainInternal") or lb[0].get("domain")) if lb else None
    labels = {ROUTE_LABEL: name}
    rl = route["metadata"].get("labels") or {}
    if SERVICE_LABEL in rl:
        labels[SERVICE_LABEL] = rl[SERVICE_LABEL]
    wanted = {tag_host(name, "")} | {tag_host(name, t["tag"]) for t in targets if t.get("tag")}
    for sname in sorted(wanted):
        own = f"{sname}.{ns}.svc.cluster.local" if cl else f"{sname}.{ns}.{serving.config.domain}"
        spec = {"type": "ExternalName", "externalName": lb_host or own, "sessionAffinity": "None",
                "ports": [{"name": "http", "port": 80, "protocol": "TCP", "targetPort": 80}]}
        svc = store.peek(K8S_SERVICE, ns, sname)
        if svc is None:
            store.create(K8S_SERVICE, {"metadata": {"name": sname, "namespace": ns, "labels": labels,
                                                    "ownerReferences": [owner_ref(route)]},
                                       "spec": spec}, ns, ref=True)
        elif owned_by(svc, route) and svc.get("spec") != spec:
            store.mutate(K8S_SERVICE, ns, sname, lambda o, spec=spec: o.__setitem__("spec", spec),
                         ref=True)
    for svc in list(store.iter_refs(K8S_SERVICE, ns, f"{ROUTE_LABEL}={name}")):
        sname = svc["metadata"]["name"]
        if sname not in wanted and owned_by(svc, route):
            store.delete(K8S_SERVICE, ns, sname)


# ------------------------------------------------------------------- routing state (labeler)

def _sync_routing_state(serving: ServingContext, ns: str, route: str, revisions: set) -> None:
    """Knative's labeler (v2): each revision carries the routes that reference it in the
    `serving.knative.dev/routes` annotation (sorted, comma-separated) and a routingState label,
    `active` while some route references it and `reserve` once none does, with
    `routingStateModified` (RFC 3339, UTC) bumped on every change (pkg/reconciler/labeler/labeler.go,
    accessors.go:103-118; pkg/apis/serving/v1/revision_helpers.go SetRoutingState; register.go:65,69).
    A new revision is `pending` (set by the Configuration reconciler) until a route names it."""
    store = serving.store
    names = set(revisions)
    for rev in store.iter_refs(REVISION, ns):
        ann = rev["metadata"].get("annotations") or {}
        if route in (ann.get(ROUTES_ANNOTATION) or "").split(","):
            names.add(rev["metadata"]["name"])
    for rn in sorted(names):
        rev = store.peek(REVISION, ns, rn)
        if rev is None:
            continue
        ann = rev["metadata"].get("annotations") or {}
        routes = {r for r in (ann.get(ROUTES_ANNOTATION) or "").split(",") if r}
        routes = routes | {route} if rn in revisions else routes - {route}
        state = "active" if routes else "reserve"
        value = ",".join(sorted(routes))
        labels = rev["metadata"].get("labels") or {}
        if labels.get(ROUTING_STATE) == state and (ann.get(ROUTES_ANNOTATION) or "") == value:
            continue

        def fn(o: dict, state: str = state, value: str = value) -> None:
            m = o["metadata"]
            a = m.setdefault("annotations", {})
            if value:
                a[ROUTES_ANNOTATION] = value
            else:
                a.pop(ROUTES_ANNOTATION, None)
            lab = m.setdefault("labels", {})
            if lab.get(ROUTING_STATE) != state:
                lab[ROUTING_STATE] = state
                a[ROUTING_STATE_MODIFIED] = rfc3339()
        store.mutate(REVISION, ns, rn, fn, ref=True)


# --------------------------------------------------------------------------- revision GC

_gc_timers: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


# config-gc's defaults (knative/serving knative-v1.23.0 pkg/gc/config.go:61-68, config/core/configmaps/gc.yaml).
GC_DEFAULTS = {"retain-since-create-time": "48h", "retain-since-last-active-time": "15h",
               "min-non-active-revisions": "20", "max-non-active-revisions": "1000"}


def gc_settings(serving: ServingContext) -> tuple[float | None, float | None, int, int | None]:
    """config-gc: (retain-since-create-time, retain-since-last-active-time in seconds,
    min-non-active-revisions, max-non-active-revisions); None = "disabled". Knative's defaults, then
    SimConfig.extra["config-gc"], then a `config-gc` ConfigMap in knative-serving, key by key (read at
    each GC pass). A value that does not parse, or min < 0 / min > max, keeps what was there before, as
    Knative keeps its previous config when it rejects one (pkg/gc/config.go:95-99,124-130)."""
    data = dict(GC_DEFAULTS)
    cm = serving.store.peek("configmaps", "knative-serving", "config-gc")
    result = _parse_gc(data)
    for layer in ((serving.config.extra or {}).get("config-gc") or {}, (cm or {}).get("data") or {}):
        if not layer:
            continue
        merged = dict(data, **{k: str(v) for k, v in layer.items() if k in GC_DEFAULTS})
        parsed = _parse_gc(merged)
        if parsed is not None:
            data, result = merged, parsed
    assert result is not None
    return result


def _parse_gc(data: dict) -> tuple[float | None, float | None, int, int | None] | None:
    def dur(key: str) -> float | None:
        raw = data[key].strip()
        if raw.lower() == "disabled":
            return None
        v = go_duration(raw)
        if v is None:
            raise ValueError(raw)
        return v

    def count(key: str) -> int | None:
        raw = data[key].strip()
        return None if raw.lower() == "disabled" else int(raw)

    try:
        create, active = dur("retain-since-create-time"), dur("retain-since-last-active-time")
        mn, mx = count("min-non-active-revisions"), count("max-non-active-revisions")
    except ValueError:
        return None
    if mn is None:
        mn = 0
    if mn < 0 or (mx is not None and mn > mx):
        return None
    return create, active, mn, mx


def _ts(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return datetime.strptime(value, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC).timestamp()
    except ValueError:
        return None


def collect_revisions(serving: ServingContext, cfg: dict) -> None:
    """Revision GC for one Configuration, as knative/serving knative-v1.23.0 pkg/reconciler/gc/v2/gc.go
    Collect: never the latest ready revision, a `serving.knative.dev/no-gc: "true"` one, or one whose
    routingState is not `reserve` (so nothing a route names, at any percent, nor a `pending` one);
    of the others (oldest last-active first; last-active = routingStateModified, else creation), the
    stale ones (past retain-since-create-time AND retain-since-last-active-time) are deleted while
    more than min-non-active-revisions remain, then the oldest non-stale ones beyond
    max-non-active-revisions. Timed re-checks stand in for the controller's resync."""
    store = serving.store
    ns, name = cfg["metadata"]["namespace"], cfg["metadata"]["name"]
    since_create, since_active, mn, mx = gc_settings(serving)
    if mx is None and since_create is None and since_active is None:
        return
    revs = list(store.iter_refs(REVISION, ns, f"{CONFIG_LABEL}={name}"))
    if len(revs) <= mn:
        return
    latest = (cfg.get("status") or {}).get("latestReadyRevisionName")

    def non_active(rev: dict) -> bool:
        m = rev["metadata"]
        if m["name"] == latest or m.get("deletionTimestamp"):
            return False
        if str((m.get("annotations") or {}).get(NO_GC, "")).lower() == "true":
            return False
        return (m.get("labels") or {}).get(ROUTING_STATE) == "reserve"

    def last_active(rev: dict) -> float:
        m = rev["metadata"]
        return _ts((m.get("annotations") or {}).get(ROUTING_STATE_MODIFIED)) or \
            _ts(m.get("creationTimestamp")) or 0.0

    def stale_at(rev: dict) -> float | None:
        if since_create is None and since_active is None:
            return None
        at = 0.0
        if since_create is not None:
            at = max(at, (_ts(rev["metadata"].get("creationTimestamp")) or 0.0) + since_create)
        if since_active is not None:
            at = max(at, last_active(rev) + since_active)
        return at

    def order(rev: dict) -> tuple:
        # RFC 3339 timestamps have second precision: ties go to the older name (the lower generation)
        m = rev["metadata"]
        return last_active(rev), _ts(m.get("creationTimestamp")) or 0.0, m["name"]

    revs = [r for r in revs if non_active(r)]
    if len(revs) <= mn:
        return
    revs.sort(key=order)
    now = time.time()
    keep: list[dict] = []
    doomed: list[str] = []
    max_idx = len(revs) - mn
    stopped = False
    for rev in revs:
        if len(doomed) >= max_idx:   # gc.go: `case i >= maxIdx: return nil` (min must remain)
            stopped = True
            break
        at = stale_at(rev)
        if at is not None and at <= now:
            doomed.append(rev["metadata"]["name"])
        else:
            keep.append(rev)
            if at is not None:
                _schedule_gc(serving, ns, name, at - now)
    if not stopped and mx is not None and len(keep) > mx:
        keep.sort(key=order, reverse=True)
        doomed += [r["metadata"]["name"] for r in keep[mx:]]
    for rn in doomed:
        try:
            store.delete(REVISION, ns, rn)
        except Exception:  # noqa: BLE001 - gone meanwhile; Knative logs and goes on
            pass


def _schedule_gc(serving: ServingContext, ns: str, name: str, delay: float) -> None:
    """Re-check this Configuration when its next revision turns stale (one timer per Configuration)."""
    due = _gc_timers.setdefault(serving, {})
    at = time.monotonic() + max(0.0, delay) + 0.05
    if (ns, name) in due and time.monotonic() < due[(ns, name)] <= at:
        return
    due[(ns, name)] = at
    serving.enqueue_later(at - time.monotonic(), ("config", ns, name))
