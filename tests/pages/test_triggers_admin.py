"""Operators' admin for triggers (search, filters, service-backed actions) and read-only deployments."""

from __future__ import annotations

import pytest
from django.test import Client

from tenants.models import Tenant
from triggers.models import Deployment, Trigger

pytestmark = pytest.mark.django_db

CHANGELIST = "/admin/triggers/trigger/"


@pytest.fixture
def operator(staff):
    client = Client()
    client.force_login(staff)
    return client


@pytest.fixture
def triggers(tenant_a, tenant_b):
    return {
        "hello": Trigger.objects.create(tenant=tenant_a, name="hello", image="ghcr.io/acme/hello:1",
                                        ready_status="True"),
        "paused": Trigger.objects.create(tenant=tenant_a, name="paused", image="kubesim/echo", suspended=True),
        "billing": Trigger.objects.create(tenant=tenant_b, name="billing", image="ghcr.io/globex/billing:2",
                                          ready_status="False"),
    }


def names_in(response) -> set[str]:
    return {t.name for t in response.context["cl"].result_list}


def test_changelist_shows_the_columns(operator, triggers):
    response = operator.get(CHANGELIST)
    assert names_in(response) == {"hello", "paused", "billing"}
    assert list(response.context["cl"].list_display)[1:] == [
        "tenant", "name", "image", "suspended", "ready_status", "updated_at"]


@pytest.mark.parametrize("query, expected", [
    ("hello", {"hello"}), ("ghcr.io/globex", {"billing"}), ("acme", {"hello", "paused"}), ("nothing", set()),
])
def test_search_by_name_image_and_tenant_slug(operator, triggers, query, expected):
    assert names_in(operator.get(CHANGELIST, {"q": query})) == expected


@pytest.mark.parametrize("params, expected", [
    ({"suspended__exact": "1"}, {"paused"}),
    ({"ready_status__exact": "False"}, {"billing"}),
    ({"ready_status__exact": "True"}, {"hello"}),
])
def test_filters(operator, triggers, params, expected):
    assert names_in(operator.get(CHANGELIST, params)) == expected


def test_filter_by_tenant(operator, triggers, tenant_b):
    assert names_in(operator.get(CHANGELIST, {"tenant__id__exact": tenant_b.pk})) == {"billing"}


def _act(operator, action, *selected):
    return operator.post(CHANGELIST, {"action": action, "_selected_action": [t.pk for t in selected]}, follow=True)


def test_redeploy_selected_deploys_each_and_reports_the_failures(operator, staff, triggers):
    response = _act(operator, "redeploy_selected", triggers["hello"], triggers["paused"], triggers["billing"])
    page = response.content.decode()
    assert "[acme/paused] Trigger paused is suspended; resume it before deploying." in page
    assert "Redeploying 2 trigger(s)." in page
    for name in ("hello", "billing"):
        deployment = triggers[name].deployments.get()
        assert (deployment.redeploy, deployment.status, deployment.created_by) == (True, "pending", staff)
    assert not triggers["paused"].deployments.exists()


def test_redeploy_reports_a_tenant_that_is_not_ready(operator, triggers, tenant_b):
    Tenant.objects.filter(pk=tenant_b.pk).update(state=Tenant.State.PROVISIONING)
    page = _act(operator, "redeploy_selected", triggers["billing"]).content.decode()
    assert "[globex/billing] Tenant globex is provisioning" in page
    assert not Deployment.objects.exists()


def test_suspend_and_resume_selected(operator, triggers):
    page = _act(operator, "suspend_selected", triggers["hello"], triggers["billing"]).content.decode()
    assert "Suspended 2 trigger(s)." in page
    assert set(Trigger.objects.filter(suspended=True).values_list("name", flat=True)) == {"hello", "paused", "billing"}
    _act(operator, "resume_selected", triggers["paused"])
    assert not Trigger.objects.get(name="paused").suspended


def test_delete_selected_marks_triggers_deleting(operator, triggers):
    page = _act(operator, "delete_selected_triggers", triggers["hello"]).content.decode()
    assert "Deleting 1 trigger(s)" in page
    assert Trigger.objects.get(name="hello").deleting
    assert not Trigger.objects.get(name="paused").deleting


def test_plain_row_deletion_and_adding_are_not_offered(operator, triggers):
    page = operator.get(CHANGELIST).content.decode()
    assert 'value="delete_selected"' not in page
    assert operator.get("/admin/triggers/trigger/add/").status_code == 403
    assert operator.post(f"/admin/triggers/trigger/{triggers['hello'].pk}/delete/", {"post": "yes"}).status_code == 403
    assert Trigger.objects.filter(name="hello").exists()


def test_change_page_shows_secret_names_only_and_read_only(operator, triggers):
    trigger = triggers["hello"]
    trigger.secret_env = {"API_KEY": {"set_at": "2025-01-02T03:04:05+00:00"}}
    trigger.save()
    page = operator.get(f"/admin/triggers/trigger/{trigger.pk}/change/").content.decode()
    assert "<code>API_KEY</code>" in page and "2025-01-02T03:04:05" in page
    assert 'name="secret_env"' not in page and 'name="image"' not in page
    operator.post(f"/admin/triggers/trigger/{trigger.pk}/change/", {"image": "evil/image", "secret_env": "{}"})
    trigger.refresh_from_db()
    assert trigger.image == "ghcr.io/acme/hello:1" and "API_KEY" in trigger.secret_env


def test_deployments_are_inline_and_read_only_on_the_trigger(operator, triggers):
    trigger = triggers["hello"]
    Deployment.objects.create(trigger=trigger, spec_version=3, status="failed", reason="ContainerMissing",
                              message="Unable to fetch image")
    page = operator.get(f"/admin/triggers/trigger/{trigger.pk}/change/").content.decode()
    assert "ContainerMissing" in page and "Unable to fetch image" in page
    assert 'name="deployments-0-status"' not in page and "deployments-0-DELETE" not in page


@pytest.fixture
def deployments(triggers):
    return [
        Deployment.objects.create(trigger=triggers["hello"], spec_version=1, status="ready", revision="hello-00001"),
        Deployment.objects.create(trigger=triggers["billing"], spec_version=1, status="failed", reason="ExitCode1"),
    ]


def test_deployment_admin_lists_filters_and_searches(operator, deployments):
    response = operator.get("/admin/triggers/deployment/")
    assert len(response.context["cl"].result_list) == 2
    failed = operator.get("/admin/triggers/deployment/", {"status__exact": "failed"}).context["cl"].result_list
    assert [d.trigger.name for d in failed] == ["billing"]
    found = operator.get("/admin/triggers/deployment/", {"q": "hello"}).context["cl"].result_list
    assert [d.trigger.name for d in found] == ["hello"]


def test_deployment_admin_is_read_only(operator, deployments):
    deployment = deployments[1]
    assert operator.get("/admin/triggers/deployment/add/").status_code == 403
    page = operator.get(f"/admin/triggers/deployment/{deployment.pk}/change/").content.decode()
    assert "ExitCode1" in page and 'name="status"' not in page
    assert operator.post(f"/admin/triggers/deployment/{deployment.pk}/change/", {"status": "ready"}).status_code == 403
    assert operator.post(f"/admin/triggers/deployment/{deployment.pk}/delete/", {"post": "yes"}).status_code == 403
    deployment.refresh_from_db()
    assert deployment.status == "failed"


def test_trigger_admin_is_for_staff_only(alice, triggers):
    client = Client()
    client.force_login(alice)
    response = client.get(CHANGELIST)
    assert response.status_code == 302 and "/admin/login/" in response["Location"]


def _change_form(operator, trigger) -> dict:
    from tests.tenants.test_admin_owners import _form_data

    return _form_data(operator.get(f"/admin/triggers/trigger/{trigger.pk}/change/"))


def test_edge_settings_edits_are_checked_like_the_api_s(operator, triggers):
    trigger = triggers["hello"]
    url = f"/admin/triggers/trigger/{trigger.pk}/change/"
    data = _change_form(operator, trigger)
    assert set(data) >= {"mode", "verification", "hmac_header", "dedupe_header", "max_attempts"}
    assert not {"ready_pods", "pods", "active_status"} & set(data)  # what the cluster reports is read-only
    page = operator.post(url, {**data, "verification": "github"}).content.decode()
    assert "github verification needs a secret" in page
    page = operator.post(url, {**data, "dedupe_header": "not a header"}).content.decode()
    assert "is not a valid HTTP header name" in page
    trigger.refresh_from_db()
    assert (trigger.verification, trigger.dedupe_header) == ("none", "")
    assert operator.post(url, {**data, "mode": "async", "max_attempts": "7"}).status_code == 302
    trigger.refresh_from_db()
    assert (trigger.mode, trigger.max_attempts) == ("async", 7)


def test_a_trigger_being_deleted_is_not_edited(operator, triggers):
    trigger = triggers["hello"]
    data = _change_form(operator, trigger)
    Trigger.objects.filter(pk=trigger.pk).update(deleting=True)
    page = operator.post(f"/admin/triggers/trigger/{trigger.pk}/change/", {**data, "mode": "async"}).content.decode()
    assert "This trigger is being deleted." in page
    assert Trigger.objects.get(pk=trigger.pk).mode == "sync"
