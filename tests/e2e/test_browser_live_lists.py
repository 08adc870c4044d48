"""The deliveries page and the tenant overview's rows follow the websocket in a real browser, without a reload.

Issue 14, items 1 and 3: the deliveries page did not load the live script, and the overview's new cells
(deliveries, error rate, latency, cold starts, last delivery, sparkline) changed only on a reload. On a delivery
event both pages re-read their fragment from their own URL (so with the deliveries page's filters), throttled.
The operators' all-tenants overview does the same from ws/ops/, and shows a trigger created meanwhile.
"""

from __future__ import annotations

import pytest
import requests
from playwright.sync_api import expect

from tests.e2e.test_browser_live import sign_in
from tests.e2e.test_browser_live_cards import in_thread
from triggers.live import broadcast
from triggers.models import Delivery, Trigger

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def send(relay: str, trigger, body: bytes) -> None:
    response = requests.post(f"{relay}/hooks/{trigger.token}", data=body,
                             headers={"Content-Type": "application/json"}, timeout=30)
    assert response.status_code == 200, response.text


def open_live(page, url: str) -> None:
    page.goto(url)
    page.evaluate("window.__notReloaded = true")
    expect(page.locator("#live-indicator")).to_have_attribute("data-state", "live")


def test_a_webhook_sent_while_the_deliveries_page_is_open_appears_without_reload(page, relay, live_trigger):
    trigger = live_trigger()
    sign_in(page, relay, "alice")
    open_live(page, f"{relay}/t/acme/triggers/hello/deliveries/")
    expect(page.locator("#no-deliveries")).to_be_visible()

    send(relay, trigger, b'{"n": 1}')
    rows = page.locator("#delivery-table tbody tr")
    expect(rows).to_have_count(1, timeout=15_000)
    first = Delivery.objects.get(trigger=trigger)
    expect(page.locator(f"#delivery-{first.pk}")).to_contain_text("Succeeded")
    send(relay, trigger, b'{"n": 2}')
    expect(rows).to_have_count(2, timeout=15_000)
    assert page.evaluate("window.__notReloaded") is True


def test_a_filtered_deliveries_page_shows_only_matching_new_deliveries(page, relay, live_trigger):
    trigger = live_trigger()
    sign_in(page, relay, "alice")
    open_live(page, f"{relay}/t/acme/triggers/hello/deliveries/?q=needle")
    expect(page.get_by_text("No deliveries match these filters.")).to_be_visible()

    send(relay, trigger, b'{"text": "haystack"}')
    send(relay, trigger, b'{"text": "needle"}')
    rows = page.locator("#delivery-table tbody tr")
    expect(rows).to_have_count(1, timeout=15_000)
    other, matching = Delivery.objects.filter(trigger=trigger).order_by("received_at")  # sent one after the other
    expect(page.locator(f"#delivery-{matching.pk}")).to_be_visible()
    page.wait_for_timeout(1500)  # a later refresh (≤ 1/s) must not bring the other one either
    expect(page.locator(f"#delivery-{other.pk}")).to_have_count(0)
    expect(rows).to_have_count(1)
    expect(page.locator("#f-q")).to_have_value("needle")
    assert page.evaluate("window.__notReloaded") is True


def test_a_delivery_updates_the_overview_row_without_reload(page, relay, live_trigger):
    trigger = live_trigger()
    sign_in(page, relay, "alice")
    open_live(page, f"{relay}/t/acme/")
    row = page.locator(f"#overview-{trigger.pk}")
    count = row.locator("td").nth(2)  # State, Pods, Deliveries
    expect(count).to_have_text("0")
    expect(row).to_contain_text("never")

    send(relay, trigger, b'{"n": 1}')
    expect(count).to_have_text("1", timeout=15_000)
    expect(row).to_contain_text("ago")
    expect(row.locator("td").nth(3)).to_have_text("0 %")
    expect(page.locator("#total-deliveries")).to_have_text("1")
    expect(row.locator(f'[data-trigger-badge="{trigger.pk}"]')).to_have_count(1)
    send(relay, trigger, b'{"n": 2}')
    expect(count).to_have_text("2", timeout=15_000)
    assert page.evaluate("window.__notReloaded") is True


def test_the_operators_overview_follows_every_tenant_without_reload(page, relay, live_trigger, staff, tenant_b):
    trigger = live_trigger()
    sign_in(page, relay, "operator")
    open_live(page, f"{relay}/ops/overview/")
    row = page.locator(f"#overview-{trigger.pk}")
    count = row.locator("td").nth(3)  # Tenant, State, Pods, Deliveries
    expect(row.locator("td").first).to_have_text("acme")
    expect(count).to_have_text("0")

    send(relay, trigger, b'{"n": 1}')
    expect(count).to_have_text("1", timeout=15_000)
    expect(page.locator("#total-deliveries")).to_have_text("1")

    # another tenant's trigger, created and then seen by the watcher: its row appears, with its live badge
    other = Trigger.objects.create(tenant=tenant_b, name="billing", image="kubesim/echo")
    in_thread(broadcast.trigger_status, other)
    expect(page.locator(f"#overview-{other.pk}")).to_contain_text("globex", timeout=15_000)
    other.ready_pods = 3
    in_thread(broadcast.trigger_pods, other)
    expect(page.locator(f'#overview-{other.pk} [data-trigger-pods="{other.pk}"]')).to_have_text("3")
    expect(count).to_have_text("1")  # the row re-read with the rest kept its figures
    assert page.evaluate("window.__notReloaded") is True
