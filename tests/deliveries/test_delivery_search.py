"""Delivery search: state, status code, time range, verification, cold/warm and text in headers or body, in
the API and the UI (one FilterSet); bad values are a 400 naming the field, never a 500."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone

from triggers.models import Delivery, Trigger

pytestmark = pytest.mark.django_db

URL = "/api/v1/tenants/acme/triggers/hello/deliveries/"
PAGE = "/t/acme/triggers/hello/deliveries/"


@pytest.fixture
def rows(tenant_a):
    trigger = Trigger.objects.create(tenant=tenant_a, name="hello", image="kubesim/echo")
    now = timezone.now()

    def make(name, *, hours=1, **fields):
        return name, Delivery.objects.create(trigger=trigger, mode="sync", method="POST",
                                             received_at=now - timedelta(hours=hours), **fields)

    return dict([
        make("push", headers=[["X-GitHub-Event", "push"]], body=b'{"ref": "main"}', state="succeeded",
             response_status=200, verification="passed"),
        make("bad-sig", headers=[["X-GitHub-Event", "ping"]], body=b"{}", state="rejected", response_status=401,
             verification="failed"),
        make("cold", body=b"order 42 paid", state="failed", response_status=502, cold_start=True, hours=30),
        make("old", body=b"order 42 paid", state="succeeded", response_status=200, hours=24 * 10),
        make("binary", body=b"\x00\xffMAGIC\x01", state="dead", response_status=500, hours=2),
    ])


def names(rows, body) -> set[str]:
    ids = {str(d.pk): name for name, d in rows.items()}
    return {ids[r["id"]] for r in body["results"]}


@pytest.mark.parametrize("query, expected", [
    ("state=dead", {"binary"}),
    ("response_status=502", {"cold"}),
    ("verification=failed", {"bad-sig"}),
    ("verification=passed&cold_start=false", {"push"}),
    ("cold_start=true", {"cold"}),
    ("received_after={after}", {"push", "bad-sig", "binary"}),
    ("received_before={before}", {"cold", "old"}),
    ("q=github-event", {"push", "bad-sig"}),  # header names and values, any case
    ("q=push", {"push"}),
    ("q=order 42", {"cold"}),  # the body; "old" is outside the last 7 days searched by default
    ("q=order 42&received_after={long_ago}&received_before={week_ago}", {"old"}),  # 11 to 5 days ago
    ("q=MAGIC", {"binary"}),  # bytes that are not UTF-8 around the text
    ("q=nowhere", set()),
])
def test_api_filters(api, bob, rows, query, expected):
    now = timezone.now()
    ago = {"after": timedelta(hours=3), "before": timedelta(hours=24), "long_ago": timedelta(days=11),
           "week_ago": timedelta(days=5)}
    query = query.format(**{name: (now - span).isoformat() for name, span in ago.items()})
    response = api(bob).get(URL, {k: v for k, v in (p.split("=", 1) for p in query.split("&"))})
    assert response.status_code == 200, response.json()
    assert names(rows, response.json()) == expected


@pytest.mark.parametrize("query, field", [
    ({"state": "exploded"}, "state"),
    ({"response_status": "abc"}, "response_status"),
    ({"verification": "maybe"}, "verification"),
    ({"received_after": "yesterday"}, "received_after"),
    ({"received_before": "2024-13-45T99:00"}, "received_before"),
    ({"q": "a\x00b"}, "q"),
    ({"q": "x" * 201}, "q"),
    ({"q": "x", "received_after": "2020-01-01T00:00:00Z", "received_before": "2020-02-01T00:00:00Z"}, "q"),
    ({"received_after": "2020-02-01T00:00:00Z", "received_before": "2020-01-01T00:00:00Z"}, "received_before"),
])
def test_bad_filter_values_are_a_400_naming_the_field(api, alice, rows, query, field):
    response = api(alice).get(URL, query)
    assert response.status_code == 400
    assert field in response.json()


def test_ui_filters_and_shows_errors(bob, rows):
    client = Client()
    client.force_login(bob)
    html = client.get(PAGE, {"q": "push", "verification": "passed"}).content.decode()
    assert f'id="delivery-{rows["push"].pk}"' in html and f'id="delivery-{rows["bad-sig"].pk}"' not in html
    assert 'name="q"' in html and 'id="f-verification"' in html and 'name="received_after"' in html
    response = client.get(PAGE, {"received_after": "yesterday", "q": "a\x00b"})
    assert response.status_code == 200
    html = response.content.decode()
    assert 'role="alert"' in html and "received_after" in html and "q:" in html
