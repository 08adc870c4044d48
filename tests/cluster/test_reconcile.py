"""Reconcile: one list call per namespace; re-create missing ksvcs, re-apply drifted ones, delete orphans."""

import io
import json

import pytest
from django.core.management import call_command

from tests.cluster import wait_for
from triggers.cluster import kube
from triggers.cluster.deploys import ReconcileReport, reconcile_all, reconcile_tenant
from triggers.models import Deployment, Trigger

pytestmark = pytest.mark.django_db(transaction=True)
KSVC = {"group": "serving.knative.dev", "version": "v1", "plural": "services"}


@pytest.fixture
def deployed(tenant_a, cluster, k8s):
    """Two triggers applied to kubesim directly (as a finished deploy would have), tenant namespace provisioned."""
    cluster.apply_namespace(kube.render_namespace(tenant_a))
    triggers = []
    for name in ("alpha", "beta"):
        trigger = Trigger.objects.create(tenant=tenant_a, name=name, image="kubesim/echo", spec_version=1)
        manifest = kube.render_ksvc(trigger)
        live = cluster.apply_ksvc(manifest, exists=False)
        Deployment.objects.create(trigger=trigger, spec_version=1, status="ready", manifest=manifest,
                                  generation=live["metadata"]["generation"], applied_at=trigger.created_at)
        triggers.append(trigger)
    yield triggers
    k8s.core.delete_namespace("relay-acme")
    wait_for(lambda: "relay-acme" not in {n.metadata.name for n in k8s.core.list_namespace().items},
             message="namespace gone")


def names(k8s):
    items = k8s.custom.list_namespaced_custom_object(namespace="relay-acme", **KSVC)["items"]
    return sorted(o["metadata"]["name"] for o in items)


def test_nothing_to_do_costs_one_list_call(deployed, cluster):
    before = kube.CountingApiClient.calls
    report = ReconcileReport()
    reconcile_tenant(deployed[0].tenant, cluster, report)
    assert kube.CountingApiClient.calls - before == 1
    assert (report.checked, report.created, report.updated, report.deleted) == (2, 0, 0, 0)


def test_missing_ksvc_is_recreated(deployed, cluster, k8s):
    k8s.custom.delete_namespaced_custom_object(namespace="relay-acme", name="alpha", **KSVC)
    report = reconcile_all()
    assert report.created == 1 and not report.errors
    assert names(k8s) == ["alpha", "beta"]


def test_drift_from_a_kubectl_edit_is_reapplied(deployed, cluster, k8s):
    patch = {"spec": {"template": {"spec": {"containers": [{"name": "user-container", "image": "evil/miner"}]}}}}
    k8s.custom.patch_namespaced_custom_object(namespace="relay-acme", name="beta", body=patch, **KSVC)
    report = reconcile_all()
    assert report.updated == 1
    live = k8s.custom.get_namespaced_custom_object(namespace="relay-acme", name="beta", **KSVC)
    assert live["spec"]["template"]["spec"]["containers"][0]["image"] == "kubesim/echo"
    assert live["metadata"]["annotations"]["serving.knative.dev/creator"]  # never a PUT
    assert reconcile_all().updated == 0


def test_orphans_with_the_managed_label_are_deleted_and_others_left_alone(deployed, cluster, k8s):
    orphan = json.loads(json.dumps(kube.render_ksvc(deployed[0])))
    orphan["metadata"]["name"] = "ghost"
    cluster.apply_ksvc(orphan, exists=False)
    foreign = {"apiVersion": "serving.knative.dev/v1", "kind": "Service",
               "metadata": {"name": "theirs", "namespace": "relay-acme"},
               "spec": {"template": {"spec": {"containers": [{"image": "kubesim/echo"}]}}}}
    k8s.custom.create_namespaced_custom_object(namespace="relay-acme", body=foreign, **KSVC)
    report = reconcile_all()
    assert report.deleted == 1
    assert names(k8s) == ["alpha", "beta", "theirs"]


def test_undeployed_edits_are_not_applied_by_reconcile(deployed, k8s):
    alpha = deployed[0]
    Trigger.objects.filter(pk=alpha.pk).update(image="kubesim/echo:next", spec_version=2)
    k8s.custom.delete_namespaced_custom_object(namespace="relay-acme", name="alpha", **KSVC)
    reconcile_all()
    live = k8s.custom.get_namespaced_custom_object(namespace="relay-acme", name="alpha", **KSVC)
    assert live["spec"]["template"]["spec"]["containers"][0]["image"] == "kubesim/echo"


def test_reconcile_command_reports_counts(deployed, k8s):
    k8s.custom.delete_namespaced_custom_object(namespace="relay-acme", name="beta", **KSVC)
    out = io.StringIO()
    call_command("reconcile", "--once", stdout=out)
    assert "1 namespaces, 2 triggers checked: 1 re-created, 0 re-applied (drift), 0 orphans deleted" in out.getvalue()


def test_unreachable_cluster_is_reported_not_raised(deployed, kubesim):
    kubesim.call(kubesim.sim.faults.add, 503, None, None, "list", "services.serving.knative.dev")
    report = reconcile_all()
    assert report.namespaces == 0 and len(report.errors) == 1 and "relay-acme" in report.errors[0]


def test_a_namespace_provisioned_before_pod_security_labels_gets_them(deployed, k8s):
    older = {key: None for key in kube.POD_SECURITY}  # what an older relayweb provisioned: no such labels
    k8s.core.patch_namespace("relay-acme", {"metadata": {"labels": {**older, "other": "kept"}}})
    report = reconcile_all()
    assert report.relabelled == 1 and not report.errors, report
    assert "1 namespaces re-labelled" in str(report)
    labels = k8s.core.read_namespace("relay-acme").metadata.labels
    assert {key: labels.get(key) for key in kube.POD_SECURITY} == kube.POD_SECURITY
    assert labels["other"] == "kept"
    enforce = "pod-security.kubernetes.io/enforce"
    k8s.core.patch_namespace("relay-acme", {"metadata": {"labels": {enforce: "privileged"}}})
    assert reconcile_all().relabelled == 1  # a hand edit does not last
    assert k8s.core.read_namespace("relay-acme").metadata.labels[enforce] == "baseline"


def test_namespace_labels_cost_one_list_call_per_pass_when_nothing_changed(deployed):
    before = kube.CountingApiClient.calls
    report = reconcile_all()
    assert report.relabelled == 0 and not report.errors
    assert kube.CountingApiClient.calls - before == 2  # the namespaces, then the tenant's ksvcs
