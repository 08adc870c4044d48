"""The live trigger page in a real browser (headless Chromium), served by uvicorn so websockets work.

A cluster watcher runs in a thread against kubesim; a webhook sent from the test wakes the trigger
from zero, and the open page follows it without reloading: Scaled to zero → Activating → Ready (1 pod)
→ Scaled to zero, the delivery at the top of the recent list, the cold start in the timeline.
Another tenant's browser sees none of it.
"""

from __future__ import annotations

import re
import threading

import pytest
import requests
from playwright.sync_api import expect

from tests.cluster import wait_for
from tests.conftest import PASSWORD
from tests.pages.test_diag_views import good_state, store  # noqa: F401 (store: a fixture)
from triggers.cluster.watcher import Watcher
from triggers.models import Deployment, ScaleEvent

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

# Records every text the trigger's badge shows, in order (set before the page's own scripts run).
RECORD_BADGES = """
window.__badges = [];
document.addEventListener("DOMContentLoaded", () => {
  const badge = document.querySelector("#live-status [data-trigger-badge]");
  if (!badge) return;
  const record = () => {
    const text = badge.textContent.trim();
    if (window.__badges[window.__badges.length - 1] !== text) window.__badges.push(text);
  };
  record();
  new MutationObserver(record).observe(badge, {childList: true, characterData: true, subtree: true});
});
"""

# True once the recorded badges contain the wake-up cycle, in order, after the first "Scaled to zero".
CYCLE_SEEN = """() => {
  const want = [/^Scaled to zero$/, /^Activating \\(cold start, since \\d\\d:\\d\\d:\\d\\d\\)$/, /^Ready \\(1 pod\\)$/,
                /^Scaled to zero$/];
  let i = 0;
  for (const text of window.__badges) if (i < want.length && want[i].test(text)) i += 1;
  return i === want.length;
}"""


@pytest.fixture
def running_watcher(cluster):
    watcher = Watcher(cluster, watch_timeout=30, max_backoff=0.5)
    watcher.start()
    stop = threading.Event()

    def loop():
        while not stop.is_set():
            watcher.step(0.1)

    thread = threading.Thread(target=loop, name="test-watcher", daemon=True)
    thread.start()
    yield watcher
    stop.set()
    thread.join(10)
    watcher.stop()


def sign_in(page, base: str, username: str) -> None:
    page.goto(f"{base}/login/")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("button", name=f"Sign out {username}")).to_be_visible()


def test_trigger_page_follows_a_cold_start_live_and_other_tenants_see_nothing(
        browser, page, relay, live_trigger, running_watcher, alice, charlie, tenant_b):
    # A slow start keeps "Activating" on screen long enough to be seen.
    trigger = live_trigger(image="kubesim/slow-start:800ms", spec_version=1)
    Deployment.objects.create(trigger=trigger, spec_version=1, status="ready")
    # The deploy's own pod comes and goes first; the test starts with the trigger really at zero (else the
    # page may open on a starting pod, and the webhook below may find it warm).
    wait_for(lambda: ScaleEvent.objects.filter(trigger=trigger, to_pods=0).exists(), timeout=30,
             message="the deploy's pod scaled to zero")

    # charlie (tenant globex) watches his own dashboard the whole time.
    other = browser.new_context().new_page()
    other.set_default_timeout(10_000)
    sign_in(other, relay, "charlie")
    assert other.goto(f"{relay}/t/acme/triggers/hello/").status == 404
    assert "Acme" not in other.content() and "kubesim/slow-start" not in other.content()
    other.goto(f"{relay}/t/globex/triggers/")
    expect(other.get_by_text("No triggers yet")).to_be_visible()
    expect(other.locator("#live-indicator")).to_have_attribute("data-state", "live")

    page.add_init_script(RECORD_BADGES)
    sign_in(page, relay, "alice")
    page.goto(f"{relay}/t/acme/triggers/hello/")
    page.evaluate("window.__notReloaded = true")
    expect(page.locator("#live-indicator")).to_have_attribute("data-state", "live")
    expect(page.locator("#live-indicator")).to_have_text("Live")
    badge = page.locator("#live-status [data-trigger-badge]")
    expect(badge).to_have_text("Scaled to zero", timeout=20_000)
    expect(page.locator("#pods-body tr[data-pod]")).to_have_count(0)

    response = requests.post(f"{relay}/hooks/{trigger.token}", data=b'{"hello": "world"}',
                             headers={"Content-Type": "application/json"}, timeout=30)
    assert response.status_code == 200

    page.wait_for_function(CYCLE_SEEN, timeout=20_000)
    assert page.evaluate("window.__notReloaded") is True
    badges = page.evaluate("window.__badges")
    assert "Ready (1 pod)" in badges and any(b.startswith("Activating (cold start") for b in badges), badges

    delivery = page.locator("#recent-deliveries tbody tr[data-delivery]")
    expect(delivery).to_have_count(1)
    expect(delivery.first.locator("a")).to_have_attribute("href", re.compile(
        r"^/t/acme/triggers/hello/deliveries/[0-9a-f-]{36}/$"))
    expect(delivery.first).to_contain_text("POST")
    expect(delivery.first).to_contain_text("cold")
    activation = page.locator('#scale-timeline tr[data-cause="activation"]')
    expect(activation).to_have_count(1)
    expect(activation.locator("td.cold-start")).to_have_text(re.compile(r"^\d+ ms$"))
    expect(activation).to_contain_text("0 → 1")
    expect(page.locator("#chart-cold-starts rect.cold")).to_have_count(1)
    expect(page.locator("#chart-cold-starts rect.cold title")).to_have_text(re.compile(r"^\d\d:\d\d: 1 cold start$"))
    assert page.evaluate("window.__notReloaded") is True

    # charlie's page stayed empty and his socket never carried an acme event.
    expect(other.get_by_text("No triggers yet")).to_be_visible()
    events = other.evaluate("window.relayLive.events")
    assert [e["type"] for e in events] == ["snapshot"], events
    assert trigger.pk not in {e.get("trigger") for e in events}
    # and a socket of his own to acme is refused (closed without ever opening)
    refused = other.evaluate(f"""() => new Promise((resolve) => {{
        const ws = new WebSocket("{relay.replace('http', 'ws')}/ws/tenants/acme/");
        let opened = false;
        ws.onopen = () => {{ opened = true; }};
        ws.onmessage = () => resolve("message");
        ws.onclose = () => resolve(opened ? "opened" : "refused");
        setTimeout(() => resolve("timeout"), 5000);
    }})""")
    assert refused == "refused"
    other.context.close()


RECORD_STATES = """
window.__states = [];
document.addEventListener("DOMContentLoaded", () => {
  const indicator = document.getElementById("live-indicator");
  const record = () => window.__states.push(indicator.dataset.state);
  record();
  new MutationObserver(record).observe(indicator, {attributes: true, attributeFilter: ["data-state"]});
});
"""


def test_dashboard_updates_without_polling_and_reconnects_with_a_fresh_snapshot(page, relay, alice, tenant_a):
    from triggers.live import broadcast
    from triggers.models import Trigger

    trigger = Trigger.objects.create(tenant=tenant_a, name="hello", image="kubesim/echo", ready_status="True",
                                     generation=1, observed_generation=1, latest_ready_revision="hello-00001",
                                     ready_pods=2)
    Deployment.objects.create(trigger=trigger, spec_version=1, status="ready")
    page.add_init_script(RECORD_STATES)
    sign_in(page, relay, "alice")
    page.goto(f"{relay}/t/acme/")
    badge = page.locator(f'#tenant-triggers [data-trigger-badge="{trigger.pk}"]')
    pods = page.locator(f'#tenant-triggers [data-trigger-pods="{trigger.pk}"]')
    expect(badge).to_have_text("Ready (2 pods)")
    expect(page.locator("#live-indicator")).to_have_attribute("data-state", "live")

    requests_seen: list[str] = []
    page.on("request", lambda request: requests_seen.append(request.url))
    trigger.ready_pods = 0
    trigger.save(update_fields=["ready_pods"])
    # Playwright's loop runs in this thread; the channel layer is called from another, as the watcher does.
    sender = threading.Thread(target=broadcast.trigger_status, args=(trigger,))
    sender.start()
    sender.join(10)
    expect(badge).to_have_text("Scaled to zero")
    expect(badge).to_have_class(re.compile(r"\blive-scaled_to_zero\b"))
    expect(pods).to_have_text("0")
    page.wait_for_timeout(2000)
    assert requests_seen == []  # the socket carries everything: no polling while connected

    # A change the page missed (no event), then the connection drops: the new snapshot has it.
    Trigger.objects.filter(pk=trigger.pk).update(ready_pods=3)
    page.evaluate("window.relayLive.socket.close()")
    expect(badge).to_have_text("Ready (3 pods)")
    expect(page.locator("#live-indicator")).to_have_attribute("data-state", "live")
    assert page.evaluate("window.relayLive.connects") == 2
    states = page.evaluate("window.__states")
    assert states[:2] == ["connecting", "live"] and "reconnecting" in states[2:], states
    assert states[-1] == "live"


def test_trigger_page_shows_deployment_progress_pods_and_route_as_they_change(
        page, relay, alice, tenant_a, store):  # noqa: F811
    from triggers.live import broadcast
    from triggers.models import Trigger

    def send(fn, *args):  # from another thread than Playwright's loop, as the watcher and workers do
        sender = threading.Thread(target=fn, args=args)
        sender.start()
        sender.join(10)

    trigger = Trigger.objects.create(tenant=tenant_a, name="hello", image="kubesim/echo", spec_version=2,
                                     address_url="http://hello.relay-acme.svc.cluster.local")
    Deployment.objects.create(trigger=trigger, spec_version=1, status="ready")
    sign_in(page, relay, "alice")
    page.goto(f"{relay}/t/acme/triggers/hello/")
    expect(page.locator("#live-indicator")).to_have_attribute("data-state", "live")
    expect(page.locator("#trigger-diag")).to_contain_text("not been polled yet")
    status = page.locator("#deployment-status")
    expect(status).to_have_text("Ready")

    second = Deployment.objects.create(trigger=trigger, spec_version=2, status="pending")
    send(broadcast.deployment, second, tenant_a.pk)
    expect(status).to_have_text("Pending")
    expect(page.locator("#deployment-table tbody tr")).to_have_count(2)
    second.status = "waiting"
    second.save(update_fields=["status"])
    send(broadcast.deployment, second, tenant_a.pk)
    expect(status).to_have_text("Waiting for Knative")
    expect(page.locator("#deployment-steps")).to_have_attribute("data-status", "waiting")
    second.finish("failed", reason="ExitCode1", message="Container failed with: boom")
    send(broadcast.deployment, second, tenant_a.pk)
    expect(status).to_have_text("Failed")
    expect(page.locator("#deployment-detail")).to_contain_text("ExitCode1 Container failed with: boom")

    trigger.pods = [{"name": "hello-00002-deployment-x", "phase": "Running", "ready": False, "restarts": 3,
                     "reason": "CrashLoopBackOff"}]
    trigger.ready_pods = 0
    send(broadcast.trigger_pods, trigger)
    row = page.locator('#pods-body tr[data-pod="hello-00002-deployment-x"]')
    expect(row).to_contain_text("CrashLoopBackOff")
    expect(row).to_contain_text("3")

    store(good_state())
    send(broadcast.diag, tenant_a.pk, {"routes": []})
    expect(page.locator("#trigger-diag")).to_contain_text("100% healthy")
    expect(page.locator("#trigger-diag")).not_to_contain_text("globex")
