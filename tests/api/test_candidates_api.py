"""Candidate replays API (issue 16, item 5): start (ids or the last N with the delivery list's filters), list,
detail with the comparison, promote; roles, tenant isolation, limits, bad input naming the field, the schema and
the audit log. Rows are created directly and the candidate tag is set as the status code would observe it;
nothing is run (the start's task is queued on commit, which these non-transactional tests never reach). The
runs themselves are in tests/deliveries/test_candidate_replays.py, against kubesim."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
import redis
from django.conf import settings
from django.utils import timezone

from tenants.models import AuditEntry, Membership, Role
from triggers.models import CandidateReplay, CandidateResult, Delivery, Deployment, Trigger

pytestmark = pytest.mark.django_db
URL = "/api/v1/tenants/acme/triggers/hello/candidate-replays/"
TRAFFIC = [{"revisionName": "hello-00001", "percent": 100, "latestRevision": False},
           {"revisionName": "hello-00002", "percent": 0, "latestRevision": True, "tag": "candidate",
            "url": "http://candidate-hello.acme.svc.cluster.local"}]


@pytest.fixture(autouse=True)
def _no_rate_counts():
    with redis.Redis.from_url(settings.REDIS_URL) as client:
        keys = list(client.scan_iter(match="relayweb:candidate-replays:*"))
        if keys:
            client.delete(*keys)


@pytest.fixture
def editor(tenant_a, django_user_model):
    user = django_user_model.objects.create_user("edna", password="x")
    Membership.objects.create(tenant=tenant_a, user=user, role=Role.EDITOR)
    return user


@pytest.fixture
def hello(tenant_a, alice):
    return Trigger.objects.create(tenant=tenant_a, name="hello", image="kubesim/echo", created_by=alice,
                                  traffic_status=TRAFFIC, latest_created_revision="hello-00002",
                                  latest_ready_revision="hello-00002",
                                  address_url="http://hello.acme.svc.cluster.local")


def delivery(trigger, minutes_ago=0, **fields) -> Delivery:
    values = {"mode": "sync", "method": "POST", "path": "/", "state": "succeeded", "response_status": 200,
              "response_body": b'{"ok": true}', "latency_ms": 12.5,
              "received_at": timezone.now() - timedelta(minutes=minutes_ago)}
    return Delivery.objects.create(trigger=trigger, **{**values, **fields})


def test_an_editor_replays_chosen_deliveries_in_the_order_given(api, editor, hello):
    a, b = delivery(hello, 2), delivery(hello, 1)
    response = api(editor).post(URL, {"deliveries": [str(b.pk), str(a.pk)]}, format="json")
    assert response.status_code == 202, response.json()
    body = response.json()
    assert (body["state"], body["revision"], body["deliveries"], body["created_by"]) == (
        "pending", "hello-00002", 2, "edna")
    assert [r["delivery"] for r in body["results"]] == [str(b.pk), str(a.pk)]
    first = body["results"][0]
    assert (first["original_status"], first["original_latency_ms"], first["original_body"]) == (200, 12.5,
                                                                                                '{"ok": true}')
    assert (first["candidate_status"], first["same_status"], first["same_body"]) == (None, None, None)
    entry = AuditEntry.objects.get(action="trigger.candidate_replay")
    assert entry.actor_label == "edna" and entry.changes["deliveries"] == 2


def test_last_n_takes_the_newest_matching_the_delivery_filters_oldest_first(api, alice, hello):
    old = delivery(hello, 30, response_status=500, state="failed")
    mid = delivery(hello, 20, response_status=500, state="failed")
    new = delivery(hello, 10, response_status=500, state="failed")
    delivery(hello, 5)  # a 200: filtered out
    delivery(hello, 1, response_status=500, state="rejected")  # failed verification: never replayed
    response = api(alice).post(URL, {"last": 2, "response_status": 500}, format="json")
    assert response.status_code == 202, response.json()
    assert [r["delivery"] for r in response.json()["results"]] == [str(mid.pk), str(new.pk)]
    assert str(old.pk) not in str(response.json())


def test_without_a_candidate_tag_the_error_names_it(api, alice, hello):
    Trigger.objects.filter(pk=hello.pk).update(traffic_status=TRAFFIC[:1])
    delivery(hello)
    response = api(alice).post(URL, {"last": 1}, format="json")
    assert response.status_code == 400
    assert "`candidate`" in response.json()["detail"] and "deploy one as a candidate" in response.json()["detail"]


@pytest.mark.parametrize("data,field", [
    ({}, "deliveries"),
    ({"deliveries": [], "last": 1}, "deliveries"),
    ({"deliveries": []}, "deliveries"),
    ({"deliveries": ["nope"]}, "deliveries"),
    ({"deliveries": "abc"}, "deliveries"),
    ({"deliveries": [str(uuid.uuid4())]}, "deliveries"),
    ({"deliveries": [str(uuid.uuid4()) for _ in range(101)]}, "deliveries"),
    ({"last": 0}, "last"),
    ({"last": 101}, "last"),
    ({"last": "5"}, "last"),
    ({"last": True}, "last"),
    ({"last": 5, "state": "bogus"}, "state"),
    ({"last": 5, "response_status": "x"}, "response_status"),
    ({"last": 5, "colour": "red"}, "colour"),
    ({"last": 5, "received_after": "2026-01-02T00:00:00Z", "received_before": "2026-01-01T00:00:00Z"},
     "received_before"),
    ({"deliveries": ["x"], "state": "failed"}, "state"),
])
def test_bad_input_is_a_400_naming_the_field(api, alice, hello, data, field):
    delivery(hello)
    response = api(alice).post(URL, data, format="json")
    assert response.status_code == 400, response.content
    assert field in response.json(), response.json()
    assert not CandidateReplay.objects.exists()


def test_a_body_that_is_not_an_object_is_a_400(api, alice, hello):
    assert api(alice).post(URL, [1, 2], format="json").status_code == 400


def test_another_triggers_delivery_cannot_be_replayed(api, alice, hello, tenant_a):
    other = Trigger.objects.create(tenant=tenant_a, name="other", image="kubesim/echo")
    response = api(alice).post(URL, {"deliveries": [str(delivery(other).pk)]}, format="json")
    assert response.status_code == 400 and "Not deliveries of trigger hello" in response.json()["deliveries"][0]


def test_a_rejected_delivery_is_refused(api, alice, hello):
    response = api(alice).post(URL, {"deliveries": [str(delivery(hello, state="rejected").pk)]}, format="json")
    assert response.status_code == 400 and "signature" in response.json()["deliveries"][0]


def test_a_suspended_trigger_is_refused(api, alice, hello):
    Trigger.objects.filter(pk=hello.pk).update(suspended=True)
    delivery(hello)
    response = api(alice).post(URL, {"last": 1}, format="json")
    assert response.status_code == 400 and "suspended" in response.json()["detail"]


def test_one_replay_at_a_time_per_trigger(api, alice, hello):
    delivery(hello)
    assert api(alice).post(URL, {"last": 1}, format="json").status_code == 202
    response = api(alice).post(URL, {"last": 1}, format="json")
    assert response.status_code == 429 and int(response["Retry-After"]) > 0
    assert "still running" in response.json()["detail"]
    # a replay whose worker was lost long ago no longer holds the slot
    CandidateReplay.objects.update(created_at=timezone.now() - timedelta(days=1))
    assert api(alice).post(URL, {"last": 1}, format="json").status_code == 202


def test_a_few_replays_a_minute_per_user(api, alice, hello, settings):
    settings.RELAY_CANDIDATE_REPLAYS_PER_MINUTE = 2
    delivery(hello)
    for _ in range(2):
        assert api(alice).post(URL, {"last": 1}, format="json").status_code == 202
        CandidateReplay.objects.update(state="done")
    response = api(alice).post(URL, {"last": 1}, format="json")
    assert response.status_code == 429 and 1 <= int(response["Retry-After"]) <= 60
    assert "2 candidate replays a minute" in response.json()["detail"]
    assert CandidateReplay.objects.count() == 2


def test_viewers_read_but_cannot_start_or_promote(api, bob, alice, hello):
    replay = CandidateReplay.objects.create(trigger=hello, revision="hello-00002", state="done")
    delivery(hello)
    assert api(bob).post(URL, {"last": 1}, format="json").status_code == 403
    assert api(bob).post(f"{URL}{replay.pk}/promote/").status_code == 403
    assert api(bob).get(URL).status_code == 200
    assert api(bob).get(f"{URL}{replay.pk}/").status_code == 200


def test_other_tenants_and_anonymous_are_refused(api, charlie, tenant_b, hello):
    replay = CandidateReplay.objects.create(trigger=hello, revision="hello-00002")
    for url in (URL, f"{URL}{replay.pk}/"):
        assert api(charlie).get(url).status_code == 404
        assert api(None).get(url).status_code in (401, 403)
    assert api(charlie).post(URL, {"last": 1}, format="json").status_code == 404
    assert api(charlie).post(f"{URL}{replay.pk}/promote/").status_code == 404
    # and another trigger's replay is not found under this one
    other = Trigger.objects.create(tenant=hello.tenant, name="other", image="kubesim/echo")
    theirs = CandidateReplay.objects.create(trigger=other)
    assert api(None).get(f"{URL}{theirs.pk}/").status_code in (401, 403)


def test_list_is_paginated_newest_first_with_counts(api, bob, alice, hello):
    older = CandidateReplay.objects.create(trigger=hello, state="done", created_at=timezone.now() - timedelta(1))
    newer = CandidateReplay.objects.create(trigger=hello, state="done")
    CandidateResult.objects.create(replay=newer, position=0, original_status=200, candidate_status=200,
                                   sent_at=timezone.now())
    CandidateResult.objects.create(replay=newer, position=1, original_status=200, candidate_status=503,
                                   sent_at=timezone.now())
    body = api(bob).get(URL + "?page_size=1").json()
    assert body["count"] == 2 and body["next"]
    assert body["results"][0]["id"] == str(newer.pk)
    assert (body["results"][0]["deliveries"], body["results"][0]["answered"], body["results"][0]["same_status"]) == (
        2, 2, 1)
    assert api(bob).get(body["next"]).json()["results"][0]["id"] == str(older.pk)


def test_detail_compares_statuses_and_bodies_and_base64s_binary(api, bob, hello):
    replay = CandidateReplay.objects.create(trigger=hello, state="done")
    now = timezone.now()
    CandidateResult.objects.create(replay=replay, position=0, original_status=200, original_body=b"same",
                                   candidate_status=200, candidate_body=b"same", sent_at=now)
    CandidateResult.objects.create(replay=replay, position=1, original_status=200, original_body=b"a",
                                   candidate_status=200, candidate_body=b"\xff\xfe", sent_at=now,
                                   candidate_headers=[["Content-Type", "application/octet-stream"]])
    CandidateResult.objects.create(replay=replay, position=2, original_status=200, sent_at=now,
                                   error="The gateway is unreachable: MaxRetryError.")
    results = api(bob).get(f"{URL}{replay.pk}/").json()["results"]
    assert [(r["same_status"], r["same_body"]) for r in results] == [(True, True), (True, False), (None, None)]
    assert (results[1]["candidate_body"], results[1]["candidate_body_encoding"]) == ("//4=", "base64")
    assert results[1]["candidate_headers"] == [["Content-Type", "application/octet-stream"]]
    assert results[2]["error"].startswith("The gateway is unreachable")


def test_unknown_ids_are_404(api, alice, hello):
    assert api(alice).get(f"{URL}{uuid.uuid4()}/").status_code == 404
    assert api(alice).get(f"{URL}not-a-uuid/").status_code == 404
    assert api(alice).get("/api/v1/tenants/acme/triggers/nope/candidate-replays/").status_code == 404


def test_promote_gives_the_candidate_all_the_traffic(api, editor, hello):
    replay = CandidateReplay.objects.create(trigger=hello, revision="hello-00002", state="done")
    response = api(editor).post(f"{URL}{replay.pk}/promote/")
    assert response.status_code == 202, response.json()
    deployment = Deployment.objects.get(pk=response.json()["id"])
    assert deployment.trigger == hello
    hello.refresh_from_db()
    assert [(t.get("latest"), t.get("percent"), t.get("tag") or "") for t in hello.traffic] in (
        [], [(True, 100, "")])  # follow the latest revision again, without the tag
    assert AuditEntry.objects.filter(action="trigger.promote", actor_label="edna").exists()


def test_promote_pins_a_candidate_that_is_not_the_latest_revision(api, alice, hello):
    traffic = [dict(TRAFFIC[0]), {**TRAFFIC[1], "latestRevision": False}]
    Trigger.objects.filter(pk=hello.pk).update(traffic_status=traffic, latest_created_revision="hello-00003")
    replay = CandidateReplay.objects.create(trigger=hello, revision="hello-00002", state="done")
    response = api(alice).post(f"{URL}{replay.pk}/promote/")
    # pinning reads the cluster's revisions; without a cluster that is a 503, never a 500
    assert response.status_code in (202, 503), response.content
    if response.status_code == 202:
        hello.refresh_from_db()
        assert [(t["revision"], t["percent"]) for t in hello.traffic] == [("hello-00002", 100)]


@pytest.mark.parametrize("state,traffic,message", [
    ("running", TRAFFIC, "promote after a replay that is done"),
    ("done", TRAFFIC[:1], "`candidate`"),
    ("done", [TRAFFIC[0], {**TRAFFIC[1], "revisionName": "hello-00003"}], "has moved"),
])
def test_promote_is_refused_when_it_would_not_promote_what_was_replayed(api, alice, hello, state, traffic, message):
    Trigger.objects.filter(pk=hello.pk).update(traffic_status=traffic)
    replay = CandidateReplay.objects.create(trigger=hello, revision="hello-00002", state=state)
    response = api(alice).post(f"{URL}{replay.pk}/promote/")
    assert response.status_code == 400 and message in response.json()["detail"], response.json()
    assert not Deployment.objects.exists()


def test_the_schema_documents_the_endpoints(api, alice):
    schema = api(alice).get("/api/schema/?format=json").json()
    paths = schema["paths"]
    base = "/api/v1/tenants/{tenant_slug}/triggers/{trigger_name}/candidate-replays/"
    assert {"get", "post"} <= set(paths[base])
    assert "get" in paths[base + "{id}/"] and "post" in paths[base + "{id}/promote/"]
    assert {"CandidateReplayStart", "CandidateReplayStartRequest"} & set(schema["components"]["schemas"])
    assert "same_body" in schema["components"]["schemas"]["CandidateResult"]["properties"]
