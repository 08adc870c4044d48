"""Audit log: every change of a tenant's state is recorded once, with actor, source and changed fields
(never secret values), in the change's own transaction; owners read it on a page and in the API, operators in
the admin."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.core.exceptions import ValidationError
from django.db import transaction
from django.test import Client
from django.utils import timezone
from rest_framework.test import APIClient

from tenants import services as tenant_services
from tenants.audit import audit_as, audit_prune, audit_record
from tenants.models import AuditEntry, Membership, Role, Tenant
from triggers import services as trigger_services
from triggers.cluster import kube
from triggers.models import Delivery, Trigger

pytestmark = pytest.mark.django_db
API = "/api/v1/tenants/acme/"
SECRET = "whsec_audit-secret-value-never-logged"


@pytest.fixture
def hello(tenant_a, alice):
    return Trigger.objects.create(tenant=tenant_a, name="hello", image="kubesim/echo", created_by=alice)


def browser(user, address="127.0.0.1", **extra) -> Client:
    client = Client(REMOTE_ADDR=address, **extra)
    client.force_login(user)
    return client


def token_client(raw: str, address="127.0.0.1", **extra) -> APIClient:
    return APIClient(REMOTE_ADDR=address, HTTP_AUTHORIZATION=f"Token {raw}", **extra)


def only(action: str) -> AuditEntry:
    entries = list(AuditEntry.objects.filter(action=action))
    assert len(entries) == 1, [str(e) for e in entries]
    return entries[0]


# Recorded once, with actor and source

def test_ui_changes_are_recorded_with_the_user_and_the_peer_address(alice, bob, tenant_a):
    owner = browser(alice, "203.0.113.7")
    assert owner.post("/t/acme/settings/", {"name": "Acme Corp"}).status_code == 302
    owner.post(f"/t/acme/members/{Membership.objects.get(user=bob).pk}/role/", {"role": "editor"})
    owner.post(f"/t/acme/members/{Membership.objects.get(user=bob).pk}/remove/")
    entry = only("tenant.update")
    assert (entry.actor, entry.actor_label, entry.source, entry.tenant, entry.token_name) == (
        alice, "alice", "203.0.113.7", tenant_a, "")
    assert entry.changes == {"name": {"from": "Acme", "to": "Acme Corp"}}
    assert (entry.target_type, entry.target_id, entry.target_label) == ("tenant", str(tenant_a.pk), "acme")
    role = only("member.role_change")
    assert role.changes == {"user": "bob", "role": {"from": "viewer", "to": "editor"}}
    assert (role.target_type, role.target_label) == ("member", "bob")
    removed = only("member.remove")
    assert removed.target_label == "bob" and removed.target_id and removed.changes["role"] == "editor"


def test_api_changes_name_the_token_used(alice, bob, tenant_a, hello, token_for):
    raw = token_for(alice, "ci")
    client = token_client(raw, "198.51.100.4")
    assert client.post(API + "members/", {"username": "charlie_missing", "role": "viewer"},
                       format="json").status_code == 400
    assert not AuditEntry.objects.filter(action="member.add").exists()  # refused: nothing recorded
    assert client.post(API + "triggers/hello/deploy/").status_code == 202
    entry = only("trigger.deploy")
    assert (entry.actor_label, entry.token_name, entry.token_prefix, entry.source) == (
        "alice", "ci", raw[:10], "198.51.100.4")
    assert entry.target_label == "acme/hello" and entry.changes["spec_version"] == hello.spec_version


def test_each_trigger_action_is_recorded_once(api, alice, tenant_a, hello):
    client = api(alice)
    assert client.post(API + "triggers/", {"name": "other", "image": "kubesim/echo"}, format="json").status_code == 201
    assert client.patch(API + "triggers/hello/", {"image": "kubesim/echo:2", "max_attempts": 3,
                                                  "verification": "github", "verification_secret": SECRET},
                        format="json").status_code == 200
    client.post(API + "triggers/hello/redeploy/")
    client.post(API + "triggers/hello/rotate-token/")
    client.post(API + "triggers/hello/suspend/")
    client.post(API + "triggers/hello/resume/")
    client.delete(API + "triggers/other/")
    actions = list(AuditEntry.objects.order_by("pk").values_list("action", flat=True))
    assert actions == ["trigger.create", "trigger.update", "trigger.redeploy", "trigger.rotate_token",
                       "trigger.suspend", "trigger.resume", "trigger.delete"]
    update = only("trigger.update")
    assert update.changes == {"fields": ["image", "max_attempts", "verification", "verification_secret"]}
    assert only("trigger.create").changes == {"fields": ["image", "name", "timeout_seconds"]}  # 15: the gateway's limit
    hello.refresh_from_db()
    everything = str(list(AuditEntry.objects.values_list("changes", "target_label")))
    assert SECRET not in everything and hello.token not in everything and hello.previous_token not in everything


def test_secret_names_set_record_names_never_values(alice, tenant_a, hello, cluster):
    cluster.apply_namespace(kube.render_namespace(tenant_a))
    try:
        with audit_as(alice, source="192.0.2.1"):
            trigger_services.trigger_set_secrets(trigger=hello, values={"API_KEY": SECRET, "OLD": None})
    finally:
        cluster.delete_namespace(tenant_a.namespace)
    entry = only("trigger.secrets_set")
    assert entry.changes == {"set": ["API_KEY"], "removed": []} and entry.source == "192.0.2.1"
    assert SECRET not in str(entry.changes)


def test_replays_single_and_failed_are_one_entry_each(api, alice, hello):
    failed = [Delivery.objects.create(trigger=hello, mode="sync", method="POST", path="/", state="failed")
              for _ in range(3)]
    assert api(alice).post(API + f"triggers/hello/deliveries/{failed[0].pk}/replay/").status_code == 202
    entry = only("delivery.replay")
    assert entry.target_id == str(failed[0].pk) and entry.changes["replay"]
    assert api(alice).post(API + "triggers/hello/deliveries/replay-failed/").json() == {"replayed": 2}
    assert only("delivery.replay_failed").changes == {"replayed": 2}
    assert AuditEntry.objects.filter(action="delivery.replay").count() == 1


def test_tokens_create_and_revoke_are_recorded_without_the_token(api, alice):
    response = api(alice).post("/api/v1/tokens/", {"name": "deploy-bot"}, format="json")
    raw = response.json()["token"]
    api(alice).delete(f"/api/v1/tokens/{response.json()['id']}/")
    created, revoked = only("token.create"), only("token.revoke")
    assert created.tenant is None and created.actor == alice and created.changes["name"] == "deploy-bot"
    assert revoked.target_label.startswith("deploy-bot") and revoked.target_id == created.target_id
    assert raw not in str(list(AuditEntry.objects.values_list("changes", "target_label")))


def test_tenant_create_and_an_invitation_through_the_ui(alice, charlie, tenant_a):
    owner = browser(alice)
    owner.post("/tenants/new/", {"slug": "newco", "name": "NewCo"})
    owner.post("/t/acme/members/", {"email": "charlie@example.test", "role": "editor"})  # members join by invitation
    assert only("tenant.create").tenant == Tenant.objects.get(slug="newco")
    entry = only("invitation.create")
    assert entry.changes == {"email": "charlie@example.test", "role": "editor"} and entry.actor == alice


def test_admin_actions_are_recorded_as_the_operator(staff, hello):
    operator = browser(staff, "10.1.2.3")
    operator.post("/admin/triggers/trigger/", {"action": "suspend_selected", "_selected_action": [hello.pk]})
    entry = only("trigger.suspend")
    assert (entry.actor, entry.source) == (staff, "10.1.2.3")


def test_without_a_request_the_actor_is_system(hello):
    trigger_services.trigger_suspend(trigger=hello)
    entry = only("trigger.suspend")
    assert (entry.actor, entry.actor_label, entry.source) == (None, "system", None)


# Source address: the real peer

def test_forwarded_for_is_ignored_from_an_untrusted_peer(alice, tenant_a, settings):
    settings.RELAY_TRUSTED_PROXIES = []
    browser(alice, "203.0.113.7", HTTP_X_FORWARDED_FOR="1.2.3.4").post("/t/acme/settings/", {"name": "X"})
    assert only("tenant.update").source == "203.0.113.7"


def test_forwarded_for_from_a_trusted_proxy_gives_the_client(alice, tenant_a, settings):
    settings.RELAY_TRUSTED_PROXIES = ["10.0.0.0/8"]
    browser(alice, "10.0.0.5", HTTP_X_FORWARDED_FOR="6.6.6.6, 198.51.100.9, 10.0.0.9").post(
        "/t/acme/settings/", {"name": "X"})
    assert only("tenant.update").source == "198.51.100.9"  # the nearest hop no trusted proxy vouches past


# Nothing for a failed or rolled-back change

def test_a_refused_change_records_nothing(alice, tenant_a):
    owner = Membership.objects.get(user=alice)
    with pytest.raises(ValidationError):
        tenant_services.membership_set_role(membership=owner, role=Role.VIEWER)  # the last owner
    with pytest.raises(ValidationError):
        tenant_services.tenant_update(tenant=tenant_a, name="")
    assert not AuditEntry.objects.exists()


def test_a_rolled_back_change_leaves_no_entry(hello):
    with pytest.raises(RuntimeError), transaction.atomic():
        trigger_services.trigger_suspend(trigger=hello)
        assert AuditEntry.objects.filter(action="trigger.suspend").exists()
        raise RuntimeError("the caller's transaction fails after the change")
    assert not AuditEntry.objects.exists()
    assert not Trigger.objects.get(pk=hello.pk).suspended


# Reading it: owners only

def test_api_lists_entries_newest_first_with_filters_and_pages(api, alice, bob, tenant_a, hello):
    with audit_as(alice, source="192.0.2.1"):
        for _ in range(3):
            trigger_services.trigger_suspend(trigger=hello)
        trigger_services.trigger_resume(trigger=hello)
    with audit_as(bob):
        tenant_services.tenant_update(tenant=tenant_a, name="Bob's")
    body = api(alice).get(API + "audit/").json()
    assert body["count"] == 5
    first = body["results"][0]
    assert first["action"] == "tenant.update" and first["actor"]["username"] == "bob"
    assert first["target"] == {"type": "tenant", "id": str(tenant_a.pk), "label": "acme"}
    assert set(first) == {"action", "actor", "target", "created_at", "source", "changes"}
    assert [e["action"] for e in api(alice).get(API + "audit/?action=trigger.resume").json()["results"]] == [
        "trigger.resume"]
    assert api(alice).get(API + "audit/?action=trigger.").json()["count"] == 4
    assert api(alice).get(API + "audit/?actor=bob").json()["count"] == 1
    page = api(alice).get(API + "audit/?page_size=2&page=2").json()
    assert len(page["results"]) == 2 and page["previous"] and page["next"]


def test_api_is_for_owners_only(api, alice, bob, charlie, tenant_a, tenant_b, token_for):
    Membership.objects.filter(user=bob).update(role=Role.EDITOR)
    with audit_as(charlie):
        audit_record(tenant=tenant_b, action="tenant.update", target=tenant_b)
    assert api(bob).get(API + "audit/").status_code == 403
    Membership.objects.filter(user=bob).update(role=Role.VIEWER)
    assert api(bob).get(API + "audit/").status_code == 403
    assert api(charlie).get(API + "audit/").status_code == 404
    assert api(None).get(API + "audit/").status_code in (401, 403)
    assert api(alice).get(API + "audit/").json()["count"] == 0  # another tenant's entries never show
    assert token_client(token_for(alice)).get(API + "audit/").status_code == 200


def test_page_lists_filters_and_pages_for_owners(alice, bob, tenant_a, hello):
    owner = browser(alice)
    assert "Nothing recorded yet" in owner.get("/t/acme/audit/").content.decode()
    with audit_as(alice):
        for _ in range(51):
            trigger_services.trigger_resume(trigger=hello)
    with audit_as(bob):
        trigger_services.trigger_suspend(trigger=hello)
    page = owner.get("/t/acme/audit/").content.decode()
    assert "Page 1 of 2" in page and "trigger.suspend" in page
    page = owner.get("/t/acme/audit/?actor=bob").content.decode()
    assert "trigger.suspend" in page and "trigger.resume" not in page
    page = owner.get("/t/acme/audit/?action=tenant.delete").content.decode()
    assert "No entries match" in page


def test_page_is_for_owners_only(alice, bob, charlie, tenant_a, tenant_b):
    assert browser(bob).get("/t/acme/audit/").status_code == 403
    Membership.objects.filter(user=bob).update(role=Role.EDITOR)
    assert browser(bob).get("/t/acme/audit/").status_code == 403
    assert browser(charlie).get("/t/acme/audit/").status_code == 404
    response = Client().get("/t/acme/audit/")
    assert response.status_code == 302 and "/login/" in response["Location"]
    assert 'href="/t/acme/audit/"' in browser(alice).get("/t/acme/").content.decode()
    assert 'href="/t/acme/audit/"' not in browser(bob).get("/t/acme/").content.decode()


def test_schema_documents_the_audit_endpoint(api, alice):
    schema = api(alice).get("/api/schema/?format=json").json()
    path = schema["paths"]["/api/v1/tenants/{tenant_slug}/audit/"]["get"]
    assert {p["name"] for p in path["parameters"]} >= {"tenant_slug", "action", "actor", "page"}


def test_admin_shows_every_entry_read_only(staff, alice, tenant_a, tenant_b, hello):
    with audit_as(alice):
        trigger_services.trigger_suspend(trigger=hello)
        audit_record(tenant=tenant_b, action="tenant.update", target=tenant_b)
    operator = browser(staff)
    page = operator.get("/admin/tenants/auditentry/").content.decode()
    assert "trigger.suspend" in page and "globex" in page
    entry = AuditEntry.objects.first()
    assert operator.get(f"/admin/tenants/auditentry/{entry.pk}/change/").status_code == 200  # view only
    assert operator.post(f"/admin/tenants/auditentry/{entry.pk}/delete/", {"post": "yes"}).status_code == 403
    assert operator.get("/admin/tenants/auditentry/add/").status_code == 403
    assert AuditEntry.objects.count() == 2


def test_entries_outlive_their_target_and_tenant(alice, tenant_a, hello):
    with audit_as(alice):
        trigger_services.trigger_suspend(trigger=hello)
    hello.delete()
    tenant_a.delete()
    entry = only("trigger.suspend")
    assert (entry.tenant, entry.tenant_slug, entry.target_label) == (None, "acme", "acme/hello")



def test_entries_older_than_the_retention_are_pruned(alice, hello, settings):
    with audit_as(alice):
        trigger_services.trigger_suspend(trigger=hello)
        trigger_services.trigger_resume(trigger=hello)
    AuditEntry.objects.filter(action="trigger.suspend").update(created_at=timezone.now() - timedelta(days=400))
    settings.RELAY_AUDIT_RETENTION_DAYS = 0
    assert audit_prune() == 0 and AuditEntry.objects.count() == 2
    settings.RELAY_AUDIT_RETENTION_DAYS = 365
    assert audit_prune() == 1
    assert list(AuditEntry.objects.values_list("action", flat=True)) == ["trigger.resume"]


def test_tenant_provision_retry_and_delete_are_recorded(api, alice, tenant_a):
    Tenant.objects.filter(pk=tenant_a.pk).update(state=Tenant.State.FAILED)
    assert api(alice).post(API + "provision/").status_code == 202
    assert api(alice).delete(API).status_code == 202
    assert [e.action for e in AuditEntry.objects.order_by("pk")] == ["tenant.provision_retry", "tenant.delete"]
    assert only("tenant.delete").actor == alice


# Django admin: an operator's changes go through the services, or are recorded as they would be

def admin_form(client, url) -> dict:
    from tests.tenants.test_admin_owners import _form_data

    return _form_data(client.get(url))


def test_admin_trigger_edit_is_recorded_with_the_operator_and_the_fields(staff, tenant_a, alice):
    trigger = trigger_services.trigger_create(tenant=tenant_a, user=alice, name="signed", image="kubesim/echo",
                                              verification="github", verification_secret=SECRET)
    operator = browser(staff, "10.1.2.3")
    url = f"/admin/triggers/trigger/{trigger.pk}/change/"
    data = {**admin_form(operator, url), "verification": "none", "dedupe_header": "X-Event-Id"}
    assert operator.post(url, data).status_code == 302
    entry = only("trigger.update")  # an operator turning signature checking off
    assert (entry.actor, entry.source, entry.tenant) == (staff, "10.1.2.3", tenant_a)
    assert entry.changes == {"fields": ["dedupe_header", "verification"]}
    trigger.refresh_from_db()
    assert (trigger.verification, trigger.dedupe_header) == ("none", "X-Event-Id")


def test_admin_tenant_rename_is_recorded(staff, tenant_a):
    operator = browser(staff, "10.1.2.3")
    url = f"/admin/tenants/tenant/{tenant_a.pk}/change/"
    assert operator.post(url, {**admin_form(operator, url), "name": "Acme Corp"}).status_code == 302
    entry = only("tenant.update")
    assert (entry.actor, entry.source, entry.changes) == (staff, "10.1.2.3", {"name": {"from": "Acme",
                                                                                         "to": "Acme Corp"}})
    assert operator.post(url, admin_form(operator, url)).status_code == 302  # saved unchanged: nothing new
    assert AuditEntry.objects.count() == 1


def test_admin_tenant_state_is_changed_by_the_services_only(staff, tenant_a):
    operator = browser(staff, "10.1.2.3")
    url = f"/admin/tenants/tenant/{tenant_a.pk}/change/"
    operator.post(url, {**admin_form(operator, url), "state": "deleting", "message": "typed by hand"})
    tenant_a.refresh_from_db()
    assert (tenant_a.state, tenant_a.message) == ("ready", "")
    Tenant.objects.filter(pk=tenant_a.pk).update(state=Tenant.State.FAILED)
    operator.post("/admin/tenants/tenant/", {"action": "retry_provisioning", "_selected_action": [tenant_a.pk]})
    entry = only("tenant.provision_retry")
    assert (entry.actor, entry.source) == (staff, "10.1.2.3")
    assert Tenant.objects.get(pk=tenant_a.pk).state == Tenant.State.PROVISIONING


def test_admin_members_added_inline_or_on_their_own_page_are_recorded(staff, tenant_a, charlie):
    operator = browser(staff, "10.1.2.3")
    url = f"/admin/tenants/tenant/{tenant_a.pk}/change/"
    data = admin_form(operator, url)
    rows = int(data["memberships-TOTAL_FORMS"])
    data.update({f"memberships-{rows}-user": charlie.pk, f"memberships-{rows}-role": "editor",
                 f"memberships-{rows}-tenant": tenant_a.pk, "memberships-TOTAL_FORMS": str(rows + 1)})
    response = operator.post(url, data)
    assert response.status_code == 302, response.content.decode()[-3000:]
    inline = only("member.add")
    assert (inline.actor, inline.source, inline.tenant) == (staff, "10.1.2.3", tenant_a)
    assert inline.changes == {"user": "charlie", "role": "editor"} and inline.target_label == "charlie"
    dan = charlie.__class__.objects.create(username="dan")
    response = operator.post("/admin/tenants/membership/add/",
                             {"tenant": tenant_a.pk, "user": dan.pk, "role": "viewer"})
    assert response.status_code == 302, response.content.decode()[-3000:]
    added = AuditEntry.objects.filter(action="member.add").order_by("pk").last()
    assert (added.actor, added.changes) == (staff, {"user": "dan", "role": "viewer"})
    assert Membership.objects.get(user=dan).role == "viewer"


def test_admin_token_deletion_is_a_recorded_revocation_with_no_tenant(staff, alice, token_for):
    from tenants.models import ApiToken

    token_for(alice, "ci")
    token_for(alice, "bot")
    ci, bot = ApiToken.objects.get(name="ci"), ApiToken.objects.get(name="bot")
    operator = browser(staff, "10.1.2.3")
    assert operator.post(f"/admin/tenants/apitoken/{ci.pk}/delete/", {"post": "yes"}).status_code == 302
    operator.post("/admin/tenants/apitoken/", {"action": "delete_selected", "_selected_action": [bot.pk],
                                               "post": "yes"})
    assert not ApiToken.objects.exists()
    entries = list(AuditEntry.objects.filter(action="token.revoke").order_by("pk"))
    assert [(e.actor, e.source, e.tenant, e.changes["name"]) for e in entries] == [
        (staff, "10.1.2.3", None, "ci"), (staff, "10.1.2.3", None, "bot")]


def test_admin_revokes_invitations_through_the_service(staff, alice, tenant_a):
    with audit_as(alice):
        invitation = tenant_services.invitation_create(tenant=tenant_a, email="dan@example.test", role="viewer",
                                                       invited_by=alice)
    operator = browser(staff, "10.1.2.3")
    assert operator.post(f"/admin/tenants/invitation/{invitation.pk}/delete/", {"post": "yes"}).status_code == 403
    operator.post("/admin/tenants/invitation/", {"action": "revoke_selected", "_selected_action": [invitation.pk]})
    invitation.refresh_from_db()
    assert invitation.state == "revoked"
    entry = only("invitation.revoke")
    assert (entry.actor, entry.source) == (staff, "10.1.2.3")
