"""Encryption at rest of verification secrets (triggers/security/crypto.py)."""

from __future__ import annotations

import base64
import hashlib

import pytest
from cryptography.fernet import Fernet

from triggers.security.crypto import decrypt, encrypt, fernet_key, rotate

PLAINTEXT = "whsec_5WbX5kEWLlfzsGNjH64I8lOOqUB6e8FH"


def test_round_trip_with_configured_keys(settings):
    settings.RELAY_ENCRYPTION_KEYS = ["first-key"]
    token = encrypt(PLAINTEXT)
    assert PLAINTEXT not in token
    assert decrypt(token) == PLAINTEXT


@pytest.mark.parametrize("plaintext", ["", "é€😀 unicode", "x" * 10_000])
def test_round_trip_of_any_text(settings, plaintext):
    settings.RELAY_ENCRYPTION_KEYS = ["k"]
    assert decrypt(encrypt(plaintext)) == plaintext


def test_each_encryption_is_randomised(settings):
    settings.RELAY_ENCRYPTION_KEYS = ["k"]
    assert encrypt(PLAINTEXT) != encrypt(PLAINTEXT)


def test_the_first_key_encrypts_and_every_key_decrypts(settings):
    settings.RELAY_ENCRYPTION_KEYS = ["old-key"]
    old_token = encrypt(PLAINTEXT)

    settings.RELAY_ENCRYPTION_KEYS = ["new-key", "old-key"]
    assert decrypt(old_token) == PLAINTEXT
    new_token = encrypt(PLAINTEXT)
    assert Fernet(fernet_key("new-key")).decrypt(new_token.encode()).decode() == PLAINTEXT

    settings.RELAY_ENCRYPTION_KEYS = ["new-key"]
    assert decrypt(new_token) == PLAINTEXT
    with pytest.raises(ValueError, match=r"^cannot decrypt: wrong RELAY_ENCRYPTION_KEYS\?$"):
        decrypt(old_token)


def test_rotate_re_encrypts_with_the_first_key(settings):
    settings.RELAY_ENCRYPTION_KEYS = ["old-key"]
    old_token = encrypt(PLAINTEXT)
    settings.RELAY_ENCRYPTION_KEYS = ["new-key", "old-key"]
    rotated = rotate(old_token)
    settings.RELAY_ENCRYPTION_KEYS = ["new-key"]
    assert decrypt(rotated) == PLAINTEXT
    with pytest.raises(ValueError, match="cannot decrypt"):
        rotate("garbage")


def test_a_wrong_key_raises_a_clear_value_error(settings):
    settings.RELAY_ENCRYPTION_KEYS = ["right-key"]
    token = encrypt(PLAINTEXT)
    settings.RELAY_ENCRYPTION_KEYS = ["wrong-key"]
    with pytest.raises(ValueError, match=r"^cannot decrypt: wrong RELAY_ENCRYPTION_KEYS\?$") as excinfo:
        decrypt(token)
    assert excinfo.value.__cause__ is None
    assert excinfo.value.__suppress_context__


@pytest.mark.parametrize("token", ["", "garbage", "gAAAAA", "é" * 20, "gAAAAAB" + "A" * 120])
def test_garbage_raises_a_clear_value_error(settings, token):
    settings.RELAY_ENCRYPTION_KEYS = ["k"]
    with pytest.raises(ValueError, match="cannot decrypt"):
        decrypt(token)


def test_a_tampered_token_is_refused(settings):
    settings.RELAY_ENCRYPTION_KEYS = ["k"]
    raw = bytearray(base64.urlsafe_b64decode(encrypt(PLAINTEXT)))
    raw[-40] ^= 1
    with pytest.raises(ValueError, match="cannot decrypt"):
        decrypt(base64.urlsafe_b64encode(bytes(raw)).decode())


def test_keys_are_sha256_of_the_configured_secret(settings):
    settings.RELAY_ENCRYPTION_KEYS = ["my key"]
    expected = base64.urlsafe_b64encode(hashlib.sha256(b"my key").digest())
    assert fernet_key("my key") == expected
    assert Fernet(expected).decrypt(encrypt(PLAINTEXT).encode()).decode() == PLAINTEXT


@pytest.mark.parametrize("empty", [[], None, [""], ["  "]])
def test_without_keys_a_key_is_derived_from_the_secret_key(settings, empty):
    settings.RELAY_ENCRYPTION_KEYS = empty
    settings.SECRET_KEY = "a-django-secret-key"
    token = encrypt(PLAINTEXT)
    derived = base64.urlsafe_b64encode(hashlib.sha256(b"relayweb-encryption:a-django-secret-key").digest())
    assert Fernet(derived).decrypt(token.encode()).decode() == PLAINTEXT
    # domain separated: not the plain hash of SECRET_KEY
    assert derived != fernet_key("a-django-secret-key")

    settings.SECRET_KEY = "another-secret-key"
    with pytest.raises(ValueError, match="cannot decrypt"):
        decrypt(token)


def test_works_before_the_setting_exists(settings):
    del settings.RELAY_ENCRYPTION_KEYS
    assert decrypt(encrypt(PLAINTEXT)) == PLAINTEXT


def test_secrets_stored_before_keys_were_configured_decrypt_while_the_derived_key_is_listed(settings):
    settings.RELAY_ENCRYPTION_KEYS = []
    token = encrypt(PLAINTEXT)
    settings.RELAY_ENCRYPTION_KEYS = ["new-key", "SECRET_KEY_DERIVED"]
    assert decrypt(token) == PLAINTEXT
    assert Fernet(fernet_key("new-key")).decrypt(encrypt(PLAINTEXT).encode()).decode() == PLAINTEXT


def test_a_single_string_setting_is_one_key(settings):
    settings.RELAY_ENCRYPTION_KEYS = "solo-key"
    assert Fernet(fernet_key("solo-key")).decrypt(encrypt(PLAINTEXT).encode()).decode() == PLAINTEXT
