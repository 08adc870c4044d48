"""Sample events for "Send test webhook": a body and headers as the trigger's provider would send them,
signed with the trigger's secret in the exact format its verifier (``signatures``) checks at the edge.

Pure: no Django, no I/O. The secret is used to sign and never appears in the result but in the signature.
"""

from __future__ import annotations

import base64
import json
import time
import uuid
from dataclasses import dataclass

from .signatures import HmacVerifier, _hmac_sha256

ZEN = "Relay test webhook: if you can read this, the trigger is wired."
EVENTS = {"github": "GitHub ping", "stripe": "Stripe charge.succeeded test event", "slack": "Slack app_mention event",
          "hmac": "signed test event", "none": "test event"}  # what each sample imitates, by verification kind


@dataclass(frozen=True, slots=True)
class Sample:
    headers: dict[str, str]
    body: bytes
    event: str  # what it imitates, for messages and the audit log


def _body(data: dict) -> bytes:
    return json.dumps(data, separators=(",", ":")).encode()


def sample_event(kind: str, secret: str, *, trigger: str, header: str = "", encoding: str = "hex",
                 prefix: str = "", now: float | None = None, delivery_id: str | None = None) -> Sample:
    """The sample for verification ``kind`` (none, github, stripe, slack, hmac), signed with ``secret``.
    ``trigger``: the trigger's label (tenant/name), named in the payload. ValueError for an unknown kind."""
    ts = int(time.time() if now is None else now)
    delivery_id = delivery_id or str(uuid.uuid4())
    key = secret.encode("utf-8")
    json_headers = {"Content-Type": "application/json", "User-Agent": "relayweb-test-webhook"}
    if kind == "github":
        body = _body({"zen": ZEN, "hook_id": 0, "hook": {"type": "Repository", "active": True,
                                                        "events": ["push"], "config": {"content_type": "json"}},
                      "repository": {"full_name": trigger}, "sender": {"login": "relayweb", "type": "Bot"}})
        signature = _hmac_sha256(key, body).hex()
        return Sample({**json_headers, "X-GitHub-Event": "ping", "X-GitHub-Delivery": delivery_id,
                       "X-GitHub-Hook-ID": "0", "X-Hub-Signature-256": f"sha256={signature}"}, body, EVENTS[kind])
    if kind == "stripe":
        event_id = "evt_test_" + delivery_id.replace("-", "")[:24]
        body = _body({"id": event_id, "object": "event", "api_version": "2024-06-20", "created": ts,
                      "livemode": False, "type": "charge.succeeded", "pending_webhooks": 1,
                      "request": {"id": None, "idempotency_key": None},
                      "data": {"object": {"id": "ch_test_relayweb", "object": "charge", "amount": 100,
                                          "currency": "usd", "description": f"Test event for {trigger}",
                                          "livemode": False, "status": "succeeded"}}})
        signature = _hmac_sha256(key, str(ts).encode(), b".", body).hex()
        return Sample({**json_headers, "Stripe-Signature": f"t={ts},v1={signature}"}, body, EVENTS[kind])
    if kind == "slack":
        event_id = "Ev" + delivery_id.replace("-", "")[:16].upper()
        body = _body({"token": "relayweb-test", "team_id": "T0RELAYWEB", "api_app_id": "A0RELAYWEB",
                      "type": "event_callback", "event_id": event_id, "event_time": ts,
                      "event": {"type": "app_mention", "user": "U0RELAYWEB", "channel": "C0RELAYWEB",
                                "text": f"Test event for {trigger}", "ts": f"{ts}.000100"}})
        signature = _hmac_sha256(key, b"v0:", str(ts).encode(), b":", body).hex()
        return Sample({**json_headers, "X-Slack-Request-Timestamp": str(ts), "X-Slack-Signature": f"v0={signature}"},
                      body, EVENTS[kind])
    body = _body({"type": "relayweb.test", "id": delivery_id, "created": ts, "trigger": trigger, "message": ZEN})
    if kind == "hmac":
        verifier = HmacVerifier(secret, header=header or "X-Signature", encoding=encoding or "hex", prefix=prefix)
        digest = _hmac_sha256(key, body)
        encoded = base64.b64encode(digest).decode() if verifier.encoding == "base64" else digest.hex()
        return Sample({**json_headers, verifier.header: f"{verifier.prefix}{encoded}"}, body, EVENTS[kind])
    if kind == "none":
        return Sample(json_headers, body, EVENTS[kind])
    raise ValueError(f"unknown verification {kind!r}")
