"""The handler gets the sender's original headers on every path (sync, async attempts, replays); the log
keeps only the redacted copy, the values it hides sealed (encrypted) until they can no longer be needed."""

import http.client
import http.server
import json
import threading
import urllib.parse
from datetime import timedelta

import pytest
import requests
from django.utils import timezone

from tests.cluster import wait_for
from triggers.deliveries.retries import deliveries_clear_credentials, deliveries_prune, delivery_replay
from triggers.models import Delivery, Trigger
from triggers.security import crypto, sealed, signatures

BASIC = "Basic dXNlcjpodW50ZXIyLXBhc3N3b3Jk"
GITLAB = "glpat-SECRET-gitlab-shared-token"
API_KEY = "sk_live_SECRETAPIKEY"
SENT = {"Authorization": BASIC, "X-Gitlab-Token": GITLAB, "X-Api-Key": API_KEY, "X-Custom": "plain",
        "Content-Type": "application/json"}


class Tap:
    """A pass-through in front of kubesim's gateway, on loopback: records what reached the handler (the
    request headers, and the echo handler's answer reflecting them), forwards everything unchanged."""

    def __init__(self, upstream: str):
        target = urllib.parse.urlsplit(upstream)
        self.seen: list[dict] = []
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                connection = http.client.HTTPConnection(target.hostname, target.port, timeout=30)
                connection.request(self.command, self.path, body, dict(self.headers.items()))
                response = connection.getresponse()
                data = response.read()
                outer.seen.append({"headers": {k.lower(): v for k, v in self.headers.items()}, "answer": data})
                self.send_response(response.status)
                for name, value in response.getheaders():
                    if name.lower() not in ("transfer-encoding", "connection", "content-length"):
                        self.send_header(name, value)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
                connection.close()

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def tap(kubesim, settings, worker_env):
    made = Tap(kubesim.gateway_url)
    settings.RELAY_GATEWAY_URL = worker_env["RELAY_GATEWAY_URL"] = made.url  # the ingress and the worker
    yield made
    made.close()


def assert_the_handler_got_the_originals(seen: dict):
    for name, value in SENT.items():
        assert seen["headers"][name.lower()] == value, name
    echoed = {k.lower(): v for k, v in json.loads(seen["answer"])["headers"].items()}
    assert echoed["authorization"] == BASIC and echoed["x-gitlab-token"] == GITLAB  # the echo handler saw them


def assert_no_plaintext_in_the_row(pk):
    """Every column of the stored row, as the database holds it."""
    fields = [f.attname for f in Delivery._meta.concrete_fields]
    row = Delivery.objects.filter(pk=pk).values_list(*fields).get()
    text = " ".join(bytes(v).decode("latin-1") if isinstance(v, (bytes, memoryview)) else json.dumps(v, default=str)
                    for v in row)
    for secret in (BASIC, GITLAB, API_KEY, "dXNlcjpodW50ZXIyLXBhc3N3b3Jk"):
        assert secret not in text


def assert_shown_redacted(api, user, trigger, pk):
    shown = api(user).get(f"/api/v1/tenants/acme/triggers/{trigger.name}/deliveries/{pk}/").json()
    headers = {k.lower(): v for k, v in shown["headers"]}
    assert headers["authorization"] == headers["x-gitlab-token"] == headers["x-api-key"] == "[redacted]"
    assert headers["x-custom"] == "plain" and shown["credentials_kept"] is True
    for secret in (BASIC, GITLAB, API_KEY):
        assert secret not in json.dumps(shown)


@pytest.mark.celery
def test_async_delivery_and_replay_send_the_original_credentials_and_show_them_redacted(
        relay, live_trigger, tap, make_worker, api, bob, client):
    make_worker()  # after the tap: the worker forwards through it too
    trigger = live_trigger(mode="async")
    response = requests.post(f"{relay}/hooks/{trigger.token}/events", data=b'{"event": 1}', headers=SENT, timeout=30)
    assert response.status_code == 202, response.text
    pk = response.json()["delivery_id"]
    wait_for(lambda: Delivery.objects.filter(pk=pk, state="succeeded").exists(), message="delivered")
    (seen,) = tap.seen
    assert_the_handler_got_the_originals(seen)
    assert_no_plaintext_in_the_row(pk)
    assert_shown_redacted(api, bob, trigger, pk)  # bob is a viewer
    client.force_login(bob)
    page = client.get(f"/t/acme/triggers/{trigger.name}/deliveries/{pk}/").content.decode()
    assert "[redacted]" in page and 'id="credentials"' in page
    assert all(secret not in page for secret in (BASIC, GITLAB, API_KEY))

    replay = delivery_replay(Delivery.objects.get(pk=pk))
    wait_for(lambda: Delivery.objects.filter(pk=replay.pk, state="succeeded").exists(), message="replayed")
    assert_the_handler_got_the_originals(tap.seen[1])
    assert tap.seen[1]["headers"]["x-relay-delivery-id"] == str(replay.pk)
    assert_no_plaintext_in_the_row(replay.pk)
    assert_shown_redacted(api, bob, trigger, replay.pk)


@pytest.mark.celery
def test_a_replay_of_a_sync_delivery_sends_its_original_credentials(relay, live_trigger, tap, make_worker):
    make_worker()
    trigger = live_trigger()
    response = requests.post(f"{relay}/hooks/{trigger.token}", data=b"{}", headers=SENT, timeout=30)
    assert response.status_code == 200 and response.json()["headers"]["x-gitlab-token"] == GITLAB
    delivery = wait_for(lambda: Delivery.objects.filter(trigger=trigger, state="succeeded").first(), message="sync")
    assert_no_plaintext_in_the_row(delivery.pk)  # the echo's answer is logged with the secrets scrubbed
    replay = delivery_replay(delivery)
    wait_for(lambda: Delivery.objects.filter(pk=replay.pk, state="succeeded").exists(), message="replayed")
    assert_the_handler_got_the_originals(tap.seen[1])


def test_a_rejected_request_is_logged_redacted_and_keeps_nothing_sealed(relay, tenant_a):
    trigger = Trigger.objects.create(tenant=tenant_a, name="gh", image="kubesim/echo", verification="github",
                                     verification_secret=crypto.encrypt("s"))
    bad = {**SENT, "X-Hub-Signature-256": "sha256=" + "0" * 64}
    response = requests.post(f"{relay}/hooks/{trigger.token}", data=b"{}", headers=bad, timeout=30)
    assert response.status_code == 401
    rejected = wait_for(lambda: Delivery.objects.filter(trigger=trigger).first(), message="rejected stored")
    assert rejected.state == "rejected" and rejected.sealed_headers == ""
    assert_no_plaintext_in_the_row(rejected.pk)


def test_every_credential_bearing_header_is_redacted_by_the_one_rule():
    names = ["Authorization", "Proxy-Authorization", "Cookie", "Set-Cookie", "X-Gitlab-Token", "X-Api-Key",
             "X-Auth-Token", "X-Twilio-Signature", "X-Shopify-Hmac-Sha256", "X-Webhook-Secret", "X-Password",
             "X-Hub-Signature-256", "Stripe-Signature", "Api-KEY", "X-Amz-Security-Token"]
    plain = ["Content-Type", "User-Agent", "X-GitHub-Event", "X-GitHub-Delivery", "Accept", "Keep-Alive"]
    redacted = dict(signatures.redact([(n, "v") for n in names + plain]))
    assert [n for n in names if redacted[n] != "[redacted]"] == []
    assert [n for n in plain if redacted[n] != "v"] == []
    assert signatures.redact_raw([(b"Set-Cookie", b"s=1"), (b"X-Request-Token", b"t"), (b"Content-Type", b"a/b")]) == [
        ["Set-Cookie", "[redacted]"], ["X-Request-Token", "[redacted]"], ["Content-Type", "a/b"]]  # responses too


def test_sealed_values_come_back_in_place_and_missing_ones_leave_their_header_out():
    headers = [("content-type", "a/b"), ("authorization", "Bearer t0ken-value"), ("x-api-key", "k3y-value")]
    logged, kept = signatures.redact_keeping(headers, None)
    token = sealed.seal(kept)
    assert "t0ken-value" not in token and "k3y-value" not in token
    assert sealed.restore([list(h) for h in logged], sealed.open_sealed(token)) == headers
    assert sealed.restore([list(h) for h in logged], sealed.open_sealed("")) == [("content-type", "a/b")]
    assert sealed.restore([list(h) for h in logged], sealed.open_sealed("not-a-fernet-token")) == [
        ("content-type", "a/b")]
    assert sealed.scrub(b'{"Authorization": "Bearer t0ken-value"}', ["Bearer t0ken-value"]) == \
        b'{"Authorization": "[redacted]"}'


@pytest.mark.django_db
def test_sealed_credentials_are_cleared_once_final_and_past_the_window(tenant_a, settings):
    settings.RELAY_CREDENTIALS_RETENTION_HOURS = 72
    trigger = Trigger.objects.create(tenant=tenant_a, name="hello", image="kubesim/echo", mode="async")
    token = sealed.seal([(0, "Bearer x-very-secret")])
    old = timezone.now() - timedelta(hours=73)

    def row(state, received_at):
        return Delivery.objects.create(trigger=trigger, mode="async", method="POST", state=state,
                                       received_at=received_at, headers=[["authorization", "[redacted]"]],
                                       sealed_headers=token)

    done_old, done_new = row("succeeded", old), row("dead", timezone.now())
    retrying_old, received_old = row("retrying", old), row("received", old)
    assert deliveries_clear_credentials() == 1
    deliveries_prune()  # the hourly retention task clears them too
    kept = dict(Delivery.objects.values_list("pk", "sealed_headers"))
    assert kept[done_old.pk] == "" and kept[done_new.pk] == token
    assert kept[retrying_old.pk] == kept[received_old.pk] == token  # still to be attempted
    shown = Delivery.objects.get(pk=done_old.pk)
    assert shown.credentials_kept is False and shown.shown_headers() == [["authorization", "[redacted]"]]


@pytest.mark.django_db
def test_rows_stored_with_plaintext_credentials_are_sealed_by_the_migration(tenant_a):
    import importlib

    from django.apps import apps

    migration = importlib.import_module("triggers.migrations.0005_delivery_sealed_headers")
    trigger = Trigger.objects.create(tenant=tenant_a, name="hello", image="kubesim/echo")
    legacy = Delivery.objects.create(trigger=trigger, mode="async", method="POST", state="retrying", headers=[
        ["content-type", "a/b"], ["authorization", "[redacted]"], ["x-gitlab-token", GITLAB]])
    migration.seal_newly_sensitive_headers(apps, None)
    legacy.refresh_from_db()
    assert legacy.headers == [["content-type", "a/b"], ["authorization", "[redacted]"],
                              ["x-gitlab-token", "[redacted]"]]
    assert sealed.restore(legacy.headers, sealed.open_sealed(legacy.sealed_headers)) == [
        ("content-type", "a/b"), ("x-gitlab-token", GITLAB)]  # the value lost before is left out, not "[redacted]"
