"""Triggers API: validation with field errors, write-only secrets, quota, suspension, roles."""

import base64

import pytest

from tenants.models import Membership, Role
from triggers.cluster import kube
from triggers.models import Deployment, Trigger

pytestmark = pytest.mark.django_db
URL = "/api/v1/tenants/acme/triggers/"


def create(api, user, **body):
    return api(user).post(URL, {"name": "hello", "image": "kubesim/echo", **body}, format="json")


def test_create_with_defaults(api, alice, tenant_a):
    response = create(api, alice)
    assert response.status_code == 201, response.json()
    body = response.json()
    # the timeout defaults to Knative's 300 s held to the gateway's route timeout (15 s)
    assert (body["port"], body["min_scale"], body["max_scale"], body["timeout_seconds"]) == (8080, 0, 3, 15)
    assert body["state"] == "not_deployed" and body["last_deployment"] is None and body["spec_version"] == 1


@pytest.mark.parametrize(
    "body, field, text",
    [
        ({"name": "Hello"}, "name", "lowercase"),
        ({"name": "1st"}, "name", "starting with a letter"),
        ({"name": "a" * 41}, "name", "40"),
        ({"image": "UPPER/case"}, "image", "must be lowercase"),
        ({"image": "acme/hook:bad tag"}, "image", "white space"),
        ({"image": "acme/hook@sha256:1234"}, "image", "64"),
        ({"image": "registry:5000:x/y"}, "image", "invalid"),
        ({"image": ""}, "image", ""),
        ({"port": 8012}, "port", "reserved by Knative"),
        ({"port": 70000}, "port", "65535"),
        ({"env": [{"name": "PORT", "value": "1"}]}, "env", "set by Knative"),
        ({"env": [{"name": "A", "value": "1"}, {"name": "A", "value": "2"}]}, "env", "set twice"),
        ({"env": [{"name": "1A", "value": "1"}]}, "env", "not a valid variable name"),
        ({"env": [{"name": "A", "value": "1", "secret": True}]}, "env", "Unknown field"),
        ({"min_scale": 3, "max_scale": 2}, "max_scale", "at least min_scale"),
        ({"max_scale": 11}, "max_scale", "RELAY_MAX_SCALE_LIMIT"),
        ({"timeout_seconds": 700}, "timeout_seconds", "600"),
        ({"timeout_seconds": 16}, "timeout_seconds", "the gateway cuts every request at 15 s"),
        ({"target_concurrency": 0}, "target_concurrency", ""),
        ({"colour": "red"}, "colour", "Unknown field"),
        ({"secret_values": {"lower-case": "x"}}, "secret_env", "not a valid variable name"),
    ],
)
def test_bad_input_is_a_400_naming_the_field(api, alice, tenant_a, body, field, text):
    response = create(api, alice, **body)
    assert response.status_code == 400, response.json()
    errors = response.json()
    assert field in errors or any(field in str(v) for v in errors.values()), errors
    assert text in str(errors)
    assert not Trigger.objects.exists()


def test_valid_image_references(api, alice, tenant_a):
    images = ["nginx", "docker.io/library/nginx:1.27", "localhost:5000/a/b_c.d-e:v1",
              "ghcr.io/acme/hook@sha256:" + "a" * 64, "gcr.io/knative-samples/helloworld-go:latest@sha256:" + "0" * 64]
    for i, image in enumerate(images):
        assert create(api, alice, name=f"t{i}", image=image).status_code == 201, image


def test_duplicate_name_and_quota(api, alice, tenant_a, settings):
    assert create(api, alice).status_code == 201
    response = create(api, alice)
    assert response.status_code == 400 and "already exists" in response.json()["name"][0]
    settings.RELAY_MAX_TRIGGERS_PER_TENANT = 2
    assert create(api, alice, name="second").status_code == 201
    response = create(api, alice, name="third")
    assert response.status_code == 400 and "limit of 2 triggers" in response.json()["detail"]


def test_update_bumps_the_spec_version_only_on_change(api, alice, tenant_a):
    create(api, alice)
    url = URL + "hello/"
    assert api(alice).patch(url, {"image": "kubesim/echo"}, format="json").json()["spec_version"] == 1
    assert api(alice).patch(url, {"image": "kubesim/echo:2"}, format="json").json()["spec_version"] == 2
    response = api(alice).patch(url, {"name": "renamed"}, format="json")
    assert response.status_code == 400 and "name" in response.json()


def test_editor_changes_viewer_only_reads(api, alice, bob, tenant_a):
    create(api, alice)
    assert api(bob).get(URL + "hello/").status_code == 200
    for method, path in [("post", URL), ("patch", URL + "hello/"), ("delete", URL + "hello/"),
                         ("post", URL + "hello/deploy/"), ("post", URL + "hello/suspend/")]:
        assert getattr(api(bob), method)(path, {}, format="json").status_code == 403, path
    Membership.objects.filter(user=bob).update(role=Role.EDITOR)
    assert api(bob).patch(URL + "hello/", {"port": 9000}, format="json").status_code == 200


def test_suspended_trigger_cannot_deploy(api, alice, tenant_a):
    create(api, alice)
    assert api(alice).post(URL + "hello/suspend/").json()["suspended"] is True
    response = api(alice).post(URL + "hello/deploy/")
    assert response.status_code == 400 and "suspended; resume it" in response.json()["detail"]
    assert not Deployment.objects.exists()
    assert api(alice).post(URL + "hello/resume/").json()["suspended"] is False
    response = api(alice).post(URL + "hello/deploy/")
    assert response.status_code == 202 and response.json()["status"] == "pending"


def test_deploy_waits_for_the_tenant_namespace(api, alice, tenant_a):
    create(api, alice)
    tenant_a.state = "provisioning"
    tenant_a.save()
    response = api(alice).post(URL + "hello/deploy/")
    assert response.status_code == 400 and "namespace must be ready" in response.json()["detail"]


def test_secret_values_go_to_kubernetes_only(api, alice, tenant_a, cluster, k8s):
    cluster.apply_namespace(kube.render_namespace(tenant_a))
    try:
        response = create(api, alice, secret_values={"API_TOKEN": "s3cr3t-value"})
        assert response.status_code == 201, response.json()
        assert "s3cr3t-value" not in response.content.decode()
        assert list(response.json()["secret_env"]) == ["API_TOKEN"]
        trigger = Trigger.objects.get(name="hello")
        assert "s3cr3t-value" not in str(Trigger.objects.filter(pk=trigger.pk).values().first())
        name = f"hello-env-{trigger.secret_env['API_TOKEN']['version']}"
        secret = k8s.core.read_namespaced_secret(name, "relay-acme")
        assert base64.b64decode(secret.data["API_TOKEN"]).decode() == "s3cr3t-value"
        assert "s3cr3t-value" not in api(alice).get(URL + "hello/").content.decode()
        ksvc = kube.render_ksvc(trigger)
        env = ksvc["spec"]["template"]["spec"]["containers"][0]["env"]
        assert env == [{"name": "API_TOKEN", "valueFrom": {"secretKeyRef": {"name": name, "key": "API_TOKEN"}}}]
        response = api(alice).patch(URL + "hello/", {"secret_values": {"API_TOKEN": None}}, format="json")
        assert response.json()["secret_env"] == {}
        assert "API_TOKEN" not in str(kube.render_ksvc(Trigger.objects.get(pk=trigger.pk)))
        # the Secret the deployed revision reads stays as it was until that revision goes
        assert "API_TOKEN" in k8s.core.read_namespaced_secret(name, "relay-acme").data
    finally:
        k8s.core.delete_namespace("relay-acme")


def test_secret_values_need_a_ready_namespace(api, alice, tenant_a):
    tenant_a.state = "provisioning"
    tenant_a.save()
    response = create(api, alice, secret_values={"TOKEN": "x"})
    assert response.status_code == 400 and "not ready yet" in response.json()["secret_env"][0]


def test_other_tenants_triggers_are_invisible(api, alice, charlie, tenant_a, tenant_b):
    create(api, alice)
    assert api(charlie).get(URL).status_code == 404
    assert api(charlie).get("/api/v1/tenants/globex/triggers/").json()["count"] == 0


@pytest.mark.parametrize("port", [8008, 8012, 8013, 8022, 9090, 9091])
def test_every_port_knative_reserves_is_refused_with_a_clear_message(api, alice, tenant_a, port):
    response = create(api, alice, port=port)
    assert response.status_code == 400, response.json()
    assert f"Port {port} is reserved by Knative" in str(response.json()["port"])
    assert "use another, e.g. 8080" in str(response.json()["port"])
    assert not Trigger.objects.exists()


def test_a_timeout_above_the_gateways_limit_is_refused_but_a_stored_one_does_not_block_edits(api, alice, tenant_a,
                                                                                              settings):
    settings.RELAY_GATEWAY_ROUTE_TIMEOUT = 30
    response = create(api, alice, timeout_seconds=31)
    assert response.status_code == 400
    assert "from 1 to 30 seconds: the gateway cuts every request at 30 s (RELAY_GATEWAY_ROUTE_TIMEOUT)" in \
        str(response.json()["timeout_seconds"])
    assert create(api, alice, timeout_seconds=30).status_code == 201
    Trigger.objects.create(tenant=tenant_a, name="old", image="kubesim/echo", timeout_seconds=300)  # made before
    assert api(alice).patch(URL + "old/", {"image": "kubesim/echo:2"}, format="json").status_code == 200
    refused = api(alice).patch(URL + "old/", {"timeout_seconds": 200}, format="json")
    assert refused.status_code == 400 and "RELAY_GATEWAY_ROUTE_TIMEOUT" in str(refused.json())
