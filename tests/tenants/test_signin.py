"""Sign-in is throttled per username and per client address; passwords can be reset by e-mail and changed."""

import re

import pytest
from django.contrib.auth import get_user_model
from django.core import mail
from rest_framework.test import APIClient

from tenants import throttle
from tests.conftest import PASSWORD

pytestmark = pytest.mark.django_db


def sign_in(client, username, password, address="10.1.1.1", path="/login/", **extra):
    return client.post(path, {"username": username, "password": password}, REMOTE_ADDR=address, **extra)


def minutes_in(response) -> int:
    match = re.search(r"Too many attempts, try again in (\d+) minutes?", response.content.decode())
    assert match, response.content.decode()
    return int(match.group(1))


def test_ten_failed_sign_ins_for_a_username_answer_429_with_the_minutes(client, alice, bob):
    for i in range(10):
        assert sign_in(client, "alice", "wrong", address=f"10.0.0.{i}").status_code == 200
    response = sign_in(client, "alice", PASSWORD, address="10.9.9.9")  # right password, fresh address
    assert response.status_code == 429
    assert minutes_in(response) == 15
    assert 14 * 60 < int(response["Retry-After"]) <= 15 * 60
    assert "_auth_user_id" not in client.session
    # another user from the same addresses is not affected
    assert sign_in(client, "bob", PASSWORD, address="10.0.0.1").status_code == 302


def test_the_username_counts_case_insensitively(client, alice):
    for i in range(10):
        sign_in(client, "Alice" if i % 2 else "ALICE", "wrong", address=f"10.0.0.{i}")
    assert sign_in(client, "alice", PASSWORD, address="10.9.9.9").status_code == 429


def test_ten_failed_sign_ins_from_one_address_block_that_address_for_every_username(client, alice, bob):
    for i in range(10):
        sign_in(client, f"nobody{i}", "wrong", address="10.2.2.2")
    assert sign_in(client, "alice", PASSWORD, address="10.2.2.2").status_code == 429
    assert sign_in(client, "alice", PASSWORD, address="10.3.3.3").status_code == 302


def test_nine_failures_then_the_right_password_signs_in_and_clears_the_username_count(client, alice):
    for _ in range(9):
        sign_in(client, "alice", "wrong", address="10.4.4.4")
    assert sign_in(client, "alice", PASSWORD, address="10.5.5.5").status_code == 302
    client.logout()
    for _ in range(9):  # the username starts again from zero; the address 10.4.4.4 keeps its nine
        sign_in(client, "alice", "wrong", address="10.6.6.6")
    assert sign_in(client, "alice", PASSWORD, address="10.7.7.7").status_code == 302
    client.logout()
    sign_in(client, "someone", "wrong", address="10.4.4.4")
    assert sign_in(client, "alice", PASSWORD, address="10.4.4.4").status_code == 429


def test_a_signed_in_user_posting_someone_elses_username_does_not_clear_their_count(client, alice, bob):
    for _ in range(9):
        sign_in(client, "alice", "wrong", address="10.13.0.1")
    client.force_login(bob)
    assert sign_in(client, "alice", "anything", address="10.13.0.2").status_code == 302  # already signed in
    client.logout()
    sign_in(client, "alice", "wrong", address="10.13.0.3")
    assert sign_in(client, "alice", PASSWORD, address="10.13.0.4").status_code == 429


def test_the_block_ends_with_the_window(client, alice, settings):
    settings.RELAY_SIGNIN_WINDOW = 1
    for _ in range(10):
        sign_in(client, "alice", "wrong")
    response = sign_in(client, "alice", PASSWORD)
    assert response.status_code == 429 and minutes_in(response) == 1
    import time
    time.sleep(1.2)
    assert sign_in(client, "alice", PASSWORD).status_code == 302


def test_a_spoofed_x_forwarded_for_does_not_change_the_address(client, alice, settings):
    for i in range(10):
        sign_in(client, f"nobody{i}", "wrong", address="10.8.8.8", HTTP_X_FORWARDED_FOR=f"192.0.2.{i}")
    assert sign_in(client, "alice", PASSWORD, address="10.8.8.8", HTTP_X_FORWARDED_FOR="192.0.2.99").status_code == 429


def test_behind_a_trusted_proxy_the_client_is_the_nearest_untrusted_forwarded_address(client, alice, settings):
    settings.RELAY_TRUSTED_PROXIES = ["10.100.0.0/16"]
    for i in range(10):  # the client forges a left-most entry; the proxy appended the real address
        sign_in(client, f"nobody{i}", "wrong", address="10.100.0.5", HTTP_X_FORWARDED_FOR=f"192.0.2.{i}, 198.51.100.7")
    via_proxy = {"address": "10.100.0.5"}
    assert sign_in(client, "alice", PASSWORD, HTTP_X_FORWARDED_FOR="198.51.100.7", **via_proxy).status_code == 429
    assert sign_in(client, "alice", PASSWORD, HTTP_X_FORWARDED_FOR="198.51.100.8", **via_proxy).status_code == 302


def test_admin_sign_in_is_throttled_too(client, staff):
    for _ in range(10):
        response = sign_in(client, staff.username, "wrong", path="/admin/login/")
        assert response.status_code == 200
    response = sign_in(client, staff.username, PASSWORD, path="/admin/login/", address="10.9.9.8")
    assert response.status_code == 429 and minutes_in(response) == 15


def test_ten_bad_api_tokens_from_one_address_answer_429_for_that_address(alice, token_for):
    good = token_for(alice)
    for i in range(10):
        response = APIClient(HTTP_AUTHORIZATION=f"Token rw_bad{i}", REMOTE_ADDR="10.11.0.1").get("/api/v1/tenants/")
        assert response.status_code == 401
    response = APIClient(HTTP_AUTHORIZATION=f"Token {good}", REMOTE_ADDR="10.11.0.1").get("/api/v1/tenants/")
    assert response.status_code == 429
    assert re.fullmatch(r"Too many attempts, try again in 15 minutes\.", response.json()["detail"])
    assert int(response["Retry-After"]) > 14 * 60
    elsewhere = APIClient(HTTP_AUTHORIZATION=f"Token {good}", REMOTE_ADDR="10.11.0.2").get("/api/v1/tenants/")
    assert elsewhere.status_code == 200


def test_api_token_failures_and_sign_in_failures_are_counted_apart(client, alice, token_for):
    for i in range(10):
        APIClient(HTTP_AUTHORIZATION=f"Token rw_bad{i}", REMOTE_ADDR="10.12.0.1").get("/api/v1/tenants/")
    assert sign_in(client, "alice", PASSWORD, address="10.12.0.1").status_code == 302


def test_without_redis_sign_in_is_not_blocked(client, alice, settings):
    settings.REDIS_URL = "redis://127.0.0.1:1/0"  # nothing listens there
    for _ in range(11):
        sign_in(client, "alice", "wrong")
    assert sign_in(client, "alice", PASSWORD).status_code == 302


def test_the_login_page_links_to_password_reset(client):
    body = client.get("/login/").content.decode()
    assert 'href="/password-reset/"' in body


def test_password_reset_by_email_end_to_end(client, alice, settings):
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    page = client.get("/password-reset/")
    assert page.status_code == 200 and "Reset password" in page.content.decode()
    response = client.post("/password-reset/", {"email": "alice@example.test"})
    assert response.status_code == 302 and response["Location"] == "/password-reset/sent/"
    assert len(mail.outbox) == 1
    message = mail.outbox[0]
    assert message.to == ["alice@example.test"] and "relayweb" in message.subject
    link = re.search(r"https?://testserver(/password-reset/\S+/)", message.body).group(1)
    response = client.get(link)  # Django swaps the token for a session marker and redirects
    assert response.status_code == 302
    form_url = response["Location"]
    assert "Choose a new password" in client.get(form_url).content.decode()
    new = "a completely new passphrase 42"
    response = client.post(form_url, {"new_password1": new, "new_password2": new})
    assert response.status_code == 302 and response["Location"] == "/password-reset/done/"
    assert "Password set" in client.get("/password-reset/done/").content.decode()
    assert get_user_model().objects.get(username="alice").check_password(new)
    # the link works once
    assert "This link is invalid" in client.get(link, follow=True).content.decode()


def test_password_reset_for_an_unknown_address_answers_the_same_and_sends_nothing(client, settings):
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    response = client.post("/password-reset/", {"email": "nobody@example.test"})
    assert response.status_code == 302 and response["Location"] == "/password-reset/sent/"
    assert mail.outbox == []


def test_password_reset_requests_are_limited_per_address(client, alice, settings):
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    def ask(address):
        return client.post("/password-reset/", {"email": "alice@example.test"}, REMOTE_ADDR=address)

    for _ in range(10):
        assert ask("10.14.0.1").status_code == 302
    response = ask("10.14.0.1")
    assert response.status_code == 429 and minutes_in(response) == 15
    assert len(mail.outbox) == 10
    assert ask("10.14.0.2").status_code == 302


def test_change_password_page(client, alice):
    assert client.get("/account/password/").status_code == 302  # anonymous: to the sign-in page
    client.force_login(alice)
    page = client.get("/account/password/")
    assert page.status_code == 200 and "Change password" in page.content.decode()
    wrong = client.post("/account/password/", {"old_password": "nope", "new_password1": "x", "new_password2": "x"})
    assert wrong.status_code == 200 and "has-error" in wrong.content.decode()
    new = "another fresh passphrase 77"
    response = client.post("/account/password/",
                           {"old_password": PASSWORD, "new_password1": new, "new_password2": new})
    assert response.status_code == 302 and response["Location"] == "/account/password/done/"
    assert "Password changed" in client.get("/account/password/done/").content.decode()  # still signed in
    assert get_user_model().objects.get(username="alice").check_password(new)


def test_the_password_change_link_is_in_the_header(client, alice):
    client.force_login(alice)
    assert 'href="/account/password/"' in client.get("/").content.decode()


def test_message_says_minutes():
    assert throttle.message(1) == "Too many attempts, try again in 1 minute."
    assert throttle.message(61) == "Too many attempts, try again in 2 minutes."
