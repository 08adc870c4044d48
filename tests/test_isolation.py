"""Every page and endpoint refuses anonymous users and members of other tenants.

ROUTES lists each URL name with a concrete request; `test_every_route_is_listed` walks the URL
resolver so a new view cannot ship without being added here.
"""

from __future__ import annotations

import pytest
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver

from tenants.models import ApiToken, Invitation, Membership, Tenant
from triggers.models import CandidateReplay, Delivery, Deployment, Trigger

pytestmark = pytest.mark.django_db

# name -> (method, path). Tenant-scoped routes use tenant A ("acme"), where charlie is no member.
TENANT_PAGES = {
    "tenant-detail": ("get", "/t/acme/"),
    "tenant-settings": ("get", "/t/acme/settings/"),
    "tenant-delete": ("post", "/t/acme/delete/"),
    "tenant-provision-retry": ("post", "/t/acme/provision/"),
    "member-list": ("get", "/t/acme/members/"),
    "tenant-audit": ("get", "/t/acme/audit/"),
    "member-role": ("post", "/t/acme/members/{bob_membership}/role/"),
    "member-remove": ("post", "/t/acme/members/{bob_membership}/remove/"),
    "invitation-revoke": ("post", "/t/acme/invitations/{invitation}/revoke/"),
    "ui-trigger-list": ("get", "/t/acme/triggers/"),
    "ui-trigger-create": ("get", "/t/acme/triggers/-/new/"),
    "ui-trigger-create:post": ("post", "/t/acme/triggers/-/new/"),
    "ui-trigger-detail": ("get", "/t/acme/triggers/hello/"),
    "ui-trigger-edit": ("get", "/t/acme/triggers/hello/edit/"),
    "ui-trigger-edit:post": ("post", "/t/acme/triggers/hello/edit/"),
    "ui-trigger-deploy": ("post", "/t/acme/triggers/hello/deploy/"),
    "ui-trigger-redeploy": ("post", "/t/acme/triggers/hello/redeploy/"),
    "ui-trigger-suspend": ("post", "/t/acme/triggers/hello/suspend/"),
    "ui-trigger-resume": ("post", "/t/acme/triggers/hello/resume/"),
    "ui-trigger-delete": ("post", "/t/acme/triggers/hello/delete/"),
    "ui-trigger-rotate-token": ("post", "/t/acme/triggers/hello/rotate-token/"),
    "ui-trigger-test-webhook": ("post", "/t/acme/triggers/hello/test-webhook/"),
    "ui-delivery-list": ("get", "/t/acme/triggers/hello/deliveries/"),
    "ui-delivery-detail": ("get", "/t/acme/triggers/hello/deliveries/{delivery}/"),
    "ui-delivery-replay": ("post", "/t/acme/triggers/hello/deliveries/{delivery}/replay/"),
    "ui-delivery-replay-failed": ("post", "/t/acme/triggers/hello/deliveries/replay-failed/"),
    "ui-trigger-logs": ("get", "/t/acme/triggers/hello/logs/"),
    "ui-trigger-rollback": ("post", "/t/acme/triggers/hello/rollback/"),
    "ui-trigger-traffic": ("post", "/t/acme/triggers/hello/traffic/"),
    "ui-trigger-logs-download": ("get", "/t/acme/triggers/hello/logs/download/"),
    "ui-candidate-replays": ("get", "/t/acme/triggers/hello/candidate-replays/"),
    "ui-candidate-replay-start": ("post", "/t/acme/triggers/hello/candidate-replays/start/"),
    "ui-candidate-replay": ("get", "/t/acme/triggers/hello/candidate-replays/{candidate_replay}/"),
    "ui-candidate-replay-promote": ("post", "/t/acme/triggers/hello/candidate-replays/{candidate_replay}/promote/"),
}
USER_PAGES = {
    "tenant-list": ("get", "/"),
    "tenant-create": ("get", "/tenants/new/"),
    "token-list": ("get", "/account/tokens/"),
    "token-revoke": ("post", "/account/tokens/{alice_token}/revoke/"),
    "password_change": ("get", "/account/password/"),
    "password_change_done": ("get", "/account/password/done/"),
    "invitation-accept": ("get", "/invitations/{invitation_token}/"),
    "invitation-accept:post": ("post", "/invitations/{invitation_token}/"),
    "invitation-accept-mine": ("post", "/invitations/{invitation}/accept/"),
}
TENANT_API = {
    "tenant-detail": ("get", "/api/v1/tenants/acme/"),
    "tenant-detail:patch": ("patch", "/api/v1/tenants/acme/"),
    "tenant-detail:delete": ("delete", "/api/v1/tenants/acme/"),
    "membership-list": ("get", "/api/v1/tenants/acme/members/"),
    "audit-list": ("get", "/api/v1/tenants/acme/audit/"),
    "membership-list:post": ("post", "/api/v1/tenants/acme/members/"),
    "membership-detail": ("get", "/api/v1/tenants/acme/members/bob/"),
    "membership-detail:patch": ("patch", "/api/v1/tenants/acme/members/bob/"),
    "membership-detail:delete": ("delete", "/api/v1/tenants/acme/members/bob/"),
    "invitation-list": ("get", "/api/v1/tenants/acme/invitations/"),
    "invitation-list:post": ("post", "/api/v1/tenants/acme/invitations/"),
    "invitation-detail": ("get", "/api/v1/tenants/acme/invitations/{invitation}/"),
    "invitation-detail:delete": ("delete", "/api/v1/tenants/acme/invitations/{invitation}/"),
    "tenant-provision": ("post", "/api/v1/tenants/acme/provision/"),
    "trigger-list": ("get", "/api/v1/tenants/acme/triggers/"),
    "trigger-list:post": ("post", "/api/v1/tenants/acme/triggers/"),
    "trigger-detail": ("get", "/api/v1/tenants/acme/triggers/hello/"),
    "trigger-detail:patch": ("patch", "/api/v1/tenants/acme/triggers/hello/"),
    "trigger-detail:delete": ("delete", "/api/v1/tenants/acme/triggers/hello/"),
    "trigger-deploy": ("post", "/api/v1/tenants/acme/triggers/hello/deploy/"),
    "trigger-redeploy": ("post", "/api/v1/tenants/acme/triggers/hello/redeploy/"),
    "trigger-suspend": ("post", "/api/v1/tenants/acme/triggers/hello/suspend/"),
    "trigger-resume": ("post", "/api/v1/tenants/acme/triggers/hello/resume/"),
    "deployment-list": ("get", "/api/v1/tenants/acme/triggers/hello/deployments/"),
    "deployment-detail": ("get", "/api/v1/tenants/acme/triggers/hello/deployments/{deployment}/"),
    "trigger-rotate-token": ("post", "/api/v1/tenants/acme/triggers/hello/rotate-token/"),
    "trigger-test-webhook": ("post", "/api/v1/tenants/acme/triggers/hello/test-webhook/"),
    "delivery-list": ("get", "/api/v1/tenants/acme/triggers/hello/deliveries/"),
    "scale-event-list": ("get", "/api/v1/tenants/acme/triggers/hello/scale-events/"),
    "trigger-stats": ("get", "/api/v1/tenants/acme/triggers/hello/stats/"),
    "tenant-stats": ("get", "/api/v1/tenants/acme/stats/"),
    "delivery-detail": ("get", "/api/v1/tenants/acme/triggers/hello/deliveries/{delivery}/"),
    "delivery-replay": ("post", "/api/v1/tenants/acme/triggers/hello/deliveries/{delivery}/replay/"),
    "delivery-replay-failed": ("post", "/api/v1/tenants/acme/triggers/hello/deliveries/replay-failed/"),
    "trigger-logs": ("get", "/api/v1/tenants/acme/triggers/hello/logs/"),
    "trigger-revisions": ("get", "/api/v1/tenants/acme/triggers/hello/revisions/"),
    "trigger-traffic": ("put", "/api/v1/tenants/acme/triggers/hello/traffic/"),
    "trigger-rollback": ("post", "/api/v1/tenants/acme/triggers/hello/rollback/"),
    "candidate-replay-list": ("get", "/api/v1/tenants/acme/triggers/hello/candidate-replays/"),
    "candidate-replay-list:post": ("post", "/api/v1/tenants/acme/triggers/hello/candidate-replays/"),
    "candidate-replay-detail": ("get", "/api/v1/tenants/acme/triggers/hello/candidate-replays/{candidate_replay}/"),
    "candidate-replay-promote": ("post",
                                 "/api/v1/tenants/acme/triggers/hello/candidate-replays/{candidate_replay}/promote/"),
}
USER_API = {
    "api-root": ("get", "/api/v1/"),
    "tenant-list": ("get", "/api/v1/tenants/"),
    "apitoken-list": ("get", "/api/v1/tokens/"),
    "apitoken-detail": ("get", "/api/v1/tokens/{alice_token}/"),
    "apitoken-detail:delete": ("delete", "/api/v1/tokens/{alice_token}/"),
    "my-invitation-list": ("get", "/api/v1/invitations/"),
    "my-invitation-accept": ("post", "/api/v1/invitations/accept/"),
}
# Operator pages: staff only (anonymous users sign in, everyone else gets 404).
STAFF_PAGES = {
    "ops-diag": ("get", "/ops/diag/"),
    "ops-overview": ("get", "/ops/overview/"),
}
# Routes that are public or guarded elsewhere, each with the reason.
NOT_TENANT_DATA = {
    "login": "sign-in page",
    "logout": "sign-out",
    "admin-login": "the admin's sign-in page",
    "password_reset": "password reset: asks for an e-mail address",
    "password_reset_done": "password reset: 'check your e-mail'",
    "password_reset_confirm": "password reset: guarded by the e-mailed token",
    "password_reset_complete": "password reset: 'password set'",
    "schema": "OpenAPI schema (no data)",
    "api-docs": "Swagger UI (no data)",
    "healthz": "liveness probe",
    "readyz": "readiness probe",
}


@pytest.fixture
def ids(alice, tenant_a):
    token = ApiToken.generate(user=alice, name="mine")[0]
    trigger = Trigger.objects.create(tenant=tenant_a, name="hello", image="kubesim/echo")
    deployment = Deployment.objects.create(trigger=trigger, spec_version=1)
    delivery = Delivery.objects.create(trigger=trigger, mode="sync", method="POST", state="failed")
    invitation, raw = Invitation.generate(tenant=tenant_a, email="dave@example.test", role="owner", invited_by=alice)
    return {
        "invitation": invitation.pk,
        "invitation_token": raw,
        "trigger": trigger.pk,
        "deployment": deployment.pk,
        "delivery": delivery.pk,
        "candidate_replay": CandidateReplay.objects.create(trigger=trigger, state="done").pk,
        "token": trigger.token,
        "bob_membership": Membership.objects.get(tenant=tenant_a, user__username="bob").pk,
        "alice_token": token.pk,
    }


def _request(client, method, path, ids):
    return getattr(client, method)(path.format(**ids), content_type="application/json", data="{}"
                                   if method in ("post", "patch") else None)


def _all_route_names(resolver=None, prefix="") -> set[str]:
    names = set()
    for entry in (resolver or get_resolver()).url_patterns:
        if isinstance(entry, URLResolver):
            if entry.namespace == "admin":
                continue
            names |= _all_route_names(entry, prefix)
        elif isinstance(entry, URLPattern) and entry.name:
            names.add(entry.name)
    return names


def test_every_route_is_listed():
    listed = {name.split(":")[0] for table in (TENANT_PAGES, USER_PAGES, TENANT_API, USER_API, STAFF_PAGES)
              for name in table}
    unlisted = _all_route_names() - listed - set(NOT_TENANT_DATA)
    assert not unlisted, f"add isolation cases for: {sorted(unlisted)}"


@pytest.mark.parametrize("name", [*TENANT_PAGES, *USER_PAGES])
def test_pages_send_anonymous_users_to_sign_in(name, ids):
    method, path = {**TENANT_PAGES, **USER_PAGES}[name]
    response = _request(Client(), method, path, ids)
    assert response.status_code == 302
    assert response["Location"].startswith("/login/")


@pytest.mark.parametrize("name", TENANT_PAGES)
def test_tenant_pages_are_404_for_other_tenants(name, ids, charlie, tenant_b):
    client = Client()
    client.force_login(charlie)
    method, path = TENANT_PAGES[name]
    response = _request(client, method, path, ids)
    assert response.status_code == 404
    assert b"Acme" not in response.content
    assert Tenant.objects.filter(slug="acme").exists()
    assert Membership.objects.filter(tenant__slug="acme").count() == 2
    assert [i.state for i in Invitation.objects.all()] == ["pending"]


@pytest.mark.parametrize("name", [*TENANT_API, *USER_API])
def test_api_refuses_anonymous_users(name, ids):
    method, path = {**TENANT_API, **USER_API}[name]
    response = _request(Client(), method, path, ids)
    assert response.status_code in (401, 403)
    assert "detail" in response.json()


@pytest.mark.parametrize("name", TENANT_API)
def test_tenant_api_is_404_for_other_tenants(name, ids, api, charlie, tenant_b):
    method, path = TENANT_API[name]
    client = api(charlie)
    response = getattr(client, method)(path.format(**ids), {}, format="json")
    assert response.status_code == 404
    assert "Acme" not in response.content.decode()
    assert Membership.objects.filter(tenant__slug="acme").count() == 2
    assert [i.state for i in Invitation.objects.all()] == ["pending"]
    trigger = Trigger.objects.get(pk=ids["trigger"])
    assert (trigger.deleting, trigger.suspended, trigger.deployments.count()) == (False, False, 1)
    assert (trigger.token, trigger.previous_token, trigger.deliveries.count()) == (ids["token"], "", 1)
    assert Tenant.objects.get(slug="acme").state == Tenant.State.READY


def test_token_api_of_another_user_is_404(ids, api, charlie):
    client = api(charlie)
    for method in ("get", "delete"):
        response = getattr(client, method)(f"/api/v1/tokens/{ids['alice_token']}/")
        assert response.status_code == 404
    assert ApiToken.objects.filter(pk=ids["alice_token"]).exists()


def test_token_revoke_page_of_another_user_is_404(ids, charlie):
    client = Client()
    client.force_login(charlie)
    assert client.post(f"/account/tokens/{ids['alice_token']}/revoke/").status_code == 404
    assert ApiToken.objects.filter(pk=ids["alice_token"]).exists()


def test_lists_never_include_other_tenants(api, charlie, tenant_a, tenant_b):
    body = api(charlie).get("/api/v1/tenants/").json()
    assert [t["slug"] for t in body["results"]] == ["globex"]
    client = Client()
    client.force_login(charlie)
    page = client.get("/").content
    assert b"Globex" in page and b"Acme" not in page


@pytest.mark.parametrize("name", STAFF_PAGES)
def test_staff_pages_refuse_anonymous_users_and_non_staff(name, ids, alice, charlie, staff):
    method, path = STAFF_PAGES[name]
    response = _request(Client(), method, path, ids)
    assert response.status_code == 302 and response["Location"].startswith("/login/")
    for user in (alice, charlie):  # a tenant owner is not an operator
        client = Client()
        client.force_login(user)
        assert _request(client, method, path, ids).status_code == 404
    client = Client()
    client.force_login(staff)
    assert _request(client, method, path, ids).status_code == 200


def test_admin_is_for_staff_only(alice, staff):
    client = Client()
    assert client.get("/admin/tenants/tenant/").status_code == 302
    client.force_login(alice)
    response = client.get("/admin/tenants/tenant/")
    assert response.status_code == 302 and "/admin/login/" in response["Location"]
    client.force_login(staff)
    assert client.get("/admin/tenants/tenant/").status_code == 200


@pytest.mark.parametrize(
    "path",
    ["/api/v1/tenants/%00/", "/api/v1/tenants/%00/members/", "/api/v1/tenants/acme/members/%00/",
     "/api/v1/tokens/%00/", "/t/%00/", "/t/acme%00/members/", "/t/%E2%80%8Bacme/"],
)
def test_odd_bytes_in_paths_are_404_not_500(path, alice, tenant_a):
    """PostgreSQL refuses NUL in queries: such paths must never reach the database."""
    client = Client()
    client.force_login(alice)
    assert client.get(path).status_code == 404
