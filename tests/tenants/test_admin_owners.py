"""Django admin keeps the last-owner rule of the UI and API: a tenant always keeps an owner."""

import pytest
from django.contrib.auth import get_user_model
from django.test import Client

from tenants.models import Membership, Role

pytestmark = pytest.mark.django_db


@pytest.fixture
def operator(staff):
    client = Client()
    client.force_login(staff)
    return client


@pytest.fixture
def alice_owner(alice, tenant_a):
    return Membership.objects.get(tenant=tenant_a, user=alice)


def owners(tenant):
    return sorted(tenant.memberships.filter(role=Role.OWNER).values_list("user__username", flat=True))


def _form_data(response) -> dict:
    """The POST a browser would send back for an admin change form, unchanged."""
    data = {}
    adminform = response.context["adminform"].form
    for name in adminform.fields:
        value = adminform[name].value()
        if value is not None:
            data[adminform.add_prefix(name)] = value
    for inline in response.context["inline_admin_formsets"]:
        formset = inline.formset
        for name in formset.management_form.fields:
            data[formset.management_form.add_prefix(name)] = formset.management_form[name].value()
        for form in formset.forms:
            for name in form.fields:
                value = form[name].value()
                if value not in (None, False):
                    data[form.add_prefix(name)] = value
    return data


def test_delete_page_refuses_the_last_owner(operator, alice_owner, tenant_a):
    url = f"/admin/tenants/membership/{alice_owner.pk}/delete/"
    page = operator.get(url).content.decode()
    assert "acme without an owner" in page and "Yes, I’m sure" not in page
    response = operator.post(url, {"post": "yes"})
    assert response.status_code == 200 and "acme without an owner" in response.content.decode()
    assert owners(tenant_a) == ["alice"]


def test_delete_page_removes_an_owner_who_is_not_the_last(operator, alice_owner, bob, tenant_a):
    Membership.objects.filter(user=bob).update(role=Role.OWNER)
    response = operator.post(f"/admin/tenants/membership/{alice_owner.pk}/delete/", {"post": "yes"})
    assert response.status_code == 302
    assert owners(tenant_a) == ["bob"]


def test_changelist_delete_action_refuses_removing_every_owner(operator, alice_owner, bob, tenant_a, tenant_b):
    Membership.objects.filter(user=bob).update(role=Role.OWNER)
    both = [str(pk) for pk in tenant_a.memberships.values_list("pk", flat=True)]
    response = operator.post("/admin/tenants/membership/",
                             {"action": "delete_selected", "_selected_action": both, "post": "yes"})
    assert "acme without an owner" in response.content.decode()
    assert owners(tenant_a) == ["alice", "bob"]
    response = operator.post("/admin/tenants/membership/",
                             {"action": "delete_selected", "_selected_action": both[:1], "post": "yes"})
    assert response.status_code == 302
    assert len(owners(tenant_a)) == 1


def test_change_form_cannot_demote_the_last_owner(operator, alice_owner, tenant_a):
    url = f"/admin/tenants/membership/{alice_owner.pk}/change/"
    data = {**_form_data(operator.get(url)), "role": "viewer"}
    response = operator.post(url, data)
    assert response.status_code == 200
    assert "last owner cannot be demoted" in response.content.decode()
    assert owners(tenant_a) == ["alice"]


def test_change_form_demotes_an_owner_once_another_exists(operator, alice_owner, bob, tenant_a):
    Membership.objects.filter(user=bob).update(role=Role.OWNER)
    url = f"/admin/tenants/membership/{alice_owner.pk}/change/"
    response = operator.post(url, {**_form_data(operator.get(url)), "role": "viewer"})
    assert response.status_code == 302
    assert owners(tenant_a) == ["bob"]


def test_change_form_cannot_move_a_membership_to_another_tenant(operator, alice_owner, tenant_a, tenant_b):
    url = f"/admin/tenants/membership/{alice_owner.pk}/change/"
    data = {**_form_data(operator.get(url)), "tenant": tenant_b.pk}
    operator.post(url, data)
    assert owners(tenant_a) == ["alice"] and owners(tenant_b) == ["charlie"]


def _inline_prefix(data, username):
    for key, value in data.items():
        if key.startswith("memberships-") and key.endswith("-user") and str(value) == str(
            get_user_model().objects.get(username=username).pk
        ):
            return key[: -len("user")]
    raise AssertionError(f"no inline row for {username}")


@pytest.mark.parametrize("edit", ["delete", "demote"])
def test_tenant_inline_cannot_remove_or_demote_the_last_owner(operator, alice_owner, tenant_a, edit):
    url = f"/admin/tenants/tenant/{tenant_a.pk}/change/"
    data = _form_data(operator.get(url))
    row = _inline_prefix(data, "alice")
    data.update({row + "DELETE": "on"} if edit == "delete" else {row + "role": "editor"})
    response = operator.post(url, data)
    assert response.status_code == 200
    assert "A tenant must keep an owner" in response.content.decode()
    assert owners(tenant_a) == ["alice"]


def test_tenant_inline_can_hand_ownership_over_in_one_save(operator, alice_owner, tenant_a):
    url = f"/admin/tenants/tenant/{tenant_a.pk}/change/"
    data = _form_data(operator.get(url))
    data.update({_inline_prefix(data, "alice") + "DELETE": "on", _inline_prefix(data, "bob") + "role": "owner"})
    response = operator.post(url, data)
    assert response.status_code == 302, response.content.decode()[-3000:]
    assert owners(tenant_a) == ["bob"]


def test_deleting_a_user_who_is_the_last_owner_is_refused(operator, alice, bob, tenant_a):
    url = f"/admin/auth/user/{alice.pk}/delete/"
    assert "acme without an owner" in operator.get(url).content.decode()
    response = operator.post(url, {"post": "yes"})
    assert response.status_code == 200
    assert get_user_model().objects.filter(pk=alice.pk).exists() and owners(tenant_a) == ["alice"]
    response = operator.post("/admin/auth/user/",
                             {"action": "delete_selected", "_selected_action": [alice.pk], "post": "yes"})
    assert get_user_model().objects.filter(pk=alice.pk).exists() and owners(tenant_a) == ["alice"]


def test_deleting_a_user_who_is_not_the_last_owner_works(operator, alice, bob, tenant_a):
    assert operator.post(f"/admin/auth/user/{bob.pk}/delete/", {"post": "yes"}).status_code == 302
    assert not get_user_model().objects.filter(pk=bob.pk).exists()
    Membership.objects.create(tenant=tenant_a, user=bob.__class__.objects.create(username="dan"), role=Role.OWNER)
    response = operator.post("/admin/auth/user/",
                             {"action": "delete_selected", "_selected_action": [alice.pk], "post": "yes"})
    assert response.status_code == 302
    assert owners(tenant_a) == ["dan"]


def test_deleting_every_owner_at_once_is_refused(operator, alice, bob, tenant_a):
    Membership.objects.filter(user=bob).update(role=Role.OWNER)
    response = operator.post("/admin/auth/user/",
                             {"action": "delete_selected", "_selected_action": [alice.pk, bob.pk], "post": "yes"})
    assert "acme without an owner" in response.content.decode()
    assert owners(tenant_a) == ["alice", "bob"]


def test_admin_can_still_delete_a_tenant_with_its_members(operator, alice, tenant_b):
    response = operator.post(f"/admin/tenants/tenant/{tenant_b.pk}/delete/", {"post": "yes"})
    assert response.status_code == 302
    assert not Membership.objects.filter(user__username="charlie").exists()
