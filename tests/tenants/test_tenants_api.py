import pytest

from tenants.models import Membership, Role, Tenant

pytestmark = pytest.mark.django_db


def test_any_signed_in_user_creates_a_tenant_and_becomes_its_owner(api, charlie, settings):
    response = api(charlie).post("/api/v1/tenants/", {"slug": "initech", "name": "Initech"}, format="json")
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["slug"] == "initech"
    assert body["role"] == "owner"
    assert body["state"] == "provisioning"
    assert body["namespace"] == settings.RELAY_NAMESPACE_PREFIX + "initech"
    assert Membership.objects.get(tenant__slug="initech", user=charlie).role == Role.OWNER


def test_namespace_is_fixed_at_creation_even_if_the_prefix_changes(api, alice, settings):
    settings.RELAY_NAMESPACE_PREFIX = "teams-"
    api(alice).post("/api/v1/tenants/", {"slug": "blue", "name": "Blue"}, format="json")
    settings.RELAY_NAMESPACE_PREFIX = "other-"
    tenant = Tenant.objects.get(slug="blue")
    tenant.name = "Renamed"
    tenant.save()
    tenant.refresh_from_db()
    assert tenant.namespace == "teams-blue"


def test_list_shows_only_my_tenants_with_my_role(api, bob, tenant_a, tenant_b):
    response = api(bob).get("/api/v1/tenants/")
    assert response.status_code == 200
    body = response.json()
    assert body["count"] == 1
    assert [(t["slug"], t["role"]) for t in body["results"]] == [("acme", "viewer")]


def test_list_is_paginated_and_filterable(api, alice):
    for i in range(7):
        api(alice).post("/api/v1/tenants/", {"slug": f"team-{i}", "name": f"Team {i}"}, format="json")
    Tenant.objects.filter(slug="team-3").update(state=Tenant.State.READY)
    page = api(alice).get("/api/v1/tenants/?page_size=3").json()
    assert page["count"] == 7 and len(page["results"]) == 3 and page["next"]
    ready = api(alice).get("/api/v1/tenants/?state=ready").json()
    assert [t["slug"] for t in ready["results"]] == ["team-3"]
    found = api(alice).get("/api/v1/tenants/?search=Team 5").json()
    assert [t["slug"] for t in found["results"]] == ["team-5"]


@pytest.mark.parametrize(
    "payload, field",
    [
        ({"slug": "Bad_Slug", "name": "x"}, "slug"),
        ({"slug": "-leading", "name": "x"}, "slug"),
        ({"slug": "a" * 31, "name": "x"}, "slug"),
        ({"slug": "", "name": "x"}, "slug"),
        ({"name": "no slug"}, "slug"),
        ({"slug": "ok", "name": ""}, "name"),
        ({"slug": "ok", "name": "x", "colour": "red"}, "colour"),
    ],
)
def test_bad_tenant_input_is_a_400_naming_the_field(api, alice, payload, field):
    response = api(alice).post("/api/v1/tenants/", payload, format="json")
    assert response.status_code == 400
    assert field in response.json(), response.json()
    assert not Tenant.objects.exists()


def test_duplicate_slug_is_refused_and_the_first_tenant_is_kept(api, alice, charlie, tenant_a):
    response = api(charlie).post("/api/v1/tenants/", {"slug": "acme", "name": "Imposter"}, format="json")
    assert response.status_code == 400
    assert "slug" in response.json()
    assert Tenant.objects.get(slug="acme").name == "Acme"
    assert not Membership.objects.filter(user=charlie, tenant=tenant_a).exists()


def test_malformed_json_is_a_400_with_detail(api, alice):
    response = api(alice).post("/api/v1/tenants/", data="{not json", content_type="application/json")
    assert response.status_code == 400
    assert "JSON parse error" in response.json()["detail"]


def test_wrong_content_type_is_refused_with_a_clear_message(api, alice):
    form = "application/x-www-form-urlencoded"
    response = api(alice).post("/api/v1/tenants/", data="slug=x&name=y", content_type=form)
    assert response.status_code == 415
    assert "application/x-www-form-urlencoded" in response.json()["detail"]
    assert not Tenant.objects.exists()


def test_owner_renames_but_cannot_change_slug(api, alice, tenant_a):
    response = api(alice).patch("/api/v1/tenants/acme/", {"name": "Acme Corp"}, format="json")
    assert response.status_code == 200
    assert response.json()["name"] == "Acme Corp"
    response = api(alice).patch("/api/v1/tenants/acme/", {"slug": "other"}, format="json")
    assert response.status_code == 400 and "slug" in response.json()
    assert Tenant.objects.filter(slug="acme").exists()


def test_viewer_reads_but_cannot_change_or_delete(api, bob, tenant_a):
    assert api(bob).get("/api/v1/tenants/acme/").status_code == 200
    assert api(bob).patch("/api/v1/tenants/acme/", {"name": "x"}, format="json").status_code == 403
    assert api(bob).delete("/api/v1/tenants/acme/").status_code == 403
    assert Tenant.objects.get(slug="acme").name == "Acme"


def test_owner_deletes_the_tenant_in_the_background(api, alice, tenant_a):
    response = api(alice).delete("/api/v1/tenants/acme/")
    assert response.status_code == 202
    assert response.json()["state"] == "deleting"
    assert Tenant.objects.get(slug="acme").state == Tenant.State.DELETING


def test_only_a_failed_tenant_can_retry_provisioning(api, alice, tenant_a):
    response = api(alice).post("/api/v1/tenants/acme/provision/")
    assert response.status_code == 400 and "only a failed tenant" in response.json()["detail"]
    Tenant.objects.filter(slug="acme").update(state=Tenant.State.FAILED, message="boom")
    response = api(alice).post("/api/v1/tenants/acme/provision/")
    assert response.status_code == 202 and response.json()["state"] == "provisioning"


def test_errors_are_json_everywhere_under_api(api, alice):
    response = api(alice).get("/api/v1/no-such-thing/")
    assert response.status_code == 404
    assert response.json() == {"detail": "Not found."}
