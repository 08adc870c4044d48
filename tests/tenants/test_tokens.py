import hashlib

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from tenants.models import ApiToken

pytestmark = pytest.mark.django_db


def test_token_is_shown_once_and_stored_hashed(api, alice):
    response = api(alice).post("/api/v1/tokens/", {"name": "ci"}, format="json")
    assert response.status_code == 201
    raw = response.json()["token"]
    assert raw.startswith("rw_") and len(raw) > 40
    stored = ApiToken.objects.get(user=alice, name="ci")
    assert stored.digest == hashlib.sha256(raw.encode()).hexdigest()
    assert raw not in str(ApiToken.objects.filter(pk=stored.pk).values().first())
    listed = api(alice).get("/api/v1/tokens/").json()["results"]
    assert listed[0]["token"] is None and listed[0]["prefix"] == raw[:10]


@pytest.mark.parametrize("keyword", ["Token", "Bearer"])
def test_token_authenticates_api_calls_and_records_last_use(alice, tenant_a, token_for, keyword):
    raw = token_for(alice)
    client = APIClient(HTTP_AUTHORIZATION=f"{keyword} {raw}")
    response = client.get("/api/v1/tenants/")
    assert response.status_code == 200
    assert [t["slug"] for t in response.json()["results"]] == ["acme"]
    assert ApiToken.objects.get(user=alice).last_used_at is not None


def test_last_use_is_written_at_most_once_a_minute(alice, token_for):
    raw = token_for(alice)
    client = APIClient(HTTP_AUTHORIZATION=f"Token {raw}")
    client.get("/api/v1/tenants/")
    first = ApiToken.objects.get(user=alice).last_used_at
    client.get("/api/v1/tenants/")
    assert ApiToken.objects.get(user=alice).last_used_at == first
    ApiToken.objects.filter(user=alice).update(last_used_at=first - timezone.timedelta(minutes=2))
    client.get("/api/v1/tenants/")
    assert ApiToken.objects.get(user=alice).last_used_at > first


def test_several_named_tokens_per_user_and_names_are_unique(api, alice):
    assert api(alice).post("/api/v1/tokens/", {"name": "one"}, format="json").status_code == 201
    assert api(alice).post("/api/v1/tokens/", {"name": "two"}, format="json").status_code == 201
    duplicate = api(alice).post("/api/v1/tokens/", {"name": "one"}, format="json")
    assert duplicate.status_code == 400 and "name" in duplicate.json()
    assert api(alice).post("/api/v1/tokens/", {"name": ""}, format="json").status_code == 400
    assert ApiToken.objects.filter(user=alice).count() == 2


def test_revoked_token_no_longer_works(api, alice, token_for):
    raw = token_for(alice, "old")
    token = ApiToken.objects.get(user=alice, name="old")
    assert api(alice).delete(f"/api/v1/tokens/{token.pk}/").status_code == 204
    response = APIClient(HTTP_AUTHORIZATION=f"Token {raw}").get("/api/v1/tenants/")
    assert response.status_code == 401
    assert "Invalid or revoked token" in response.json()["detail"]


def test_wrong_or_malformed_token_is_401(db):
    assert APIClient(HTTP_AUTHORIZATION="Token nope").get("/api/v1/tenants/").status_code == 401
    assert APIClient(HTTP_AUTHORIZATION="Token a b").get("/api/v1/tenants/").status_code == 401


def test_token_of_a_deactivated_user_is_refused(alice, token_for):
    raw = token_for(alice)
    alice.is_active = False
    alice.save()
    assert APIClient(HTTP_AUTHORIZATION=f"Token {raw}").get("/api/v1/tenants/").status_code == 401


def test_users_see_and_revoke_only_their_own_tokens(api, alice, charlie, token_for):
    token_for(alice, "alice-token")
    token = ApiToken.objects.get(user=alice)
    assert api(charlie).get("/api/v1/tokens/").json()["count"] == 0
    assert api(charlie).get(f"/api/v1/tokens/{token.pk}/").status_code == 404
    assert api(charlie).delete(f"/api/v1/tokens/{token.pk}/").status_code == 404
    assert ApiToken.objects.filter(pk=token.pk).exists()


def test_a_token_grants_only_its_users_tenants(charlie, tenant_a, tenant_b, token_for):
    client = APIClient(HTTP_AUTHORIZATION=f"Bearer {token_for(charlie)}")
    assert client.get("/api/v1/tenants/acme/").status_code == 404
    assert client.get("/api/v1/tenants/globex/").status_code == 200
