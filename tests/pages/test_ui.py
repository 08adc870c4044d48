import pytest
from django.test import Client

from tenants.models import ApiToken, Membership, Role, Tenant
from tests.conftest import PASSWORD

pytestmark = pytest.mark.django_db


def signed_in(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def test_login_page_signs_in_and_lands_on_tenants(alice, tenant_a):
    client = Client()
    assert b"Sign in" in client.get("/login/").content
    response = client.post("/login/", {"username": "alice", "password": PASSWORD}, follow=True)
    assert response.redirect_chain[-1][0] == "/"
    assert b"Acme" in response.content


def test_login_with_a_wrong_password_says_so(alice):
    response = Client().post("/login/", {"username": "alice", "password": "nope"})
    assert response.status_code == 200
    assert b"didn't match" in response.content


def test_logout_is_a_post_and_ends_the_session(alice):
    client = signed_in(alice)
    assert client.post("/logout/").status_code == 302
    assert client.get("/").status_code == 302


def test_empty_state_invites_to_create_a_tenant(alice):
    page = signed_in(alice).get("/").content.decode()
    assert "not a member of any tenant yet" in page
    assert 'href="/tenants/new/"' in page


def test_create_tenant_form(alice):
    response = signed_in(alice).post("/tenants/new/", {"name": "Blue Team", "slug": "blue"}, follow=True)
    assert response.redirect_chain[-1][0] == "/t/blue/"
    assert Membership.objects.get(tenant__slug="blue", user=alice).role == Role.OWNER
    assert "Blue Team" in response.content.decode()


@pytest.mark.parametrize(
    "data, message",
    [
        ({"name": "X", "slug": "Not OK"}, "Use lowercase letters"),
        ({"name": "", "slug": "ok"}, "This field is required"),
        ({"name": "Dup", "slug": "acme"}, "already exists"),
    ],
)
def test_create_tenant_form_shows_errors_inline(alice, tenant_a, data, message):
    response = signed_in(alice).post("/tenants/new/", data)
    assert response.status_code == 200
    assert message in response.content.decode()
    assert Tenant.objects.count() == 1


def test_tenant_switcher_lists_my_tenants(alice, tenant_a, tenant_b):
    page = signed_in(alice).get("/t/acme/").content.decode()
    assert 'href="/t/acme/"' in page and 'href="/t/globex/"' not in page


def test_owner_renames_tenant_in_settings(alice, tenant_a):
    response = signed_in(alice).post("/t/acme/settings/", {"name": "Acme Corp"}, follow=True)
    assert "Settings saved" in response.content.decode()
    assert Tenant.objects.get(slug="acme").name == "Acme Corp"


def test_viewer_cannot_open_settings_or_delete(bob, tenant_a):
    client = signed_in(bob)
    assert client.get("/t/acme/settings/").status_code == 403
    assert client.post("/t/acme/delete/", {"confirm": "acme"}).status_code == 403
    assert Tenant.objects.filter(slug="acme").exists()


def test_delete_requires_typing_the_slug(alice, tenant_a):
    client = signed_in(alice)
    response = client.post("/t/acme/delete/", {"confirm": "wrong"}, follow=True)
    assert "to confirm deletion" in response.content.decode()
    assert Tenant.objects.filter(slug="acme").exists()
    client.post("/t/acme/delete/", {"confirm": "acme"})
    assert Tenant.objects.get(slug="acme").state == Tenant.State.DELETING


def test_members_page_invite_change_remove(alice, charlie, tenant_a):
    client = signed_in(alice)
    response = client.post("/t/acme/members/", {"email": "charlie@example.test", "role": "editor"}, follow=True)
    assert "Invitation sent to charlie@example.test" in response.content.decode()
    assert not Membership.objects.filter(tenant=tenant_a, user=charlie).exists()  # not without consent
    membership = Membership.objects.create(tenant=tenant_a, user=charlie, role=Role.EDITOR)
    client.post(f"/t/acme/members/{membership.pk}/role/", {"role": "owner"})
    membership.refresh_from_db()
    assert membership.role == Role.OWNER
    client.post(f"/t/acme/members/{membership.pk}/remove/")
    assert not Membership.objects.filter(pk=membership.pk).exists()


def test_members_page_explains_the_last_owner_rule(alice, tenant_a):
    client = signed_in(alice)
    own = Membership.objects.get(tenant=tenant_a, user=alice)
    response = client.post(f"/t/acme/members/{own.pk}/remove/", follow=True)
    assert "last owner cannot be removed" in response.content.decode()
    response = client.post(f"/t/acme/members/{own.pk}/role/", {"role": "viewer"}, follow=True)
    assert "last owner cannot be demoted" in response.content.decode()
    response = client.post(f"/t/acme/members/{own.pk}/role/", {"role": "emperor"}, follow=True)
    assert "Unknown role" in response.content.decode()
    own.refresh_from_db()
    assert own.role == Role.OWNER


def test_members_page_form_errors(alice, tenant_a):
    response = signed_in(alice).post("/t/acme/members/", {"email": "ghost", "role": "viewer"})
    assert "is not a valid e-mail address" in response.content.decode()


def test_viewer_sees_members_but_no_management(bob, charlie, tenant_a):
    client = signed_in(bob)
    page = client.get("/t/acme/members/").content.decode()
    assert "alice" in page and "Invite a member" not in page
    client.post("/t/acme/members/", {"email": "charlie@example.test", "role": "owner"})
    assert not Membership.objects.filter(tenant=tenant_a, user=charlie).exists()
    assert not tenant_a.invitations.exists()


def test_tokens_page_shows_a_new_token_once(alice):
    client = signed_in(alice)
    page = client.post("/account/tokens/", {"name": "laptop"}).content.decode()
    token = ApiToken.objects.get(user=alice)
    assert "It will not be shown again" in page
    raw = page.split('id="new-token-value">')[1].split("<")[0]
    assert raw.startswith(token.prefix)
    assert raw not in client.get("/account/tokens/").content.decode()
    client.post(f"/account/tokens/{token.pk}/revoke/")
    assert not ApiToken.objects.exists()


def test_pages_load_no_third_party_assets(alice, tenant_a):
    page = signed_in(alice).get("/t/acme/").content.decode()
    assert "http://" not in page.replace("http://testserver", "") and "https://" not in page


def test_api_docs_are_served_from_local_assets(alice):
    page = signed_in(alice).get("/api/docs/").content.decode()
    assert "swagger-ui" in page
    assert "cdn" not in page.lower() and "https://" not in page


def test_static_assets_are_served(alice):
    response = Client().get("/static/css/relayweb.css")
    assert response.status_code == 200
    assert b"--accent" in b"".join(response.streaming_content)


def test_a_failed_tenant_can_retry_provisioning_from_its_page(alice, bob, tenant_a):
    Tenant.objects.filter(pk=tenant_a.pk).update(state=Tenant.State.FAILED, message="Provisioning failed: 403")
    page = signed_in(alice).get("/t/acme/").content.decode()
    assert "Provisioning failed: 403" in page and "Retry provisioning" in page
    assert "Retry provisioning" not in signed_in(bob).get("/t/acme/").content.decode()
    assert signed_in(bob).post("/t/acme/provision/").status_code == 403
    response = signed_in(alice).post("/t/acme/provision/", follow=True)
    assert "Provisioning namespace relay-acme again" in response.content.decode()
    assert Tenant.objects.get(pk=tenant_a.pk).state == Tenant.State.PROVISIONING
    response = signed_in(alice).post("/t/acme/provision/", follow=True)
    assert "only a failed tenant can be retried" in response.content.decode()


def test_tenant_overview_queries_do_not_grow_with_triggers(alice, tenant_a, django_assert_max_num_queries):
    from triggers.models import Deployment, Trigger

    client = signed_in(alice)
    for i in range(3):
        Deployment.objects.create(trigger=Trigger.objects.create(tenant=tenant_a, name=f"t{i}", image="x/y"),
                                  spec_version=1, status="ready")
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    with CaptureQueriesContext(connection) as few:
        client.get("/t/acme/")
    for i in range(3, 13):
        Trigger.objects.create(tenant=tenant_a, name=f"t{i}", image="x/y")
    with django_assert_max_num_queries(len(few.captured_queries)):
        assert client.get("/t/acme/").status_code == 200
