"""The operators' diag page (staff only) and the per-trigger Ambassador include (own hosts only)."""

from __future__ import annotations

import json
import uuid

import pytest
import redis
from django.template.loader import render_to_string
from django.test import Client

from tests.cluster.test_diag_parse import ACME, GLOBEX, T0, T1, plain_http_diag
from triggers.gateway import diag
from triggers.models import Trigger

pytestmark = pytest.mark.django_db


@pytest.fixture
def store(settings):
    """store(state): write a diag state under a Redis key of this test's own."""
    settings.RELAY_DIAG_KEY = f"relayweb:diag:test:{uuid.uuid4().hex}"
    client = redis.Redis.from_url(settings.REDIS_URL)

    def put(state: dict) -> dict:
        client.set(settings.RELAY_DIAG_KEY, json.dumps(state))
        return state

    yield put
    client.delete(settings.RELAY_DIAG_KEY)
    client.close()


def good_state() -> dict:
    raw = plain_http_diag()
    raw["errors"] = [["hello.relay-acme.1", "Mapping: service is required"]]
    raw["notices"] = [{"level": "WARNING", "message": "-global-: something to know"}]
    return {"reachable": True, "checked_at": T0.isoformat(), "last_good_at": T0.isoformat(),
            "snapshot": diag.parse(raw)}


def unreachable_state() -> dict:
    return {**good_state(), "reachable": False, "checked_at": T1.isoformat(),
            "error": "cannot reach Ambassador diag at http://10.0.0.9:8877/ambassador/v0/diag/?json=true: "
                     "[Errno 111] Connection refused"}


def page(user) -> str:
    client = Client()
    client.force_login(user)
    response = client.get("/ops/diag/")
    assert response.status_code == 200
    return response.content.decode()


def test_staff_see_the_whole_diag(staff, store):
    store(good_state())
    html = page(staff)
    assert "Reachable" in html and "1.14.4" in html and "amb-1" in html
    assert diag.TLS_NOTE in html and "No TLSContexts are active" in html
    assert ACME in html and GLOBEX in html and "hello-00001.relay-acme:80" in html and "(100%)" in html
    assert "15.0 s" in html and "30.0 s" in html
    assert 'data-hcolor="green"' in html and 'data-hcolor="red"' in html and "25%" in html
    assert "hello.relay-acme.1" in html and "Mapping: service is required" in html
    assert "WARNING" in html and "something to know" in html
    assert "1 minute, 2 seconds" in html


def test_staff_see_unreachable_with_the_last_good_time_and_snapshot(staff, store):
    store(unreachable_state())
    html = page(staff)
    assert "Unreachable" in html and "Connection refused" in html
    assert "2025-01-02 03:04:05" in html and "last good snapshot" in html
    assert ACME in html


def test_empty_state_before_the_first_poll(staff, store, settings):
    settings.RELAY_DIAG_INTERVAL = 7
    html = page(staff)
    assert "Nothing polled yet" in html and "RELAY_DIAG_INTERVAL" in html and "7 s" in html


def test_the_diag_page_refuses_anonymous_users_and_non_staff(alice, charlie, tenant_a, store):
    store(good_state())
    response = Client().get("/ops/diag/")
    assert response.status_code == 302 and response["Location"].startswith("/login/")
    for user in (alice, charlie):
        client = Client()
        client.force_login(user)
        response = client.get("/ops/diag/")
        assert response.status_code == 404 and ACME.encode() not in response.content


def test_the_nav_links_the_diag_page_for_staff_only(staff, alice, tenant_a):
    client = Client()
    client.force_login(staff)
    assert b'href="/ops/diag/"' in client.get("/").content
    client.force_login(alice)
    assert b'href="/ops/diag/"' not in client.get("/").content


# ------------------------------------------------------------------------------- the trigger include
def trigger_in(tenant, name="hello") -> Trigger:
    ns = tenant.namespace
    return Trigger.objects.create(tenant=tenant, name=name, image="kubesim/echo",
                                  address_url=f"http://{name}.{ns}.svc.cluster.local",
                                  url=f"http://{name}.{ns}.example.com")


def include_for(trigger) -> str:
    return render_to_string("triggers/_diag.html", {"diag": diag.trigger_diag(trigger)})


def test_a_trigger_shows_its_own_route_and_cluster_health_only(tenant_a, tenant_b, store):
    assert tenant_a.namespace == "relay-acme" and tenant_b.namespace == "relay-globex"
    store(good_state())
    html = include_for(trigger_in(tenant_a))
    assert ACME in html and "hello-00001.relay-acme:80 (100%)" in html and "100% healthy" in html
    assert "9 / 1 / 0" in html and "15.0 s" in html
    assert "globex" not in html and "1.14.4" not in html and "Mapping: service is required" not in html
    html_b = include_for(trigger_in(tenant_b))
    assert GLOBEX in html_b and "25% healthy" in html_b and "acme" not in html_b


def test_a_trigger_without_a_route_says_so(tenant_a, store):
    store(good_state())
    html = include_for(trigger_in(tenant_a, "fresh"))
    assert "No route in Ambassador yet" in html and "<table" not in html


def test_a_trigger_shows_unreachable_with_the_last_good_time(tenant_a, store):
    store(unreachable_state())
    html = include_for(trigger_in(tenant_a))
    assert "unreachable" in html and "2025-01-02 03:04:05" in html and ACME in html
    assert "10.0.0.9" not in html and "Connection refused" not in html  # operators' details stay with them


def test_a_trigger_before_the_first_poll(tenant_a, store):
    assert diag.trigger_diag(trigger_in(tenant_a)) is None
    assert "has not been polled yet" in render_to_string("triggers/_diag.html", {"diag": None})
