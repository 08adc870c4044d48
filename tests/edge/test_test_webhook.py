"""Send test webhook: a sample event for the trigger's verification, signed with its stored secret, sent
through the real ingress (uvicorn) to kubesim's handler, stored with its verification passed."""

import json

import pytest
from django.test import Client

from tenants.models import AuditEntry
from tests.cluster import wait_for
from triggers.edge.sample_sender import trigger_test_webhook_send
from triggers.models import Delivery, Trigger
from triggers.security import crypto, samples, signatures

KINDS = {
    "github": {"verification": "github"},
    "stripe": {"verification": "stripe"},
    "slack": {"verification": "slack"},
    "hmac-hex": {"verification": "hmac", "hmac_header": "X-Acme-Sig", "hmac_encoding": "hex",
                 "hmac_prefix": "sha256="},
    "hmac-base64": {"verification": "hmac", "hmac_header": "X-Signature", "hmac_encoding": "base64"},
    "none": {"verification": "none"},
}


def _verifier(fields: dict, secret: str) -> signatures.Verifier:
    return signatures.verifier_for(fields["verification"], secret, header=fields.get("hmac_header", ""),
                                   encoding=fields.get("hmac_encoding", "hex"), prefix=fields.get("hmac_prefix", ""))


def _sample(fields: dict, secret: str) -> samples.Sample:
    return samples.sample_event(fields["verification"], secret, trigger="acme/hello",
                                header=fields.get("hmac_header", ""), encoding=fields.get("hmac_encoding", "hex"),
                                prefix=fields.get("hmac_prefix", ""))


@pytest.mark.parametrize("kind", KINDS)
def test_each_sample_verifies_with_its_secret_and_fails_with_another(kind):
    fields = KINDS[kind]
    sample = _sample(fields, "s3cret")
    lower = {name.lower(): value for name, value in sample.headers.items()}
    assert _verifier(fields, "s3cret").verify(lower, sample.body).ok
    assert json.loads(sample.body)
    if fields["verification"] != "none":
        assert not _verifier(fields, "other").verify(lower, sample.body).ok
        assert "s3cret" not in repr(sample)


def test_github_sample_is_a_ping_with_a_delivery_id():
    sample = _sample(KINDS["github"], "s")
    assert sample.headers["X-GitHub-Event"] == "ping" and sample.headers["X-GitHub-Delivery"]
    assert sample.headers["X-Hub-Signature-256"].startswith("sha256=") and "zen" in json.loads(sample.body)
    stripe = _sample(KINDS["stripe"], "s")
    assert stripe.headers["Stripe-Signature"].startswith("t=") and ",v1=" in stripe.headers["Stripe-Signature"]
    slack = _sample(KINDS["slack"], "s")
    assert slack.headers["X-Slack-Request-Timestamp"] and slack.headers["X-Slack-Signature"].startswith("v0=")


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("kind", KINDS)
def test_sent_through_the_ingress_it_is_stored_with_verification_passed(kind, relay, live_trigger, settings):
    settings.RELAY_HOOKS_URL = relay
    fields = dict(KINDS[kind])
    secret = "" if fields["verification"] == "none" else crypto.encrypt(f"{kind}-secret")
    trigger = live_trigger(verification_secret=secret, **fields)
    assert trigger_test_webhook_send(trigger.pk) == 200
    delivery = wait_for(lambda: Delivery.objects.filter(trigger=trigger).exclude(state="forwarded").first(),
                        message="delivery stored with its outcome")
    assert delivery.verification == ("none" if kind == "none" else "passed"), delivery.verification_error
    assert delivery.state == "succeeded" and delivery.response_status == 200
    if kind == "github":
        assert delivery.provider_delivery_id and dict(delivery.headers)["x-github-event"] == "ping"
        assert dict(delivery.headers)["x-hub-signature-256"] == "[redacted]"


@pytest.fixture
def worker_env(worker_env, relay):
    return {**worker_env, "RELAY_HOOKS_URL": relay}


@pytest.mark.django_db(transaction=True)
def test_api_queues_it_and_the_worker_delivers_it_signed(relay, live_trigger, worker, api, alice):
    trigger = live_trigger(verification="github", verification_secret=crypto.encrypt("gh"))
    response = api(alice).post("/api/v1/tenants/acme/triggers/hello/test-webhook/")
    assert response.status_code == 202 and response.json()["event"] == "GitHub ping"
    delivery = wait_for(lambda: Delivery.objects.filter(trigger=trigger).exclude(state="forwarded").first(), timeout=30,
                        message="test webhook delivered by the worker")
    assert (delivery.verification, delivery.state) == ("passed", "succeeded")
    entry = AuditEntry.objects.get(action="trigger.test_webhook")
    assert (entry.actor, entry.target_id, entry.changes["verification"]) == (alice, str(trigger.pk), "github")


@pytest.fixture
def hello(tenant_a):
    return Trigger.objects.create(tenant=tenant_a, name="hello", image="kubesim/echo", verification="github",
                                  verification_secret=crypto.encrypt("gh"))


URL = "/api/v1/tenants/acme/triggers/hello/test-webhook/"


@pytest.mark.django_db
def test_viewers_are_refused_and_nothing_is_audited(hello, api, bob):
    assert api(bob).post(URL).status_code == 403
    client = Client()
    client.force_login(bob)
    assert client.post("/t/acme/triggers/hello/test-webhook/").status_code == 403
    assert not AuditEntry.objects.filter(action="trigger.test_webhook").exists()


@pytest.mark.django_db
def test_other_tenants_get_404(hello, api, charlie, tenant_b):
    assert api(charlie).post(URL).status_code == 404
    assert not AuditEntry.objects.filter(action="trigger.test_webhook").exists()


@pytest.mark.django_db
def test_a_suspended_trigger_is_409_with_a_clear_reason(hello, api, alice):
    Trigger.objects.filter(pk=hello.pk).update(suspended=True)
    response = api(alice).post(URL)
    assert response.status_code == 409 and "suspended" in response.json()["detail"]
    assert "Resume it" in response.json()["detail"]


@pytest.mark.django_db
def test_a_second_one_within_the_interval_is_429(hello, api, alice, settings):
    settings.RELAY_TEST_WEBHOOK_INTERVAL = 30
    assert api(alice).post(URL).status_code == 202
    again = api(alice).post(URL)
    assert again.status_code == 429 and 0 < int(again["Retry-After"]) <= 30
    assert AuditEntry.objects.filter(action="trigger.test_webhook").count() == 1


@pytest.mark.django_db
def test_the_trigger_page_has_the_button_for_editors_only(hello, alice, bob, settings):
    settings.RELAY_TEST_WEBHOOK_INTERVAL = 30
    client = Client()
    client.force_login(alice)
    page = client.get("/t/acme/triggers/hello/").content.decode()
    assert 'id="send-test-webhook"' in page and "/t/acme/triggers/hello/test-webhook/" in page
    response = client.post("/t/acme/triggers/hello/test-webhook/", follow=True)
    assert "Sending a GitHub ping" in response.content.decode()
    response = client.post("/t/acme/triggers/hello/test-webhook/", follow=True)
    assert "try again in" in response.content.decode()
    client.force_login(bob)
    assert 'id="send-test-webhook"' not in client.get("/t/acme/triggers/hello/").content.decode()
