"""The pages run in a real browser under their Content-Security-Policy with nothing refused: the live page's
scripts and websocket, the API docs, the admin. A refused script, style or connection shows as a
`securitypolicyviolation` event and a console error; both are collected and must stay empty."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from tests.conftest import PASSWORD

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

RECORD_VIOLATIONS = """
window.__violations = [];
document.addEventListener("securitypolicyviolation", (e) => {
  const where = document.location.pathname;
  window.__violations.push(`${e.effectiveDirective} refused ${e.blockedURI || "inline"} on ${where}`);
});
"""


def watch(page) -> list[str]:
    console: list[str] = []
    page.add_init_script(RECORD_VIOLATIONS)
    page.on("console", lambda m: console.append(m.text) if m.type == "error" else None)
    return console


def violations(page) -> list[str]:
    return page.evaluate("window.__violations")


def sign_in(page, base: str, username: str) -> None:
    page.goto(f"{base}/login/")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("button", name=f"Sign out {username}")).to_be_visible()


def test_the_live_page_runs_under_the_policy_with_no_violation(page, relay, alice, tenant_a):
    from triggers.models import Trigger

    Trigger.objects.create(tenant=tenant_a, name="hello", image="kubesim/echo", ready_status="True",
                           generation=1, observed_generation=1, latest_ready_revision="hello-00001", ready_pods=1)
    console = watch(page)
    sign_in(page, relay, "alice")
    response = page.goto(f"{relay}/t/acme/")
    assert "script-src 'self'" in response.headers["content-security-policy"]
    expect(page.locator("#live-indicator")).to_have_attribute("data-state", "live")  # scripts ran, socket open
    page.goto(f"{relay}/t/acme/triggers/hello/")
    expect(page.locator("#live-indicator")).to_have_attribute("data-state", "live")
    assert violations(page) == []
    page.goto(f"{relay}/account/password/")
    expect(page.get_by_role("heading", name="Change password")).to_be_visible()
    assert violations(page) == []
    assert [m for m in console if "Content Security Policy" in m or "Refused" in m] == []


def test_the_api_docs_and_the_admin_run_under_the_policy(page, relay, staff, tenant_a):
    console = watch(page)
    sign_in(page, relay, staff.username)
    page.goto(f"{relay}/api/docs/")
    expect(page.locator(".swagger-ui .info .title")).to_contain_text("relayweb API")  # the init script ran
    assert violations(page) == []
    page.goto(f"{relay}/admin/tenants/tenant/{tenant_a.pk}/change/")
    expect(page.locator("#tenant_form")).to_be_visible()
    page.goto(f"{relay}/admin/tenants/tenant/")
    page.locator("#action-toggle").check()  # the admin's own scripts work: "select all" ticks every row
    expect(page.locator("input.action-select").first).to_be_checked()
    assert violations(page) == []
    assert [m for m in console if "Content Security Policy" in m or "Refused" in m] == []
