import pytest
from django.test import Client

from tenants.models import ApiToken

pytestmark = pytest.mark.django_db


@pytest.fixture
def operator(staff):
    client = Client()
    client.force_login(staff)
    return client


def test_tenant_admin_searches_and_filters(operator, tenant_a, tenant_b):
    page = operator.get("/admin/tenants/tenant/?q=glob").content.decode()
    assert "globex" in page and "acme" not in page
    page = operator.get("/admin/tenants/tenant/?state__exact=ready").content.decode()
    assert "globex" in page and "acme" in page
    page = operator.get("/admin/tenants/tenant/?state__exact=failed").content.decode()
    assert "0 tenants" in page


def test_membership_admin_searches_by_user(operator, tenant_a, tenant_b):
    page = operator.get("/admin/tenants/membership/?q=charlie").content.decode()
    assert "charlie" in page and "bob" not in page
    page = operator.get("/admin/tenants/membership/?role__exact=viewer").content.decode()
    assert "bob" in page and "charlie" not in page


def test_tenant_slug_is_read_only_once_created(operator, tenant_a):
    page = operator.get(f"/admin/tenants/tenant/{tenant_a.pk}/change/").content.decode()
    assert 'name="slug"' not in page and 'name="name"' in page


def test_token_admin_never_shows_digests(operator, alice):
    token, raw = ApiToken.generate(user=alice, name="ci")
    page = operator.get(f"/admin/tenants/apitoken/{token.pk}/change/").content.decode()
    assert token.digest not in page and raw not in page
