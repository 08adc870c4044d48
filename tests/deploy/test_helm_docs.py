"""deploy/README.md documents every value of both charts, and the main README points to it."""

from __future__ import annotations

import re

import pytest
import yaml

from tests.deploy.charts import CHARTS, DEPLOY, REPO

# Free-form maps documented as one value (their keys are Kubernetes' or the user's own).
FREE_FORM = {"resources", "podAnnotations", "nodeSelector", "affinity", "extraEnv", "annotations"}


def value_keys(values: dict, prefix: str = "") -> set[str]:
    keys = set()
    for key, value in values.items():
        if isinstance(value, dict) and value and key not in FREE_FORM:
            keys |= value_keys(value, f"{prefix}{key}.")
        else:
            keys.add(prefix + key)
    return keys


def documented(chart: str) -> set[str]:
    readme = (DEPLOY / "README.md").read_text()
    section = readme.split(f"### {chart} chart values", 1)[1].split("\n#", 1)[0]
    return set(re.findall(r"^\| `([A-Za-z0-9_.]+)` \|", section, flags=re.MULTILINE))


@pytest.mark.parametrize("chart", ["ambassador", "relayweb"])
def test_every_value_is_in_the_readme_table(chart):
    keys = value_keys(yaml.safe_load((CHARTS / chart / "values.yaml").read_text()))
    assert len(keys) > 10
    assert keys - documented(chart) == set(), f"document these in deploy/README.md ({chart} chart values)"
    assert documented(chart) - keys == set(), "documented but not in values.yaml"


def test_the_readme_walks_through_install_upgrade_and_checks():
    readme = (DEPLOY / "README.md").read_text()
    for needle in ("serving-crds.yaml", "serving-core.yaml", "deploy/knative/config-domain.yaml",
                   "deploy/knative/config-network.yaml", "helm install ambassador deploy/helm/ambassador",
                   "helm install relayweb deploy/helm/relayweb", "helm upgrade relayweb", "kubectl get ksvc -A",
                   "/ambassador/v0/diag/?json=true", "DNS", "TLS", "kubernetes.io/metadata.name"):
        assert needle in readme, needle
    for path in re.findall(r"deploy/[\w./-]+\.(?:yaml|dockerignore)|deploy/Dockerfile\b", readme):
        assert (REPO / path).exists(), path


def test_the_main_readme_points_to_the_deploy_readme():
    readme = (REPO / "README.md").read_text()
    section = readme.split("## Running on a cluster", 1)[1].split("\n## ", 1)[0]
    assert "deploy/README.md" in section


def test_the_supported_kubernetes_version_is_the_one_knative_needs():
    readme = (DEPLOY / "README.md").read_text()
    needs = readme.split("## What you need", 1)[1].split("\n## ", 1)[0]
    assert "Kubernetes **1.34 or later**" in needs and "DefaultKubernetesMinVersion" in needs
    assert "1.25 or later" not in readme
    for component in ("Knative Serving", "Kubernetes", "Ambassador (Emissary)"):
        assert f"| {component} |" in needs


def test_tenant_pod_security_and_every_permission_are_explained():
    readme = (DEPLOY / "README.md").read_text()
    assert "pod-security.kubernetes.io/enforce:\nbaseline" in readme
    assert "warn: restricted" in readme
    assert "config-network" in readme.split("### What relayweb may do", 1)[1]


@pytest.mark.parametrize("chart", ["relayweb", "ambassador"])
def test_every_cluster_wide_grant_has_a_reason_in_the_readme(chart):
    from tests.deploy.charts import RELAYWEB_REQUIRED, render

    section = (DEPLOY / "README.md").read_text().split("### What relayweb may do", 1)[1].split("\n## ", 1)[0]
    rows = [line for line in section.splitlines() if line.startswith("| ") and not line.startswith("| API group")]
    objects = render(chart, RELAYWEB_REQUIRED if chart == "relayweb" else {})
    role = next(o for o in objects if o["kind"] == "ClusterRole")
    for rule in role["rules"]:
        for group in rule["apiGroups"]:
            for resource in rule["resources"]:
                # Ambassador's own CRDs share one row ("mappings, hosts, modules, …")
                own_crd = group == "getambassador.io" and "/" not in resource
                name = "mappings" if own_crd else resource.split("/")[0]
                assert any(f"| {group or 'core'} |" in row and name in row for row in rows), (group, resource)
