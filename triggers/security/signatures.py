"""Webhook signature verification at the edge: one verifier class per provider.

Pure and fast (it runs on the ingress hot path): no Django, no I/O, no logging. ``verify()`` never raises
on what a sender controls (headers, body); it returns a ``Verification`` whose ``reason`` is safe to show
the sender and to store — it names the header and the problem, never a secret, a signature or the body.
Every signature comparison goes through ``hmac.compare_digest``.

Header mappings have lower-case keys, as the ingress builds them from the ASGI scope.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

KINDS = ("none", "github", "stripe", "slack", "hmac")
REDACTED_HEADERS = frozenset({"authorization", "cookie", "set-cookie", "proxy-authorization"})
# Any header whose name contains one of these (case-insensitive) is a credential too: X-Gitlab-Token,
# X-Api-Key, X-Auth-Token, X-Twilio-Signature, X-Shopify-Hmac-Sha256, X-Webhook-Secret, …
SENSITIVE_NAME_PARTS = ("token", "key", "secret", "signature", "password", "auth", "hmac")
REDACTED = "[redacted]"
_SENSITIVE_NAME = re.compile("|".join(SENSITIVE_NAME_PARTS))
_sensitive_names: dict[str, bool] = {}  # name as received -> sensitive: names repeat, the regex runs once each

MAX_HEADER_CHARS = 4096  # longer signature headers are rejected unread
MAX_DELIVERY_ID_CHARS = 200  # Delivery.provider_delivery_id
MAX_STRIPE_SIGNATURES = 16
DEFAULT_TOLERANCE = 300  # seconds, Stripe's and Slack's documented window

_HEX64 = re.compile(r"[0-9a-fA-F]{64}")
_TIMESTAMP = re.compile(r"[0-9]{1,15}")
_BASE64 = re.compile(r"[A-Za-z0-9+/\-_]+={0,2}")


@dataclass(frozen=True, slots=True)
class Verification:
    ok: bool
    reason: str = ""  # why it failed; safe to show the sender and to store
    challenge: bytes | None = None  # Slack url_verification: the JSON body to answer at the edge with 200


OK = Verification(ok=True)


def _fail(reason: str) -> Verification:
    return Verification(ok=False, reason=reason)


def _header(headers: Mapping[str, Any], name: str) -> str | None:
    """The header's value stripped, or None when absent; never raises on odd mappings or values."""
    try:
        value = headers.get(name)
    except Exception:
        return None
    if value is None:
        return None
    if isinstance(value, bytes | bytearray):
        value = bytes(value).decode("latin-1")
    elif not isinstance(value, str):
        return None
    return value.strip()


def _json_object(body: bytes) -> dict | None:
    """The body as a JSON object, or None (not JSON, not an object, not UTF-8, too deeply nested…)."""
    if not isinstance(body, bytes | bytearray | memoryview):
        return None
    head = bytes(body[:64]).lstrip()
    if not head.startswith(b"{"):
        return None
    try:
        data = json.loads(body)
    except (ValueError, RecursionError, TypeError):
        return None
    return data if isinstance(data, dict) else None


def _json_string(body: bytes, key: str) -> str | None:
    data = _json_object(body)
    value = data.get(key) if data is not None else None
    return value if isinstance(value, str) and value else None


def _hmac_sha256(key: bytes, *parts: bytes) -> bytes:
    mac = hmac.new(key, digestmod=hashlib.sha256)
    for part in parts:
        mac.update(part)
    return mac.digest()


def _body_bytes(body: Any) -> bytes | None:
    if isinstance(body, bytes):
        return body
    if isinstance(body, bytearray | memoryview):
        return bytes(body)
    return None


def _timestamp_reason(raw: str, now: float | None, tolerance: float) -> str:
    """'' when ``raw`` is a unix timestamp within ``tolerance`` seconds of now (either side), else the reason."""
    if not _TIMESTAMP.fullmatch(raw):
        return "malformed timestamp"
    current = time.time() if now is None else now
    if not abs(current - int(raw)) <= tolerance:  # written so that a NaN clock fails too
        return "timestamp outside the tolerance"
    return ""


class Verifier:
    """Base class: one subclass per provider. Never holds anything but the secret as key bytes."""

    kind: str = ""
    signature_headers: tuple[str, ...] = ()

    def __init__(self, secret: str = "") -> None:
        self._key = secret.encode("utf-8") if isinstance(secret, str) else bytes(secret)

    def __repr__(self) -> str:  # never the secret
        return f"<{type(self).__name__} kind={self.kind!r}>"

    def verify(self, headers: Mapping[str, str], body: bytes, now: float | None = None) -> Verification:
        raise NotImplementedError

    def delivery_id(self, headers: Mapping[str, str], body: bytes) -> str | None:
        return None

    def _no_secret(self) -> Verification | None:
        # An empty key would let anyone compute a valid signature: fail closed.
        return None if self._key else _fail("no signing secret configured for this trigger")


class NoVerifier(Verifier):
    kind = "none"

    def verify(self, headers: Mapping[str, str], body: bytes, now: float | None = None) -> Verification:
        return OK


class GitHubVerifier(Verifier):
    """``X-Hub-Signature-256: sha256=<hex HMAC-SHA256(secret, raw body)>``."""

    kind = "github"
    signature_headers = ("x-hub-signature-256", "x-hub-signature")

    def verify(self, headers: Mapping[str, str], body: bytes, now: float | None = None) -> Verification:
        if failed := self._no_secret():
            return failed
        body = _body_bytes(body)
        value = _header(headers, "x-hub-signature-256")
        if value is None or value == "":
            return _fail("missing X-Hub-Signature-256 header")
        if body is None:
            return _fail("unreadable body")
        scheme, sep, given = value.partition("=")
        if len(value) > MAX_HEADER_CHARS or not sep or scheme.lower() != "sha256" or not _HEX64.fullmatch(given):
            return _fail("malformed X-Hub-Signature-256 header (expected sha256=<64 hex digits>)")
        if not hmac.compare_digest(_hmac_sha256(self._key, body), bytes.fromhex(given)):
            return _fail("signature mismatch")
        return OK

    def delivery_id(self, headers: Mapping[str, str], body: bytes) -> str | None:
        return _header(headers, "x-github-delivery") or None


class StripeVerifier(Verifier):
    """``Stripe-Signature: t=<unix>,v1=<hex>[,v1=<hex>…][,v0=…]`` over ``b"<t>." + body``; any v1 may match."""

    kind = "stripe"
    signature_headers = ("stripe-signature",)

    def __init__(self, secret: str = "", tolerance: float = DEFAULT_TOLERANCE) -> None:
        super().__init__(secret)
        self.tolerance = tolerance

    def verify(self, headers: Mapping[str, str], body: bytes, now: float | None = None) -> Verification:
        if failed := self._no_secret():
            return failed
        body = _body_bytes(body)
        value = _header(headers, "stripe-signature")
        if value is None or value == "":
            return _fail("missing Stripe-Signature header")
        if body is None:
            return _fail("unreadable body")
        if len(value) > MAX_HEADER_CHARS:
            return _fail("malformed Stripe-Signature header (too long)")
        timestamp, signatures = None, []
        for item in value.split(","):
            name, sep, val = item.strip().partition("=")
            if not sep:
                continue
            if name == "t" and timestamp is None:
                timestamp = val.strip()
            elif name == "v1" and val.strip():
                signatures.append(val.strip())
        if timestamp is None or not _TIMESTAMP.fullmatch(timestamp):
            return _fail("malformed Stripe-Signature header (no t=<unix timestamp>)")
        if not signatures:
            return _fail("malformed Stripe-Signature header (no v1 signature)")
        if reason := _timestamp_reason(timestamp, now, self.tolerance):
            return _fail(reason)
        expected = _hmac_sha256(self._key, timestamp.encode("ascii"), b".", body)
        matched = False
        for given in signatures[:MAX_STRIPE_SIGNATURES]:
            if _HEX64.fullmatch(given) and hmac.compare_digest(expected, bytes.fromhex(given)):
                matched = True
        return OK if matched else _fail("signature mismatch")

    def delivery_id(self, headers: Mapping[str, str], body: bytes) -> str | None:
        return _json_string(body, "id")


class SlackVerifier(Verifier):
    """``X-Slack-Signature: v0=<hex HMAC-SHA256(secret, b"v0:" + ts + b":" + body)>`` with
    ``X-Slack-Request-Timestamp`` within the tolerance; answers ``url_verification`` once verified."""

    kind = "slack"
    signature_headers = ("x-slack-signature",)

    def __init__(self, secret: str = "", tolerance: float = DEFAULT_TOLERANCE) -> None:
        super().__init__(secret)
        self.tolerance = tolerance

    def verify(self, headers: Mapping[str, str], body: bytes, now: float | None = None) -> Verification:
        if failed := self._no_secret():
            return failed
        body = _body_bytes(body)
        timestamp = _header(headers, "x-slack-request-timestamp")
        value = _header(headers, "x-slack-signature")
        if not timestamp:
            return _fail("missing X-Slack-Request-Timestamp header")
        if not value:
            return _fail("missing X-Slack-Signature header")
        if body is None:
            return _fail("unreadable body")
        if not _TIMESTAMP.fullmatch(timestamp):
            return _fail("malformed X-Slack-Request-Timestamp header")
        scheme, sep, given = value.partition("=")
        if len(value) > MAX_HEADER_CHARS or not sep or scheme != "v0" or not _HEX64.fullmatch(given):
            return _fail("malformed X-Slack-Signature header (expected v0=<64 hex digits>)")
        if reason := _timestamp_reason(timestamp, now, self.tolerance):
            return _fail(reason)
        expected = _hmac_sha256(self._key, b"v0:", timestamp.encode("ascii"), b":", body)
        if not hmac.compare_digest(expected, bytes.fromhex(given)):
            return _fail("signature mismatch")
        return Verification(ok=True, challenge=self._challenge(body))

    @staticmethod
    def _challenge(body: bytes) -> bytes | None:
        data = _json_object(body)
        if data is None or data.get("type") != "url_verification":
            return None
        challenge = data.get("challenge")
        if not isinstance(challenge, str):
            return None
        return json.dumps({"challenge": challenge}).encode()

    def delivery_id(self, headers: Mapping[str, str], body: bytes) -> str | None:
        return _json_string(body, "event_id")


class HmacVerifier(Verifier):
    """Generic HMAC-SHA256 of the raw body in a configured header: hex (any case) or base64, optional prefix."""

    kind = "hmac"
    ENCODINGS = ("hex", "base64")

    def __init__(self, secret: str = "", header: str = "X-Signature", encoding: str = "hex", prefix: str = "") -> None:
        super().__init__(secret)
        if encoding not in self.ENCODINGS:
            raise ValueError(f"unknown HMAC encoding {encoding!r}: use 'hex' or 'base64'")
        self.header = (header or "X-Signature").strip()
        self.encoding = encoding
        self.prefix = prefix or ""
        self.signature_headers = (self.header.lower(),)

    def verify(self, headers: Mapping[str, str], body: bytes, now: float | None = None) -> Verification:
        if failed := self._no_secret():
            return failed
        body = _body_bytes(body)
        value = _header(headers, self.signature_headers[0])
        if not value:
            return _fail(f"missing {self.header} header")
        if body is None:
            return _fail("unreadable body")
        malformed = f"malformed {self.header} header"
        if len(value) > MAX_HEADER_CHARS:
            return _fail(f"{malformed} (too long)")
        if self.prefix:
            if value[: len(self.prefix)].lower() != self.prefix.lower():
                return _fail(f"{malformed} (expected the prefix {self.prefix!r})")
            value = value[len(self.prefix) :].strip()
        given = self._decode(value)
        if given is None:
            return _fail(f"{malformed} (expected {self.encoding} of an HMAC-SHA256)")
        if not hmac.compare_digest(_hmac_sha256(self._key, body), given):
            return _fail("signature mismatch")
        return OK

    def _decode(self, value: str) -> bytes | None:
        if self.encoding == "hex":
            return bytes.fromhex(value) if _HEX64.fullmatch(value) else None
        if not _BASE64.fullmatch(value):
            return None
        value = value.rstrip("=").replace("-", "+").replace("_", "/")  # accept the URL-safe alphabet too
        try:
            decoded = base64.b64decode(value + "=" * (-len(value) % 4), validate=True)
        except (binascii.Error, ValueError):
            return None
        return decoded if len(decoded) == hashlib.sha256().digest_size else None

    def __repr__(self) -> str:
        return f"<HmacVerifier header={self.header!r} encoding={self.encoding!r} prefix={self.prefix!r}>"


def verifier_for(kind: str, secret: str, *, header: str = "", encoding: str = "hex", prefix: str = "") -> Verifier:
    """The verifier for a trigger's configuration. Raises ValueError for an unknown kind or encoding
    (a configuration error, caught when the trigger is saved — not something a sender can cause)."""
    if kind == "none":
        return NoVerifier()
    if kind == "github":
        return GitHubVerifier(secret)
    if kind == "stripe":
        return StripeVerifier(secret)
    if kind == "slack":
        return SlackVerifier(secret)
    if kind == "hmac":
        return HmacVerifier(secret, header=header or "X-Signature", encoding=encoding or "hex", prefix=prefix)
    raise ValueError(f"unknown verification {kind!r}: use one of {', '.join(KINDS)}")


def provider_delivery_id(
    verifier: Verifier, headers: Mapping[str, str], body: bytes, dedupe_header: str = ""
) -> str | None:
    """The sender's delivery id for dedupe: the configured header when set and present, else the provider's."""
    value = _header(headers, dedupe_header.strip().lower()) if dedupe_header else None
    if not value and verifier is not None:
        try:
            value = verifier.delivery_id(headers, body)
        except Exception:  # a third-party Verifier subclass must not break the hot path
            value = None
    return value[:MAX_DELIVERY_ID_CHARS] if value else None


def is_sensitive(name: str, verifier: Verifier | None = None) -> bool:
    """Whether a header carries a credential or a signature: its value is never stored or shown in clear."""
    sensitive = _sensitive_names.get(name)
    if sensitive is None:
        lower = name.lower()
        sensitive = lower in REDACTED_HEADERS or _SENSITIVE_NAME.search(lower) is not None
        if len(_sensitive_names) > 4096:  # names are sender-chosen: keep the memo bounded
            _sensitive_names.clear()
        _sensitive_names[name] = sensitive
    return sensitive or name.lower() in getattr(verifier, "signature_headers", ())


def redact_keeping(headers, verifier: Verifier | None) -> tuple[list[list[str]], list[tuple[int, str]]]:
    """([[name, value], …] with sensitive values replaced by ``[redacted]``, [(index, original value), …]
    of those): the log's copy of a request's headers and what it hides, in one pass (the hot path)."""
    logged, kept = [], []
    memo, signed = _sensitive_names, getattr(verifier, "signature_headers", ())
    for index, (name, value) in enumerate(headers):
        hidden = memo.get(name)
        if hidden is None:
            hidden = is_sensitive(name)
        if hidden or (signed and name.lower() in signed):
            kept.append((index, value))
            value = REDACTED
        logged.append([name, value])
    return logged, kept


def redact_raw(headers: list[tuple[bytes, bytes]]) -> list[list[str]]:
    """[[name, value], …] for the log from raw (latin-1) header pairs, e.g. a handler's response headers."""
    logged, memo = [], _sensitive_names
    for raw_name, raw_value in headers:
        name = raw_name.decode("latin-1")
        hidden = memo.get(name)
        if hidden is None:
            hidden = is_sensitive(name)
        logged.append([name, REDACTED if hidden else raw_value.decode("latin-1")])
    return logged


def redact(headers: list[tuple[str, str]], verifier: Verifier | None = None) -> list[tuple[str, str]]:
    """The headers for the delivery log, with credentials and signature values replaced by ``[redacted]``.
    The one rule (``is_sensitive``) for every header stored or shown: requests, responses, the UI, the API."""
    return [(name, value) for name, value in redact_keeping(headers, verifier)[0]]
