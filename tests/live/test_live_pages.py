"""The live pages as the server renders them: badges and pod counts with their live hooks, pods table,
scale timeline with cold-start durations, last-hour charts (triggers/pages/charts.py), Ambassador block, access.

What changes afterwards in the browser is tested with Chromium in tests/e2e/test_browser_live.py.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from html import unescape

import pytest
from django.test import Client
from django.utils import timezone

from tests.pages.test_diag_views import good_state, store  # noqa: F401 (fixture)
from triggers.models import Delivery, Deployment, ScaleEvent, Trigger
from triggers.pages import charts

pytestmark = pytest.mark.django_db

DETAIL, LIST, OVERVIEW = "/t/acme/triggers/hello/", "/t/acme/triggers/", "/t/acme/"
NOW = datetime(2026, 1, 2, 12, 30, 20, tzinfo=UTC)


def signed_in(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def get(user, url: str) -> str:
    response = signed_in(user).get(url)
    assert response.status_code == 200
    return unescape(response.content.decode())


@pytest.fixture
def hello(tenant_a, alice):
    """A deployed trigger with one ready pod."""
    trigger = Trigger.objects.create(
        tenant=tenant_a, name="hello", image="kubesim/echo", spec_version=1, ready_status="True", generation=1,
        observed_generation=1, latest_ready_revision="hello-00001", latest_created_revision="hello-00001",
        address_url="http://hello.relay-acme.svc.cluster.local", url="http://hello.relay-acme.example.com",
        ready_pods=1, desired_replicas=1, actual_replicas=1, active_status="True",
        pods=[{"name": "hello-00001-deployment-abc", "phase": "Running", "ready": True, "restarts": 2,
               "reason": ""},
              {"name": "hello-00001-deployment-def", "phase": "Pending", "ready": False, "restarts": 0,
               "reason": "ImagePullBackOff"}])
    Deployment.objects.create(trigger=trigger, spec_version=1, status="ready", revision="hello-00001")
    return trigger


# ------------------------------------------------------------------------------- charts (pure)
def test_deliveries_per_minute_counts_the_last_hour_only():
    start = charts.window_start(NOW)
    assert start == datetime(2026, 1, 2, 11, 31, tzinfo=UTC)
    times = [NOW, NOW - timedelta(seconds=5), start, start - timedelta(seconds=1), NOW + timedelta(minutes=1)]
    counts = charts.per_minute(times, NOW)
    assert len(counts) == 60 and counts[-1] == 2 and counts[0] == 1 and sum(counts) == 3


def test_deliveries_stack_ok_under_failed_per_minute_on_a_round_axis():
    start = charts.window_start(NOW)
    rows = [(start, 10.0, False, "succeeded"), (start, 10.0, False, "failed"), (start, 10.0, False, "succeeded"),
            (start + timedelta(minutes=59), 10.0, False, "dead"), (start - timedelta(seconds=1), 1.0, False, "failed")]
    chart = charts.deliveries_chart(rows, start)
    assert (chart["total"], chart["failed"]) == (4, 2)
    first, last = chart["bars"]
    assert (first["minute"], first["ok"], first["failed"]) == ("11:31", 2, 1)
    assert (last["minute"], last["ok"], last["failed"]) == ("12:30", 0, 1)
    # top of the axis is 5 (3 rounded up): 2 ok fill 2/5 of the plot from the base, 1 failed sits on them
    assert first["ok_y"] == charts.BASE - 2 / 5 * charts.PLOT_H and first["ok_h"] == 2 / 5 * charts.PLOT_H
    assert first["failed_y"] == charts.BASE - 3 / 5 * charts.PLOT_H
    assert [t["label"] for t in chart["axes"]["y"]] == ["0", "2.5", "5"]
    assert [t["label"] for t in chart["axes"]["x"]] == ["11:31", "11:46", "12:01", "12:16", "12:30"]
    assert charts.deliveries_chart([], start)["bars"] == []


def test_latency_is_p50_and_p95_per_minute():
    start = charts.window_start(NOW)
    rows = [(start + timedelta(seconds=s), ms, False, "succeeded") for s, ms in ((1, 10.0), (2, 20.0), (3, 30.0),
                                                                                (4, 40.0), (5, 100.0))]
    rows += [(start + timedelta(minutes=1), None, False, "received")]  # no latency yet: not drawn
    chart = charts.latency_chart(rows, start)
    assert [p["ms"] for p in chart["p50"]["points"]] == [30]
    assert [p["ms"] for p in chart["p95"]["points"]] == [88]  # 40 + 0.8 × 60
    assert chart["axes"]["y"][-1]["label"] == "100 ms"


def test_cold_starts_and_pods_over_time():
    start = charts.window_start(NOW)
    rows = [(start + timedelta(minutes=10), 900.0, True, "succeeded"), (start + timedelta(minutes=10), 5.0, False,
                                                                          "succeeded")]
    cold = charts.cold_starts_chart(rows, start)
    assert cold["total"] == 1 and [(b["minute"], b["count"]) for b in cold["bars"]] == [("11:41", 1)]
    changes = [(start + timedelta(minutes=10), 0, 1, "activation"), (start + timedelta(minutes=12), 1, 0,
                                                                       "scaled to zero")]
    pods = charts.pods_chart(changes, 0, start, NOW)
    assert [(p["pods"], p["cause"]) for p in pods["points"]] == [(1, "activation"), (0, "scaled to zero")]
    assert pods["now"] == 0 and pods["line"].count(",") == 6  # start, two steps of two points, now
    assert charts.pods_chart([], 2, start, NOW)["line"].split()[0].endswith(f",{float(charts.TOP)}")  # 2 of 2: the top


# ------------------------------------------------------------------------------- pages
def test_trigger_list_and_overview_show_live_badges_and_pod_counts(alice, hello, tenant_a):
    Trigger.objects.create(tenant=tenant_a, name="idle", image="kubesim/echo")
    for url in (LIST, OVERVIEW):
        html = get(alice, url)
        assert 'data-live-tenant="acme"' in html and 'id="live-indicator"' in html and "js/live.js" in html
        assert re.search(rf'class="badge live-badge live-ready" data-trigger-badge="{hello.pk}"[^>]*>Ready \(1 pod\)<',
                         html), url
        assert re.search(r'live-not_deployed"[^>]*>Not deployed<', html), url
        assert f'<span data-trigger-pods="{hello.pk}">1</span>' in html


def test_scaled_to_zero_and_activating_badges(alice, hello):
    Trigger.objects.filter(pk=hello.pk).update(ready_pods=0, pods=[])
    assert "Scaled to zero" in get(alice, LIST)
    since = timezone.now().replace(hour=12, minute=0, second=1)
    Trigger.objects.filter(pk=hello.pk).update(active_status="Unknown", active_reason="Queued", active_since=since)
    html = get(alice, DETAIL)
    assert "Activating (cold start, since 12:00:01)" in html and "live-activating" in html
    assert "No pods: scaled to zero" in html


def test_trigger_page_shows_pods_table_and_deployment_progress(alice, hello):
    html = get(alice, DETAIL)
    pods = html.split('id="pods-body"')[1].split("</tbody>")[0]
    rows = re.findall(r"<tr data-pod=.*?</tr>", pods, re.S)
    assert len(rows) == 2
    assert all(x in rows[0] for x in ("hello-00001-deployment-abc", "Running", "yes", ">2<", "—"))
    assert all(x in rows[1] for x in ("Pending", ">no<", "ImagePullBackOff"))
    progress = html.split('id="deployment-progress"')[1].split("</section>")[0]
    assert 'data-status="ready"' in progress and "Ready" in progress and "revision hello-00001" in progress


def test_scale_timeline_lists_events_with_cold_start_durations(alice, hello):
    t = timezone.now()
    ScaleEvent.objects.create(trigger=hello, at=t - timedelta(minutes=3), from_pods=0, to_pods=1, cause="deploy")
    ScaleEvent.objects.create(trigger=hello, at=t - timedelta(minutes=2), from_pods=1, to_pods=0,
                              cause="scaled to zero")
    ScaleEvent.objects.create(trigger=hello, at=t - timedelta(minutes=1), from_pods=0, to_pods=1,
                              cause="activation", cold_start_ms=1834.4)
    timeline = get(alice, DETAIL).split('id="scale-timeline"')[1].split("</table>")[0]
    rows = re.findall(r"<tr data-cause=.*?</tr>", timeline, re.S)
    assert [re.search(r'data-cause="([^"]+)"', r).group(1) for r in rows] == ["activation", "scaled to zero", "deploy"]
    assert "0 → 1" in rows[0] and "1834 ms" in rows[0]
    assert "1 → 0" in rows[1] and "—" in rows[1]


def test_charts_are_drawn_from_the_last_hours_deliveries(alice, hello):
    now = timezone.now()
    start = charts.window_start(now)
    made = [(now, 40.0, False, "succeeded"), (now, 60.0, False, "failed"), (now, 2000.0, True, "succeeded"),
            (start + timedelta(seconds=30), 100.0, False, "succeeded"), (now - timedelta(hours=2), 10.0, False, "dead")]
    for at, ms, cold, state in made:
        Delivery.objects.create(trigger=hello, received_at=at, mode="sync", method="POST", state=state,
                                response_status=200, latency_ms=ms, cold_start=cold)
    ScaleEvent.objects.create(trigger=hello, from_pods=0, to_pods=1, cause="activation", cold_start_ms=900.0)
    html = get(alice, DETAIL)
    svg = {name: unescape(html.split(f'id="chart-{name}"')[1].split("</svg>")[0])
           for name in ("deliveries", "latency", "cold-starts", "pods")}
    minutes = re.findall(r"<title>(\d\d:\d\d): (\d+) ok, (\d+) failed</title>", svg["deliveries"])
    assert [(ok, failed) for _, ok, failed in minutes] == [("1", "0"), ("2", "1")]  # the 2-hour-old one is not drawn
    assert svg["deliveries"].count('<rect class="failed"') == 1 and svg["deliveries"].count('<rect class="ok"') == 2
    assert re.findall(r"<title>\d\d:\d\d: p95 (\d+) ms</title>", svg["latency"]) == ["100", "1806"]  # 60 + 0.9 × 1940
    assert re.findall(r"<title>\d\d:\d\d: (\d) cold starts?</title>", svg["cold-starts"]) == ["1"]
    assert re.search(r"<title>\d\d:\d\d:\d\d: 1 pod \(activation\)</title>", svg["pods"])
    for name, chart in svg.items():  # axes with labels on both
        assert '<text class="tick y"' in chart and '<text class="tick x"' in chart, name
    legends = html.split('id="charts"')[1].split("</section>")[0]
    assert all(key in legends for key in ('class="key ok"', 'class="key failed"', 'class="key p50"', 'class="key p95"'))
    assert "style=" not in legends and "<script" not in legends  # nothing the CSP (self only) would refuse


def test_recent_deliveries_newest_first_with_links(alice, hello):
    old = Delivery.objects.create(trigger=hello, received_at=timezone.now() - timedelta(minutes=1), mode="sync",
                                  method="POST", state="succeeded", response_status=200, latency_ms=12.0)
    new = Delivery.objects.create(trigger=hello, mode="sync", method="POST", path="/x", state="failed",
                                  response_status=500, latency_ms=900.0, cold_start=True)
    recent = get(alice, DETAIL).split('id="recent-deliveries"')[1].split("</table>")[0]
    assert recent.index(str(new.pk)) < recent.index(str(old.pk))
    assert f'href="/t/acme/triggers/hello/deliveries/{new.pk}/"' in recent and "cold" in recent


def test_trigger_page_includes_its_ambassador_route(alice, hello, store):  # noqa: F811
    store(good_state())
    html = get(alice, DETAIL)
    block = html.split('id="trigger-diag"')[1].split("</section>")[0]
    assert "hello.relay-acme.svc.cluster.local" in block and "100% healthy" in block
    assert "globex" not in block
    assert 'data-hosts="hello.relay-acme.example.com hello.relay-acme.svc.cluster.local"' in html


def test_viewer_sees_the_live_page_and_non_members_get_404(bob, charlie, hello, tenant_b):
    html = get(bob, DETAIL)
    assert 'id="live-trigger"' in html and 'id="pods-table"' in html
    for url in (DETAIL, LIST, OVERVIEW):
        assert signed_in(charlie).get(url).status_code == 404
        assert Client().get(url).status_code == 302  # anonymous: to the login page
    assert f'data-trigger-badge="{hello.pk}"' not in get(charlie, "/t/globex/triggers/")


# ------------------------------------------------------------------------------- the one payload
def test_the_status_event_carries_every_card_in_one_query(hello, django_assert_num_queries):
    from triggers.live import broadcast

    with django_assert_num_queries(1):  # the latest deployment, read once for badge, state, notice and card
        payload = broadcast.trigger_payload(hello)
    assert (payload["badge"], payload["badge_text"], payload["state"]) == ("ready", "Ready (1 pod)", "ready")
    assert payload["ready"] == "True" and payload["address_url"] == "http://hello.relay-acme.svc.cluster.local"
    assert payload["url"] == "http://hello.relay-acme.example.com" and payload["notice"] is None
    assert payload["latest_ready_revision"] == payload["latest_created_revision"] == "hello-00001"
    assert payload["last_deployment"]["status"] == "ready"


def test_the_notice_says_why_a_trigger_failed_or_which_revision_still_serves(alice, hello):
    from triggers.live import broadcast

    hello.ready_status, hello.ready_reason, hello.ready_message = "False", "RevisionFailed", "boom"
    hello.latest_created_revision = "hello-00002"
    assert broadcast.trigger_payload(hello)["notice"] == {
        "kind": "old_revision", "serving": "hello-00001", "newest": "hello-00002", "message": "boom"}
    hello.latest_ready_revision = ""
    Deployment.objects.create(trigger=hello, spec_version=2, status="failed", reason="ExitCode1",
                              message="Container failed with: crash")
    assert broadcast.trigger_payload(hello)["notice"] == {
        "kind": "failed", "text": "Failed: ExitCode1 — Container failed with: crash"}
    hello.save()
    html = get(alice, DETAIL)
    assert 'id="failure-notice">Failed: ExitCode1 — Container failed with: crash<' in html
    assert '<span data-knative="ready">False</span> <code data-knative="reason">RevisionFailed</code>' in html

