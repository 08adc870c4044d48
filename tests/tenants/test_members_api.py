import pytest

from tenants.models import Membership, Role

pytestmark = pytest.mark.django_db

MEMBERS = "/api/v1/tenants/acme/members/"


def test_members_list_shows_roles(api, bob, tenant_a):
    response = api(bob).get(MEMBERS)
    assert response.status_code == 200
    assert [(m["username"], m["role"]) for m in response.json()["results"]] == [
        ("alice", "owner"),
        ("bob", "viewer"),
    ]


def test_members_filter_by_role(api, alice, tenant_a):
    body = api(alice).get(MEMBERS + "?role=owner").json()
    assert [m["username"] for m in body["results"]] == ["alice"]


def test_owner_invites_then_changes_and_removes_a_member(api, alice, charlie, tenant_a):
    response = api(alice).post(MEMBERS, {"email": "charlie@example.test", "role": "editor"}, format="json")
    assert response.status_code == 202, response.content
    assert not Membership.objects.filter(tenant=tenant_a, user=charlie).exists()  # not without consent
    Membership.objects.create(tenant=tenant_a, user=charlie, role=Role.EDITOR)  # as if charlie accepted
    response = api(alice).patch(MEMBERS + "charlie/", {"role": "owner"}, format="json")
    assert response.status_code == 200 and response.json()["role"] == "owner"
    assert api(alice).delete(MEMBERS + "charlie/").status_code == 204
    assert not Membership.objects.filter(tenant=tenant_a, user=charlie).exists()


def test_viewer_cannot_manage_members(api, bob, charlie, tenant_a):
    assert api(bob).post(MEMBERS, {"email": "charlie@example.test", "role": "owner"}, format="json").status_code == 403
    assert api(bob).patch(MEMBERS + "bob/", {"role": "owner"}, format="json").status_code == 403
    assert api(bob).delete(MEMBERS + "alice/").status_code == 403
    assert Membership.objects.get(tenant=tenant_a, user=bob).role == Role.VIEWER


def test_editor_cannot_manage_members(api, bob, tenant_a):
    Membership.objects.filter(user=bob).update(role=Role.EDITOR)
    assert api(bob).patch(MEMBERS + "bob/", {"role": "owner"}, format="json").status_code == 403


@pytest.mark.parametrize(
    "payload, field",
    [
        ({"email": "charlie@example.test", "role": "admin"}, "role"),
        ({"email": "nobody", "role": "viewer"}, "email"),
        ({"role": "viewer"}, "email"),
        ({"username": "charlie", "role": "viewer"}, "username"),  # members are invited by e-mail now
        ({"email": "charlie@example.test", "role": "viewer", "extra": 1}, "extra"),
    ],
)
def test_bad_member_input_is_a_400_naming_the_field(api, alice, charlie, tenant_a, payload, field):
    response = api(alice).post(MEMBERS, payload, format="json")
    assert response.status_code == 400
    assert field in response.json(), response.json()
    assert Membership.objects.filter(tenant=tenant_a).count() == 2


def test_unknown_role_on_update_is_a_400(api, alice, tenant_a):
    response = api(alice).patch(MEMBERS + "bob/", {"role": "superuser"}, format="json")
    assert response.status_code == 400 and "role" in response.json()


def test_last_owner_cannot_be_removed_or_demoted(api, alice, tenant_a):
    response = api(alice).delete(MEMBERS + "alice/")
    assert response.status_code == 400
    assert "last owner" in str(response.json())
    response = api(alice).patch(MEMBERS + "alice/", {"role": "viewer"}, format="json")
    assert response.status_code == 400
    assert "last owner" in response.json()["role"][0]
    assert Membership.objects.get(tenant=tenant_a, user__username="alice").role == Role.OWNER


def test_an_owner_can_leave_once_another_owner_exists(api, alice, bob, tenant_a):
    api(alice).patch(MEMBERS + "bob/", {"role": "owner"}, format="json")
    assert api(alice).delete(MEMBERS + "alice/").status_code == 204
    assert list(Membership.objects.filter(tenant=tenant_a).values_list("user__username", flat=True)) == ["bob"]


def test_the_member_of_a_membership_cannot_be_swapped(api, alice, tenant_a):
    response = api(alice).put(MEMBERS + "bob/", {"username": "alice", "role": "owner"}, format="json")
    assert response.status_code == 400 and "username" in response.json()
