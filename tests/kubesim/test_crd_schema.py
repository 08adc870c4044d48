"""Every Knative object kubesim produces validates against the real Knative 1.23 CRD schemas."""

from __future__ import annotations

import functools

import jsonschema
import pytest
import yaml

from tests.kubesim.conftest import fixtures_dir
from tests.kubesim.kn_helpers import KSVC, G, V, kservice, wait_for, wait_ready

CRDS = {
    ("serving.knative.dev", "v1", "services"): "knative-serving-knative-v1.23.0-service-crd.yaml",
    ("serving.knative.dev", "v1", "configurations"):
        "knative-serving-knative-v1.23.0-configuration-crd.yaml",
    ("serving.knative.dev", "v1", "revisions"): "knative-serving-knative-v1.23.0-revision-crd.yaml",
    ("serving.knative.dev", "v1", "routes"): "knative-serving-knative-v1.23.0-route-crd.yaml",
    ("networking.internal.knative.dev", "v1alpha1", "ingresses"):
        "knative-networking-knative-v1.23.0-kingress-crd.yaml",
}


@functools.cache
def _schema(file: str) -> dict:
    crd = yaml.safe_load((fixtures_dir() / "knative" / file).read_text())
    return crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]


@pytest.mark.parametrize("image,labels", [
    ("gcr.io/knative-samples/helloworld-go", None),
    ("echo", {"networking.knative.dev/visibility": "cluster-local"}),
    ("docker.io/acme/pull-fail:latest", None),
    ("ghcr.io/acme/crash:1", None),
], ids=["ready", "cluster-local", "container-missing", "crash"])
def test_objects_validate_against_knative_1_23_schemas(custom, ns, image, labels):
    custom.create_namespaced_custom_object(G, V, ns, KSVC, kservice(
        "s", image, labels=labels, template_annotations={
            "autoscaling.knative.dev/min-scale": "1"}))
    if image.endswith(("helloworld-go", "echo")):
        wait_ready(custom, ns, "s")
    else:
        wait_for(lambda: (custom.get_namespaced_custom_object(G, V, ns, KSVC, "s").get("status")
                          or {}).get("conditions", [{}])[1].get("status") == "False", 5)
    checked = 0
    for (group, version, plural), file in CRDS.items():
        schema = _schema(file)
        fixtures_dir()
        for obj in custom.list_namespaced_custom_object(group, version, ns, plural)["items"]:
            jsonschema.validate(obj, schema)
            checked += 1
    assert checked >= 4
