"""The handler-log pages (issue 15, items 3 and 4): the Logs panel of the trigger page and its own filtered page,
the download, a delivery's lines on its page, the last lines of a pod that crashed; viewers read, other tenants
get 404, anonymous users sign in. What the browser does with the panel (live lines, pause, older lines) is in
tests/e2e/test_browser_logs.py."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from html import unescape

import pytest
from django.test import Client
from django.utils import timezone

from triggers.models import Delivery, LogLine, Trigger
from triggers.pages import logs as log_pages

pytestmark = pytest.mark.django_db

DETAIL = "/t/acme/triggers/hello/"
LOGS = DETAIL + "logs/"
DOWNLOAD = LOGS + "download/"
POD = "hello-00001-deployment-7c9f8d6b5-x2x9k"
OTHER_POD = "hello-00002-deployment-55d4f7c9b-q8m2p"
EMPTY = ("No log lines yet. Lines appear here as the handler prints them; they are kept after its pods scale to "
         "zero.")


def signed_in(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def page(response) -> str:
    assert response.status_code == 200, response.status_code
    return unescape(response.content.decode())


def shown(html: str) -> list[str]:
    """The texts of the Logs panel's lines, in page order."""
    panel = html.split('id="log-lines"', 1)[1].split("</ol>", 1)[0]
    return re.findall(r'<span class="log-text">(.*?)(?: <span class="log-cut">|</span>)', panel)


@pytest.fixture
def hello(tenant_a, alice):
    return Trigger.objects.create(tenant=tenant_a, name="hello", image="kubesim/echo", created_by=alice,
                                  latest_ready_revision="hello-00001", latest_created_revision="hello-00001")


def line(trigger, text, *, at=None, pod=POD, revision="hello-00001", **fields) -> LogLine:
    return LogLine.objects.create(trigger=trigger, time=at or timezone.now(), pod=pod, revision=revision, text=text,
                                  **fields)


def lines(trigger, n: int, *, start=None, pod=POD, revision="hello-00001") -> list[LogLine]:
    start = start or timezone.now() - timedelta(minutes=10)
    return LogLine.objects.bulk_create(
        LogLine(trigger=trigger, time=start + timedelta(seconds=i), pod=pod, revision=revision, text=f"line {i}")
        for i in range(n))


# The panel on the trigger page


def test_the_trigger_page_shows_the_newest_hundred_lines_oldest_first(bob, hello):
    lines(hello, 130)
    html = page(signed_in(bob).get(DETAIL))
    assert shown(html) == [f"line {i}" for i in range(30, 130)]
    oldest_shown = LogLine.objects.get(trigger=hello, text="line 30")
    assert f'data-older="{oldest_shown.pk}"' in html  # "Load older lines" starts there
    assert 'data-live="true"' in html and f'data-trigger-id="{hello.pk}"' in html
    assert 'data-api-url="/api/v1/tenants/acme/triggers/hello/logs/"' in html


def test_a_line_shows_its_time_to_the_millisecond_its_pod_revision_and_what_was_cut(bob, hello):
    at = datetime(2030, 1, 2, 3, 4, 5, 678901, tzinfo=UTC)
    line(hello, "boom <b>", at=at, cut=1234, stream="stderr")
    with pytest.MonkeyPatch.context() as mp:  # a line of 2030 is the newest; "now" is irrelevant to the panel
        mp.setattr(log_pages, "PANEL_LINES", 10)
        html = signed_in(bob).get(DETAIL).content.decode()
    assert '<time class="log-time" datetime="2030-01-02T03:04:05.678901+00:00">03:04:05.678</time>' in html
    assert f'<span class="log-pod" title="{POD}">7c9f8d6b5-x2x9k</span>' in html
    assert '<span class="log-rev">hello-00001</span>' in html
    assert "boom &lt;b&gt;" in html and "<b>" not in html.split('id="log-lines"')[1].split("</ol>")[0]
    assert '<span class="log-cut">… 1234 characters cut</span>' in html
    assert 'class="log-stderr"' in html


def test_the_panel_is_live_and_csp_clean_with_a_deferred_script_and_no_inline_code(bob, hello):
    html = signed_in(bob).get(DETAIL).content.decode()
    panel = html[html.index('id="logs"'):]
    assert '<script src="/static/js/logs.js" defer></script>' in panel
    assert "style=" not in panel and not re.search(r"<script(?![^>]*\bsrc=)", panel)
    assert re.search(r"\son[a-z]+=", panel) is None  # no inline event handlers either
    assert 'id="log-pause" aria-pressed="false"' in panel
    assert "Load older lines" in panel and 'id="log-download"' in panel


def test_an_empty_trigger_explains_that_lines_are_kept_after_scale_to_zero(bob, hello):
    html = page(signed_in(bob).get(DETAIL))
    assert EMPTY in html
    assert shown(html) == []
    assert 'id="crash-logs-1"' not in html


def test_the_filter_form_offers_the_triggers_pods_and_revisions(alice, hello):
    hello.pods = [{"name": "hello-00002-deployment-abc-12345", "phase": "Running", "ready": True, "restarts": 0}]
    hello.save()
    line(hello, "a")
    line(hello, "b", pod=OTHER_POD, revision="hello-00002")
    html = page(signed_in(alice).get(DETAIL))
    form = html.split('id="log-filters"', 1)[1].split("</form>", 1)[0]
    assert 'action="/t/acme/triggers/hello/logs/#logs"' in html and 'method="get"' in html
    for pod in (POD, OTHER_POD, "hello-00002-deployment-abc-12345"):
        assert f'<option value="{pod}">{pod}</option>' in form
    for revision in ("hello-00001", "hello-00002"):
        assert f'<option value="{revision}">{revision}</option>' in form
    for name in ("q", "since", "until"):
        assert f'name="{name}"' in form


# The Logs page: filters


@pytest.mark.parametrize("query, expected", [
    ({"pod": OTHER_POD}, ["other pod"]),
    ({"revision": "hello-00002"}, ["other pod"]),
    ({"q": "NEEDLE"}, ["a needle here"]),
    ({"since": "2030-01-01T10:00:30", "until": "2030-01-01T10:01:30"}, ["at 10:01"]),
])
def test_the_logs_page_filters_the_lines(bob, hello, query, expected):
    now = timezone.now()
    line(hello, "plain", at=now - timedelta(minutes=3))
    line(hello, "a needle here", at=now - timedelta(minutes=2))
    line(hello, "other pod", at=now - timedelta(minutes=1), pod=OTHER_POD, revision="hello-00002")
    line(hello, "at 10:00", at=datetime(2030, 1, 1, 10, 0, tzinfo=UTC))
    line(hello, "at 10:01", at=datetime(2030, 1, 1, 10, 1, tzinfo=UTC))
    line(hello, "at 10:02", at=datetime(2030, 1, 1, 10, 2, tzinfo=UTC))
    html = page(signed_in(bob).get(LOGS, query))
    assert shown(html) == expected
    assert "<h1>" in html and "/ Logs</h1>" in html
    form = html.split('id="log-filters"', 1)[1].split("</form>", 1)[0]
    for name, value in query.items():  # the form keeps what was asked
        assert f'value="{value}" selected' in form if name in ("pod", "revision") else f'value="{value}"' in form
    live = "until" not in query
    assert f'data-live="{str(live).lower()}"' in html
    assert f'href="/t/acme/triggers/hello/logs/download/?{"&".join(f"{k}={v}" for k, v in query.items())}"' in \
        html.replace("%3A", ":")


def test_a_filter_matching_nothing_says_so(bob, hello):
    line(hello, "something")
    html = page(signed_in(bob).get(LOGS, {"q": "nothing like it"}))
    assert "No lines match these filters." in html and EMPTY not in html


@pytest.mark.parametrize("query, field_error", [
    ({"since": "2030-01-02T00:00", "until": "2030-01-01T00:00"}, ("until", "Until: Must be after since.")),
    ({"q": "x", "since": "2030-01-01T00:00", "until": "2030-01-20T00:00"},
     ("q", "Text: Text search covers at most 7 days: narrow since and until.")),
    ({"since": "yesterday"}, ("since", "Since: Enter a valid date/time.")),
])
def test_bad_filters_are_named_next_to_their_field_and_show_no_lines(bob, hello, query, field_error):
    line(hello, "a line")
    html = page(signed_in(bob).get(LOGS, query))
    field, message = field_error
    assert f'<small class="error" id="lf-{field}-error">{message}</small>' in html
    assert f'id="lf-{field}"' in html and 'aria-invalid="true"' in html
    assert 'role="alert" id="log-errors"' in html and f"<li>{message}</li>" in html
    assert shown(html) == [] and "Fix the filters above to see lines." in html
    assert 'data-live="false"' in html


def test_another_triggers_delivery_is_refused_naming_the_delivery(bob, hello, tenant_a):
    other = Trigger.objects.create(tenant=tenant_a, name="other", image="kubesim/echo")
    theirs = Delivery.objects.create(trigger=other, mode="sync", method="POST", path="/", state="succeeded")
    html = page(signed_in(bob).get(LOGS, {"delivery": str(theirs.pk)}))
    assert "<li>Delivery: Not a delivery of this trigger.</li>" in html
    response = signed_in(bob).get(DOWNLOAD, {"delivery": str(theirs.pk)})
    assert response.status_code == 400 and response.content.decode() == "Delivery: Not a delivery of this trigger.\n"


def sync_delivery(trigger, *, received_at, latency_ms=200.0) -> Delivery:
    return Delivery.objects.create(trigger=trigger, mode="sync", method="POST", path="/", state="succeeded",
                                   response_status=200, attempts=1, received_at=received_at, latency_ms=latency_ms)


def test_the_logs_page_of_one_delivery_says_how_its_lines_match_and_does_not_follow(bob, hello):
    at = timezone.now() - timedelta(minutes=5)
    named = sync_delivery(hello, received_at=at)
    line(hello, "names it", at=at, delivery_id=named.pk)
    line(hello, "printed meanwhile", at=at + timedelta(milliseconds=100))
    html = page(signed_in(bob).get(LOGS, {"delivery": str(named.pk)}))
    assert shown(html) == ["names it"]
    assert "lines that name this delivery" in html and 'data-live="false"' in html
    assert f'<input type="hidden" name="delivery" value="{named.pk}">' in html
    assert "Not following new lines" in html

    unnamed = sync_delivery(hello, received_at=at - timedelta(minutes=1))
    line(hello, "during the unnamed one", at=at - timedelta(minutes=1) + timedelta(milliseconds=50))
    html = page(signed_in(bob).get(LOGS, {"delivery": str(unnamed.pk)}))
    assert shown(html) == ["during the unnamed one"]
    assert "lines printed while it was forwarded (no line names it)" in html


# Download


@pytest.mark.filterwarnings("ignore:StreamingHttpResponse must consume asynchronous iterators")
def test_download_streams_the_filtered_lines_as_a_text_attachment(bob, hello):
    now = timezone.now()
    old = line(hello, "eight days ago", at=now - timedelta(days=8))
    first = line(hello, "first", at=now - timedelta(minutes=2))
    cut = line(hello, "long", at=now - timedelta(minutes=1), cut=99)
    line(hello, "other pod", at=now - timedelta(seconds=30), pod=OTHER_POD)
    response = signed_in(bob).get(DOWNLOAD)
    assert response.status_code == 200 and response.streaming
    assert response["Content-Type"] == "text/plain; charset=utf-8"
    assert re.fullmatch(r'attachment; filename="hello-logs-\d{8}-\d{6}\.txt"', response["Content-Disposition"])
    text = b"".join(response).decode()
    assert text.splitlines() == [
        f"{first.time.isoformat()} {POD} first",
        f"{cut.time.isoformat()} {POD} long [… 99 characters cut]",
        f"{(now - timedelta(seconds=30)).isoformat()} {OTHER_POD} other pod",
    ]
    assert old.text not in text  # the last 7 days at most

    filtered = b"".join(signed_in(bob).get(DOWNLOAD, {"pod": OTHER_POD})).decode()
    assert filtered.splitlines() == [f"{(now - timedelta(seconds=30)).isoformat()} {OTHER_POD} other pod"]


@pytest.mark.filterwarnings("ignore:StreamingHttpResponse must consume asynchronous iterators")
def test_download_holds_the_newest_lines_in_chunks_and_says_when_older_ones_are_left_out(bob, hello, monkeypatch):
    monkeypatch.setattr(log_pages, "DOWNLOAD_LINES", 5)
    monkeypatch.setattr(log_pages, "DOWNLOAD_CHUNK", 2)
    same = timezone.now() - timedelta(minutes=1)
    LogLine.objects.bulk_create(LogLine(trigger=hello, time=same, pod=POD, text=f"n{i}") for i in range(8))
    text = b"".join(signed_in(bob).get(DOWNLOAD)).decode().splitlines()
    assert text[0].startswith("# the newest 5 lines of the range")
    assert [row.rsplit(" ", 1)[1] for row in text[1:]] == ["n3", "n4", "n5", "n6", "n7"]

    monkeypatch.setattr(log_pages, "DOWNLOAD_LINES", 8)
    text = b"".join(signed_in(bob).get(DOWNLOAD)).decode().splitlines()
    assert [row.rsplit(" ", 1)[1] for row in text] == [f"n{i}" for i in range(8)]


def test_bad_download_filters_are_a_400_naming_the_field(bob, hello):
    response = signed_in(bob).get(DOWNLOAD, {"since": "2030-01-02T00:00", "until": "2030-01-01T00:00"})
    assert response.status_code == 400
    assert response.content.decode() == "Until: Must be after since.\n"


# The delivery page


def test_the_delivery_page_shows_the_lines_that_name_it(bob, hello):
    at = timezone.now() - timedelta(minutes=5)
    delivery = sync_delivery(hello, received_at=at)
    line(hello, f"handling {delivery.pk}", at=at, delivery_id=delivery.pk)
    line(hello, "printed meanwhile, naming nothing", at=at + timedelta(milliseconds=10))
    html = page(signed_in(bob).get(f"{DETAIL}deliveries/{delivery.pk}/"))
    section = html.split('id="delivery-logs"', 1)[1].split("</section>", 1)[0]
    assert "<h2" in section and "Logs during this delivery" in section
    assert "Lines that name this delivery." in section
    assert f"handling {delivery.pk}" in section and "naming nothing" not in section
    assert f'href="/t/acme/triggers/hello/logs/?delivery={delivery.pk}#logs"' in section


def test_the_delivery_page_falls_back_to_the_lines_printed_while_it_was_forwarded(bob, hello):
    at = timezone.now() - timedelta(minutes=5)
    delivery = sync_delivery(hello, received_at=at, latency_ms=500)
    line(hello, "before", at=at - timedelta(seconds=5))
    line(hello, "during", at=at + timedelta(milliseconds=300))
    line(hello, "another delivery's", at=at + timedelta(milliseconds=310),
         delivery_id="00000000-0000-0000-0000-000000000001")
    line(hello, "after", at=at + timedelta(seconds=5))
    section = page(signed_in(bob).get(f"{DETAIL}deliveries/{delivery.pk}/")).split('id="delivery-logs"', 1)[1]
    section = section.split("</section>", 1)[0]
    assert "Lines printed while it was forwarded (no line names it)." in section
    assert re.findall(r'<span class="log-text">(.*?)</span>', section) == ["during"]


def test_the_delivery_page_says_when_no_line_goes_with_it_and_shows_at_most_200(bob, hello, monkeypatch):
    at = timezone.now() - timedelta(minutes=5)
    delivery = sync_delivery(hello, received_at=at)
    html = page(signed_in(bob).get(f"{DETAIL}deliveries/{delivery.pk}/"))
    assert 'id="delivery-logs-empty"' in html and "No log lines: none names this delivery" in html

    LogLine.objects.bulk_create(LogLine(trigger=hello, time=at + timedelta(microseconds=i), pod=POD,
                                        text=f"n{i}", delivery_id=delivery.pk) for i in range(201))
    section = page(signed_in(bob).get(f"{DETAIL}deliveries/{delivery.pk}/")).split('id="delivery-logs"', 1)[1]
    section = section.split("</section>", 1)[0]
    texts = re.findall(r'<span class="log-text">(.*?)</span>', section)
    assert texts == [f"n{i}" for i in range(200)]
    assert "Lines that name this delivery: the first 200." in section
    assert "All of its lines in the Logs panel" in section


# A crash


def test_a_pod_killed_for_memory_shows_its_last_lines_on_the_trigger_page(bob, hello):
    hello.pods = [{"name": POD, "phase": "Running", "ready": False, "restarts": 1, "reason": "OOMKilled (Running)",
                   "last_exit": "OOMKilled"},
                  {"name": OTHER_POD, "phase": "Running", "ready": True, "restarts": 0, "reason": "",
                   "last_exit": ""}]
    hello.save()
    lines(hello, 30, pod=POD)
    line(hello, "healthy pod's line", pod=OTHER_POD)
    html = page(signed_in(bob).get(DETAIL))
    section = html.split('id="crash-logs-1"', 1)[1].split("</section>", 1)[0]
    assert f"Last lines before <code>{POD}</code> stopped" in section and "OOMKilled" in section
    assert re.findall(r'<span class="log-text">(.*?)</span>', section) == [f"line {i}" for i in range(10, 30)]
    assert 'id="crash-logs-2"' not in html  # the healthy pod has none


def test_a_failed_trigger_without_pods_shows_the_last_lines_of_its_last_pod(bob, hello):
    Trigger.objects.filter(pk=hello.pk).update(ready_status="False", ready_reason="ExitCode1")
    line(hello, "Traceback: it broke", pod=OTHER_POD)
    line(hello, "older pod's line", pod=POD, at=timezone.now() - timedelta(hours=1))
    html = page(signed_in(bob).get(DETAIL))
    section = html.split('id="crash-logs-1"', 1)[1].split("</section>", 1)[0]
    assert f"Last lines before <code>{OTHER_POD}</code> stopped" in section
    assert "Traceback: it broke" in section and "older pod's line" not in section


def test_healthy_pods_show_no_crash_section(bob, hello):
    hello.pods = [{"name": POD, "phase": "Running", "ready": True, "restarts": 0, "reason": "", "last_exit": ""}]
    hello.save()
    line(hello, "fine")
    assert "crash-logs" not in page(signed_in(bob).get(DETAIL))


# Who may read


def test_viewers_read_the_logs_page_and_download(bob, hello):
    line(hello, "for everyone")
    assert shown(page(signed_in(bob).get(LOGS))) == ["for everyone"]
    assert signed_in(bob).get(DOWNLOAD).status_code == 200


@pytest.mark.parametrize("url", [LOGS, DOWNLOAD, f"{LOGS}?pod=x"])
def test_another_tenant_gets_404_and_anonymous_users_sign_in(charlie, tenant_b, hello, url):
    line(hello, "secret line")
    response = signed_in(charlie).get(url)
    assert response.status_code == 404 and b"secret line" not in response.content
    anonymous = Client().get(url)
    assert anonymous.status_code == 302 and anonymous["Location"].startswith("/login/")


def test_the_logs_page_reads_a_fixed_number_of_queries(bob, hello, django_assert_max_num_queries):
    client = signed_in(bob)
    lines(hello, 5)
    with django_assert_max_num_queries(30) as few:
        client.get(LOGS)
    lines(hello, 300, start=timezone.now() - timedelta(minutes=5))
    with django_assert_max_num_queries(len(few.captured_queries)):
        client.get(LOGS)
