"""deploy/knative: Knative Serving made cluster-local with Ambassador as its ingress; and the ksvc
relayweb renders is one the real Knative 1.23 Service CRD accepts."""

from __future__ import annotations

import jsonschema
import pytest
import yaml

from tests.cluster import shared_fixtures
from tests.deploy.charts import DEPLOY, RELAYWEB_REQUIRED, find, render, validate
from triggers.cluster import kube
from triggers.models import Trigger

AMBASSADOR_CLASS = "ambassador.ingress.networking.knative.dev"
KNATIVE_VERSION = "knative-v1.23.0"  # the CRDs in ../shared/fixtures/knative and the install steps in deploy/README.md


def configmap(name: str) -> dict:
    (doc,) = [d for d in yaml.safe_load_all((DEPLOY / "knative" / f"{name}.yaml").read_text()) if d]
    return doc


@pytest.mark.parametrize("name", ["config-domain", "config-network"])
def test_configmaps_are_valid_kubernetes_in_knative_serving(name):
    doc = configmap(name)
    validate(doc)
    meta = doc["metadata"]
    assert (doc["kind"], meta["name"], meta["namespace"]) == ("ConfigMap", name, "knative-serving")


def test_config_domain_makes_every_knative_service_cluster_local():
    assert configmap("config-domain")["data"] == {"svc.cluster.local": ""}


def test_config_network_selects_ambassador_under_the_old_and_the_new_key():
    assert configmap("config-network")["data"] == {"ingress.class": AMBASSADOR_CLASS, "ingress-class": AMBASSADOR_CLASS}


def test_the_keys_are_the_ones_real_knative_reads():
    fixtures = shared_fixtures() / "knative"
    new = (fixtures / "knative-networking-knative-v1.23.0-config-network.yaml").read_text()
    old = (fixtures / "knative-serving-v0.13.0-config-network.yaml").read_text()
    domain = (fixtures / "knative-serving-v0.13.0-config-domain.yaml").read_text()
    assert "\n    ingress-class:" in new and "\n    ingress.class:" in old
    assert "\n    svc.cluster.local:" in domain
    assert yaml.safe_load(new)["metadata"]["namespace"] == "knative-serving"


def test_the_install_steps_name_the_knative_version_the_fixtures_hold():
    readme = (DEPLOY / "README.md").read_text()
    for manifest in ("serving-crds.yaml", "serving-core.yaml"):
        assert f"{KNATIVE_VERSION}/{manifest}" in readme
    assert list((shared_fixtures() / "knative").glob(f"knative-serving-{KNATIVE_VERSION}-service-crd.yaml"))


@pytest.mark.django_db
@pytest.mark.parametrize("ambassador_id", ["", "knative-gw"])
def test_a_rendered_ksvc_validates_against_the_knative_1_23_service_crd(tenant_a, settings, ambassador_id):
    settings.RELAY_AMBASSADOR_ID = ambassador_id
    trigger = Trigger.objects.create(
        tenant=tenant_a, name="github-push", image="ghcr.io/acme/hook@sha256:" + "a" * 64, port=8080,
        env=[{"name": "MODE", "value": "prod"}], secret_env={"TOKEN": {"set_at": "2026-01-01T00:00:00Z"}},
        secret_version=1, min_scale=0, max_scale=5, target_concurrency=None, timeout_seconds=300,
    )
    crd = yaml.safe_load(
        (shared_fixtures() / "knative" / f"knative-serving-{KNATIVE_VERSION}-service-crd.yaml").read_text())
    assert crd["spec"]["names"]["kind"] == "Service" and crd["spec"]["group"] == "serving.knative.dev"
    schema = next(v for v in crd["spec"]["versions"] if v["name"] == "v1")["schema"]["openAPIV3Schema"]
    ksvc = kube.render_ksvc(trigger)
    jsonschema.validate(ksvc, schema)
    assert ksvc["metadata"]["labels"]["networking.knative.dev/visibility"] == "cluster-local"
    assert (ksvc["metadata"]["annotations"].get(kube.AMBASSADOR_ID) or "") == ambassador_id


@pytest.mark.django_db
def test_the_tenant_policy_admits_the_namespaces_the_charts_and_knative_run_in(tenant_a, settings):
    """The policy selects namespaces by kubernetes.io/metadata.name (set by Kubernetes itself): the chart's
    settings must name the namespace Ambassador is installed in and Knative Serving's own."""
    data = find(render("relayweb", RELAYWEB_REQUIRED), "ConfigMap", "relayweb")["data"]
    settings.RELAY_GATEWAY_NAMESPACE = data["RELAY_GATEWAY_NAMESPACE"]
    settings.RELAY_KNATIVE_NAMESPACE = data["RELAY_KNATIVE_NAMESPACE"]
    gateway = find(render("ambassador", namespace="ambassador"), "Deployment")  # as deploy/README.md installs it
    peer = kube.render_network_policy(tenant_a)["spec"]["ingress"][0]["from"][0]["namespaceSelector"]
    assert peer == {"matchExpressions": [{
        "key": "kubernetes.io/metadata.name", "operator": "In",
        "values": [gateway["metadata"]["namespace"], configmap("config-network")["metadata"]["namespace"]]}]}
