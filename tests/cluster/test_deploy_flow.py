"""Deploying triggers for real.

API → Celery worker process → kubesim (official client over HTTP) → Knative's verdict.
"""

import jsonschema
import pytest
import yaml
from django.utils import timezone
from kubernetes.client.exceptions import ApiException

from tenants.models import Tenant
from tests.cluster import shared_fixtures, wait_for
from triggers.cluster import kube
from triggers.models import Deployment, Trigger

pytestmark = pytest.mark.celery
KSVC = {"group": "serving.knative.dev", "version": "v1", "plural": "services"}


@pytest.fixture
def ready_tenant(api, alice, worker, k8s):
    response = api(alice).post("/api/v1/tenants/", {"slug": "acme", "name": "Acme"}, format="json")
    assert response.status_code == 201
    tenant = wait_for(lambda: Tenant.objects.filter(slug="acme", state=Tenant.State.READY).first(),
                      message="tenant provisioned")
    yield tenant
    # kubesim outlives the test: leave no namespace behind for the next one.
    try:
        k8s.core.delete_namespace("relay-acme")
    except ApiException as e:
        assert e.status == 404
    names = lambda: {ns.metadata.name for ns in k8s.core.list_namespace().items}  # noqa: E731
    wait_for(lambda: "relay-acme" not in names(), message="namespace removed")


def create(api, user, name="hello", **spec):
    body = {"name": name, "image": "kubesim/echo", **spec}
    response = api(user).post("/api/v1/tenants/acme/triggers/", body, format="json")
    assert response.status_code == 201, response.json()
    return Trigger.objects.get(name=name)


def deploy(api, user, name="hello", action="deploy"):
    response = api(user).post(f"/api/v1/tenants/acme/triggers/{name}/{action}/")
    assert response.status_code == 202, response.json()
    return response.json()["id"]


def settled(deployment_id, timeout=20):
    return wait_for(
        lambda: Deployment.objects.filter(pk=deployment_id).exclude(status__in=Deployment.ACTIVE).first(),
        timeout=timeout, message=f"deployment {deployment_id} settled",
    )


def ksvc(k8s, name="hello"):
    return k8s.custom.get_namespaced_custom_object(namespace="relay-acme", name=name, **KSVC)


def revisions(k8s, name="hello"):
    items = k8s.custom.list_namespaced_custom_object(
        "serving.knative.dev", "v1", "relay-acme", "revisions", label_selector=f"serving.knative.dev/service={name}"
    )["items"]
    return sorted(r["metadata"]["name"] for r in items)


def test_tenant_namespace_is_provisioned(ready_tenant, k8s):
    namespace = k8s.core.read_namespace("relay-acme")
    assert namespace.metadata.labels["app.kubernetes.io/managed-by"] == "relayweb"
    policy = k8s.networking.read_namespaced_network_policy("relayweb-default-deny", "relay-acme")
    assert policy.spec.policy_types == ["Ingress"]
    assert k8s.core.read_namespaced_limit_range("relayweb-defaults", "relay-acme").spec.limits[0].type == "Container"


def test_happy_path_create_deploy_ready(api, alice, ready_tenant, k8s):
    create(api, alice)
    deployment = settled(deploy(api, alice))
    assert deployment.status == "ready", (deployment.reason, deployment.message)
    assert deployment.revision == "hello-00001"
    body = api(alice).get("/api/v1/tenants/acme/triggers/hello/").json()
    assert body["state"] == "ready"
    assert body["status"]["address_url"] == "http://hello.relay-acme.svc.cluster.local"
    live = ksvc(k8s)
    assert live["metadata"]["annotations"]["serving.knative.dev/creator"]
    crd = yaml.safe_load((shared_fixtures() / "knative/knative-serving-knative-v1.23.0-service-crd.yaml").read_text())
    schema = next(v for v in crd["spec"]["versions"] if v["name"] == "v1")["schema"]["openAPIV3Schema"]
    jsonschema.validate(live, schema)
    assert kube.fingerprint(live) == live["metadata"]["annotations"][kube.SPEC_HASH]


def test_image_that_cannot_be_pulled_fails_with_knatives_message(api, alice, ready_tenant):
    create(api, alice, image="registry.example.com/acme/pull-fail:1")
    deployment = settled(deploy(api, alice))
    assert deployment.status == "failed"
    assert deployment.reason == "ContainerMissing"
    assert 'Unable to fetch image "registry.example.com/acme/pull-fail:1"' in deployment.message
    body = api(alice).get("/api/v1/tenants/acme/triggers/hello/deployments/").json()["results"][0]
    assert body["status"] == "failed" and body["reason"] == "ContainerMissing"
    assert api(alice).get("/api/v1/tenants/acme/triggers/hello/").json()["state"] == "failed"


def test_crashing_image_fails_with_exit_code_1(api, alice, ready_tenant):
    create(api, alice, image="kubesim/crash")
    deployment = settled(deploy(api, alice))
    assert (deployment.status, deployment.reason) == ("failed", "ExitCode1")
    assert "failed with message" in deployment.message


def test_broken_update_keeps_the_old_revision_serving(api, alice, ready_tenant):
    create(api, alice)
    assert settled(deploy(api, alice)).status == "ready"
    response = api(alice).patch("/api/v1/tenants/acme/triggers/hello/", {"image": "kubesim/crash"}, format="json")
    assert response.status_code == 200
    assert settled(deploy(api, alice)).status == "failed"
    status = api(alice).get("/api/v1/tenants/acme/triggers/hello/").json()["status"]
    assert status["serving_old_revision"] is True
    assert (status["latest_ready_revision"], status["latest_created_revision"]) == ("hello-00001", "hello-00002")


def test_apply_is_idempotent_and_each_change_makes_one_revision(api, alice, ready_tenant, k8s):
    create(api, alice)
    assert settled(deploy(api, alice)).status == "ready"
    assert settled(deploy(api, alice)).status == "ready"
    assert revisions(k8s) == ["hello-00001"]
    generation = ksvc(k8s)["metadata"]["generation"]
    api(alice).patch("/api/v1/tenants/acme/triggers/hello/", {"env": [{"name": "MODE", "value": "x"}]}, format="json")
    assert settled(deploy(api, alice)).status == "ready"
    assert revisions(k8s) == ["hello-00001", "hello-00002"]
    assert settled(deploy(api, alice, action="redeploy")).status == "ready"
    assert revisions(k8s) == ["hello-00001", "hello-00002", "hello-00003"]
    live = ksvc(k8s)
    assert live["metadata"]["generation"] == generation + 2
    assert live["metadata"]["annotations"]["serving.knative.dev/creator"]


def test_cluster_api_failures_are_retried_until_ready(api, alice, ready_tenant, kubesim, k8s):
    for name in ("one", "two", "three"):
        create(api, alice, name=name)
    kubesim.call(kubesim.sim.faults.add, 503, None, 4, "create", "services.serving.knative.dev")
    ids = [deploy(api, alice, name=name) for name in ("one", "two", "three")]
    results = [settled(pk, timeout=40) for pk in ids]
    assert [d.status for d in results] == ["ready"] * 3
    assert sum(d.attempts for d in results) >= 4  # the faults were hit and retried
    assert [revisions(k8s, n) for n in ("one", "two", "three")] == [["one-00001"], ["two-00001"], ["three-00001"]]
    assert Deployment.objects.count() == 3


def test_worker_killed_mid_deploy_completes_after_restart(api, alice, ready_tenant, worker, make_worker, kubesim):
    create(api, alice)
    kubesim.call(kubesim.sim.faults.add, None, 30.0, 1, "create", "services.serving.knative.dev")
    pk = deploy(api, alice)
    wait_for(lambda: Deployment.objects.filter(pk=pk, status="applying").exists(), message="apply started")
    worker.kill()
    kubesim.call(kubesim.sim.faults.clear)
    make_worker()
    from triggers.tasks import deployments_resume

    # Beat resumes deployments older than RELAY_STUCK_AFTER (1 s here): wait until this one is, or a fast
    # worker start (under a second) makes the resume below find nothing stuck yet.
    created = Deployment.objects.get(pk=pk).created_at
    wait_for(lambda: (timezone.now() - created).total_seconds() > 1.5, message="the deployment counts as stuck")
    deployments_resume.delay()  # what beat does every 30 s
    assert settled(pk, timeout=30).status == "ready"


def test_delete_while_deploying_leaves_no_orphan(api, alice, ready_tenant, k8s):
    create(api, alice)
    deploy(api, alice)
    response = api(alice).delete("/api/v1/tenants/acme/triggers/hello/")
    assert response.status_code == 202 and response.json()["state"] == "deleting"
    wait_for(lambda: not Trigger.objects.filter(name="hello").exists(), message="trigger row gone")
    items = k8s.custom.list_namespaced_custom_object(namespace="relay-acme", **KSVC)["items"]
    assert items == []


def test_tenant_deletion_removes_everything_with_visible_state(api, alice, ready_tenant, k8s, settings):
    for i in range(20):
        create(api, alice, name=f"t{i:02d}")
    ids = [deploy(api, alice, name=f"t{i:02d}") for i in range(20)]
    assert {settled(pk, timeout=60).status for pk in ids} == {"ready"}
    assert api(alice).delete("/api/v1/tenants/acme/").status_code == 202
    seen = set()

    def gone():
        tenant = Tenant.objects.filter(slug="acme").first()
        if tenant:
            seen.add((tenant.state, tenant.message.split(":")[0]))
        return tenant is None

    wait_for(gone, timeout=60, interval=0.02, message="tenant gone")
    assert ("deleting", "Deleting triggers") in seen
    names = [ns.metadata.name for ns in k8s.core.list_namespace().items]
    assert "relay-acme" not in names
    assert k8s.custom.list_cluster_custom_object(**KSVC, label_selector="relayweb.io/tenant")["items"] == []
