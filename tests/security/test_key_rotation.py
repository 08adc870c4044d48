"""Key rotation: only RELAY_ENCRYPTION_KEYS decrypt once set, and rotate_encryption_keys re-encrypts."""

from __future__ import annotations

import io

import pytest
from cryptography.fernet import Fernet
from django.core.management import call_command

from triggers.models import Delivery, Trigger
from triggers.security import crypto, sealed
from triggers.security.crypto import SECRET_KEY_DERIVED, decrypt, encrypt, fernet_key

PLAINTEXT = "whsec_5WbX5kEWLlfzsGNjH64I8lOOqUB6e8FH"


def test_once_keys_are_set_the_secret_key_derived_key_no_longer_decrypts(settings):
    settings.RELAY_ENCRYPTION_KEYS = []
    old = encrypt(PLAINTEXT)
    settings.RELAY_ENCRYPTION_KEYS = ["new-key"]
    with pytest.raises(ValueError, match="cannot decrypt"):
        decrypt(old)


def test_the_secret_key_derived_key_decrypts_when_listed(settings):
    settings.RELAY_ENCRYPTION_KEYS = []
    old = encrypt(PLAINTEXT)
    settings.RELAY_ENCRYPTION_KEYS = ["new-key", SECRET_KEY_DERIVED]
    assert decrypt(old) == PLAINTEXT
    assert Fernet(fernet_key("new-key")).decrypt(encrypt(PLAINTEXT).encode()).decode() == PLAINTEXT
    assert crypto.is_current(encrypt(PLAINTEXT)) and not crypto.is_current(old)


def _rotate() -> str:
    out, err = io.StringIO(), io.StringIO()
    call_command("rotate_encryption_keys", "--batch-size", "2", stdout=out, stderr=err)
    return out.getvalue() + err.getvalue()


@pytest.fixture
def stored(settings, tenant_a):
    """Three triggers and two deliveries with secrets under the SECRET_KEY-derived key, one trigger under a
    key that is then lost."""
    settings.RELAY_ENCRYPTION_KEYS = []
    triggers = [Trigger.objects.create(tenant=tenant_a, name=f"t{i}", image="kubesim/echo",
                                       verification_secret=encrypt(f"secret-{i}")) for i in range(3)]
    Trigger.objects.create(tenant=tenant_a, name="plain", image="kubesim/echo")  # no secret: not counted
    deliveries = [Delivery.objects.create(trigger=triggers[0], mode="sync", method="POST",
                                          headers=[["authorization", "[redacted]"]],
                                          sealed_headers=sealed.seal([(0, f"Bearer tok-{i}")])) for i in range(2)]
    settings.RELAY_ENCRYPTION_KEYS = ["lost-key"]
    bad = Trigger.objects.create(tenant=tenant_a, name="bad", image="kubesim/echo",
                                 verification_secret=encrypt("unrecoverable"))
    return triggers, deliveries, bad


def test_rotation_re_encrypts_every_secret_with_the_first_key_and_reports_counts(settings, stored):
    triggers, deliveries, bad = stored
    settings.RELAY_ENCRYPTION_KEYS = ["new-key", SECRET_KEY_DERIVED]
    report = _rotate()
    assert "re-encrypted: 5, already current: 0, undecryptable: 1" in report
    assert f"triggers.Trigger {bad.pk} verification_secret" in report

    settings.RELAY_ENCRYPTION_KEYS = ["new-key"]  # the old key removed: everything still opens
    for i, trigger in enumerate(triggers):
        trigger.refresh_from_db()
        assert decrypt(trigger.verification_secret) == f"secret-{i}"
    for i, delivery in enumerate(deliveries):
        delivery.refresh_from_db()
        assert sealed.open_sealed(delivery.sealed_headers) == {0: f"Bearer tok-{i}"}
    before = bad.verification_secret
    bad.refresh_from_db()
    assert bad.verification_secret == before  # left as it was


def test_rotation_is_idempotent(settings, stored):
    settings.RELAY_ENCRYPTION_KEYS = ["new-key", SECRET_KEY_DERIVED]
    _rotate()
    tokens = list(Trigger.objects.order_by("pk").values_list("verification_secret", flat=True))
    assert "re-encrypted: 0, already current: 5, undecryptable: 1" in _rotate()
    assert list(Trigger.objects.order_by("pk").values_list("verification_secret", flat=True)) == tokens


def test_rotation_without_the_old_key_listed_cannot_read_secret_key_derived_secrets(settings, stored):
    settings.RELAY_ENCRYPTION_KEYS = ["new-key"]
    assert "re-encrypted: 0, already current: 0, undecryptable: 6" in _rotate()
