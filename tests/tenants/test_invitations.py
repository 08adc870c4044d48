"""Invitations: owners invite by e-mail, the invitee accepts once within 7 days, nobody learns who has an account."""

import re
from datetime import timedelta

import pytest
from django.core import mail
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from tenants.models import Invitation, Membership, Role, Tenant

pytestmark = pytest.mark.django_db(transaction=True)  # the mail goes out on commit

INVITES = "/api/v1/tenants/acme/invitations/"
ACCEPT = "/api/v1/invitations/accept/"


def signed_in(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def invite(api, owner, email="charlie@example.test", role="editor", path=INVITES):
    response = api(owner).post(path, {"email": email, "role": role}, format="json")
    assert response.status_code == 202, response.content
    return response


def link_of(message) -> str:
    return re.search(r"http://\S+/invitations/(\S+)/", message.body).group(0)


def token_of(message) -> str:
    return re.search(r"/invitations/([^/\s]+)/", message.body).group(1)


def test_owner_invites_by_email_and_the_invitee_accepts_with_the_link(api, alice, charlie, tenant_a):
    body = invite(api, alice).json()
    assert (body["email"], body["role"], body["state"], body["invited_by"]) == (
        "charlie@example.test", "editor", "pending", "alice")
    assert not Membership.objects.filter(tenant=tenant_a, user=charlie).exists()
    [message] = mail.outbox
    assert message.to == ["charlie@example.test"] and "Acme" in message.subject
    assert link_of(message).startswith("http://localhost:8000/invitations/")
    response = api(charlie).post(ACCEPT, {"token": token_of(message)}, format="json")
    assert response.status_code == 200, response.content
    assert response.json() == {"tenant": "acme", "role": "editor"}
    assert Membership.objects.get(tenant=tenant_a, user=charlie).role == Role.EDITOR


def test_the_token_is_stored_hashed(api, alice, tenant_a):
    invite(api, alice)
    token = token_of(mail.outbox[0])
    invitation = Invitation.objects.get()
    assert token not in invitation.digest and len(invitation.digest) == 64
    assert Invitation.objects.for_raw(token) == invitation


def test_an_invitation_is_single_use(api, alice, charlie, tenant_a, tenant_b):
    invite(api, alice)
    token = token_of(mail.outbox[0])
    assert api(charlie).post(ACCEPT, {"token": token}, format="json").status_code == 200
    Membership.objects.filter(tenant=tenant_a, user=charlie).delete()
    response = api(charlie).post(ACCEPT, {"token": token}, format="json")
    assert response.status_code == 400
    assert response.json()["token"] == ["This invitation has already been used."]
    assert not Membership.objects.filter(tenant=tenant_a, user=charlie).exists()


def test_an_invitation_expires_after_seven_days(api, alice, charlie, tenant_a):
    invite(api, alice)
    invitation = Invitation.objects.get()
    assert invitation.expires_at - invitation.created_at == timedelta(days=7)
    Invitation.objects.update(expires_at=timezone.now() - timedelta(seconds=1))
    response = api(charlie).post(ACCEPT, {"token": token_of(mail.outbox[0])}, format="json")
    assert response.status_code == 400 and "expired" in response.json()["token"][0]
    assert not Membership.objects.filter(tenant=tenant_a, user=charlie).exists()
    assert api(alice).get(INVITES).json()["results"] == []


def test_a_revoked_invitation_cannot_be_accepted(api, alice, charlie, tenant_a):
    pk = invite(api, alice).json()["id"]
    assert [i["id"] for i in api(alice).get(INVITES).json()["results"]] == [pk]
    assert api(alice).delete(f"{INVITES}{pk}/").status_code == 204
    assert api(alice).get(INVITES).json()["results"] == []
    response = api(charlie).post(ACCEPT, {"token": token_of(mail.outbox[0])}, format="json")
    assert response.status_code == 400 and "withdrawn" in response.json()["token"][0]
    assert not Membership.objects.filter(tenant=tenant_a, user=charlie).exists()
    assert api(alice).delete(f"{INVITES}{pk}/").status_code == 404  # no longer pending


def test_a_new_invitation_to_the_same_address_replaces_the_old_link(api, alice, charlie, tenant_a):
    invite(api, alice, role="viewer")
    invite(api, alice, email="Charlie@Example.TEST", role="owner")
    old, new = (token_of(m) for m in mail.outbox)
    assert api(charlie).post(ACCEPT, {"token": old}, format="json").status_code == 400
    assert api(charlie).post(ACCEPT, {"token": new}, format="json").json() == {"tenant": "acme", "role": "owner"}


def test_the_answer_to_invite_is_the_same_whether_or_not_the_address_has_an_account(api, alice, bob, charlie, tenant_a):
    def answer(email):
        with CaptureQueriesContext(connection) as queries:
            response = api(alice).post(INVITES, {"email": email, "role": "viewer"}, format="json")
        body = response.json()
        shape = {k: v for k, v in body.items() if k not in ("id", "email", "created_at", "expires_at", "detail")}
        return response.status_code, shape, body["detail"].replace(email, "X"), len(queries)

    with_account, without_account, member = (
        answer(e) for e in ("charlie@example.test", "nobody@example.test", "bob@example.test"))
    assert with_account == without_account == member
    assert with_account[0] == 202
    assert [m.to for m in mail.outbox] == [["charlie@example.test"], ["nobody@example.test"], ["bob@example.test"]]
    assert Membership.objects.filter(tenant=tenant_a).count() == 2  # nobody joined
    # The members endpoint invites the same way.
    response = api(alice).post("/api/v1/tenants/acme/members/", {"email": "nobody@example.test", "role": "viewer"},
                               format="json")
    assert response.status_code == 202 and response.json()["state"] == "pending"


def test_an_invitation_to_a_tenant_being_deleted_cannot_be_accepted(api, alice, charlie, tenant_a):
    invite(api, alice)
    Tenant.objects.filter(pk=tenant_a.pk).update(state=Tenant.State.DELETING)
    response = api(charlie).post(ACCEPT, {"token": token_of(mail.outbox[0])}, format="json")
    assert response.status_code == 400 and "being deleted" in response.json()["token"][0]
    assert not Membership.objects.filter(tenant=tenant_a, user=charlie).exists()


def test_a_member_accepting_again_keeps_their_role(api, alice, bob, tenant_a):
    invite(api, alice, email="bob@example.test", role="owner")
    response = api(bob).post(ACCEPT, {"token": token_of(mail.outbox[0])}, format="json")
    assert response.json() == {"tenant": "acme", "role": "viewer"}
    assert Invitation.objects.get().state == "accepted"


@pytest.mark.parametrize(
    "payload, field, words",
    [
        ({"email": "not-an-address", "role": "viewer"}, "email", "is not a valid e-mail address"),
        ({"email": "", "role": "viewer"}, "email", "may not be blank"),
        ({"role": "viewer"}, "email", "required"),
        ({"email": "x@example.test", "role": "admin"}, "role", "not a valid choice"),
        ({"email": "x@example.test", "role": "viewer", "user": 1}, "user", "Unknown field"),
    ],
)
def test_bad_invitation_input_is_a_400_naming_the_field(api, alice, tenant_a, payload, field, words):
    response = api(alice).post(INVITES, payload, format="json")
    assert response.status_code == 400
    assert words in str(response.json()[field])
    assert not Invitation.objects.exists() and not mail.outbox


@pytest.mark.parametrize("payload", [{"token": "nope"}, {"token": ""}, {}, {"token": "x", "tenant": "acme"}])
def test_a_bad_token_is_a_400(api, charlie, payload):
    response = api(charlie).post(ACCEPT, payload, format="json")
    assert response.status_code == 400
    assert set(response.json()) <= {"token", "tenant"}


def test_only_owners_manage_invitations(api, alice, bob, tenant_a):
    pk = invite(api, alice).json()["id"]
    for role in (Role.VIEWER, Role.EDITOR):
        Membership.objects.filter(user=bob).update(role=role)
        assert api(bob).get(INVITES).status_code == 403
        assert api(bob).get(f"{INVITES}{pk}/").status_code == 403
        assert api(bob).post(INVITES, {"email": "x@example.test", "role": "owner"}, format="json").status_code == 403
        assert api(bob).delete(f"{INVITES}{pk}/").status_code == 403
    assert Invitation.objects.get().state == "pending" and len(mail.outbox) == 1


def test_another_tenants_owner_cannot_see_or_revoke(api, alice, charlie, tenant_a, tenant_b):
    pk = invite(api, alice, email="dave@example.test").json()["id"]
    assert api(charlie).get(INVITES).status_code == 404
    assert api(charlie).delete(f"{INVITES}{pk}/").status_code == 404
    assert api(charlie).get(f"/api/v1/tenants/globex/invitations/{pk}/").status_code == 404
    assert api(charlie).delete(f"/api/v1/tenants/globex/invitations/{pk}/").status_code == 404
    assert api(charlie).get("/api/v1/tenants/globex/invitations/").json()["results"] == []
    assert signed_in(charlie).post(f"/t/globex/invitations/{pk}/revoke/").status_code == 404
    assert signed_in(charlie).post(f"/t/acme/invitations/{pk}/revoke/").status_code == 404
    assert Invitation.objects.get().state == "pending"


def test_anonymous_users_cannot_accept(api, alice, tenant_a):
    invite(api, alice)
    token = token_of(mail.outbox[0])
    assert api(None).post(ACCEPT, {"token": token}, format="json").status_code in (401, 403)
    response = Client().get(f"/invitations/{token}/")
    assert response.status_code == 302 and response["Location"].startswith("/login/?next=/invitations/")
    assert Invitation.objects.get().state == "pending"


def test_my_invitations_lists_those_to_my_email(api, alice, bob, charlie, tenant_a):
    invite(api, alice, email="CHARLIE@example.test")
    mine = api(charlie).get("/api/v1/invitations/").json()["results"]
    assert [(i["tenant"], i["tenant_name"], i["role"], i["invited_by"]) for i in mine] == [
        ("acme", "Acme", "editor", "alice")]
    assert api(bob).get("/api/v1/invitations/").json()["results"] == []


# The browser UI


def test_members_page_invites_and_the_link_page_accepts(alice, charlie, tenant_a):
    response = signed_in(alice).post("/t/acme/members/", {"email": "charlie@example.test", "role": "editor"},
                                     follow=True)
    page = response.content.decode()
    assert "Invitation sent to charlie@example.test as editor" in page and "Pending invitations" in page
    path = "/invitations/" + token_of(mail.outbox[0]) + "/"
    client = signed_in(charlie)
    page = client.get(path).content.decode()
    assert "Acme" in page and "Accept and join" in page
    response = client.post(path)
    assert response.status_code == 302 and response["Location"] == "/t/acme/"
    assert Membership.objects.get(tenant=tenant_a, user=charlie).role == Role.EDITOR
    response = client.get(path)
    assert response.status_code == 404 and "already been used" in response.content.decode()
    assert "not valid" in client.get("/invitations/garbage/").content.decode()


def test_members_page_answer_is_the_same_for_unknown_addresses(alice, tenant_a):
    client = signed_in(alice)
    pages = [client.post("/t/acme/members/", {"email": e, "role": "viewer"}, follow=True).content.decode()
             for e in ("charlie@example.test", "nobody@example.test")]
    assert "Invitation sent to charlie@example.test" in pages[0]
    assert "Invitation sent to nobody@example.test" in pages[1]
    assert len(mail.outbox) == 2


def test_home_page_lists_invitations_to_my_email_and_accepts_them(api, alice, bob, charlie, tenant_a):
    invite(api, alice, role="viewer")
    pk = Invitation.objects.get().pk
    page = signed_in(charlie).get("/").content.decode()
    assert "Invitations for you" in page and "Acme" in page
    assert "Invitations for you" not in signed_in(bob).get("/").content.decode()
    assert signed_in(bob).post(f"/invitations/{pk}/accept/").status_code == 404  # not addressed to bob
    response = signed_in(charlie).post(f"/invitations/{pk}/accept/", follow=True)
    assert "You are now a member of Acme (viewer)" in response.content.decode()
    assert Membership.objects.get(tenant=tenant_a, user=charlie).role == Role.VIEWER
    assert "Invitations for you" not in signed_in(charlie).get("/").content.decode()


def test_owner_revokes_from_the_members_page_and_viewers_see_no_invitations(api, alice, bob, charlie, tenant_a):
    invite(api, alice)
    pk = Invitation.objects.get().pk
    assert "charlie@example.test" not in signed_in(bob).get("/t/acme/members/").content.decode()
    assert signed_in(bob).post(f"/t/acme/invitations/{pk}/revoke/").status_code == 403
    response = signed_in(alice).post(f"/t/acme/invitations/{pk}/revoke/", follow=True)
    page = response.content.decode()
    assert "Invitation to charlie@example.test revoked." in page and "Pending invitations" not in page
    response = signed_in(charlie).post(f"/invitations/{token_of(mail.outbox[0])}/", follow=True)
    assert "withdrawn" in response.content.decode()
    assert not Membership.objects.filter(tenant=tenant_a, user=charlie).exists()


def test_a_mail_outage_is_logged_not_a_500(api, alice, tenant_a, settings, caplog):
    import socket

    with socket.socket() as closed:  # a loopback port nobody listens on
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT, settings.EMAIL_TIMEOUT = "127.0.0.1", port, 5
    response = api(alice).post(INVITES, {"email": "charlie@example.test", "role": "viewer"}, format="json")
    assert response.status_code == 202
    assert Invitation.objects.get().state == "pending"  # the owner can send it again once mail works
    assert any("_invitation_send" in r.getMessage() or r.exc_info for r in caplog.records)
