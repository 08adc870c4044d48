"""`manage.py check_cluster`: passes against kubesim as installed by deploy/README.md, and each broken
setup fails with its own fix; the last result is stored and shown on the operators' Diag page."""

from __future__ import annotations

import socket

import pytest
from django.core.management import call_command
from django.test import Client

from kubesim.config import SimConfig
from kubesim.sim import SimulatorThread
from tests.cluster import FAST
from tests.deploy.charts import RELAYWEB_REQUIRED, render
from tests.deploy.test_helm_rbac import granted, required_permissions
from triggers.cluster import check as cluster_check
from triggers.cluster import kube
from triggers.models import ClusterCheck

pytestmark = pytest.mark.django_db


@pytest.fixture
def checked(cluster, kubesim, settings):
    """relayweb's settings pointed at the session kubesim (API, admin port and gateway)."""
    settings.RELAY_AMBASSADOR_ADMIN_URL = kubesim.admin_url
    settings.RELAY_GATEWAY_URL = kubesim.gateway_url
    settings.RELAY_AMBASSADOR_ID = ""
    yield cluster
    kubesim.call(kubesim.sim.config.denied.clear)


def by_name(results) -> dict[str, cluster_check.Result]:
    return {r.name: r for r in results}


def run(*args) -> tuple[int, str, str]:
    from io import StringIO

    out, err = StringIO(), StringIO()
    try:
        call_command("check_cluster", *args, stdout=out, stderr=err)
        code = 0
    except SystemExit as e:
        code = e.code
    return code, out.getvalue(), err.getvalue()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_every_check_passes_against_kubesim_and_exit_status_is_0(checked):
    code, out, _ = run()
    assert code == 0, out
    for name in ("Kubernetes API", "Kubernetes version", "Knative Serving", "Ingress class",
                 "Cluster-local domain", "Ambassador", "Permissions"):
        assert f"✓ {name}" in out, out
    assert "✗" not in out
    assert "Knative Serving 1.23.0" in out and "v1.34.0" in out
    check = ClusterCheck.objects.get()
    assert check.ok and not check.probe and len(check.results) == 7


def test_the_probe_deploys_a_ksvc_sends_a_request_through_the_gateway_and_cleans_up(checked, k8s):
    code, out, _ = run("--probe")
    assert code == 0, out
    assert "✓ End-to-end probe" in out and "200 through" in out, out
    probes = [ns for ns in k8s.core.list_namespace().items if (ns.metadata.labels or {}).get(cluster_check.PROBE_LABEL)]
    assert all(ns.metadata.deletion_timestamp or ns.status.phase == "Terminating" for ns in probes), probes


def test_the_probe_cleans_up_when_the_gateway_fails(checked, kubesim, k8s, settings):
    settings.RELAY_GATEWAY_URL = f"http://127.0.0.1:{free_port()}"
    result = by_name(cluster_check.run_checks(checked, with_probe=True))["End-to-end probe"]
    assert not result.ok and "RELAY_GATEWAY_URL" in result.fix, result
    live = [ns for ns in k8s.core.list_namespace().items
            if (ns.metadata.labels or {}).get(cluster_check.PROBE_LABEL) and not ns.metadata.deletion_timestamp
            and ns.status.phase != "Terminating"]
    assert live == []


def test_a_wrong_ingress_class_fails_with_its_fix(checked, k8s):
    body = {"data": {"ingress-class": "kourier.ingress.networking.knative.dev"}}
    k8s.core.patch_namespaced_config_map("config-network", "knative-serving", body)
    try:
        code, out, err = run()
    finally:
        k8s.core.patch_namespaced_config_map(
            "config-network", "knative-serving",
            {"data": {"ingress-class": cluster_check.AMBASSADOR_CLASS}})
    assert code == 1 and "checks failed" in err
    assert "✗ Ingress class" in out and "kourier.ingress.networking.knative.dev" in out
    assert "fix: kubectl apply -f deploy/knative/config-network.yaml" in out
    assert "✓ Ambassador" in out  # the other checks still ran
    assert not ClusterCheck.objects.get().ok


def test_the_new_ingress_class_key_wins_over_the_legacy_one(checked, k8s):
    k8s.core.patch_namespaced_config_map("config-network", "knative-serving",
                                         {"data": {"ingress.class": "istio.ingress.networking.knative.dev"}})
    try:
        assert by_name(cluster_check.run_checks(checked))["Ingress class"].ok
    finally:
        k8s.core.patch_namespaced_config_map("config-network", "knative-serving",
                                             {"data": {"ingress.class": cluster_check.AMBASSADOR_CLASS}})


def test_a_public_domain_fails_the_cluster_local_check(checked, k8s):
    k8s.core.patch_namespaced_config_map("config-domain", "knative-serving", {"data": {"example.com": ""}})
    try:
        result = by_name(cluster_check.run_checks(checked))["Cluster-local domain"]
    finally:
        k8s.core.patch_namespaced_config_map("config-domain", "knative-serving", {"data": {"example.com": None}})
    assert not result.ok and "example.com" in result.detail and "config-domain.yaml" in result.fix


def test_a_missing_permission_fails_with_the_rbac_fix(checked, kubesim):
    kubesim.call(kubesim.sim.config.denied.append, ("", "secrets", "delete", None))
    code, out, _ = run()
    assert code == 1
    assert "✗ Permissions" in out and "delete secrets" in out, out
    assert "fix: Install the relayweb chart's RBAC" in out


def test_an_unreachable_ambassador_admin_fails_with_its_fix(checked, settings):
    settings.RELAY_AMBASSADOR_ADMIN_URL = f"http://127.0.0.1:{free_port()}"
    code, out, _ = run()
    assert code == 1
    assert "✗ Ambassador" in out and "cannot reach Ambassador diag" in out
    assert "fix: Ambassador's admin port is not answering at RELAY_AMBASSADOR_ADMIN_URL" in out


def test_an_ambassador_id_mismatch_fails(checked, settings):
    settings.RELAY_AMBASSADOR_ID = "relay"
    result = by_name(cluster_check.run_checks(checked))["Ambassador"]
    assert not result.ok and "'default'" in result.detail and "'relay'" in result.detail
    assert "ambassadorId" in result.fix


@pytest.fixture
def odd_sim(tmp_path):
    sims = []

    def make(**config):
        sim = SimulatorThread(SimConfig(kubeconfig=str(tmp_path / f"kc{len(sims)}"), **FAST, **config)).start()
        sims.append(sim)
        return sim

    yield make
    for sim in sims:
        sim.stop()


def test_an_old_kubernetes_and_knative_support_off_fail(odd_sim, settings):
    sim = odd_sim(kube_version="1.30.4", knative_support=False)
    settings.RELAY_KUBECONFIG = sim.kubeconfig_path
    settings.RELAY_AMBASSADOR_ADMIN_URL = sim.admin_url
    settings.RELAY_AMBASSADOR_ID = ""
    results = by_name(cluster_check.run_checks(kube.Cluster()))
    assert not results["Kubernetes version"].ok and "1.30.4" in results["Kubernetes version"].detail
    assert "1.34" in results["Kubernetes version"].fix
    assert not results["Ambassador"].ok and "AMBASSADOR_KNATIVE_SUPPORT=true" in results["Ambassador"].fix


def odd_cluster(odd_sim, settings, **config) -> kube.Cluster:
    sim = odd_sim(**config)
    settings.RELAY_KUBECONFIG = sim.kubeconfig_path
    settings.RELAY_AMBASSADOR_ADMIN_URL = sim.admin_url
    settings.RELAY_AMBASSADOR_ID = ""
    return kube.Cluster()


def test_a_knative_release_older_than_the_supported_one_fails_with_the_upgrade(odd_sim, settings):
    result = by_name(cluster_check.run_checks(odd_cluster(odd_sim, settings, knative_version="1.19.2")))
    knative = result["Knative Serving"]
    assert not knative.ok and "1.19.2 is older than 1.23" in knative.detail, knative
    assert "Upgrade Knative Serving to 1.23" in knative.fix and "CRDs first" in knative.fix
    assert result["Kubernetes version"].ok  # only this check fails


def test_a_knative_0x_install_is_recognised_by_its_release_label_and_fails(odd_sim, settings):
    cluster = odd_cluster(odd_sim, settings, knative_version="")
    cluster.core.patch_namespace("knative-serving", {"metadata": {"labels": {
        cluster_check.KNATIVE_LEGACY_RELEASE_LABEL: "v0.13.0"}}})
    knative = by_name(cluster_check.run_checks(cluster))["Knative Serving"]
    assert not knative.ok and "v0.13.0 is older than 1.23" in knative.detail, knative


def test_an_unlabelled_knative_release_passes_and_says_so(odd_sim, settings):
    knative = by_name(cluster_check.run_checks(odd_cluster(odd_sim, settings, knative_version="devel")))[
        "Knative Serving"]
    assert knative.ok and "release unknown" in knative.detail and "devel" in knative.detail, knative


def test_missing_knative_crds_fail_with_the_install_step(odd_sim, settings):
    knative = by_name(cluster_check.run_checks(odd_cluster(odd_sim, settings, knative_crds=False)))[
        "Knative Serving"]
    assert not knative.ok and "serving.knative.dev/v1 API is not served" in knative.detail, knative
    assert "CRDs are missing" in knative.detail and "serving-crds.yaml" in knative.fix


def test_rejected_credentials_fail_the_api_check_and_stop_there(kubesim, settings, tmp_path):
    bad = tmp_path / "kc"
    bad.write_text(open(kubesim.kubeconfig_path).read().replace(kubesim.token, "not-the-token"))
    settings.RELAY_KUBECONFIG = str(bad)
    results = cluster_check.run_checks(kube.Cluster())
    assert [r.name for r in results] == ["Kubernetes API"]
    assert not results[0].ok and "credentials" in results[0].fix


def test_kubernetes_versions_of_providers_parse():
    assert cluster_check.parse_version({"major": "1", "minor": "34+", "gitVersion": "v1.34.2-eks-1"}) == (1, 34)
    assert cluster_check.parse_version({"major": "", "minor": "", "gitVersion": "v1.35.0"}) == (1, 35)


def test_the_checked_permissions_are_what_the_code_uses_and_the_chart_grants():
    checked = {(g, r, v) for g, r, v, _ in cluster_check.permissions()}
    needed = set(required_permissions()) - {("authorization.k8s.io", "selfsubjectaccessreviews", "create")}
    assert needed <= checked, needed - checked
    objects = render("relayweb", RELAYWEB_REQUIRED)
    assert checked <= granted(objects, "ClusterRole") | granted(objects, "Role")


def test_the_diag_page_shows_the_last_check_to_staff(checked, staff, alice, settings):
    settings.RELAY_AMBASSADOR_ADMIN_URL = f"http://127.0.0.1:{free_port()}"
    run()
    client = Client()
    client.force_login(staff)
    html = client.get("/ops/diag/").content.decode()
    assert 'id="cluster-check-results"' in html and "✗" in html and "Fix:" in html
    assert "RELAY_AMBASSADOR_ADMIN_URL" in html
    client.force_login(alice)
    assert client.get("/ops/diag/").status_code == 404


def test_the_diag_page_says_when_no_check_ran(staff):
    client = Client()
    client.force_login(staff)
    assert 'id="cluster-check-never"' in client.get("/ops/diag/").content.decode()


def test_only_the_latest_runs_are_kept():
    for _ in range(ClusterCheck.KEEP + 3):
        ClusterCheck.record([{"name": "x", "ok": True, "detail": "", "fix": ""}], probe=False)
    assert ClusterCheck.objects.count() == ClusterCheck.KEEP




def test_with_an_ambassador_id_mismatch_the_probe_is_never_routed_and_fails(checked, settings, k8s):
    settings.RELAY_AMBASSADOR_ID = "relay"  # the probe ksvc carries it; kubesim's Ambassador is "default"
    settings.RELAY_CHECK_PROBE_TIMEOUT = 2.0
    results = by_name(cluster_check.run_checks(checked, with_probe=True))
    assert not results["Ambassador"].ok
    probe = results["End-to-end probe"]
    assert not probe.ok and "not Ready after 2 s" in probe.detail and "IngressNotConfigured" in probe.detail, probe
    live = [ns for ns in k8s.core.list_namespace().items
            if (ns.metadata.labels or {}).get(cluster_check.PROBE_LABEL) and not ns.metadata.deletion_timestamp
            and ns.status.phase != "Terminating"]
    assert live == []


def test_the_verdict_stands_when_the_result_cannot_be_stored(kubesim, tmp_path):
    import os
    import subprocess
    import sys

    from tests.cluster import REPO

    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "tests.settings", "DATABASE_URL": f"sqlite:///{tmp_path}/empty.db",
           "RELAY_KUBECONFIG": kubesim.kubeconfig_path, "RELAY_AMBASSADOR_ADMIN_URL": kubesim.admin_url,
           "RELAY_AMBASSADOR_ID": ""}
    done = subprocess.run([sys.executable, "manage.py", "check_cluster"], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "all 7 checks passed" in done.stdout
    assert "the result was not stored for the Diag page" in done.stderr and "Traceback" not in done.stderr


def test_a_forbidden_read_fails_its_check_with_the_api_servers_message_and_the_rbac_fix(checked, kubesim):
    kubesim.call(kubesim.sim.config.denied.append, ("", "configmaps", "get", "knative-serving"))
    results = by_name(cluster_check.run_checks(checked))
    for name in ("Ingress class", "Cluster-local domain"):
        assert not results[name].ok
        assert 'cannot get resource "configmaps"' in results[name].detail
        assert "RBAC" in results[name].fix
    assert "get configmaps in knative-serving" in results["Permissions"].detail
