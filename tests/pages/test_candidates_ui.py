"""Candidate replay pages (issue 16, item 5): the list with "Replay the last N to the candidate", a replay's
original and candidate outcomes side by side with an escaped line diff of the bodies, Promote for editors; roles,
tenant isolation, and no inline script or style (the CSP is strict). Rows are created directly; runs against
kubesim are in tests/deliveries/test_candidate_replays.py."""

from __future__ import annotations

import json
import re
from html import unescape

import pytest
import redis
from django.conf import settings
from django.test import Client
from django.utils import timezone

from tenants.models import AuditEntry
from triggers.models import CandidateReplay, CandidateResult, Delivery, Deployment, Trigger
from triggers.pages.candidates import body_diff

pytestmark = pytest.mark.django_db
LIST = "/t/acme/triggers/hello/candidate-replays/"
TRAFFIC = [{"revisionName": "hello-00001", "percent": 100, "latestRevision": False},
           {"revisionName": "hello-00002", "percent": 0, "latestRevision": True, "tag": "candidate",
            "url": "http://candidate-hello.acme.svc.cluster.local"}]


@pytest.fixture(autouse=True)
def _no_rate_counts():
    with redis.Redis.from_url(settings.REDIS_URL) as client:
        keys = list(client.scan_iter(match="relayweb:candidate-replays:*"))
        if keys:
            client.delete(*keys)


def signed_in(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def page(response) -> str:
    return unescape(response.content.decode())


@pytest.fixture
def hello(tenant_a, alice):
    return Trigger.objects.create(tenant=tenant_a, name="hello", image="kubesim/echo", traffic_status=TRAFFIC,
                                  latest_created_revision="hello-00002", latest_ready_revision="hello-00002",
                                  address_url="http://hello.acme.svc.cluster.local")


@pytest.fixture
def replay(hello):
    replay = CandidateReplay.objects.create(trigger=hello, revision="hello-00002", state="done",
                                            finished_at=timezone.now())
    now = timezone.now()
    original = json.dumps({"revision": "hello-00001", "n": 1}).encode()
    candidate = json.dumps({"revision": "hello-00002", "n": 1}).encode()
    CandidateResult.objects.create(replay=replay, position=0, method="POST", path="/orders", original_status=200,
                                   original_body=original, candidate_status=503, candidate_body=candidate,
                                   original_latency_ms=10, candidate_latency_ms=20, sent_at=now)
    CandidateResult.objects.create(replay=replay, position=1, method="POST", path="/same", original_status=200,
                                   original_body=b"ok", candidate_status=200, candidate_body=b"ok", sent_at=now)
    CandidateResult.objects.create(replay=replay, position=2, method="POST", path="/xss", original_status=200,
                                   original_body=b"<b>old</b>", candidate_status=200,
                                   candidate_body=b"<script>alert(1)</script>", sent_at=now)
    return replay


def test_the_deliveries_page_links_to_candidate_replays(bob, hello):
    assert f'href="{LIST}"' in signed_in(bob).get("/t/acme/triggers/hello/deliveries/").content.decode()


def test_the_list_shows_the_candidate_and_the_replay_form_to_editors(alice, bob, hello, replay):
    html = page(signed_in(alice).get(LIST))
    assert "hello-00002" in html and "candidate-hello.acme.svc.cluster.local" in html
    assert 'id="candidate-replay-form"' in html and f"{LIST}{replay.pk}/" in html
    viewer = page(signed_in(bob).get(LIST))
    assert "hello-00002" in viewer and 'id="candidate-replay-form"' not in viewer


def test_without_a_candidate_tag_the_list_says_how_to_get_one(alice, hello):
    Trigger.objects.filter(pk=hello.pk).update(traffic_status=TRAFFIC[:1])
    html = page(signed_in(alice).get(LIST))
    assert 'id="no-candidate"' in html and "Deploy one as a candidate" in html
    assert 'id="candidate-replay-form"' not in html


def test_replay_the_last_n_starts_a_replay_and_shows_it(alice, hello):
    for i in range(3):
        Delivery.objects.create(trigger=hello, mode="sync", method="POST", path=f"/{i}", state="succeeded",
                                response_status=200)
    client = signed_in(alice)
    response = client.post(LIST + "start/", {"last": "2", "state": "", "response_status": ""})
    replay = CandidateReplay.objects.get()
    assert response.status_code == 302 and response["Location"] == f"{LIST}{replay.pk}/"
    assert replay.results.count() == 2 and replay.created_by == alice
    html = page(client.get(response["Location"]))
    assert "Replaying 2 deliveries" in html and '<meta http-equiv="refresh"' in html and "waiting" in html


@pytest.mark.parametrize("data,message", [({"last": "x"}, "A number from 1 to 100"),
                                          ({"last": "500"}, "A number from 1 to 100"),
                                          ({"last": "5", "response_status": "42"}, "")])
def test_bad_replay_input_is_shown_and_nothing_starts(alice, hello, data, message):
    Delivery.objects.create(trigger=hello, mode="sync", method="POST", path="/", state="succeeded")
    response = signed_in(alice).post(LIST + "start/", data, follow=True)
    assert response.status_code == 200 and response.redirect_chain[-1][0] == LIST
    assert message in page(response)
    assert not CandidateReplay.objects.exists()


def test_the_detail_shows_both_outcomes_and_an_escaped_line_diff(bob, replay):
    response = signed_in(bob).get(f"{LIST}{replay.pk}/")
    raw = response.content.decode()
    html = unescape(raw)
    assert 'id="result-0"' in raw and "status differs" in html and "body differs" in html
    assert re.search(r'class="status-original">200<', raw) and re.search(r'class="status-candidate">503<', raw)
    assert '<span class="diff-del">-  "revision": "hello-00001"</span>' in html
    assert '<span class="diff-add">+  "revision": "hello-00002"</span>' in html
    assert "same body" in html  # /same
    # a body is text, never markup: escaped in the page
    assert "<script>alert(1)</script>" not in raw and "&lt;script&gt;alert(1)&lt;/script&gt;" in raw
    # strict CSP: no inline script or style in what this page adds
    assert not re.search(r"<script(?![^>]*\bsrc=)[^>]*>", raw) and " style=" not in raw and "<style" not in raw
    assert 'id="promote"' not in raw  # viewers do not promote


def test_body_diff_handles_same_binary_and_long_bodies():
    assert body_diff(b"a", b"a")["same"]
    assert body_diff(b"\xff", b"a")["binary"]
    diff = body_diff("\n".join(map(str, range(2000))).encode(), b"")
    assert diff["cut"] > 0 and len(diff["lines"]) == 400


def test_an_editor_promotes_the_candidate(alice, replay):
    html = page(signed_in(alice).get(f"{LIST}{replay.pk}/"))
    assert 'id="promote"' in html and "Promote hello-00002" in html
    response = signed_in(alice).post(f"{LIST}{replay.pk}/promote/")
    assert response.status_code == 302 and response["Location"] == "/t/acme/triggers/hello/"
    assert Deployment.objects.filter(trigger=replay.trigger).count() == 1
    assert AuditEntry.objects.filter(action="trigger.promote").exists()


def test_promote_is_refused_once_the_tag_moved(alice, replay, hello):
    Trigger.objects.filter(pk=hello.pk).update(traffic_status=[TRAFFIC[0], {**TRAFFIC[1], "revisionName": "x-3"}])
    html = page(signed_in(alice).get(f"{LIST}{replay.pk}/"))
    assert 'id="tag-moved"' in html and 'id="promote"' not in html
    response = signed_in(alice).post(f"{LIST}{replay.pk}/promote/", follow=True)
    assert "has moved" in page(response) and not Deployment.objects.exists()


def test_viewers_cannot_start_or_promote(bob, replay):
    assert signed_in(bob).post(LIST + "start/", {"last": "1"}).status_code == 403
    assert signed_in(bob).post(f"{LIST}{replay.pk}/promote/").status_code == 403
    assert not Deployment.objects.exists()


def test_other_tenants_and_anonymous_are_refused(charlie, tenant_b, replay):
    urls = [LIST, f"{LIST}{replay.pk}/"]
    for url in urls:
        assert signed_in(charlie).get(url).status_code == 404
        assert Client().get(url).status_code == 302  # to sign in
    assert signed_in(charlie).post(LIST + "start/", {"last": "1"}).status_code == 404
    assert signed_in(charlie).post(f"{LIST}{replay.pk}/promote/").status_code == 404
    assert Client().post(f"{LIST}{replay.pk}/promote/").status_code == 302
