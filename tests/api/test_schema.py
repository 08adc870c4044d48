"""Property-based run of the API against its own OpenAPI schema (schemathesis).

Zero server errors and zero responses that break the schema, over a bounded number of generated
requests per operation, signed in as a member of one tenant so authorised paths are reached too.
"""

import pytest
import schemathesis
from django.core import signals
from django.core.wsgi import get_wsgi_application
from django.db import close_old_connections
from hypothesis import HealthCheck, settings
from schemathesis import checks

from tenants.models import ApiToken, Membership, Role, Tenant

schema = schemathesis.openapi.from_wsgi("/api/schema/", get_wsgi_application())

@pytest.fixture
def keep_connection():
    """Keep the test transaction's connection across WSGI calls, as Django's test client does."""
    signals.request_started.disconnect(close_old_connections)
    signals.request_finished.disconnect(close_old_connections)
    yield
    signals.request_started.connect(close_old_connections)
    signals.request_finished.connect(close_old_connections)


CHECKS = [checks.not_a_server_error, checks.response_schema_conformance, checks.content_type_conformance]


@pytest.fixture
def token(django_user_model, keep_connection):
    user = django_user_model.objects.create_user("fuzzer", password="x")
    tenant = Tenant.objects.create(slug="acme", name="Acme")
    Membership.objects.create(user=user, tenant=tenant, role=Role.OWNER)
    return ApiToken.generate(user=user, name="fuzz")[1]


def test_schema_lists_every_api_path():
    paths = set(schema.raw_schema["paths"])
    assert {"/api/v1/tenants/", "/api/v1/tenants/{slug}/", "/api/v1/tenants/{tenant_slug}/members/",
            "/api/v1/tenants/{tenant_slug}/members/{username}/", "/api/v1/tokens/", "/api/v1/tokens/{id}/",
            "/api/v1/tenants/{tenant_slug}/invitations/", "/api/v1/tenants/{tenant_slug}/invitations/{id}/",
            "/api/v1/invitations/", "/api/v1/invitations/accept/"} <= paths
    assert "tokenAuth" in schema.raw_schema["components"]["securitySchemes"]


@pytest.mark.django_db
@schema.parametrize()
@settings(max_examples=15, deadline=None, suppress_health_check=list(HealthCheck))
def test_api_conforms_to_its_schema(case, token):
    case.call_and_validate(headers={"Authorization": f"Token {token}"}, checks=CHECKS)
