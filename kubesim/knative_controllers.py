"""Knative Serving's reconcilers for Service, Configuration and Route, one step each.

Every reconcile reads the current objects, writes children whose spec differs, and writes the
status with the reasons and messages of knative-ambassador.md §1.4 (the Service shows the
Configuration's state first, then the Route's, so Ready usually carries the Route's reason).
`observedGeneration` is set at the end of every reconcile, failed ones included.
"""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING, Any

from .knative_admission import CREATOR, LAST_MODIFIER, VISIBILITY_LABELS
from .knative_conditions import Conditions
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
AMBASSADOR_CLASS = "ambassador.ingress.networking.knative.dev"
LB_DOMAIN = "ambassador.ambassador.svc.cluster.local"

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


def _write_status(serving: ServingContext, key: str, ns: str, name: str, status: dict) -> None:
    serving.store.mutate(key, ns, name, lambda o: o.__setitem__("status", status), status=True, ref=True)


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
    _write_status(serving, CONFIG, ns, name, status)


# ---------------------------------------------------------------------------------- Route

def reconcile_route(serving: ServingContext, ns: str, name: str) -> None:
    store = serving.store
    route = store.peek(ROUTE, ns, name)
    if route is None or route["metadata"].get("deletionTimestamp"):
        serving.drop_route_deps(ns, name)
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
    targets, error, deps = _resolve_traffic(serving, ns, route)
    serving.set_route_deps(ns, name, deps)
    if error is not None:
        state, reason, message = error
        if state == "False":
            conds.mark_false("AllTrafficAssigned", reason, message)
        else:
            conds.mark_unknown("AllTrafficAssigned", reason, message)
    else:
        conds.mark_true("AllTrafficAssigned")
        ki = _ensure_kingress(serving, route, targets, cl, domain_host)
        _ensure_placeholder(serving, route, ki, domain_host if not cl else
                            f"{name}.{ns}.svc.cluster.local")
        kst = ki.get("status") or {}
        if ki["metadata"].get("generation") != kst.get("observedGeneration") or \
                (ready_of(ki) or {}).get("status") != "True":
            conds.mark_unknown("IngressReady", "IngressNotConfigured", MSG_INGRESS_NOT_CONFIGURED)
        else:
            conds.mark_true("IngressReady")
            status["traffic"] = targets
    status["observedGeneration"] = meta.get("generation", 1)
    _write_status(serving, ROUTE, ns, name, status)


def _resolve_traffic(serving: ServingContext, ns: str, route: dict) -> tuple[list[dict], Any, set]:
    store = serving.store
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
            cn = t.get("configurationName") or route["metadata"]["name"]
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
        targets.append(target)
    return targets, error, deps


def _ensure_kingress(serving: ServingContext, route: dict, targets: list[dict], cl: bool,
                     domain_host: str) -> dict:
    store = serving.store
    ns, name = route["metadata"]["namespace"], route["metadata"]["name"]
    percents: dict[str, int] = {}
    for t in targets:
        if t["percent"]:
            percents[t["revisionName"]] = percents.get(t["revisionName"], 0) + t["percent"]
    splits = [{"appendHeaders": {"Knative-Serving-Namespace": ns, "Knative-Serving-Revision": rn},
               "percent": p, "serviceName": rn, "serviceNamespace": ns, "servicePort": 80}
              for rn, p in percents.items()]
    rules = [{"hosts": [f"{name}.{ns}", f"{name}.{ns}.svc", f"{name}.{ns}.svc.cluster.local"],
              "http": {"paths": [{"splits": splits}]}, "visibility": "ClusterLocal"}]
    if not cl:
        rules.append({"hosts": [domain_host], "http": {"paths": [{"splits": deep_copy(splits)}]},
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


def _ensure_placeholder(serving: ServingContext, route: dict, ki: dict, own_host: str) -> None:
    """The ExternalName Service `<route>`: its own domain until Ambassador reports its LB."""
    store = serving.store
    ns, name = route["metadata"]["namespace"], route["metadata"]["name"]
    lb = ((ki.get("status") or {}).get("privateLoadBalancer") or {}).get("ingress") or []
    target = (lb[0].get("domainInternal") or lb[0].get("domain")) if lb else own_host
    labels = {ROUTE_LABEL: name}
    rl = route["metadata"].get("labels") or {}
    if SERVICE_LABEL in rl:
        labels[SERVICE_LABEL] = rl[SERVICE_LABEL]
    spec = {"type": "ExternalName", "externalName": target, "sessionAffinity": "None",
            "ports": [{"name": "http", "port": 80, "protocol": "TCP", "targetPort": 80}]}
    svc = store.peek(K8S_SERVICE, ns, name)
    if svc is None:
        store.create(K8S_SERVICE, {"metadata": {"name": name, "namespace": ns, "labels": labels,
                                                "ownerReferences": [owner_ref(route)]},
                                   "spec": spec}, ns, ref=True)
    elif owned_by(svc, route) and svc.get("spec") != spec:
        store.mutate(K8S_SERVICE, ns, name, lambda o: o.__setitem__("spec", spec), ref=True)
