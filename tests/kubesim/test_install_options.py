"""What is installed: Knative Serving's release on its namespace's label, and its CRDs (without them no
*.knative.dev API group is served, as on a cluster where serving-crds.yaml was never applied)."""

from __future__ import annotations

import pytest
from kubernetes import client

from tests.kubesim.conftest import api_client


def test_the_knative_namespace_carries_the_release(make_sim):
    api = api_client(make_sim(knative_version="1.19.2"))
    labels = client.CoreV1Api(api).read_namespace("knative-serving").metadata.labels
    assert labels["app.kubernetes.io/version"] == "1.19.2"
    api = api_client(make_sim(knative_version=""))
    assert "app.kubernetes.io/version" not in client.CoreV1Api(api).read_namespace("knative-serving").metadata.labels


def test_without_knative_crds_no_knative_api_is_served(make_sim):
    api = api_client(make_sim(knative_crds=False))
    groups = {g.name for g in client.ApisApi(api).get_api_versions().groups}
    assert "coordination.k8s.io" in groups and not {g for g in groups if g.endswith(".knative.dev")}
    custom = client.CustomObjectsApi(api)
    for call in (lambda: custom.get_api_resources("serving.knative.dev", "v1"),
                 lambda: custom.list_namespaced_custom_object("serving.knative.dev", "v1", "default", "services")):
        with pytest.raises(client.ApiException) as e:
            call()
        assert e.value.status == 404
    assert client.CoreV1Api(api).list_namespaced_config_map("knative-serving").items  # the rest is there


def test_by_default_knative_is_installed_at_the_supported_release(sim):
    api = api_client(sim)
    labels = client.CoreV1Api(api).read_namespace("knative-serving").metadata.labels
    assert labels["app.kubernetes.io/version"] == "1.23.0"
    assert client.CustomObjectsApi(api).get_api_resources("serving.knative.dev", "v1").resources
