"""Django admin keeps the rules of the UI and API: a tenant always keeps an owner, and is deleted by
`tenant_delete` (teardown, sockets closed, audited)."""

import pytest
from asgiref.sync import sync_to_async
from django.contrib.auth import get_user_model
from django.test import Client

from tenants.models import AuditEntry, Membership, Role, Tenant
from tests.cluster import wait_for

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


@pytest.mark.celery
def test_admin_deletes_a_tenant_through_tenant_delete(staff, alice, tenant_b, worker):
    """Teardown (triggers, namespace, then the row with its members) by the worker, and an audit entry."""
    operator = Client(REMOTE_ADDR="10.1.2.3")
    operator.force_login(staff)
    response = operator.post(f"/admin/tenants/tenant/{tenant_b.pk}/delete/", {"post": "yes"}, follow=True)
    assert "Deleting tenant globex" in response.content.decode()
    entry = AuditEntry.objects.get(action="tenant.delete")
    assert (entry.actor, entry.source, entry.tenant_slug) == (staff, "10.1.2.3", "globex")
    wait_for(lambda: not Tenant.objects.filter(pk=tenant_b.pk).exists(), message="tenant torn down by the worker")
    assert not Membership.objects.filter(user__username="charlie").exists()


def test_admin_bulk_delete_marks_each_tenant_deleting_and_records_it(operator, staff, tenant_a, tenant_b):
    response = operator.post("/admin/tenants/tenant/", {"action": "delete_selected", "post": "yes",
                                                        "_selected_action": [tenant_a.pk, tenant_b.pk]})
    assert response.status_code == 302
    assert set(Tenant.objects.values_list("state", flat=True)) == {Tenant.State.DELETING}
    assert sorted(AuditEntry.objects.filter(action="tenant.delete", actor=staff).values_list(
        "tenant_slug", flat=True)) == ["acme", "globex"]
    assert owners(tenant_a) == ["alice"]  # the members go with the tenant's row, after its teardown


@pytest.mark.django_db(transaction=True)
async def test_admin_deleting_a_tenant_closes_its_members_sockets(staff, alice, bob, tenant_a):
    from tests.live.test_socket_access import assert_revoked, open_socket

    owner, viewer = await open_socket("/ws/tenants/acme/", alice), await open_socket("/ws/tenants/acme/", bob)

    def delete():
        operator = Client()
        operator.force_login(staff)
        return operator.post(f"/admin/tenants/tenant/{tenant_a.pk}/delete/", {"post": "yes"})

    assert (await sync_to_async(delete)()).status_code == 302
    for communicator in (owner, viewer):
        await assert_revoked(communicator, "Acme is being deleted.")


def test_tenants_are_not_added_in_admin(operator):
    assert operator.get("/admin/tenants/tenant/add/").status_code == 403  # their first owner creates them


def test_tenant_inline_cannot_move_a_membership_to_another_user(operator, tenant_a, charlie):
    url = f"/admin/tenants/tenant/{tenant_a.pk}/change/"
    data = _form_data(operator.get(url))
    data[_inline_prefix(data, "bob") + "user"] = charlie.pk
    response = operator.post(url, data)
    assert "cannot move to another user" in response.content.decode()
    assert sorted(tenant_a.memberships.values_list("user__username", flat=True)) == ["alice", "bob"]


def test_members_cannot_be_added_to_a_tenant_being_deleted(operator, tenant_a, charlie):
    Tenant.objects.filter(pk=tenant_a.pk).update(state=Tenant.State.DELETING)
    response = operator.post("/admin/tenants/membership/add/", {"tenant": tenant_a.pk, "user": charlie.pk,
                                                               "role": "viewer"})
    assert response.status_code == 200 and "is being deleted" in response.content.decode()
    assert not Membership.objects.filter(user=charlie).exists()
