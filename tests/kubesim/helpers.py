"""Small helpers shared by the kubesim API tests (objects, polling with a deadline, Status bodies)."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from kubernetes.client.exceptions import ApiException

from tests import waiting

G, V, KSVC = "serving.knative.dev", "v1", "services"


def ksvc(name: str, image: str = "gcr.io/knative-samples/helloworld-go", **meta: Any) -> dict:
    return {"apiVersion": "serving.knative.dev/v1", "kind": "Service",
            "metadata": {"name": name, **meta},
            "spec": {"template": {"spec": {"containers": [{"image": image}]}}}}


def cm(name: str, **meta: Any) -> dict:
    return {"metadata": {"name": name, **meta}, "data": {"k": "v"}}


def status_of(e: ApiException) -> dict:
    return json.loads(e.body)


def wait_for(fn: Callable[[], Any], timeout: float = 5.0, interval: float = 0.02, message: str | None = None) -> Any:
    """Poll fn until it returns something truthy; fail after `timeout` seconds, naming what was awaited
    (the message, or fn's source line) and dumping the simulators the test uses (tests/waiting.py)."""
    return waiting.wait_for(fn, timeout=timeout, interval=interval, message=message)


def gone(fn: Callable[[], Any]) -> bool:
    """True when fn raises a 404 ApiException."""
    try:
        fn()
    except ApiException as e:
        return e.status == 404
    return False


def raw(k8s: Any, method: str, path: str, body: bytes | str | None = None,
        content_type: str = "application/json", auth: bool = True,
        headers: dict | None = None) -> tuple[int, Any, dict]:
    """A request through the official client's own HTTP pool (urllib3), for bodies and content types
    its typed methods refuse to send (malformed JSON, text/plain patches, no token).
    Returns (status, parsed JSON body or raw bytes, headers)."""
    h = {"Content-Type": content_type, "Accept": "application/json", **(headers or {})}
    if auth:
        h["Authorization"] = k8s.configuration.api_key["BearerToken"]
    r = k8s.rest_client.pool_manager.request(method, k8s.configuration.host + path, body=body,
                                             headers=h, preload_content=True, timeout=10,
                                             retries=False)
    try:
        data = json.loads(r.data)
    except ValueError:
        data = r.data
    return r.status, data, dict(r.headers)
