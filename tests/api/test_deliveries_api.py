"""Webhook edge settings on the triggers API (write-only secret, webhook URL, token rotation) and the
delivery log API (filters, detail, replay, bulk replay), with roles and tenant isolation.

Delivery rows are created directly. Replays enqueue their send on commit, which never happens in
these non-transactional tests: nothing is sent, the linked rows are what is checked.
"""

from __future__ import annotations

import base64
from datetime import timedelta

import pytest
from django.utils import timezone

from tenants.models import Membership, Role
from triggers.edge.ingress import _load_route
from triggers.models import Delivery, DeliveryAttempt, Trigger
from triggers.security import crypto

pytestmark = pytest.mark.django_db
TRIGGERS = "/api/v1/tenants/acme/triggers/"
DELIVERIES = TRIGGERS + "hello/deliveries/"
SECRET = "whsec_s3cr3t-value-never-shown"


@pytest.fixture
def hello(tenant_a, alice):
    return Trigger.objects.create(tenant=tenant_a, name="hello", image="kubesim/echo", created_by=alice)


def delivery(trigger, **fields) -> Delivery:
    values = {"mode": "sync", "method": "POST", "path": "/", "state": "succeeded", "response_status": 200}
    return Delivery.objects.create(trigger=trigger, **{**values, **fields})


# Trigger ingress settings


def test_ingress_settings_have_defaults_and_a_webhook_url(api, alice, hello, settings):
    settings.SITE_URL = "https://relay.example.com"
    body = api(alice).get(TRIGGERS + "hello/").json()
    assert body["webhook_url"] == f"https://relay.example.com/hooks/{hello.token}"
    assert (body["mode"], body["verification"], body["verification_secret_set"], body["max_attempts"]) == (
        "sync", "none", False, 5)
    assert body["previous_webhook_url_expires_at"] is None
    assert "verification_secret" not in body


def test_create_with_github_verification_stores_the_secret_encrypted_and_never_returns_it(api, alice, tenant_a):
    response = api(alice).post(TRIGGERS, {"name": "gh", "image": "kubesim/echo", "verification": "github",
                                          "verification_secret": SECRET, "mode": "async"}, format="json")
    assert response.status_code == 201, response.json()
    assert SECRET not in response.content.decode()
    assert response.json()["verification_secret_set"] is True and response.json()["mode"] == "async"
    trigger = Trigger.objects.get(name="gh")
    assert SECRET not in trigger.verification_secret and crypto.decrypt(trigger.verification_secret) == SECRET
    for url in (TRIGGERS, TRIGGERS + "gh/"):
        assert SECRET not in api(alice).get(url).content.decode()


def test_patch_changes_ingress_settings_without_a_new_spec_version(api, alice, hello):
    response = api(alice).patch(TRIGGERS + "hello/", {
        "verification": "hmac", "verification_secret": SECRET, "hmac_header": "X-Acme-Signature",
        "hmac_encoding": "base64", "hmac_prefix": "sha256=", "dedupe_header": "Idempotency-Key", "max_attempts": 8,
    }, format="json")
    assert response.status_code == 200, response.json()
    hello.refresh_from_db()
    assert (hello.verification, hello.hmac_header, hello.hmac_encoding, hello.hmac_prefix, hello.dedupe_header,
            hello.max_attempts, hello.spec_version) == ("hmac", "X-Acme-Signature", "base64", "sha256=",
                                                        "Idempotency-Key", 8, 0)
    stored = hello.verification_secret
    # Leaving the secret out (or empty) keeps it.
    response = api(alice).patch(TRIGGERS + "hello/", {"max_attempts": 3, "verification_secret": ""}, format="json")
    assert response.status_code == 200 and response.json()["verification_secret_set"] is True
    hello.refresh_from_db()
    assert hello.verification_secret == stored and hello.max_attempts == 3


@pytest.mark.parametrize(
    "body, field, text",
    [
        ({"verification": "gitlab"}, "verification", "not a valid choice"),
        ({"verification": "github"}, "verification_secret", "needs a secret"),
        ({"verification": "stripe", "verification_secret": ""}, "verification_secret", "needs a secret"),
        ({"verification": "hmac", "verification_secret": "x", "hmac_encoding": "base32"}, "hmac_encoding",
         "not a valid choice"),
        ({"hmac_header": "X Signature"}, "hmac_header", "not a valid HTTP header name"),
        ({"verification": "hmac", "verification_secret": "x", "hmac_header": ""}, "hmac_header", "needs the name"),
        ({"dedupe_header": "Idempotency:Key"}, "dedupe_header", "not a valid HTTP header name"),
        ({"max_attempts": 0}, "max_attempts", "1"),
        ({"max_attempts": 21}, "max_attempts", "20"),
        ({"mode": "batch"}, "mode", "not a valid choice"),
        ({"verification_secret_set": True, "webhook_urls": "x"}, "webhook_urls", "Unknown field"),
    ],
)
def test_bad_ingress_settings_are_a_400_naming_the_field(api, alice, hello, body, field, text):
    response = api(alice).patch(TRIGGERS + "hello/", body, format="json")
    assert response.status_code == 400, response.json()
    assert field in response.json(), response.json()
    assert text in str(response.json()[field])
    hello.refresh_from_db()
    assert (hello.verification, hello.verification_secret, hello.max_attempts) == ("none", "", 5)


def test_create_with_a_missing_secret_leaves_no_trigger(api, alice, tenant_a):
    response = api(alice).post(TRIGGERS, {"name": "gh", "image": "kubesim/echo", "verification": "github"},
                               format="json")
    assert response.status_code == 400 and "verification_secret" in response.json()
    assert not Trigger.objects.exists()


def test_rotate_token_gives_a_new_url_and_the_old_one_works_until_it_expires(api, alice, hello, settings):
    settings.SITE_URL = "https://relay.example.com"
    old = hello.token
    response = api(alice).post(TRIGGERS + "hello/rotate-token/")
    assert response.status_code == 200, response.json()
    hello.refresh_from_db()
    assert hello.token != old
    assert response.json()["webhook_url"] == f"https://relay.example.com/hooks/{hello.token}"
    assert old not in response.content.decode()
    expires = hello.previous_token_expires_at
    assert hello.previous_token == old
    assert abs((expires - timezone.now()) - timedelta(seconds=settings.RELAY_TOKEN_OVERLAP)) < timedelta(seconds=5)
    assert response.json()["previous_webhook_url_expires_at"] is not None
    assert _load_route(old).trigger_id == hello.pk and _load_route(hello.token).trigger_id == hello.pk
    Trigger.objects.filter(pk=hello.pk).update(previous_token_expires_at=timezone.now() - timedelta(seconds=1))
    assert _load_route(old) is None
    assert api(alice).get(TRIGGERS + "hello/").json()["previous_webhook_url_expires_at"] is None


def test_viewer_cannot_rotate_or_change_ingress_settings(api, bob, hello):
    token = hello.token
    assert api(bob).post(TRIGGERS + "hello/rotate-token/").status_code == 403
    assert api(bob).patch(TRIGGERS + "hello/", {"mode": "async"}, format="json").status_code == 403
    hello.refresh_from_db()
    assert (hello.token, hello.mode) == (token, "sync")


# Delivery log


def test_list_is_newest_first_and_paginated(api, bob, hello):
    now = timezone.now()
    for minutes in range(3):
        delivery(hello, received_at=now - timedelta(minutes=minutes), path=f"/{minutes}")
    body = api(bob).get(DELIVERIES, {"page_size": 2}).json()
    assert body["count"] == 3 and body["next"]
    assert [d["path"] for d in body["results"]] == ["/0", "/1"]
    assert {"id", "state", "response_status", "cold_start", "latency_ms", "attempt_count", "replay_of"} <= set(
        body["results"][0])
    assert "body" not in body["results"][0]


def test_list_filters(api, alice, hello):
    ok = delivery(hello)
    dead = delivery(hello, state="dead", response_status=503, cold_start=True, mode="async")
    replay = delivery(hello, replay_of=dead, state="received", response_status=None)

    def ids(**params):
        response = api(alice).get(DELIVERIES, params)
        assert response.status_code == 200, response.json()
        return {d["id"] for d in response.json()["results"]}

    assert ids(state="dead") == {str(dead.pk)}
    assert ids(response_status=200) == {str(ok.pk)}
    assert ids(cold_start="true") == {str(dead.pk)}
    assert ids(cold_start="false") == {str(ok.pk), str(replay.pk)}
    assert ids(replay_of=str(dead.pk)) == {str(replay.pk)}
    assert ids() == {str(ok.pk), str(dead.pk), str(replay.pk)}
    for bad in ({"state": "exploded"}, {"response_status": "abc"}, {"response_status": 10**30},
                {"replay_of": "nope"}):
        response = api(alice).get(DELIVERIES, bad)
        assert response.status_code == 400 and set(bad) <= set(response.json()), bad


def test_detail_shows_request_attempts_and_response(api, bob, hello):
    d = delivery(hello, mode="async", method="PUT", path="/a/b", query="x=1",
                 headers=[["content-type", "application/json"], ["authorization", "[redacted]"]],
                 body=b'{"n": 1}', body_size=8, verification="passed", state="succeeded", response_status=201,
                 response_headers=[["content-type", "text/plain"]], response_body=b"\xff\x00binary",
                 latency_ms=12.5, cold_start=True, attempts=2)
    DeliveryAttempt.objects.create(delivery=d, number=1, status=503, latency_ms=3.0, error="")
    DeliveryAttempt.objects.create(delivery=d, number=2, status=201, latency_ms=9.5)
    body = api(bob).get(f"{DELIVERIES}{d.pk}/").json()
    assert (body["method"], body["path"], body["query"]) == ("PUT", "/a/b", "x=1")
    assert body["headers"] == [["content-type", "application/json"], ["authorization", "[redacted]"]]
    assert (body["body"], body["body_encoding"]) == ('{"n": 1}', "utf-8")
    assert body["response_body_encoding"] == "base64"
    assert base64.b64decode(body["response_body"]) == b"\xff\x00binary"
    assert [(a["number"], a["status"]) for a in body["attempts"]] == [(1, 503), (2, 201)]
    assert (body["verification"], body["state"], body["response_status"], body["cold_start"]) == (
        "passed", "succeeded", 201, True)
    assert body["latency_ms"] == 12.5 and body["attempt_count"] == 2 and body["replays"] == []


def test_a_sync_deliverys_attempt_is_its_outcome(api, bob, hello):
    d = delivery(hello, mode="sync", state="failed", response_status=504, latency_ms=1000.0, attempts=1,
                 error="The handler did not answer within 1 s.")
    (attempt,) = api(bob).get(f"{DELIVERIES}{d.pk}/").json()["attempts"]
    assert (attempt["number"], attempt["status"], attempt["latency_ms"], attempt["error"]) == (
        1, 504, 1000.0, "The handler did not answer within 1 s.")


def test_replay_creates_a_linked_delivery(api, alice, hello):
    original = delivery(hello, state="dead", body=b"payload", body_size=7, headers=[["x-a", "1"]])
    response = api(alice).post(f"{DELIVERIES}{original.pk}/replay/")
    assert response.status_code == 202, response.json()
    copy = Delivery.objects.get(pk=response.json()["id"])
    assert (copy.replay_of, bytes(copy.body), copy.headers, copy.state) == (original, b"payload", [["x-a", "1"]],
                                                                            "received")
    assert response.json()["replay_of"] == str(original.pk)
    assert api(alice).get(f"{DELIVERIES}{original.pk}/").json()["replays"] == [str(copy.pk)]


def test_replay_is_refused_for_rejected_deliveries_and_suspended_triggers(api, alice, hello):
    rejected = delivery(hello, state="rejected", verification="failed", response_status=401)
    response = api(alice).post(f"{DELIVERIES}{rejected.pk}/replay/")
    assert response.status_code == 400 and "signature verification" in response.json()["detail"]
    failed = delivery(hello, state="failed")
    Trigger.objects.filter(pk=hello.pk).update(suspended=True)
    for url in (f"{DELIVERIES}{failed.pk}/replay/", DELIVERIES + "replay-failed/"):
        response = api(alice).post(url)
        assert response.status_code == 400 and "suspended" in response.json()["detail"]
    assert Delivery.objects.count() == 2


def test_bulk_replay_of_failed_and_dead(api, alice, hello):
    failed, dead = delivery(hello, state="failed"), delivery(hello, state="dead")
    delivery(hello, state="succeeded")
    delivery(hello, state="rejected")
    response = api(alice).post(DELIVERIES + "replay-failed/")
    assert response.status_code == 202 and response.json() == {"replayed": 2}
    assert set(Delivery.objects.filter(replay_of__isnull=False).values_list("replay_of", flat=True)) == {
        failed.pk, dead.pk}
    assert api(alice).post(DELIVERIES + "replay-failed/").json() == {"replayed": 0}


def test_viewer_reads_but_cannot_replay(api, bob, hello):
    d = delivery(hello, state="dead")
    assert api(bob).get(f"{DELIVERIES}{d.pk}/").status_code == 200
    assert api(bob).post(f"{DELIVERIES}{d.pk}/replay/").status_code == 403
    assert api(bob).post(DELIVERIES + "replay-failed/").status_code == 403
    assert Delivery.objects.count() == 1
    Membership.objects.filter(user=bob).update(role=Role.EDITOR)
    assert api(bob).post(f"{DELIVERIES}{d.pk}/replay/").status_code == 202


def test_another_tenant_cannot_list_view_or_replay(api, charlie, hello, tenant_b):
    d = delivery(hello, state="dead")
    client = api(charlie)
    for method, url in [("get", DELIVERIES), ("get", f"{DELIVERIES}{d.pk}/"), ("post", f"{DELIVERIES}{d.pk}/replay/"),
                        ("post", DELIVERIES + "replay-failed/"), ("post", TRIGGERS + "hello/rotate-token/")]:
        response = getattr(client, method)(url)
        assert response.status_code == 404, url
    # Nor through their own tenant's URLs with this delivery's id.
    mine = Trigger.objects.create(tenant=tenant_b, name="hello", image="kubesim/echo")
    theirs = "/api/v1/tenants/globex/triggers/hello/deliveries/"
    assert client.get(f"{theirs}{d.pk}/").status_code == 404
    assert client.post(f"{theirs}{d.pk}/replay/").status_code == 404
    assert client.get(theirs).json()["count"] == 0
    assert Delivery.objects.count() == 1 and not mine.deliveries.exists()


def test_unknown_trigger_or_delivery_is_404(api, alice, hello):
    assert api(alice).get(TRIGGERS + "nope/deliveries/").status_code == 404
    assert api(alice).get(DELIVERIES + "00000000-0000-0000-0000-000000000000/").status_code == 404
    assert api(alice).get(DELIVERIES + "not-a-uuid/").status_code == 404
