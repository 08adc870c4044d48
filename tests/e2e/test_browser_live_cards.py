"""Every card of the open trigger page follows the websocket, in a real browser, without a reload.

Reported (issue 14): after *Save and deploy* the header badge stayed "Deploying" and the Knative status card
"Ready unknown / Address not known yet" while the Scale and Latest deployment cards had turned Ready. Here a
real deploy runs (the worker's deployment_apply, in a thread) with the cluster watcher against kubesim, and the
page, opened before the deploy, must show each stage in every card: deploy → ready → scaled to zero → cold
start; and a failed first deploy shows its reason in the header, the Knative card, the notice and the history.
"""

from __future__ import annotations

import re
import threading

import pytest
import requests
from playwright.sync_api import expect

from tests.e2e.test_browser_live import running_watcher, sign_in  # noqa: F401 (running_watcher: a fixture)
from tests.pages.test_diag_views import good_state, store, unreachable_state  # noqa: F401 (store: a fixture)
from triggers import services
from triggers.cluster import deploys
from triggers.live import broadcast
from triggers.models import Trigger

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def in_thread(fn, *args) -> None:
    """Run as the worker does: from another thread than Playwright's event loop (broadcasts use async_to_sync)."""
    failure: list[BaseException] = []

    def run():
        try:
            fn(*args)
        except BaseException as e:  # noqa: BLE001 - re-raised in the test's thread
            failure.append(e)

    thread = threading.Thread(target=run)
    thread.start()
    thread.join(30)
    assert not thread.is_alive() and not failure, failure


def deploy(trigger: Trigger, user) -> None:
    deployment = services.trigger_deploy(trigger=trigger, user=user)
    in_thread(deploys.deployment_apply, deployment.pk)


def open_page(page, relay: str) -> None:
    sign_in(page, relay, "alice")
    page.goto(f"{relay}/t/acme/triggers/hello/")
    page.evaluate("window.__notReloaded = true")
    expect(page.locator("#live-indicator")).to_have_attribute("data-state", "live")


def test_every_card_follows_deploy_ready_scale_to_zero_and_cold_start(
        page, relay, live_trigger, running_watcher, alice, tenant_a):  # noqa: F811
    # live_trigger: the tenant's namespace exists in kubesim (and is removed afterwards); the trigger is new.
    trigger = Trigger.objects.create(tenant=tenant_a, name="hello", image="kubesim/slow-start:800ms")
    open_page(page, relay)
    header = page.locator("#header-badge [data-trigger-badge]")
    knative = page.locator("#knative-status")
    expect(header).to_have_text("Not deployed")
    expect(knative.locator('[data-knative="ready"]')).to_have_text("unknown")
    expect(knative).to_contain_text("not known yet")

    deploy(trigger, alice)
    # Ready: the header, the Knative card (condition, address, revisions), latest deployment and history.
    expect(header).to_have_text("Ready (1 pod)", timeout=20_000)
    expect(header).to_have_class(re.compile(r"\blive-ready\b"))
    expect(knative.locator('[data-knative="ready"]')).to_have_text("True")
    expect(knative.locator('[data-knative="address_url"]')).to_have_text("http://hello.relay-acme.svc.cluster.local")
    expect(knative.locator('[data-knative-empty="address_url"]')).to_be_hidden()
    expect(knative.locator('[data-knative="latest_ready_revision"]')).to_have_text("hello-00001")
    expect(knative.locator('[data-knative="latest_created_revision"]')).to_have_text("hello-00001")
    expect(knative.locator('[data-knative="observed_at"]')).to_have_text(re.compile(r"^\d\d:\d\d:\d\d$"))
    expect(page.locator("#deployment-status")).to_have_text("Ready")
    expect(page.locator("#deployment-table tbody tr")).to_have_count(1)
    expect(page.locator("#deployment-table tbody tr").first).to_contain_text("hello-00001")
    expect(page.locator('#scale-timeline tr[data-cause="deploy"]')).to_have_count(1)

    # Scaled to zero: header, Scale card, pods, timeline.
    expect(header).to_have_text("Scaled to zero", timeout=20_000)
    expect(page.locator("#live-status [data-trigger-badge]")).to_have_text("Scaled to zero")
    expect(page.locator("#pods-body tr[data-pod]")).to_have_count(0)
    expect(page.locator("#pods-body")).to_contain_text("scaled to zero")
    expect(page.locator('#scale-timeline tr[data-cause="scaled to zero"]')).to_have_count(1)
    expect(knative.locator('[data-knative="ready"]')).to_have_text("True")

    # A cold start: the header goes through Activating back to Ready; the delivery, timeline and charts follow.
    response = requests.post(f"{relay}/hooks/{trigger.token}", data=b'{"hello": "world"}',
                             headers={"Content-Type": "application/json"}, timeout=30)
    assert response.status_code == 200
    activation = page.locator('#scale-timeline tr[data-cause="activation"]')
    expect(activation).to_have_count(1, timeout=20_000)
    expect(activation.locator("td.cold-start")).to_have_text(re.compile(r"^\d+ ms$"))
    delivery = page.locator("#recent-deliveries tbody tr[data-delivery]")
    expect(delivery).to_have_count(1)
    expect(delivery.first).to_contain_text("cold")
    expect(page.locator("#chart-cold-starts rect.cold")).to_have_count(1)
    expect(page.locator("#chart-deliveries g.minute title")).to_have_text(re.compile(r"^\d\d:\d\d: 1 ok, 0 failed$"))
    expect(page.locator("#chart-latency .p50 circle title")).to_have_text(re.compile(r"^\d\d:\d\d: p50 \d+ ms$"))
    # the pods chart has the deploy, the scale to zero and the activation (its change points, with causes)
    pods = page.locator("#chart-pods circle title")
    expect(pods.filter(has_text=re.compile(r"^\d\d:\d\d:\d\d: 1 pod \(activation\)$"))).to_have_count(1)
    expect(pods.filter(has_text="1 pod (deploy)")).to_have_count(1)
    expect(pods.filter(has_text="0 pods (scaled to zero)").first).to_be_attached()
    expect(header).to_have_text(re.compile(r"^(Ready \(1 pod\)|Scaled to zero)$"))
    assert page.evaluate("window.__notReloaded") is True


def test_a_failed_deploy_shows_its_reason_in_every_card(page, relay, live_trigger, running_watcher, alice,  # noqa: F811
                                                        tenant_a):
    trigger = Trigger.objects.create(tenant=tenant_a, name="hello", image="kubesim/crash")
    open_page(page, relay)
    header = page.locator("#header-badge [data-trigger-badge]")
    expect(header).to_have_text("Not deployed")
    expect(page.locator("#trigger-notice .notice")).to_have_count(0)

    deploy(trigger, alice)
    expect(header).to_have_text("Failed: ExitCode1", timeout=20_000)
    expect(header).to_have_class(re.compile(r"\blive-failed\b"))
    knative = page.locator("#knative-status")
    expect(knative.locator('[data-knative="ready"]')).to_have_text("False")
    expect(knative.locator('[data-knative="reason"]')).to_be_visible()
    expect(knative.locator('[data-knative-row="message"]')).to_be_visible()
    expect(knative.locator('[data-knative="latest_created_revision"]')).to_have_text("hello-00001")
    expect(knative.locator('[data-knative="latest_ready_revision"]')).to_have_text("—")
    notice = page.locator("#trigger-notice #failure-notice")
    expect(notice).to_contain_text("Failed: ExitCode1 — ")
    expect(notice).to_contain_text("failed with message")
    expect(page.locator("#deployment-status")).to_have_text("Failed")
    expect(page.locator("#deployment-detail")).to_contain_text("ExitCode1")
    expect(page.locator("#deployment-table tbody tr").first).to_contain_text("ExitCode1")
    assert page.evaluate("window.__notReloaded") is True


def test_the_operators_diag_page_follows_each_poll(page, relay, staff, store):  # noqa: F811
    sign_in(page, relay, "operator")
    page.goto(f"{relay}/ops/diag/")
    page.evaluate("window.__notReloaded = true")
    expect(page.locator("#live-indicator")).to_have_attribute("data-state", "live")
    expect(page.locator("#diag-empty")).to_be_visible()

    state = store(good_state())
    in_thread(broadcast.diag, None, state)  # what the watcher's poll_diag sends to operators
    expect(page.locator("#diag-status")).to_contain_text("Reachable")
    expect(page.locator("#diag-routes tbody tr").first).to_be_visible()
    expect(page.locator("#diag-empty")).to_have_count(0)

    state = store(unreachable_state())
    in_thread(broadcast.diag, None, state)
    expect(page.locator("#diag-status")).to_contain_text("Unreachable")
    assert page.evaluate("window.__notReloaded") is True


def test_the_revisions_panel_follows_a_deploy_and_a_traffic_change(
        page, relay, live_trigger, running_watcher, alice, tenant_a):  # noqa: F811
    """Issue 16 item 2: the Route's result is shown live. The Revisions panel is re-read when a deployment of
    the trigger settles: a new revision appears, then a split's shares, without a reload."""
    trigger = live_trigger(min_scale=1)
    open_page(page, relay)
    panel = page.locator("#revisions")
    expect(panel.locator("tbody tr")).to_have_count(1)

    trigger.env = [{"name": "V", "value": "2"}]
    trigger.spec_version += 1
    trigger.save()
    deploy(trigger, alice)
    expect(panel.locator("tbody tr")).to_have_count(2, timeout=20_000)
    expect(panel).to_contain_text("hello-00002")

    split = [{"revision": "hello-00001", "percent": 30}, {"latest": True, "percent": 70}]
    deployment = services.trigger_set_traffic(trigger=trigger, targets=split, user=alice)
    in_thread(deploys.deployment_apply, deployment.pk)
    expect(panel.locator("tbody tr", has_text="hello-00001").locator("td.traffic-percent")).to_have_text(
        "30 %", timeout=20_000)
    expect(panel.locator("tbody tr", has_text="hello-00002").locator("td.traffic-percent")).to_have_text("70 %")
    assert page.evaluate("window.__notReloaded") is True
