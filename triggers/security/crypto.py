"""Encryption at rest of webhook verification secrets (Fernet: AES-128-CBC + HMAC-SHA256, authenticated).

Keys come from ``settings.RELAY_ENCRYPTION_KEYS``, a list of secrets of any form: the first encrypts, all
decrypt, so a key is rotated by putting the new one first and re-encrypting (``rotate()``, the
``rotate_encryption_keys`` command) before dropping the old one. Each secret becomes a Fernet key as
urlsafe-base64(SHA-256(secret)). When the setting is empty a key is derived from ``SECRET_KEY``
(domain-separated). Once ``RELAY_ENCRYPTION_KEYS`` is set only the listed keys decrypt: the
``SECRET_KEY``-derived key is one of them only when the list names it with the token ``SECRET_KEY_DERIVED``
(e.g. ``new-key,SECRET_KEY_DERIVED`` while the secrets stored before the setting are re-encrypted).
"""

from __future__ import annotations

import base64
import functools
import hashlib

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.conf import settings

DECRYPT_ERROR = "cannot decrypt: wrong RELAY_ENCRYPTION_KEYS?"
SECRET_KEY_DERIVED = "SECRET_KEY_DERIVED"  # in RELAY_ENCRYPTION_KEYS: the key derived from SECRET_KEY


def fernet_key(secret: str) -> bytes:
    """A Fernet key from any secret string: urlsafe-base64 of its SHA-256."""
    return base64.urlsafe_b64encode(hashlib.sha256(secret.encode("utf-8")).digest())


def _secret_key_derived(secret_key: str) -> bytes:
    return base64.urlsafe_b64encode(hashlib.sha256(b"relayweb-encryption:" + secret_key.encode("utf-8")).digest())


def _configured_keys() -> tuple[str, ...]:
    keys = getattr(settings, "RELAY_ENCRYPTION_KEYS", None) or ()
    if isinstance(keys, str):  # a single key set as a plain string
        keys = (keys,)
    return tuple(key.strip() for key in keys if key and key.strip())


@functools.lru_cache(maxsize=8)
def _fernets(keys: tuple[str, ...], secret_key: str) -> tuple[Fernet, ...]:
    if not keys:  # the fallback: the key derived from SECRET_KEY, only while no keys are set
        return (Fernet(_secret_key_derived(secret_key)),)
    return tuple(Fernet(_secret_key_derived(secret_key) if key == SECRET_KEY_DERIVED else fernet_key(key))
                 for key in keys)


@functools.lru_cache(maxsize=8)
def _multifernet(keys: tuple[str, ...], secret_key: str) -> MultiFernet:
    return MultiFernet(list(_fernets(keys, secret_key)))


def is_current(token: str) -> bool:
    """Whether the token was made with the first (encrypting) key."""
    try:
        _fernets(_configured_keys(), str(settings.SECRET_KEY))[0].decrypt(token.encode("utf-8"))
    except (InvalidToken, TypeError, ValueError, AttributeError):
        return False
    return True


def _fernet() -> MultiFernet:
    # Read the settings on every call (cheap) so tests and reloads see changes; the Fernet objects are cached.
    return _multifernet(_configured_keys(), str(settings.SECRET_KEY))


def encrypt(plaintext: str) -> str:
    """The plaintext encrypted with the first key, as an ASCII token."""
    return _fernet().encrypt(plaintext.encode("utf-8")).decode("ascii")


def decrypt(token: str) -> str:
    """The plaintext of a token made by ``encrypt`` with any current key; ValueError when none fits."""
    try:
        return _fernet().decrypt(token.encode("utf-8")).decode("utf-8")
    except (InvalidToken, TypeError, ValueError, AttributeError):
        raise ValueError(DECRYPT_ERROR) from None


def rotate(token: str) -> str:
    """The token re-encrypted with the first (newest) key; ValueError when no current key decrypts it."""
    try:
        return _fernet().rotate(token.encode("utf-8")).decode("ascii")
    except (InvalidToken, TypeError, ValueError, AttributeError):
        raise ValueError(DECRYPT_ERROR) from None
