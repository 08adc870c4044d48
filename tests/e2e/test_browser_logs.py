"""The Logs panel in a real browser (issue 15, item 3): lines the collector stores and broadcasts appear on the
open trigger page without a reload; Pause stops them (the socket unfollows) and Resume fetches the ones missed
through the API before following again; older lines load from the top, with the keyboard too; the view follows
new lines only when the reader is at the bottom. All under the page's Content-Security-Policy."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone
from playwright.sync_api import expect

from tests.e2e.test_browser_csp import violations, watch
from tests.e2e.test_browser_live import sign_in
from tests.e2e.test_browser_live_cards import in_thread
from triggers.live import broadcast
from triggers.models import LogLine, Trigger

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

POD = "hello-00001-deployment-7c9f8d6b5-x2x9k"


def add(trigger, texts, *, start=None) -> list[LogLine]:
    """Store lines as the collector does (autocommit), one millisecond apart."""
    start = start or timezone.now()
    return [LogLine.objects.create(trigger=trigger, time=start + timedelta(milliseconds=i), pod=POD,
                                   revision="hello-00001", text=text) for i, text in enumerate(texts)]


def publish(trigger, lines) -> None:
    in_thread(broadcast.log_lines, trigger.pk, lines)


def texts(page) -> list[str]:
    return page.locator("#log-lines .log-text").all_inner_texts()


def open_logs(page, url: str) -> None:
    page.goto(url)
    page.evaluate("window.__notReloaded = true")
    expect(page.locator("#live-indicator")).to_have_attribute("data-state", "live")
    expect(page.locator("#log-status")).to_have_text("Following new lines.")


@pytest.fixture
def hello(tenant_a):
    return Trigger.objects.create(tenant=tenant_a, name="hello", image="kubesim/echo", ready_status="True",
                                  latest_ready_revision="hello-00001", ready_pods=1)


def test_new_lines_appear_live_pause_holds_them_and_resume_fetches_the_missed_ones(page, relay, alice, hello):
    add(hello, ["printed before the page opened"], start=timezone.now() - timedelta(minutes=1))
    console = watch(page)
    api_calls: list[str] = []
    page.on("request", lambda r: api_calls.append(r.url) if "/api/v1/" in r.url else None)
    sign_in(page, relay, "alice")
    open_logs(page, f"{relay}/t/acme/triggers/hello/")
    assert texts(page) == ["printed before the page opened"]

    publish(hello, add(hello, ["live one", "live two"]))
    expect(page.locator("#log-lines li")).to_have_count(3)
    assert texts(page) == ["printed before the page opened", "live one", "live two"]
    expect(page.locator("#log-lines li").last.locator("time")).to_have_text(
        LogLine.objects.get(text="live two").time.strftime("%H:%M:%S.%f")[:-3])

    pause = page.get_by_role("button", name="Pause")
    pause.click()
    expect(pause).to_have_attribute("aria-pressed", "true")
    expect(page.locator("#log-status")).to_contain_text("Paused")
    publish(hello, add(hello, ["while paused 1", "while paused 2"]))
    page.wait_for_timeout(700)
    expect(page.locator("#log-lines li")).to_have_count(3)  # held back

    api_calls.clear()
    pause.click()  # resume
    expect(pause).to_have_attribute("aria-pressed", "false")
    expect(page.locator("#log-lines li")).to_have_count(5)
    assert texts(page)[-2:] == ["while paused 1", "while paused 2"]
    live_two = LogLine.objects.get(text="live two")
    assert any(f"after={live_two.pk}" in url for url in api_calls), api_calls  # fetched, not re-sent
    expect(page.locator("#log-status")).to_have_text("Following new lines.")

    publish(hello, add(hello, ["after resuming"]))
    expect(page.locator("#log-lines li")).to_have_count(6)
    assert texts(page)[-1] == "after resuming"
    expect(page.locator("#log-empty")).to_be_hidden()
    assert page.evaluate("window.__notReloaded") is True
    download = page.request.get(relay + page.locator("#log-download").get_attribute("href"))  # uvicorn streams it
    assert download.ok and download.headers["content-type"] == "text/plain; charset=utf-8"
    assert download.headers["content-disposition"].startswith('attachment; filename="hello-logs-')
    assert [row.split(" ", 2)[2] for row in download.text().splitlines()] == texts(page)
    assert violations(page) == []
    assert [m for m in console if "Content Security Policy" in m or "Refused" in m] == []


def test_the_first_line_replaces_the_empty_state_and_a_filtered_panel_shows_only_its_lines(page, relay, alice,
                                                                                          hello):
    sign_in(page, relay, "alice")
    open_logs(page, f"{relay}/t/acme/triggers/hello/logs/?q=needle")
    expect(page.locator("#log-empty")).to_contain_text("No lines match these filters.")
    publish(hello, add(hello, ["haystack", "a NEEDLE", "more hay"]))
    expect(page.locator("#log-lines li")).to_have_count(1)
    assert texts(page) == ["a NEEDLE"]
    expect(page.locator("#log-empty")).to_be_hidden()


def test_older_lines_load_from_the_top_and_with_the_keyboard(page, relay, alice, hello):
    add(hello, [f"line {i}" for i in range(250)], start=timezone.now() - timedelta(minutes=5))
    sign_in(page, relay, "alice")
    open_logs(page, f"{relay}/t/acme/triggers/hello/logs/")
    rows = page.locator("#log-lines li")
    expect(rows).to_have_count(100)
    assert texts(page)[0] == "line 150"

    page.locator("#log-view").evaluate("view => { view.scrollTop = 0; }")  # reaching the top loads a page
    expect(rows).to_have_count(200)
    assert texts(page)[0] == "line 50"
    assert page.locator("#log-view").evaluate("view => view.scrollTop") > 0  # the reader's lines stay in place

    button = page.get_by_role("button", name="Load older lines")
    page.locator("#log-filters button[type=submit]").focus()
    for _ in range(10):
        page.keyboard.press("Tab")
        if button.evaluate("b => document.activeElement === b"):
            break
    else:
        raise AssertionError("Load older lines is not reachable with Tab")
    page.keyboard.press("Enter")
    expect(rows).to_have_count(250)
    assert texts(page)[:2] == ["line 0", "line 1"]
    expect(page.locator("#log-start")).to_be_visible()
    expect(button).to_be_hidden()
    expect(page.locator("#log-view")).to_be_focused()  # the focus did not fall back to the page


def test_the_view_follows_new_lines_only_when_the_reader_is_at_the_bottom(page, relay, alice, hello):
    add(hello, [f"line {i}" for i in range(100)], start=timezone.now() - timedelta(minutes=5))
    sign_in(page, relay, "alice")
    open_logs(page, f"{relay}/t/acme/triggers/hello/")
    view = page.locator("#log-view")
    at_bottom = "v => v.scrollHeight - v.scrollTop - v.clientHeight < 8"
    assert view.evaluate(at_bottom)

    publish(hello, add(hello, ["new at the bottom"]))
    expect(page.locator("#log-lines li")).to_have_count(101)
    assert view.evaluate(at_bottom)

    view.evaluate("v => { v.scrollTop = v.scrollHeight - v.clientHeight - 300; }")
    before = view.evaluate("v => v.scrollTop")
    publish(hello, add(hello, ["while reading above"]))
    expect(page.locator("#log-lines li")).to_have_count(102)
    assert view.evaluate("v => v.scrollTop") == before and not view.evaluate(at_bottom)
