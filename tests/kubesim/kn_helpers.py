"""Helpers for the Knative / gateway / diag tests: ksvc objects, conditions, gateway requests."""

from __future__ import annotations

import http.client
import json
import time
from typing import Any
from urllib.parse import urlsplit

from tests.kubesim.helpers import KSVC, G, V, wait_for

__all__ = ["KSVC", "G", "V", "wait_for", "kservice", "cond", "conds", "gw", "wait_ready",
           "get_ksvc", "get_rev", "cluster_of"]


def kservice(name: str, image: str = "gcr.io/knative-samples/helloworld-go", *,
             labels: dict | None = None, template_annotations: dict | None = None,
             template_labels: dict | None = None, **spec: Any) -> dict:
    tmpl: dict[str, Any] = {"spec": {"containers": [{"image": image}], **spec}}
    if template_annotations:
        tmpl.setdefault("metadata", {})["annotations"] = template_annotations
    if template_labels:
        tmpl.setdefault("metadata", {})["labels"] = template_labels
    meta: dict[str, Any] = {"name": name}
    if labels:
        meta["labels"] = labels
    return {"apiVersion": "serving.knative.dev/v1", "kind": "Service", "metadata": meta,
            "spec": {"template": tmpl}}


def conds(obj: dict) -> dict[str, dict]:
    return {c["type"]: c for c in (obj.get("status") or {}).get("conditions") or []}


def cond(obj: dict, ctype: str = "Ready") -> tuple[str | None, str | None, str | None]:
    c = conds(obj).get(ctype)
    if c is None:
        return None, None, None
    return c["status"], c.get("reason"), c.get("message")


def get_ksvc(custom, ns: str, name: str) -> dict:
    return custom.get_namespaced_custom_object(G, V, ns, KSVC, name)


def get_rev(custom, ns: str, name: str) -> dict:
    return custom.get_namespaced_custom_object(G, V, ns, "revisions", name)


def wait_ready(custom, ns: str, name: str, timeout: float = 5.0) -> dict:
    def ready() -> dict | None:
        o = get_ksvc(custom, ns, name)
        st = o.get("status") or {}
        ok = st.get("observedGeneration") == o["metadata"]["generation"] and \
            cond(o)[0] == "True"
        return o if ok else None
    return wait_for(ready, timeout)


def gw(sim, host: str, path: str = "/", method: str = "GET", body: bytes | None = None,
       headers: dict | None = None, timeout: float = 10.0) -> tuple[int, dict, bytes]:
    """One request through the gateway with the given Host header."""
    u = urlsplit(sim.gateway_url)
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=timeout)
    try:
        conn.request(method, path, body=body, headers={"Host": host, **(headers or {})})
        r = conn.getresponse()
        return r.status, dict(r.getheaders()), r.read()
    finally:
        conn.close()


def gw_json(sim, host: str, **kw: Any) -> tuple[int, dict]:
    status, _, body = gw(sim, host, **kw)
    return status, json.loads(body)


def cluster_of(rev: str, ns: str) -> str:
    return "cluster_" + f"{rev}.{ns}:80".replace("-", "_").replace(".", "_").replace(":", "_") \
        + "_" + ns


def sleep_until(fn, timeout: float = 5.0) -> Any:
    return wait_for(fn, timeout)


def now() -> float:
    return time.monotonic()
