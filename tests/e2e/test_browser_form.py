"""The trigger form in a real browser: four sections, and fields that apply only to one choice (the generic-HMAC
fields, the verification secret, async's max attempts) hidden until that choice is made. Without JavaScript
every field shows and the form still works; the server's validation (shared with the API) has the last word."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from tests.e2e.test_browser_tenants import sign_in
from triggers.models import Trigger

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

HMAC_FIELDS = ("HMAC signature header", "HMAC encoding", "HMAC prefix")


def test_fields_show_only_when_they_apply_and_the_form_saves(page, live_server, alice, tenant_a):
    sign_in(page, live_server, "alice")
    page.goto(f"{live_server.url}/t/acme/triggers/-/new/")
    for legend in ("Container", "Scaling", "Webhook", "Delivery"):
        expect(page.get_by_role("group", name=legend, exact=True)).to_be_visible()
    webhook = page.get_by_role("group", name="Webhook", exact=True)
    for label in (*HMAC_FIELDS, "Verification secret"):
        expect(webhook.get_by_label(label)).to_be_hidden()
    expect(page.get_by_label("Max attempts")).to_be_hidden()

    page.get_by_label("Signature verification").select_option("github")
    expect(webhook.get_by_label("Verification secret")).to_be_visible()
    for label in HMAC_FIELDS:
        expect(webhook.get_by_label(label)).to_be_hidden()
    page.get_by_label("Signature verification").select_option("hmac")
    for label in (*HMAC_FIELDS, "Verification secret"):
        expect(webhook.get_by_label(label)).to_be_visible()
    page.get_by_label("Webhook mode").select_option("async")
    expect(page.get_by_label("Max attempts")).to_be_visible()

    # The API's validation, shown next to the field (which stays visible with its error).
    page.get_by_label("Name").fill("hello")
    page.get_by_label("Image").fill("ghcr.io/acme/hello:1.0")
    page.get_by_label("HMAC signature header").fill("")
    page.get_by_role("button", name="Save", exact=True).click()
    expect(page.get_by_text("Generic HMAC verification needs the name of the signature header.")).to_be_visible()
    expect(page.get_by_text("hmac verification needs a secret")).to_be_visible()
    expect(page.get_by_label("HMAC signature header")).to_be_visible()

    page.get_by_label("HMAC signature header").fill("X-Sig")
    page.get_by_label("Verification secret").fill("s3cret")
    page.get_by_role("button", name="Save", exact=True).click()
    expect(page).to_have_url(f"{live_server.url}/t/acme/triggers/hello/")
    trigger = Trigger.objects.get(name="hello")
    assert (trigger.verification, trigger.hmac_header, trigger.mode) == ("hmac", "X-Sig", "async")


def test_without_javascript_every_field_shows(browser, live_server, alice, tenant_a):
    context = browser.new_context(java_script_enabled=False)
    page = context.new_page()
    page.set_default_timeout(10_000)
    sign_in(page, live_server, "alice")
    page.goto(f"{live_server.url}/t/acme/triggers/-/new/")
    for label in (*HMAC_FIELDS, "Verification secret", "Max attempts"):
        expect(page.get_by_label(label)).to_be_visible()
    page.get_by_label("Name").fill("hello")
    page.get_by_label("Image").fill("ghcr.io/acme/hello:1.0")
    page.get_by_role("button", name="Save", exact=True).click()
    expect(page).to_have_url(f"{live_server.url}/t/acme/triggers/hello/")
    assert Trigger.objects.get(name="hello").verification == "none"
    context.close()
