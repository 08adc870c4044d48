"""Accessibility in a real browser: axe-core (axe-playwright-python, its axe.min.js bundled in the wheel,
no CDN) finds no serious or critical violation on the pages people work in, and every action on them is
reachable and operable from the keyboard (Tab, then Enter) with a visible focus indicator.

axe is injected with Playwright's ``page.evaluate`` (the DevTools protocol), which the page's CSP does not
govern, so the pages are checked under their real CSP: no ``bypass_csp`` context is needed.
"""

from __future__ import annotations

import pytest
from axe_playwright_python.sync_playwright import Axe
from playwright.sync_api import expect

from tenants.models import ApiToken
from tests.e2e.test_browser_live import sign_in
from triggers.models import Delivery, Deployment, Trigger
from triggers.security import crypto

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

SERIOUS = ("serious", "critical")
PAGES = {
    "tenant overview": "/t/acme/",
    "trigger list": "/t/acme/triggers/",
    "trigger page": "/t/acme/triggers/hello/",
    "trigger form (edit)": "/t/acme/triggers/hello/edit/",
    "trigger form (new)": "/t/acme/triggers/-/new/",
    "deliveries": "/t/acme/triggers/hello/deliveries/",
    "delivery": "/t/acme/triggers/hello/deliveries/{delivery}/",
    "trigger logs (a filter error)": "/t/acme/triggers/hello/logs/?since=2030-01-02T00:00&until=2030-01-01T00:00",
    "diag": "/ops/diag/",
    "tokens": "/account/tokens/",
    "sign-in": "/login/",
}


@pytest.fixture
def data(alice, staff, tenant_a):
    from tenants.models import Membership, Role

    Membership.objects.create(tenant=tenant_a, user=staff, role=Role.OWNER)  # the operator edits acme too
    trigger = Trigger.objects.create(
        tenant=tenant_a, name="hello", image="kubesim/echo", ready_status="True", generation=1,
        observed_generation=1, latest_ready_revision="hello-00001", latest_created_revision="hello-00001",
        ready_pods=1, verification="github", verification_secret=crypto.encrypt("s"))
    Deployment.objects.create(trigger=trigger, spec_version=1, status="ready")
    ok = Delivery.objects.create(trigger=trigger, mode="sync", method="POST", state="succeeded", response_status=200,
                                 path="/", headers=[["content-type", "application/json"]], body=b'{"a": 1}',
                                 latency_ms=12, verification="passed")
    Delivery.objects.create(trigger=trigger, mode="sync", method="POST", state="failed", response_status=500,
                            path="/", headers=[], body=b"x", latency_ms=30, verification="passed")
    ApiToken.generate(user=staff, name="ci")
    return {"trigger": trigger, "delivery": ok.pk}


def _violations(page) -> list[str]:
    results = Axe().run(page)
    return [f"{v['id']} ({v['impact']}): {v['help']} — "
            + "; ".join(" ".join(node["target"]) if isinstance(node["target"], list) else str(node["target"])
                        for node in v["nodes"][:5])
            for v in results.response["violations"] if v["impact"] in SERIOUS]



@pytest.mark.parametrize("name", PAGES)
def test_axe_finds_no_serious_or_critical_violations(name, page, relay, data):
    if name != "sign-in":
        sign_in(page, relay, "operator")
    page.goto(relay + PAGES[name].format(**data))
    expect(page.locator("main")).to_be_visible()
    violations = _violations(page)
    assert not violations, f"{name}: axe-core violations:\n" + "\n".join(violations)


def _tab_to(page, locator, limit: int = 200) -> None:
    """Press Tab until `locator` has the focus (it is reachable from the keyboard), else fail."""
    handle = locator.element_handle()
    for _ in range(limit):
        page.keyboard.press("Tab")
        if page.evaluate("el => document.activeElement === el", handle):
            return
    raise AssertionError(f"{locator} is not reachable with Tab")


def _focus_visible(page) -> bool:
    """The focused element draws an outline or a box shadow of its own (:focus-visible)."""
    return page.evaluate("""() => {
        const el = document.activeElement, s = getComputedStyle(el);
        return el.matches(':focus-visible') && ((s.outlineStyle !== 'none' && parseFloat(s.outlineWidth) > 0)
               || s.boxShadow !== 'none');
    }""")


@pytest.mark.parametrize("name", ["tenant overview", "trigger page", "trigger form (edit)", "deliveries",
                                  "delivery", "diag", "tokens"])
def test_every_action_is_reachable_with_tab_and_shows_its_focus(name, page, relay, data):
    sign_in(page, relay, "operator")
    page.goto(relay + PAGES[name].format(**data))
    assert page.locator("main a[href], main button").count() > 0
    page.locator("body").focus()
    seen, missing_focus, order = set(), [], []
    for _ in range(400):
        page.keyboard.press("Tab")
        info = page.evaluate("""() => { const el = document.activeElement;
            return el && el !== document.body ? {inMain: !!el.closest('main'),
              key: el.outerHTML.slice(0, 120)} : null; }""")
        if info is None or (order and info["key"] == order[0] and len(order) > 1):
            break  # out of the page, or round again
        order.append(info["key"])
        if info["inMain"] and info["key"] not in seen:  # (a date input takes several Tabs)
            seen.add(info["key"])
            if not _focus_visible(page):
                missing_focus.append(info["key"])
    unreachable = page.evaluate("""(seen) => [...document.querySelectorAll(
            'main a[href], main button, main input, main select, main textarea, main summary')]
        .filter(el => el.offsetParent !== null && !el.disabled && el.type !== 'hidden')
        .map(el => el.outerHTML.slice(0, 120)).filter(key => !seen.includes(key))""", list(seen))
    assert unreachable == [], f"{name}: not reachable with Tab"
    assert missing_focus == [], f"{name}: no visible focus"


def test_trigger_actions_work_from_the_keyboard(page, relay, data):
    """Send test webhook, suspend (its confirmation), resume and deploy, each by Tab and Enter."""
    page.on("dialog", lambda dialog: dialog.accept())
    sign_in(page, relay, "operator")
    page.goto(f"{relay}/t/acme/triggers/hello/")
    trigger = data["trigger"]

    def press(name: str) -> None:
        page.locator("body").focus()
        _tab_to(page, page.get_by_role("button", name=name, exact=True))
        assert _focus_visible(page), f"{name}: no visible focus"
        page.keyboard.press("Enter")

    press("Send test webhook")
    expect(page.locator(".messages")).to_contain_text("Sending a GitHub ping")
    press("Suspend")
    expect(page.locator(".messages")).to_contain_text("hello suspended")
    trigger.refresh_from_db()
    assert trigger.suspended
    press("Resume")
    expect(page.locator(".messages")).to_contain_text("hello resumed.")
    press("Deploy")
    expect(page.locator(".messages")).to_contain_text("Deploying hello")
    assert Deployment.objects.filter(trigger=trigger).count() == 2


def test_the_first_tab_offers_a_skip_link_to_the_content(page, relay, data):
    sign_in(page, relay, "operator")
    page.goto(f"{relay}/t/acme/triggers/hello/")
    page.locator("body").focus()
    page.keyboard.press("Tab")
    skip = page.get_by_role("link", name="Skip to content")
    expect(skip).to_be_focused()
    assert _focus_visible(page) and skip.bounding_box()["x"] >= 0  # shown while focused
    page.keyboard.press("Enter")
    expect(page.locator("main")).to_be_focused()
