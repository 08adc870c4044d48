"""Webhook pages: the webhook URL with a copy button and a curl example that really signs, rotation,
ingress settings in the trigger form (the secret is never rendered), and the delivery log with
filters, detail views of every kind of body, replay and bulk replay — with roles and tenant isolation.
"""

from __future__ import annotations

import shutil
import subprocess
from datetime import timedelta
from html import unescape

import pytest
from django.test import Client
from django.utils import timezone

from triggers.models import Delivery, DeliveryAttempt, Trigger
from triggers.pages.deliveries import PAGE_SIZE, curl_example
from triggers.security import crypto, signatures

pytestmark = pytest.mark.django_db

DETAIL, EDIT = "/t/acme/triggers/hello/", "/t/acme/triggers/hello/edit/"
LOG = DETAIL + "deliveries/"
SECRET = "whsec_s3cr3t-value-never-shown"
FORM = {"image": "kubesim/echo", "port": "8080", "env": "", "secret_env": "", "min_scale": "0", "max_scale": "3",
        "target_concurrency": "", "timeout_seconds": "15", "mode": "sync", "verification": "none",
        "verification_secret": "", "hmac_header": "X-Signature", "hmac_encoding": "hex", "hmac_prefix": "",
        "dedupe_header": "", "max_attempts": "5"}


def signed_in(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def page(response) -> str:
    return unescape(response.content.decode())


@pytest.fixture
def hello(tenant_a, alice):
    return Trigger.objects.create(tenant=tenant_a, name="hello", image="kubesim/echo", created_by=alice)


def delivery(trigger, **fields) -> Delivery:
    values = {"mode": "sync", "method": "POST", "path": "/", "state": "succeeded", "response_status": 200}
    return Delivery.objects.create(trigger=trigger, **{**values, **fields})


# The webhook URL on the trigger page


def test_detail_shows_the_webhook_url_with_copy_button_and_curl_example(bob, hello, settings):
    settings.SITE_URL = "https://relay.example.com"
    html = page(signed_in(bob).get(DETAIL))
    url = f"https://relay.example.com/hooks/{hello.token}"
    assert f'<code id="webhook-url">{url}</code>' in html
    assert 'data-copy="#webhook-url"' in html and 'data-copy="#curl-example"' in html
    assert f"curl -i -X POST '{url}'" in html
    assert "not set" in html and LOG in html
    assert "rotate-token" not in html  # viewers get no rotate button


def test_github_trigger_page_has_a_signature_hint_and_never_the_secret(alice, hello):
    hello.verification, hello.verification_secret = "github", crypto.encrypt(SECRET)
    hello.save()
    client = signed_in(alice)
    html = page(client.get(DETAIL))
    assert "X-Hub-Signature-256: sha256=$SIG" in html and "openssl dgst -sha256 -hmac" in html
    assert '<dd id="secret-state">set</dd>' in html
    for url in (DETAIL, EDIT, LOG):
        text = client.get(url).content.decode()
        assert SECRET not in text and hello.verification_secret not in text


@pytest.mark.skipif(not shutil.which("openssl"), reason="the curl example signs with openssl")
@pytest.mark.parametrize("kind, extra", [
    ("none", {}), ("github", {}), ("stripe", {}), ("slack", {}),
    ("hmac", {"hmac_header": "X-Acme-Sig", "hmac_encoding": "hex", "hmac_prefix": "sha256="}),
    ("hmac", {"hmac_header": "X-Acme-Sig", "hmac_encoding": "base64", "hmac_prefix": ""}),
])
def test_the_curl_example_sends_a_correctly_signed_request(hello, kind, extra):
    for name, value in {"verification": kind, **extra}.items():
        setattr(hello, name, value)
    script = curl_example(hello).replace("'<your verification secret>'", f"'{SECRET}'")
    fake_curl = 'curl() { for arg in "$@"; do printf "%s\\0" "$arg"; done; }\n'
    args = subprocess.run(["bash", "-c", fake_curl + script], capture_output=True, text=True, check=True,
                          timeout=10).stdout.split("\0")[:-1]
    headers = {args[i + 1].split(": ", 1)[0].lower(): args[i + 1].split(": ", 1)[1]
               for i, arg in enumerate(args) if arg == "-H"}
    body = args[args.index("-d") + 1].encode()
    assert body == b'{"hello": "world"}' and args[args.index("-X") + 1] == "POST"
    verifier = signatures.verifier_for(kind, SECRET, header=hello.hmac_header, encoding=hello.hmac_encoding,
                                       prefix=hello.hmac_prefix)
    assert verifier.verify(headers, body).ok, verifier.verify(headers, body).reason
    assert not verifier.verify(headers, body + b" ").ok or kind == "none"


def test_rotate_gives_a_new_url_and_keeps_the_old_one_for_a_while(alice, hello):
    old = hello.token
    response = signed_in(alice).post(DETAIL + "rotate-token/", follow=True)
    hello.refresh_from_db()
    assert hello.token != old and hello.previous_token == old
    assert hello.previous_token_expires_at > timezone.now() + timedelta(hours=23)
    html = page(response)
    assert "The previous URL keeps working until" in html and hello.token in html
    assert 'id="previous-url"' in html and old not in html


def test_rotate_button_is_for_editors_with_a_confirmation(alice, hello):
    html = page(signed_in(alice).get(DETAIL))
    assert 'action="/t/acme/triggers/hello/rotate-token/"' in html and "data-confirm=\"Rotate the webhook URL" in html


def test_viewer_cannot_rotate(bob, hello):
    token = hello.token
    assert signed_in(bob).post(DETAIL + "rotate-token/").status_code == 403
    hello.refresh_from_db()
    assert hello.token == token


# Ingress settings in the form


def test_edit_form_saves_ingress_settings_and_encrypts_the_secret(alice, hello):
    data = {**FORM, "mode": "async", "verification": "hmac", "verification_secret": SECRET,
            "hmac_header": "X-Acme-Sig", "hmac_encoding": "base64", "hmac_prefix": "sha256=",
            "dedupe_header": "Idempotency-Key", "max_attempts": "7"}
    response = signed_in(alice).post(EDIT, data)
    assert response.status_code == 302, response.context["form"].errors
    hello.refresh_from_db()
    assert (hello.mode, hello.verification, hello.hmac_header, hello.hmac_encoding, hello.hmac_prefix,
            hello.dedupe_header, hello.max_attempts) == ("async", "hmac", "X-Acme-Sig", "base64", "sha256=",
                                                         "Idempotency-Key", 7)
    assert crypto.decrypt(hello.verification_secret) == SECRET
    form = page(signed_in(alice).get(EDIT))
    assert SECRET not in form and "A secret is set (not shown)" in form
    # Saving again without typing the secret keeps it.
    stored = hello.verification_secret
    assert signed_in(alice).post(EDIT, {**data, "verification_secret": ""}).status_code == 302
    hello.refresh_from_db()
    assert hello.verification_secret == stored


def test_create_form_takes_ingress_settings(alice, tenant_a):
    response = signed_in(alice).post("/t/acme/triggers/-/new/", {**FORM, "name": "gh", "verification": "github",
                                                                   "verification_secret": SECRET})
    assert response.status_code == 302
    assert crypto.decrypt(Trigger.objects.get(name="gh").verification_secret) == SECRET


@pytest.mark.parametrize("change, field, message", [
    ({"verification": "gitlab"}, "verification", "Select a valid choice"),
    ({"verification": "github"}, "verification_secret", "github verification needs a secret"),
    ({"hmac_encoding": "base32"}, "hmac_encoding", "Select a valid choice"),
    ({"hmac_header": "X Sig"}, "hmac_header", "is not a valid HTTP header name"),
    ({"verification": "hmac", "verification_secret": "x", "hmac_header": ""}, "hmac_header", "needs the name"),
    ({"dedupe_header": "a:b"}, "dedupe_header", "is not a valid HTTP header name"),
    ({"max_attempts": "0"}, "max_attempts", "from 1 to 20"),
    ({"max_attempts": ""}, "max_attempts", "from 1 to 20"),
])
def test_bad_ingress_settings_show_next_to_their_field(alice, hello, change, field, message):
    response = signed_in(alice).post(EDIT, {**FORM, **change})
    assert response.status_code == 200
    assert message in " ".join(response.context["form"].errors[field])
    assert message in page(response)
    hello.refresh_from_db()
    assert (hello.verification, hello.verification_secret, hello.max_attempts) == ("none", "", 5)


def test_a_secret_typed_into_a_form_with_errors_is_not_rendered_back(alice, hello):
    response = signed_in(alice).post(EDIT, {**FORM, "verification": "github", "verification_secret": SECRET,
                                            "max_attempts": "99"})
    assert response.status_code == 200 and SECRET not in response.content.decode()


# The delivery log


def test_empty_log_explains_how_to_send_a_first_webhook(bob, hello):
    html = page(signed_in(bob).get(LOG))
    assert "No deliveries yet" in html and f"/hooks/{hello.token}" in html and 'id="curl-example"' in html
    assert "replay-failed" not in html


def test_log_lists_newest_first_with_state_status_latency_and_cold_flag(alice, hello):
    now = timezone.now()
    old = delivery(hello, received_at=now - timedelta(minutes=5), path="/old", latency_ms=12.0)
    new = delivery(hello, received_at=now, path="/new", state="dead", response_status=503, cold_start=True)
    html = page(signed_in(alice).get(LOG))
    assert html.index(f"delivery-{new.pk}") < html.index(f"delivery-{old.pk}")
    assert "POST /new" in html and "Dead" in html and "503" in html and "12 ms" in html and ">cold<" in html
    assert 'action="/t/acme/triggers/hello/deliveries/replay-failed/"' in html


@pytest.mark.parametrize("query, expected", [
    ("state=dead", {"dead"}), ("response_status=500", {"failed"}), ("cold_start=true", {"cold"}),
    ("cold_start=false", {"ok", "dead", "failed"}), ("", {"ok", "dead", "failed", "cold"}),
    ("state=nonsense", {"ok", "dead", "failed", "cold"}),
])
def test_log_filters(alice, hello, query, expected):
    made = {"ok": delivery(hello), "dead": delivery(hello, state="dead", response_status=503),
            "failed": delivery(hello, state="failed", response_status=500),
            "cold": delivery(hello, cold_start=True, response_status=202)}
    response = signed_in(alice).get(f"{LOG}?{query}")
    assert response.status_code == 200
    shown = {name for name, d in made.items() if f"delivery-{d.pk}" in response.content.decode()}
    assert shown == expected


def test_log_is_paginated_and_pages_keep_the_filters(alice, hello):
    for _ in range(PAGE_SIZE + 1):
        delivery(hello, state="failed", response_status=500)
    delivery(hello)
    client = signed_in(alice)
    html = page(client.get(f"{LOG}?state=failed"))
    assert "Page 1 of 2" in html and "?state=failed&page=2" in html
    assert html.count('<tr id="delivery-') == PAGE_SIZE
    assert page(client.get(f"{LOG}?state=failed&page=2")).count('<tr id="delivery-') == 1


def test_detail_pretty_prints_json_and_shows_headers_attempts_and_response(bob, hello):
    d = delivery(hello, mode="async", method="PUT", path="/a/b", query="x=1", state="succeeded",
                 headers=[["content-type", "application/json"], ["authorization", "[redacted]"]],
                 body=b'{"event":"push","n":[1,2]}', body_size=26, verification="passed",
                 response_headers=[["content-type", "text/plain"]], response_body=b"thanks", attempts=2)
    DeliveryAttempt.objects.create(delivery=d, number=1, status=503, latency_ms=3.0, error="handler woke up late")
    DeliveryAttempt.objects.create(delivery=d, number=2, status=200, latency_ms=9.0)
    html = page(signed_in(bob).get(f"{LOG}{d.pk}/"))
    assert '{\n  "event": "push",\n  "n": [\n    1,\n    2\n  ]\n}' in html
    assert "PUT /a/b?x=1" in html and "[redacted]" in html and "thanks" in html
    assert "handler woke up late" in html and 'id="attempt-table"' in html
    assert 'id="replay"' not in html  # viewers: read-only


def test_detail_shows_a_sync_deliverys_one_attempt_or_why_there_is_none(bob, hello):
    forwarded = delivery(hello, mode="sync", state="failed", response_status=502, latency_ms=4.0, attempts=1,
                         error="The gateway is unreachable: refused.")
    html = page(signed_in(bob).get(f"{LOG}{forwarded.pk}/"))
    assert 'id="attempt-table"' in html and "The gateway is unreachable: refused." in html and "4 ms" in html
    rejected = delivery(hello, mode="sync", state="rejected", response_status=401, attempts=0)
    html = page(signed_in(bob).get(f"{LOG}{rejected.pk}/"))
    assert 'id="attempt-table"' not in html and "Not forwarded (rejected)." in html


def test_detail_shows_binary_bodies_as_hex_and_base64(alice, hello):
    d = delivery(hello, headers=[["content-type", "application/octet-stream"]], body=b"\x00\xffAB", body_size=4)
    html = page(signed_in(alice).get(f"{LOG}{d.pk}/"))
    assert "00 ff 41 42" in html and "..AB" in html and "AP9BQg==" in html


def test_detail_shows_invalid_json_as_text(alice, hello):
    d = delivery(hello, headers=[["Content-Type", "application/json"]], body=b"{not json", body_size=9)
    assert "{not json" in page(signed_in(alice).get(f"{LOG}{d.pk}/"))


def test_replay_creates_a_linked_delivery_and_both_pages_link_each_other(alice, hello):
    original = delivery(hello, state="dead", response_status=503, body=b"payload", body_size=7)
    client = signed_in(alice)
    assert 'id="replay"' in page(client.get(f"{LOG}{original.pk}/"))
    response = client.post(f"{LOG}{original.pk}/replay/", follow=True)
    copy = Delivery.objects.get(replay_of=original)
    assert response.redirect_chain[-1][0] == f"{LOG}{copy.pk}/"
    assert bytes(copy.body) == b"payload" and copy.state == "received"
    html = page(response)
    assert "Replaying" in html and f'href="{LOG}{original.pk}/"' in html
    assert f'href="{LOG}{copy.pk}/"' in page(client.get(f"{LOG}{original.pk}/"))


def test_rejected_delivery_cannot_be_replayed(alice, hello):
    d = delivery(hello, state="rejected", verification="failed", response_status=401)
    client = signed_in(alice)
    assert 'id="replay"' not in page(client.get(f"{LOG}{d.pk}/"))
    html = page(client.post(f"{LOG}{d.pk}/replay/", follow=True))
    assert "failed signature verification" in html and Delivery.objects.count() == 1


def test_bulk_replay_of_failed_and_dead(alice, hello):
    failed, dead = delivery(hello, state="failed"), delivery(hello, state="dead")
    delivery(hello)
    html = page(signed_in(alice).post(LOG + "replay-failed/", follow=True))
    assert "Replaying 2 failed or dead deliveries" in html
    assert set(Delivery.objects.filter(replay_of__isnull=False).values_list("replay_of", flat=True)) == {
        failed.pk, dead.pk}


def test_viewer_sees_no_buttons_and_gets_403_on_posts(bob, hello):
    d = delivery(hello, state="dead")
    client = signed_in(bob)
    assert "replay-failed" not in page(client.get(LOG))
    for url in (f"{LOG}{d.pk}/replay/", LOG + "replay-failed/", DETAIL + "rotate-token/"):
        assert client.post(url).status_code == 403, url
    assert Delivery.objects.count() == 1


def test_another_tenant_cannot_list_view_or_replay(charlie, hello, tenant_b):
    d = delivery(hello, state="dead")
    client = signed_in(charlie)
    for method, url in [("get", LOG), ("get", f"{LOG}{d.pk}/"), ("post", f"{LOG}{d.pk}/replay/"),
                        ("post", LOG + "replay-failed/")]:
        assert getattr(client, method)(url).status_code == 404, url
    Trigger.objects.create(tenant=tenant_b, name="hello", image="kubesim/echo")
    assert client.get(f"/t/globex/triggers/hello/deliveries/{d.pk}/").status_code == 404
    assert client.post(f"/t/globex/triggers/hello/deliveries/{d.pk}/replay/").status_code == 404
    assert Delivery.objects.count() == 1


def test_anonymous_users_are_sent_to_sign_in(hello):
    d = delivery(hello)
    for url in (LOG, f"{LOG}{d.pk}/"):
        response = Client().get(url)
        assert response.status_code == 302 and response["Location"].startswith("/login/")
