"""Shared fixtures: alice owns tenant A, bob is a viewer of A, charlie owns tenant B.

Every view and endpoint test can check cross-tenant access with these (the healthchecks pattern).
"""

from __future__ import annotations

import os

import pytest
from django.contrib.auth import get_user_model
from rest_framework.test import APIClient

from tenants.models import ApiToken, Membership, Role, Tenant

pytest_plugins = ["tests.cluster", "tests.flakes"]

PASSWORD = "correct horse battery staple"


def pytest_configure(config):
    if os.environ.get("CI"):
        missing = [name for name in ("DATABASE_URL", "REDIS_URL") if not os.environ.get(name)]
        if missing:
            raise pytest.UsageError(f"CI run without {', '.join(missing)}: the real services are required")


@pytest.fixture(autouse=True)
def _fresh_channel_layer():
    """Each test gets channel-layer instances of its own. channels_redis keeps the receive state of the process's
    sockets (a lock, a count of receivers, the loop they run in) in the instance; a socket of one test still
    receiving when its event loop ends left them to the next test's loop ("Lock … is bound to a different event
    loop", 4 of 108 shuffled runs). A process of ours runs one event loop, so only tests meet this."""
    from channels.layers import channel_layers

    channel_layers.backends.clear()
    yield
    channel_layers.backends.clear()


@pytest.fixture(autouse=True)
def _signin_throttle_cleared():
    """Every test starts with no failed sign-ins counted (the counters live in Redis, shared by all tests)."""
    import redis
    from django.conf import settings

    from tenants import throttle

    try:
        with redis.Redis.from_url(settings.REDIS_URL, socket_connect_timeout=2) as client:
            keys = list(client.scan_iter(match=throttle.PREFIX + "*", count=1000))
            if keys:
                client.delete(*keys)
    except redis.RedisError:
        pass  # a test that takes Redis down; nothing is counted then either


def _user(username: str, **extra):
    return get_user_model().objects.create_user(
        username=username, email=f"{username}@example.test", password=PASSWORD, **extra
    )


@pytest.fixture
def alice(db):
    return _user("alice")


@pytest.fixture
def bob(db):
    return _user("bob")


@pytest.fixture
def charlie(db):
    return _user("charlie")


@pytest.fixture
def staff(db):
    return _user("operator", is_staff=True, is_superuser=True)


@pytest.fixture
def tenant_a(alice, bob):
    tenant = Tenant.objects.create(slug="acme", name="Acme", state=Tenant.State.READY)
    Membership.objects.create(tenant=tenant, user=alice, role=Role.OWNER)
    Membership.objects.create(tenant=tenant, user=bob, role=Role.VIEWER)
    return tenant


@pytest.fixture
def tenant_b(charlie):
    tenant = Tenant.objects.create(slug="globex", name="Globex", state=Tenant.State.READY)
    Membership.objects.create(tenant=tenant, user=charlie, role=Role.OWNER)
    return tenant


def api_client_for(user=None) -> APIClient:
    client = APIClient()
    if user is not None:
        client.force_authenticate(user)
    return client


@pytest.fixture
def api():
    """api(user) -> an APIClient authenticated as user (None: anonymous)."""
    return api_client_for


@pytest.fixture
def token_for():
    def make(user, name="test"):
        return ApiToken.generate(user=user, name=name)[1]

    return make
