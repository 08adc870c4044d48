"""API parity: a trigger's live state, its scale events, and the stats of a trigger and of a tenant."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from triggers.deliveries import stats
from triggers.models import Delivery, Deployment, ScaleEvent, Trigger

pytestmark = pytest.mark.django_db

BASE = "/api/v1/tenants/acme"


@pytest.fixture
def hello(tenant_a):
    trigger = Trigger.objects.create(
        tenant=tenant_a, name="hello", image="kubesim/echo", created_at=timezone.now() - timedelta(days=30),
        ready_status="True", observed_generation=1, generation=1, latest_ready_revision="hello-00001",
        address_url="http://hello.relay-acme.svc.cluster.local", ready_pods=2, desired_replicas=2,
        actual_replicas=2, active_status="True",
        pods=[{"name": "hello-1", "phase": "Running", "ready": True, "restarts": 0, "reason": ""},
              {"name": "hello-2", "phase": "Pending", "ready": False, "restarts": 3, "reason": "CrashLoopBackOff"}])
    Deployment.objects.create(trigger=trigger, spec_version=1, status="ready")
    return trigger


def deliver(trigger, *, ago: timedelta, latency=None, state="succeeded", cold=False):
    return Delivery.objects.create(trigger=trigger, mode="sync", method="POST", state=state, latency_ms=latency,
                                   cold_start=cold, received_at=timezone.now() - ago)


def test_trigger_detail_has_the_live_state(api, bob, hello):
    live = api(bob).get(f"{BASE}/triggers/hello/").json()["live"]
    assert live == {
        "badge": "ready", "text": "Ready (2 pods)", "ready_pods": 2, "desired": 2, "actual": 2, "active": "True",
        "active_reason": "", "active_since": None,
        "pods": [{"name": "hello-1", "phase": "Running", "ready": True, "restarts": 0, "reason": ""},
                 {"name": "hello-2", "phase": "Pending", "ready": False, "restarts": 3, "reason": "CrashLoopBackOff"}],
    }


def test_trigger_detail_says_scaled_to_zero_and_activating(api, alice, hello):
    Trigger.objects.filter(pk=hello.pk).update(ready_pods=0, pods=[], active_status="False", active_reason="NoTraffic")
    live = api(alice).get(f"{BASE}/triggers/hello/").json()["live"]
    assert (live["badge"], live["text"], live["pods"]) == ("scaled_to_zero", "Scaled to zero", [])
    since = timezone.now()
    Trigger.objects.filter(pk=hello.pk).update(active_status="Unknown", active_reason="Queued", active_since=since)
    live = api(alice).get(f"{BASE}/triggers/hello/").json()["live"]
    assert live["badge"] == "activating" and live["active_reason"] == "Queued" and live["active_since"]


def test_scale_events_are_listed_newest_first(api, bob, hello):
    now = timezone.now()
    ScaleEvent.objects.create(trigger=hello, at=now - timedelta(minutes=10), from_pods=0, to_pods=1,
                              cause="activation", cold_start_ms=1234.5)
    ScaleEvent.objects.create(trigger=hello, at=now - timedelta(minutes=1), from_pods=1, to_pods=0,
                              cause="scaled to zero")
    body = api(bob).get(f"{BASE}/triggers/hello/scale-events/").json()
    assert body["count"] == 2
    assert [(e["from"], e["to"], e["cause"], e["cold_start_ms"]) for e in body["results"]] == [
        (1, 0, "scaled to zero", None), (0, 1, "activation", 1234.5)]
    assert set(body["results"][0]) == {"from", "to", "cause", "at", "cold_start_ms"}


def test_trigger_stats_on_known_data(api, bob, hello):
    for ms in (10, 20, 30, 40, 100):
        deliver(hello, ago=timedelta(minutes=5), latency=ms)
    deliver(hello, ago=timedelta(minutes=6), state="failed", latency=None)
    deliver(hello, ago=timedelta(minutes=7), state="dead", latency=None)
    deliver(hello, ago=timedelta(hours=3), latency=5000)  # outside 1h, inside 24h
    now = timezone.now()
    # 1 pod until 30 minutes ago, then 0 until 10 minutes ago, then 2 (an activation of 3 s), 1 h window
    ScaleEvent.objects.create(trigger=hello, at=now - timedelta(hours=2), from_pods=0, to_pods=1, cause="deploy")
    ScaleEvent.objects.create(trigger=hello, at=now - timedelta(minutes=30), from_pods=1, to_pods=0,
                              cause="scaled to zero")
    ScaleEvent.objects.create(trigger=hello, at=now - timedelta(minutes=10), from_pods=0, to_pods=2,
                              cause="activation", cold_start_ms=3000)
    body = api(bob).get(f"{BASE}/triggers/hello/stats/?window=1h").json()
    assert body["window"] == "1h" and body["trigger"] == "hello"
    assert (body["deliveries"], body["failed"]) == (7, 2)
    assert (body["latency_p50_ms"], body["latency_p95_ms"]) == (30.0, 88.0)  # percentile_cont's interpolation
    assert (body["cold_starts"], body["cold_start_p50_ms"]) == (1, 3000.0)
    assert body["always_on_pod_seconds"] == pytest.approx(3600, abs=5)
    assert body["pod_seconds"] == pytest.approx(30 * 60 + 2 * 10 * 60, abs=10)
    day = api(bob).get(f"{BASE}/triggers/hello/stats/?window=24h").json()
    assert day["deliveries"] == 8 and day["latency_p95_ms"] == 100 + 0.75 * 4900


def test_pod_seconds_integrate_the_scale_events_exactly(hello):
    now = timezone.now()
    ScaleEvent.objects.create(trigger=hello, at=now - timedelta(minutes=50), from_pods=2, to_pods=0, cause="x")
    ScaleEvent.objects.create(trigger=hello, at=now - timedelta(minutes=20), from_pods=0, to_pods=3, cause="y")
    values = stats.triggers_stats([hello], "1h", now=now)[hello.pk]
    # no event before the window: it starts with the first event's `from` (2 pods for 10 minutes)
    assert values.pod_seconds == 2 * 600 + 0 + 3 * 1200
    assert values.always_on_pod_seconds == 3600
    assert values.saved_percent == 0  # more than one pod's worth: nothing saved, never negative
    Trigger.objects.filter(pk=hello.pk).update(min_scale=2)
    hello.refresh_from_db()
    assert stats.triggers_stats([hello], "1h", now=now)[hello.pk].always_on_pod_seconds == 7200


def test_savings_count_only_from_the_trigger_creation(tenant_a):
    now = timezone.now()
    young = Trigger.objects.create(tenant=tenant_a, name="young", image="x/y", created_at=now - timedelta(minutes=30),
                                   ready_pods=0)
    values = stats.triggers_stats([young], "24h", now=now)[young.pk]
    assert (values.pod_seconds, values.always_on_pod_seconds, values.saved_percent) == (0, 1800, 100)


def test_bad_window_is_a_400_naming_the_field(api, alice, hello):
    for url in (f"{BASE}/triggers/hello/stats/?window=2h", f"{BASE}/stats/?window=%00"):
        response = api(alice).get(url)
        assert response.status_code == 400
        assert "window" in response.json()


def test_tenant_stats_have_totals_and_one_row_per_trigger(api, bob, hello, tenant_a):
    other = Trigger.objects.create(tenant=tenant_a, name="other", image="x/y",
                                   created_at=timezone.now() - timedelta(days=30))
    for ms in (10, 20, 30):
        deliver(hello, ago=timedelta(minutes=1), latency=ms)
    deliver(other, ago=timedelta(minutes=1), latency=40, state="failed")
    body = api(bob).get(f"{BASE}/stats/?window=1h").json()
    assert [row["trigger"] for row in body["triggers"]] == ["hello", "other"]
    assert [row["deliveries"] for row in body["triggers"]] == [3, 1]
    totals = body["totals"]
    assert (totals["deliveries"], totals["failed"], totals["latency_p50_ms"]) == (4, 1, 25.0)
    assert totals["always_on_pod_seconds"] == pytest.approx(2 * 3600, abs=5)


def test_tenant_stats_queries_do_not_grow_with_triggers_or_deliveries(api, alice, tenant_a,
                                                                      django_assert_max_num_queries):
    def add(i):
        trigger = Trigger.objects.create(tenant=tenant_a, name=f"t{i}", image="x/y")
        for j in range(3):
            deliver(trigger, ago=timedelta(minutes=j), latency=10 * j)
        ScaleEvent.objects.create(trigger=trigger, from_pods=0, to_pods=1, cause="activation", cold_start_ms=5)

    add(0)
    client = api(alice)
    with CaptureQueriesContext(connection) as few:
        assert client.get(f"{BASE}/stats/?window=7d").status_code == 200
    for i in range(1, 12):
        add(i)
    with django_assert_max_num_queries(len(few.captured_queries)):
        body = client.get(f"{BASE}/stats/?window=7d").json()
    assert body["totals"]["deliveries"] == 36 and body["totals"]["cold_starts"] == 12


def test_percentile_matches_percentile_cont():
    assert stats.percentile([], 0.5) is None
    assert stats.percentile([7], 0.95) == 7
    assert stats.percentile([1, 2, 3, 4], 0.5) == 2.5
    assert stats.percentile([100, 10, 40, 20, 30], 0.95) == pytest.approx(88.0)
