"""A removed member's open page, in a real browser: it stops updating, says why and does not reconnect."""

from __future__ import annotations

import threading

import pytest
from playwright.sync_api import expect

from tests.e2e.test_browser_live import sign_in
from triggers.live import broadcast
from triggers.models import Deployment, Trigger

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def send_status(trigger) -> None:  # from another thread than Playwright's loop, as the watcher does
    sender = threading.Thread(target=broadcast.trigger_status, args=(trigger,))
    sender.start()
    sender.join(10)


def test_a_removed_member_s_open_page_stops_updating_and_says_why(browser, page, relay, alice, bob, tenant_a):
    trigger = Trigger.objects.create(tenant=tenant_a, name="hello", image="kubesim/echo", ready_status="True",
                                     generation=1, observed_generation=1, latest_ready_revision="hello-00001",
                                     ready_pods=2)
    Deployment.objects.create(trigger=trigger, spec_version=1, status="ready")
    sockets = []
    page.on("websocket", lambda ws: sockets.append(ws.url))
    sign_in(page, relay, "bob")
    page.goto(f"{relay}/t/acme/")
    badge = page.locator(f'#tenant-triggers [data-trigger-badge="{trigger.pk}"]')
    expect(page.locator("#live-indicator")).to_have_attribute("data-state", "live")
    trigger.ready_pods = 3
    send_status(trigger)
    expect(badge).to_have_text("Ready (3 pods)")  # bob's page is live

    owner = browser.new_context().new_page()
    owner.set_default_timeout(10_000)
    owner.on("dialog", lambda dialog: dialog.accept())
    sign_in(owner, relay, "alice")
    owner.goto(f"{relay}/t/acme/members/")
    owner.locator("tr", has_text="bob").get_by_role("button", name="Remove").click()
    expect(owner.locator("tr", has_text="bob")).to_have_count(0)

    indicator = page.locator("#live-indicator")
    expect(indicator).to_have_attribute("data-state", "revoked", timeout=5_000)
    expect(indicator).to_have_text("Not live: You are no longer a member of Acme.")
    trigger.ready_pods = 0
    send_status(trigger)
    page.wait_for_timeout(3000)  # longer than the first reconnect delays (0.5 s, 1 s)
    expect(badge).to_have_text("Ready (3 pods)")  # no longer updated
    assert len(sockets) == 1, sockets  # and never reconnected
    assert page.evaluate("window.relayLive.connects") == 1
    owner.context.close()
