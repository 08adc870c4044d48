"""The tenant overview as a dashboard, and the operators' overview across tenants."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from triggers.models import Delivery, Deployment, ScaleEvent, Trigger

pytestmark = pytest.mark.django_db


def signed_in(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def deliver(trigger, *, minutes=1, latency=None, state="succeeded", status=200):
    return Delivery.objects.create(trigger=trigger, mode="sync", method="POST", state=state, latency_ms=latency,
                                   response_status=status, received_at=timezone.now() - timedelta(minutes=minutes))


@pytest.fixture
def hello(tenant_a):
    trigger = Trigger.objects.create(
        tenant=tenant_a, name="hello", image="kubesim/echo", created_at=timezone.now() - timedelta(days=2),
        ready_status="True", observed_generation=1, generation=1, latest_ready_revision="hello-00001",
        address_url="http://hello.relay-acme.svc.cluster.local", ready_pods=1)
    Deployment.objects.create(trigger=trigger, spec_version=1, status="ready")
    return trigger


def row(html: str, trigger: Trigger) -> str:
    match = re.search(rf'<tr data-trigger-id="{trigger.pk}".*?</tr>', html, re.S)
    assert match, html
    return match.group(0)


def test_overview_row_shows_deliveries_errors_latency_cold_starts_and_savings(bob, hello):
    for ms in (10, 20, 30, 40):
        deliver(hello, latency=ms)
    failed = deliver(hello, state="failed", status=500, latency=100)
    now = timezone.now()
    ScaleEvent.objects.create(trigger=hello, at=now - timedelta(hours=30), from_pods=0, to_pods=1, cause="deploy")
    ScaleEvent.objects.create(trigger=hello, at=now - timedelta(hours=18), from_pods=1, to_pods=0,
                              cause="scaled to zero")
    ScaleEvent.objects.create(trigger=hello, at=now - timedelta(minutes=30), from_pods=0, to_pods=1,
                              cause="activation", cold_start_ms=2500)
    html = signed_in(bob).get("/t/acme/").content.decode()  # a viewer sees the dashboard
    cells = row(html, hello)
    assert f'data-trigger-badge="{hello.pk}"' in cells and f'data-trigger-pods="{hello.pk}">1<' in cells
    assert ">5</a>" in cells and "20.0 %" in cells  # 5 deliveries, 1 failed
    assert "30 / 88 ms" in cells  # p50 of 10, 20, 30, 40, 100 is 30; p95 is 40 + 0.8 × 60
    assert "1 <small" in cells and "median 2500 ms" in cells
    assert "ago</time>" in cells and '<svg class="sparkline"' in cells and "0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 5" in cells
    # 24 h window: 1 pod for the first 6 h and the last 30 minutes: 6.5 of 24 h -> saved 73 %
    assert "saved 73 %" in cells
    assert re.search(r'id="total-deliveries">5<', html) and "saved 73 % of pod time" in html
    assert f"/t/acme/triggers/hello/deliveries/{failed.pk}/" in html


def test_overview_lists_failed_deployments_and_an_empty_failure_state(alice, hello):
    html = signed_in(alice).get("/t/acme/").content.decode()
    assert 'id="no-failures"' in html
    Deployment.objects.create(trigger=hello, spec_version=2, status="failed", reason="ContainerMissing")
    html = signed_in(alice).get("/t/acme/").content.decode()
    assert "hello v2: Failed (ContainerMissing)" in html and 'id="failed-deployments"' in html


def test_overview_of_a_tenant_without_triggers_says_what_will_show(alice, tenant_a):
    html = signed_in(alice).get("/t/acme/").content.decode()
    assert 'id="no-triggers"' in html and "cold starts" in html


def test_overview_queries_do_not_grow_with_deliveries_and_triggers(alice, tenant_a, django_assert_max_num_queries):
    def add(i):
        trigger = Trigger.objects.create(tenant=tenant_a, name=f"t{i}", image="x/y")
        Deployment.objects.create(trigger=trigger, spec_version=1, status="failed")
        for j in range(3):
            deliver(trigger, minutes=j, latency=j, state="dead" if j else "succeeded")
        ScaleEvent.objects.create(trigger=trigger, from_pods=0, to_pods=1, cause="activation", cold_start_ms=9)

    add(0)
    client = signed_in(alice)
    with CaptureQueriesContext(connection) as few:
        client.get("/t/acme/")
    for i in range(1, 10):
        add(i)
    with django_assert_max_num_queries(len(few.captured_queries)):
        assert client.get("/t/acme/").status_code == 200


def test_operators_see_every_tenant_on_one_overview(staff, hello, tenant_b):
    other = Trigger.objects.create(tenant=tenant_b, name="billing", image="x/y")
    deliver(other, state="dead", status=503)
    html = signed_in(staff).get("/ops/overview/").content.decode()
    assert 'href="/t/acme/triggers/hello/"' in html and 'href="/t/globex/triggers/billing/"' in html
    assert "globex/billing: POST dead (503)" in html
    assert 'href="/ops/overview/"' in signed_in(staff).get("/ops/diag/").content.decode()


def test_trigger_page_shows_the_pod_time_saved_like_the_overview(bob, hello):
    now = timezone.now()
    ScaleEvent.objects.create(trigger=hello, at=now - timedelta(hours=30), from_pods=0, to_pods=1, cause="deploy")
    ScaleEvent.objects.create(trigger=hello, at=now - timedelta(hours=18), from_pods=1, to_pods=0,
                              cause="scaled to zero")
    ScaleEvent.objects.create(trigger=hello, at=now - timedelta(minutes=30), from_pods=0, to_pods=1,
                              cause="activation", cold_start_ms=2500)
    response = signed_in(bob).get("/t/acme/triggers/hello/")
    assert response.context["pod_time"].saved_percent == 73  # the overview's number: 6.5 of 24 h with one pod
    savings = re.search(r'<p id="pod-savings">.*?</p>', response.content.decode(), re.S)
    assert savings and "saved 73 % of pod time" in savings.group(0), response.content.decode()
    assert "saved 73 %" in row(signed_in(bob).get("/t/acme/").content.decode(), hello)


def test_trigger_page_without_pod_time_yet_shows_a_dash(bob, tenant_a):
    Trigger.objects.create(tenant=tenant_a, name="fresh", image="x/y", created_at=timezone.now() + timedelta(seconds=5))
    html = signed_in(bob).get("/t/acme/triggers/fresh/").content.decode()
    assert re.search(r'<p id="pod-savings">Pod time, last 24 h: <span class="muted">—</span></p>', html), html
