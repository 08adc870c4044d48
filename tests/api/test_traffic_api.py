"""Revisions, traffic and rollback API (issue 16): Knative's traffic rules as 400s naming our field, roles
(viewers read, editors write), other tenants and anonymous refused, an unreachable cluster a 503.
The real deploys, splits and rollbacks through kubesim are in tests/cluster/test_traffic_flow.py."""

import pytest
import yaml

from tenants.models import AuditEntry, Membership, Role
from triggers.cluster import kube
from triggers.models import Deployment, Trigger

pytestmark = pytest.mark.django_db
URL = "/api/v1/tenants/acme/triggers/hello/"
DNS1035 = "invalid value: not a DNS 1035 label: [a DNS-1035 label must consist of lower case alphanumeric"


@pytest.fixture
def trigger(tenant_a):
    return Trigger.objects.create(tenant=tenant_a, name="hello", image="kubesim/echo", spec_version=1,
                                  latest_ready_revision="hello-00001", latest_created_revision="hello-00001")


@pytest.fixture
def unreachable(settings, tmp_path):
    (tmp_path / "kubeconfig").write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": "c",
        "clusters": [{"name": "c", "cluster": {"server": "http://127.0.0.1:1"}}],
        "users": [{"name": "u", "user": {"token": "t"}}],
        "contexts": [{"name": "c", "context": {"cluster": "c", "user": "u"}}],
    }))
    settings.RELAY_KUBECONFIG = str(tmp_path / "kubeconfig")
    settings.RELAY_KUBE_TIMEOUT = 2
    kube.reset_cluster()
    yield
    kube.reset_cluster()


def put(api, user, traffic):
    return api(user).put(URL + "traffic/", {"traffic": traffic}, format="json")


@pytest.mark.parametrize("traffic, field, text", [
    ([{"latest": True, "percent": 90}], "traffic", "Traffic targets sum to 90, want 100."),
    ([{"latest": True, "percent": 60}, {"latest": True, "percent": 0, "tag": "a"}], "traffic",
     "sum to 60, want 100"),
    ([{"latest": True, "percent": 50}, {"latest": True, "percent": 101}], "traffic[1].percent",
     "expected 0 <= 101 <= 100"),
    ([{"latest": True, "percent": -1}, {"latest": True, "percent": 101}], "traffic[0].percent",
     "expected 0 <= -1 <= 100"),
    ([{"latest": True, "percent": "50"}], "traffic[0].percent", "whole number"),
    ([{"revision": "hello-00001", "latest": True, "percent": 100}], "traffic[0].revision", "not both"),
    ([{"percent": 100}], "traffic[0].revision", "got neither"),
    ([{"latest": "yes", "percent": 100}], "traffic[0].latest", "true or false"),
    ([{"latest": True, "percent": 100, "tag": "Bad_Tag"}], "traffic[0].tag", DNS1035),
    ([{"latest": True, "percent": 100, "tag": "a" * 64}], "traffic[0].tag", "must be no more than 63 characters"),
    ([{"latest": True, "percent": 50, "tag": "a"}, {"latest": True, "percent": 50, "tag": "a"}], "traffic[1].tag",
     'Multiple definitions for "a"'),
    ([{"latest": True, "percent": 100, "weight": 1}], "traffic[0].weight", "Unknown field"),
    ([7], "traffic[0]", "Expected an object"),
    ({"latest": True}, "traffic", "Expected a list"),
])
def test_each_traffic_rule_is_a_400_naming_the_field(api, alice, trigger, traffic, field, text):
    response = put(api, alice, traffic)
    assert response.status_code == 400, response.json()
    assert text in response.json()[field][0], response.json()
    assert not Deployment.objects.exists()
    trigger.refresh_from_db()
    assert trigger.traffic == []


def test_a_body_without_traffic_or_with_more_is_refused(api, alice, trigger):
    assert "traffic" in api(alice).put(URL + "traffic/", {}, format="json").json()
    response = api(alice).put(URL + "traffic/", {"traffic": [], "split": 1}, format="json")
    assert response.status_code == 400 and "split" in response.json()


def test_follow_latest_goes_through_the_deploy_task_and_is_audited(api, alice, trigger):
    Trigger.objects.filter(pk=trigger.pk).update(traffic=[{"revision": "hello-00001", "latest": False,
                                                           "percent": 100, "tag": ""}])
    for follow_latest in ([], [{"latest": True, "percent": 100}]):
        response = put(api, alice, follow_latest)
        assert response.status_code == 202, response.json()
        assert response.json()["status"] == "pending"
        trigger.refresh_from_db()
        assert trigger.traffic == []
    assert Deployment.objects.filter(trigger=trigger).count() == 2
    assert Deployment.objects.filter(status="superseded").count() == 1  # the newer one supersedes
    entry = AuditEntry.objects.filter(action="trigger.traffic").first()
    assert entry is not None and entry.changes["traffic"] == []


def test_latest_only_split_with_tags_needs_no_cluster(api, alice, trigger):
    traffic = [{"latest": True, "percent": 100}, {"latest": True, "percent": 0, "tag": "current"}]
    assert put(api, alice, traffic).status_code == 202
    trigger.refresh_from_db()
    assert trigger.traffic == [{"revision": None, "latest": True, "percent": 100, "tag": ""},
                               {"revision": None, "latest": True, "percent": 0, "tag": "current"}]


def test_candidate_deploy_pins_the_serving_revision_and_tags_the_new_one(api, alice, trigger):
    response = api(alice).post(URL + "deploy/", {"candidate": True}, format="json")
    assert response.status_code == 202, response.json()
    trigger.refresh_from_db()
    assert trigger.traffic == [{"revision": "hello-00001", "latest": False, "percent": 100, "tag": ""},
                               {"revision": None, "latest": True, "percent": 0, "tag": "candidate"}]
    assert AuditEntry.objects.get(action="trigger.deploy").changes["candidate"] is True
    # a split already set is kept, latest entries pinned to what is latest now; the old candidate is replaced
    Trigger.objects.filter(pk=trigger.pk).update(
        latest_ready_revision="hello-00002",
        traffic=[{"revision": "hello-00001", "latest": False, "percent": 30, "tag": ""},
                 {"revision": None, "latest": True, "percent": 70, "tag": ""},
                 {"revision": None, "latest": True, "percent": 0, "tag": "candidate"}])
    assert api(alice).post(URL + "deploy/", {"candidate": True}, format="json").status_code == 202
    trigger.refresh_from_db()
    assert trigger.traffic == [{"revision": "hello-00001", "latest": False, "percent": 30, "tag": ""},
                               {"revision": "hello-00002", "latest": False, "percent": 70, "tag": ""},
                               {"revision": None, "latest": True, "percent": 0, "tag": "candidate"}]
    # a plain deploy leaves the traffic as it is
    assert api(alice).post(URL + "deploy/").status_code == 202
    trigger.refresh_from_db()
    assert len(trigger.traffic) == 3


def test_candidate_deploy_without_a_ready_revision_is_a_400_naming_candidate(api, alice, trigger):
    Trigger.objects.filter(pk=trigger.pk).update(latest_ready_revision="")
    response = api(alice).post(URL + "deploy/", {"candidate": True}, format="json")
    assert response.status_code == 400 and "no ready revision" in response.json()["candidate"][0]
    assert not Deployment.objects.exists()
    assert api(alice).post(URL + "deploy/", {"canddate": True}, format="json").status_code == 400


def test_unreachable_cluster_is_a_503_with_a_clear_message(api, alice, bob, trigger, unreachable):
    response = api(bob).get(URL + "revisions/")
    assert response.status_code == 503
    assert "Cannot read the revisions of hello from the cluster" in response.json()["detail"]
    response = api(alice).post(URL + "rollback/", {"revision": "hello-00001"}, format="json")
    assert response.status_code == 503 and "cannot reach" in response.json()["detail"]
    response = put(api, alice, [{"revision": "hello-00001", "percent": 100}])
    assert response.status_code == 503
    assert not Deployment.objects.exists()


def test_no_cluster_configured_is_a_503_too(api, alice, trigger, settings, monkeypatch):
    settings.RELAY_KUBECONFIG = ""
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    kube.reset_cluster()
    response = api(alice).get(URL + "revisions/")
    assert response.status_code == 503 and "RELAY_KUBECONFIG" in response.json()["detail"]


def test_viewers_read_but_may_not_change_traffic(api, bob, trigger):
    assert put(api, bob, []).status_code == 403
    assert api(bob).post(URL + "rollback/", {"revision": "hello-00001"}, format="json").status_code == 403
    assert api(bob).post(URL + "deploy/", {"candidate": True}, format="json").status_code == 403
    assert not Deployment.objects.exists()


def test_editors_may_change_traffic(api, trigger, django_user_model):
    editor = django_user_model.objects.create_user("eddie", password="x")
    Membership.objects.create(tenant=trigger.tenant, user=editor, role=Role.EDITOR)
    assert put(api, editor, []).status_code == 202


def test_other_tenants_and_anonymous_are_refused(api, charlie, tenant_b, trigger):
    calls = [("get", "revisions/", None), ("put", "traffic/", {"traffic": []}),
             ("post", "rollback/", {"revision": "hello-00001"}), ("post", "deploy/", {"candidate": True})]
    for method, path, body in calls:
        assert getattr(api(charlie), method)(URL + path, body, format="json").status_code == 404, path
        assert getattr(api(None), method)(URL + path, body, format="json").status_code in (401, 403), path
    assert not Deployment.objects.exists()


def test_the_schema_documents_revisions_traffic_rollback_and_candidate(api, alice):
    schema = api(alice).get("/api/schema/?format=json").json()
    paths = schema["paths"]
    one = "/api/v1/tenants/{tenant_slug}/triggers/{name}/"
    assert "get" in paths[one + "revisions/"] and "503" in paths[one + "revisions/"]["get"]["responses"]
    assert "put" in paths[one + "traffic/"] and "post" in paths[one + "rollback/"]
    deploy = paths[one + "deploy/"]["post"]["requestBody"]["content"]["application/json"]["schema"]["$ref"]
    assert "candidate" in schema["components"]["schemas"][deploy.rsplit("/", 1)[1]]["properties"]


def test_deploy_needs_no_body_an_empty_form_is_none_and_a_filled_form_is_refused(alice, tenant_a):
    """Deploy took no body before `candidate`: a bare POST, or an empty form (Django's test client, a plain HTML
    form), still deploys; a form with fields gets 415 (the API speaks JSON)."""
    from django.test import Client

    from triggers.models import Trigger

    Trigger.objects.create(tenant=tenant_a, name="hello", image="kubesim/echo")
    client = Client()
    client.force_login(alice)
    url = "/api/v1/tenants/acme/triggers/hello/deploy/"
    assert client.post(url).status_code == 202
    assert client.post(url, "", content_type="application/x-www-form-urlencoded").status_code == 202
    assert client.post(url, {"candidate": "true"}).status_code == 415


def test_a_deployment_says_whether_it_changed_the_spec_or_only_the_traffic(alice, tenant_a):
    from django.test import Client

    from triggers.models import Deployment, Trigger

    trigger = Trigger.objects.create(tenant=tenant_a, name="hello", image="kubesim/echo")
    Deployment.objects.create(trigger=trigger, spec_version=1, kind="traffic", status="ready")
    client = Client()
    client.force_login(alice)
    response = client.post("/api/v1/tenants/acme/triggers/hello/deploy/")
    assert (response.status_code, response.json()["kind"]) == (202, "deploy")
    listed = client.get("/api/v1/tenants/acme/triggers/hello/deployments/").json()["results"]
    assert [d["kind"] for d in listed] == ["deploy", "traffic"]
