"""A trigger's handler logs over the API: filters, pages by cursor, a delivery's lines, the lines before a crash."""

from __future__ import annotations

import random
import uuid
from datetime import timedelta
from urllib.parse import parse_qs, urlsplit

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from triggers.logs import queries
from triggers.models import Delivery, DeliveryAttempt, LogLine, Trigger

pytestmark = pytest.mark.django_db

BASE = "/api/v1/tenants/acme/triggers/hello/logs/"


@pytest.fixture
def hello(tenant_a):
    return Trigger.objects.create(tenant=tenant_a, name="hello", image="kubesim/echo", timeout_seconds=60)


@pytest.fixture
def start():
    return (timezone.now() - timedelta(hours=1)).replace(microsecond=0)


def line(trigger, time, text="line", pod="hello-1", revision="hello-00001", **extra) -> LogLine:
    return LogLine.objects.create(trigger=trigger, time=time, text=text, pod=pod, revision=revision, **extra)


def texts(body) -> list[str]:
    return [r["text"] for r in body["results"]]


def follow(client, url, key) -> list[list[int]]:
    """Every page from url on, following `key` (next: older, previous: newer) until it is null."""
    pages = []
    while url:
        body = client.get(url).json()
        pages.append([r["id"] for r in body["results"]])
        url = body[key]
    return pages


@pytest.fixture
def many(hello, start):
    """250 lines, in runs of 7 with the same timestamp, written out of order (as a collector of several pods
    does): ids do not follow times."""
    times = [start + timedelta(seconds=i // 7) for i in range(250)]
    random.Random(15).shuffle(times)
    LogLine.objects.bulk_create(LogLine(trigger=hello, time=t, pod="hello-1", text=f"at {t:%M:%S}") for t in times)
    return list(LogLine.objects.filter(trigger=hello).order_by("time", "id").values_list("id", flat=True))


def test_default_page_is_the_newest_lines_oldest_first(api, alice, many):
    body = api(alice).get(BASE).json()
    assert [r["id"] for r in body["results"]] == many[-100:]
    assert body["previous"] is None and body["delivery_match"] is None
    assert parse_qs(urlsplit(body["next"]).query) == {"before": [str(many[-100])]}
    assert set(body["results"][0]) == {"id", "time", "pod", "revision", "container", "stream", "text", "cut"}


def test_paging_older_then_newer_shows_every_line_once(api, alice, many):
    client = api(alice)
    older = follow(client, BASE + "?page_size=40", "next")
    assert [len(p) for p in older] == [40] * 6 + [10]
    assert [i for page in reversed(older) for i in page] == many
    # from the oldest page back to the newest: the same lines, the same order
    oldest = client.get(BASE + f"?page_size=40&before={older[-2][0]}").json()
    assert oldest["next"] is None and [r["id"] for r in oldest["results"]] == many[:10]
    newer = follow(client, oldest["previous"], "previous")
    assert [i for page in [many[:10], *newer] for i in page] == many
    assert all(len(p) == 40 for p in newer)


def test_lines_written_while_paging_do_not_shift_the_pages(api, alice, hello, many, start):
    client = api(alice)
    first = client.get(BASE + "?page_size=50").json()
    for i in range(30):  # new lines, and a late one from another pod inside the range already shown
        line(hello, start + timedelta(minutes=10, seconds=i), text=f"new {i}")
    line(hello, start + timedelta(seconds=20), text="late", pod="hello-2")
    rest = follow(client, first["next"], "next")
    seen = [r["id"] for r in first["results"]] + [i for page in rest for i in page]
    assert len(seen) == len(set(seen)) and set(many) <= set(seen)
    assert first["previous"] is None  # nothing newer then; a reader following the log asks after its newest line
    newer = client.get(BASE + f"?after={first['results'][-1]['id']}").json()
    assert texts(newer) == [f"new {i}" for i in range(30)] and newer["previous"] is None


def test_each_filter_narrows_the_lines(api, bob, hello, start):
    line(hello, start, "Booting", pod="hello-1", revision="hello-00001")
    line(hello, start + timedelta(minutes=1), "GET / 200", pod="hello-2", revision="hello-00002")
    line(hello, start + timedelta(minutes=2), "ERROR: boom", pod="hello-2", revision="hello-00002")
    line(hello, start - timedelta(days=8), "error long ago")
    client = api(bob)
    since = (start + timedelta(seconds=30)).isoformat()
    until = (start + timedelta(seconds=90)).isoformat()
    assert texts(client.get(BASE, {"since": since}).json()) == ["GET / 200", "ERROR: boom"]
    assert texts(client.get(BASE, {"until": until}).json()) == ["error long ago", "Booting", "GET / 200"]
    assert texts(client.get(BASE, {"since": since, "until": until}).json()) == ["GET / 200"]
    assert texts(client.get(BASE, {"pod": "hello-1"}).json()) == ["error long ago", "Booting"]
    assert texts(client.get(BASE, {"revision": "hello-00002"}).json()) == ["GET / 200", "ERROR: boom"]
    assert texts(client.get(BASE, {"pod": "nope"}).json()) == []
    # text search: any case, the last 7 days unless since says otherwise (and at most 7 days)
    assert texts(client.get(BASE, {"q": "error"}).json()) == ["ERROR: boom"]
    old = (start - timedelta(days=9)).isoformat()
    assert texts(client.get(BASE, {"q": "ERROR", "since": old, "until": (start - timedelta(days=3)).isoformat()})
                 .json()) == ["error long ago"]
    refused = client.get(BASE, {"q": "error", "since": old})
    assert refused.status_code == 400 and "7 days" in refused.json()["q"][0]


def test_another_triggers_lines_are_not_shown(api, alice, hello, tenant_a, start):
    other = Trigger.objects.create(tenant=tenant_a, name="other", image="x/y")
    line(hello, start, "mine")
    line(other, start, "theirs")
    assert texts(api(alice).get(BASE).json()) == ["mine"]


def test_a_delivery_named_by_its_lines(api, alice, hello, start):
    delivery = Delivery.objects.create(trigger=hello, mode="sync", method="POST", received_at=start,
                                       latency_ms=500, attempts=1, state="succeeded")
    line(hello, start, "request id=" + str(delivery.pk), delivery_id=delivery.pk)
    line(hello, start + timedelta(milliseconds=100), "unrelated, same time")
    line(hello, start + timedelta(minutes=5), "later, naming it", delivery_id=delivery.pk)
    lines, match = queries.for_delivery(delivery)
    assert match == queries.NAMED and [x.text for x in lines][1] == "later, naming it"
    body = api(alice).get(BASE, {"delivery": str(delivery.pk)}).json()
    assert body["delivery_match"] == "named" and len(body["results"]) == 2


def test_a_delivery_without_named_lines_gets_those_of_its_forward_window(api, alice, hello, start):
    delivery = Delivery.objects.create(trigger=hello, mode="sync", method="POST", received_at=start,
                                       latency_ms=2000, attempts=1, state="succeeded")
    other = uuid.uuid4()
    line(hello, start - timedelta(seconds=5), "before")
    line(hello, start - timedelta(milliseconds=500), "just before (slack)")
    line(hello, start + timedelta(seconds=1), "during", pod="hello-2")
    line(hello, start + timedelta(seconds=1), "another delivery's", delivery_id=other)
    line(hello, start + timedelta(milliseconds=2900), "just after (slack)")
    line(hello, start + timedelta(seconds=4), "after")
    lines, match = queries.for_delivery(delivery)
    assert match == queries.WINDOW
    assert [x.text for x in lines] == ["just before (slack)", "during", "just after (slack)"]
    body = api(alice).get(BASE, {"delivery": str(delivery.pk), "pod": "hello-2"}).json()
    assert (body["delivery_match"], texts(body)) == ("window", ["during"])


def test_an_async_delivery_window_follows_its_attempts(hello, start):
    delivery = Delivery.objects.create(trigger=hello, mode="async", method="POST", received_at=start,
                                       attempts=2, state="failed")
    # attempt rows are written after the forward: the window reaches back by the latency
    DeliveryAttempt.objects.create(delivery=delivery, number=1, started_at=start + timedelta(minutes=1),
                                   latency_ms=3000, status=503)
    DeliveryAttempt.objects.create(delivery=delivery, number=2, started_at=start + timedelta(minutes=5),
                                   latency_ms=None, error="timeout")  # unknown latency: at most 30 s
    line(hello, start, "at receipt, not forwarded yet")
    line(hello, start + timedelta(minutes=1) - timedelta(seconds=2), "first attempt")
    line(hello, start + timedelta(minutes=5, seconds=20), "second attempt")
    line(hello, start + timedelta(minutes=6), "after both")
    lines, match = queries.for_delivery(delivery)
    assert (match, [x.text for x in lines]) == (queries.WINDOW, ["first attempt", "second attempt"])
    rejected = Delivery.objects.create(trigger=hello, mode="sync", method="POST", received_at=start,
                                       state="rejected")
    assert list(queries.for_delivery(rejected)[0]) == []  # never forwarded: no window


def test_a_delivery_of_another_trigger_is_a_400_naming_it(api, alice, hello, tenant_a, start):
    other = Trigger.objects.create(tenant=tenant_a, name="other", image="x/y")
    theirs = Delivery.objects.create(trigger=other, mode="sync", method="POST", received_at=start)
    line(hello, start, "x", delivery_id=theirs.pk)
    for value in (str(theirs.pk), str(uuid.uuid4()), "not-a-uuid"):
        response = api(alice).get(BASE, {"delivery": value})
        assert response.status_code == 400 and "delivery" in response.json(), value


def test_last_lines_before_a_crash(hello, start):
    for i in range(30):
        line(hello, start + timedelta(seconds=i), f"one {i}", pod="hello-1")
        line(hello, start + timedelta(seconds=i), f"two {i}", pod="hello-2")
    crash = start + timedelta(seconds=24)
    assert [x.text for x in queries.last_lines_before(hello, crash, pod="hello-2", n=3)] == [
        "two 22", "two 23", "two 24"]
    both = queries.last_lines_before(hello, crash)
    assert len(both) == 20 and both[-1].time == crash and both[0].time == start + timedelta(seconds=15)


@pytest.mark.parametrize("params, field", [
    ({"since": "garbage"}, "since"),
    ({"until": "2024-13-45T99:00:00"}, "until"),
    ({"since": "2024-06-02T00:00:00Z", "until": "2024-06-01T00:00:00Z"}, "until"),
    ({"q": "x" * 1000}, "q"),
    ({"q": "a\x00b"}, "q"),
    ({"delivery": "not-a-uuid"}, "delivery"),
    ({"before": "garbage"}, "before"),
    ({"after": "-3"}, "after"),
    ({"before": str(2**70)}, "before"),
    ({"before": "999999"}, "before"),  # no such line
    ({"before": "1", "after": "2"}, "after"),
    ({"page_size": "0"}, "page_size"),
    ({"page_size": "1000"}, "page_size"),
])
def test_bad_parameters_are_a_400_naming_the_field(api, alice, hello, params, field):
    response = api(alice).get(BASE, params)
    assert response.status_code == 400, response.content
    assert field in response.json()


def test_a_search_ending_in_year_one_is_no_server_error(api, alice, hello):
    assert api(alice).get(BASE, {"q": "x", "until": "0001-01-02T00:00:00Z"}).json()["results"] == []


def test_members_read_others_do_not(api, alice, bob, charlie, hello, tenant_b, start):
    line(hello, start, "secret")
    assert api(alice).get(BASE).status_code == 200
    assert texts(api(bob).get(BASE).json()) == ["secret"]  # viewers read
    assert api(charlie).get(BASE).status_code == 404
    Trigger.objects.create(tenant=tenant_b, name="hello", image="x/y")
    assert texts(api(charlie).get("/api/v1/tenants/globex/triggers/hello/logs/").json()) == []
    assert api(None).get(BASE).status_code == 401
    assert api(alice).get("/api/v1/tenants/acme/triggers/nope/logs/").status_code == 404


def test_token_auth_reads_the_logs(client, alice, hello, token_for):
    response = client.get(BASE, HTTP_AUTHORIZATION=f"Token {token_for(alice)}")
    assert response.status_code == 200


def test_queries_do_not_grow_with_the_lines(api, alice, hello, start, django_assert_max_num_queries):
    delivery = Delivery.objects.create(trigger=hello, mode="sync", method="POST", received_at=start,
                                       latency_ms=1000, attempts=1)
    line(hello, start, "x")
    client = api(alice)
    url = BASE + "?delivery={}&q=x&since={}&before={}"
    cursor = line(hello, start, "y")
    with CaptureQueriesContext(connection) as few:
        assert client.get(url.format(delivery.pk, start.isoformat().replace("+", "%2B"), cursor.pk)).status_code == 200
    LogLine.objects.bulk_create(LogLine(trigger=hello, time=start + timedelta(milliseconds=i), pod="p", text="x")
                                for i in range(500))
    last = line(hello, start + timedelta(seconds=1), "z")
    with django_assert_max_num_queries(len(few.captured_queries)):
        body = client.get(url.format(delivery.pk, start.isoformat().replace("+", "%2B"), last.pk)).json()
    assert len(body["results"]) == 100 and body["delivery_match"] == "window"
    assert not any("COUNT(" in q["sql"].upper() for q in few.captured_queries)


def test_the_schema_documents_the_endpoint(client):
    schema = client.get("/api/schema/?format=json").json()
    operation = schema["paths"]["/api/v1/tenants/{tenant_slug}/triggers/{trigger_name}/logs/"]["get"]
    names = {p["name"] for p in operation["parameters"]}
    assert {"since", "until", "q", "pod", "revision", "delivery", "before", "after", "page_size"} <= names
    page = operation["responses"]["200"]["content"]["application/json"]["schema"]["$ref"].rsplit("/", 1)[1]
    assert "older" in schema["components"]["schemas"][page]["properties"]["next"]["description"]
