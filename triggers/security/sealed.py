"""The sensitive request headers of a delivery, kept encrypted so that its later attempts and replays send
the handler what the sender sent (``Authorization``, signatures, tokens), never the log's ``[redacted]``.

The log keeps the redacted copy (``Delivery.headers``, the only one the UI and the API show); the values
it hides are sealed with the key ring of the verification secrets (triggers/security/crypto.py) into
``Delivery.sealed_headers`` as ``[[index, value], …]``, and cleared by the retention task once the
delivery can no longer be attempted and RELAY_CREDENTIALS_RETENTION_HOURS have passed (deliveries_prune).
A delivery whose sealed values are gone (cleared, or stored before they were kept) is sent without its
sensitive headers rather than with ``[redacted]`` in their place.
"""

from __future__ import annotations

import json
import logging

from . import crypto
from .signatures import REDACTED

log = logging.getLogger(__name__)
MIN_SCRUBBED_CHARS = 6  # shorter values are too common to be replaced in a response body


def seal(kept: list[tuple[int, str]]) -> str:
    """The ``(index, value)`` pairs of ``signatures.redact_keeping`` encrypted ('' when there are none)."""
    return crypto.encrypt(json.dumps(kept, ensure_ascii=False, separators=(",", ":"))) if kept else ""


def open_sealed(sealed: str) -> dict[int, str]:
    """index -> value of what ``seal`` sealed; {} when nothing is (or can be) opened."""
    if not sealed:
        return {}
    try:
        return {int(index): value for index, value in json.loads(crypto.decrypt(sealed))}
    except ValueError:
        log.warning("sealed headers cannot be decrypted (check RELAY_ENCRYPTION_KEYS); sent without them")
        return {}


def restore(headers: list, values: dict[int, str]) -> list[tuple[str, str]]:
    """The request headers as the sender sent them: the log's copy with the sealed values put back. A
    redacted value that cannot be put back (cleared, or undecryptable) leaves its header out."""
    return [(name, values[i]) if i in values else (name, value) for i, (name, value) in enumerate(headers)
            if i in values or value != REDACTED]


def scrub(data: bytes, secrets) -> bytes:
    """A response body for the log without the request's secret values (a handler echoing its headers)."""
    for secret in secrets:
        if len(secret) < MIN_SCRUBBED_CHARS:
            continue
        for raw in {secret.encode("latin-1", "replace"), secret.encode("utf-8")}:
            if raw in data:
                data = data.replace(raw, REDACTED.encode())
    return data
