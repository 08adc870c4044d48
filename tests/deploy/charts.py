"""Render the Helm charts in deploy/ with the real Helm engine (helm-python-sdk: Helm's Go SDK
in a shared library, offline, no helm binary), and validate objects against Kubernetes' schemas."""

from __future__ import annotations

import functools
import json
from pathlib import Path

import helm_python as helm
import kubernetes_validate
import yaml

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"
CHARTS = DEPLOY / "helm"
KUBE_VERSION = "1.34.0"  # the Kubernetes version the objects are validated against (Knative 1.23 needs >= 1.34)

# The least a relayweb install needs: the three secrets.
RELAYWEB_REQUIRED = {
    "secretKey": "k" * 50,
    "database": {"url": "postgres://relayweb:pw@postgres.db.svc:5432/relayweb"},
    "redis": {"url": "redis://redis.db.svc:6379/0"},
}


@functools.cache
def chart(name: str) -> helm.Chart:
    return helm.Chart.load(CHARTS / name)


def render(name: str, values: dict | None = None, *, release: str | None = None,
           namespace: str = "testns") -> list[dict]:
    """Every object the chart renders (NOTES.txt left out), in template order."""
    manifests = chart(name).render(values or {}, name=release or name, namespace=namespace,
                                   is_install=True)
    objects = []
    for path in sorted(manifests):
        if path.endswith(".yaml"):
            objects += [doc for doc in yaml.safe_load_all(manifests[path]) if doc]
    return objects


def render_error(name: str, values: dict) -> str:
    """The message Helm gives for values it refuses."""
    try:
        chart(name).render(values, name=name, namespace="testns")
    except helm.HelmError as e:
        return str(e)
    raise AssertionError(f"{name} rendered with {json.dumps(values)}")


def find(objects: list[dict], kind: str, name: str | None = None) -> dict:
    matches = [o for o in objects if o["kind"] == kind and (name is None or o["metadata"]["name"] == name)]
    assert len(matches) == 1, f"expected one {kind} {name or ''}, got {[o['metadata']['name'] for o in matches]}"
    return matches[0]


def validate(obj: dict) -> None:
    """Against the strict OpenAPI schema of KUBE_VERSION: unknown fields are errors too."""
    kubernetes_validate.validate(obj, KUBE_VERSION, strict=True)
