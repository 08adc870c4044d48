"""Webhook signature verification at the edge (triggers/security/signatures.py): pure, no database."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from triggers.security import signatures
from triggers.security.signatures import (
    KINDS,
    GitHubVerifier,
    HmacVerifier,
    NoVerifier,
    SlackVerifier,
    StripeVerifier,
    Verification,
    provider_delivery_id,
    redact,
    verifier_for,
)

SECRET = "s3cr3t-signing-key"
NOW = 1_700_000_000.0
BODY = b'{"id": "evt_1", "event_id": "Ev123", "type": "event_callback", "n": 1}'


def hexmac(secret: str, *parts: bytes) -> str:
    return hmac.new(secret.encode(), b"".join(parts), hashlib.sha256).hexdigest()


def github_headers(body: bytes = BODY, secret: str = SECRET) -> dict[str, str]:
    return {"x-hub-signature-256": "sha256=" + hexmac(secret, body), "x-github-delivery": "72d3162e-cc78"}


def stripe_headers(body: bytes = BODY, secret: str = SECRET, t: int = int(NOW), extra: str = "") -> dict[str, str]:
    return {"stripe-signature": f"t={t},v1={hexmac(secret, str(t).encode(), b'.', body)}{extra}"}


def slack_headers(body: bytes = BODY, secret: str = SECRET, t: int = int(NOW)) -> dict[str, str]:
    return {
        "x-slack-request-timestamp": str(t),
        "x-slack-signature": "v0=" + hexmac(secret, b"v0:", str(t).encode(), b":", body),
    }


# --- GitHub ---------------------------------------------------------------------------------------------


def test_github_accepts_a_correct_signature():
    assert GitHubVerifier(SECRET).verify(github_headers(), BODY) == Verification(ok=True)


def test_github_accepts_upper_case_hex():
    headers = {"x-hub-signature-256": "sha256=" + hexmac(SECRET, BODY).upper()}
    assert GitHubVerifier(SECRET).verify(headers, BODY).ok


def test_github_rejects_a_signature_made_with_another_secret():
    result = GitHubVerifier(SECRET).verify(github_headers(secret="other"), BODY)
    assert result == Verification(ok=False, reason="signature mismatch")


def test_github_rejects_a_tampered_body():
    result = GitHubVerifier(SECRET).verify(github_headers(), BODY + b" ")
    assert result.reason == "signature mismatch"


def test_github_rejects_a_missing_header():
    result = GitHubVerifier(SECRET).verify({"x-hub-signature": "sha1=abc"}, BODY)
    assert result == Verification(ok=False, reason="missing X-Hub-Signature-256 header")


@pytest.mark.parametrize(
    "value",
    ["sha256", "sha256=", "sha1=" + "a" * 64, "sha256=" + "z" * 64, "sha256=" + "a" * 63, "sha256=" + "a" * 65,
     "a" * 64, "sha256=" + "é" * 64, "sha256=" + "a" * 10_000],
)
def test_github_malformed_header_gives_a_reason(value):
    result = GitHubVerifier(SECRET).verify({"x-hub-signature-256": value}, BODY)
    assert not result.ok
    assert result.reason.startswith("malformed X-Hub-Signature-256 header")


def test_github_delivery_id_is_the_delivery_header():
    assert GitHubVerifier(SECRET).delivery_id(github_headers(), BODY) == "72d3162e-cc78"
    assert GitHubVerifier(SECRET).delivery_id({}, BODY) is None


# --- Stripe ---------------------------------------------------------------------------------------------


def test_stripe_accepts_a_correct_signature():
    assert StripeVerifier(SECRET).verify(stripe_headers(), BODY, now=NOW).ok


def test_stripe_accepts_when_any_of_several_v1_signatures_matches():
    t = int(NOW)
    good = hexmac(SECRET, str(t).encode(), b".", BODY)
    old = hexmac("previous-secret", str(t).encode(), b".", BODY)
    for header in (f"t={t},v1={old},v1={good}", f"t={t},v1={good},v1={old}", f"t={t},v1={old},v0={old},v1={good}"):
        assert StripeVerifier(SECRET).verify({"stripe-signature": header}, BODY, now=NOW).ok, header


def test_stripe_rejects_when_no_v1_matches_even_if_v0_does():
    t = int(NOW)
    good = hexmac(SECRET, str(t).encode(), b".", BODY)
    header = f"t={t},v1={hexmac('other', b'x')},v0={good}"
    assert StripeVerifier(SECRET).verify({"stripe-signature": header}, BODY, now=NOW).reason == "signature mismatch"


def test_stripe_rejects_a_wrong_secret_and_a_tampered_body():
    verifier = StripeVerifier(SECRET)
    assert verifier.verify(stripe_headers(secret="other"), BODY, now=NOW).reason == "signature mismatch"
    assert verifier.verify(stripe_headers(), BODY.replace(b"1", b"2"), now=NOW).reason == "signature mismatch"


def test_stripe_rejects_a_resigned_timestamp():
    # The signature covers the timestamp: moving t forward to look fresh breaks it.
    header = stripe_headers(t=int(NOW) - 3600)["stripe-signature"].replace(f"t={int(NOW) - 3600}", f"t={int(NOW)}")
    assert StripeVerifier(SECRET).verify({"stripe-signature": header}, BODY, now=NOW).reason == "signature mismatch"


@pytest.mark.parametrize("offset", [-301, 301, -86_400, 10**9])
def test_stripe_rejects_a_timestamp_outside_the_tolerance(offset):
    result = StripeVerifier(SECRET).verify(stripe_headers(t=int(NOW) + offset), BODY, now=NOW)
    assert result == Verification(ok=False, reason="timestamp outside the tolerance")


@pytest.mark.parametrize("offset", [-300, 0, 300])
def test_stripe_accepts_a_timestamp_at_the_edge_of_the_tolerance(offset):
    assert StripeVerifier(SECRET).verify(stripe_headers(t=int(NOW) + offset), BODY, now=NOW).ok


def test_stripe_tolerance_is_configurable():
    headers = stripe_headers(t=int(NOW) - 100)
    assert not StripeVerifier(SECRET, tolerance=60).verify(headers, BODY, now=NOW).ok
    assert StripeVerifier(SECRET, tolerance=600).verify(headers, BODY, now=NOW).ok


def test_stripe_uses_the_clock_when_now_is_not_given():
    assert not StripeVerifier(SECRET).verify(stripe_headers(t=1), BODY).ok
    import time

    assert StripeVerifier(SECRET).verify(stripe_headers(t=int(time.time())), BODY).ok


def test_stripe_rejects_a_missing_header():
    assert StripeVerifier(SECRET).verify({}, BODY, now=NOW).reason == "missing Stripe-Signature header"


@pytest.mark.parametrize(
    "value",
    ["garbage", "t=,v1=" + "a" * 64, "t=abc,v1=" + "a" * 64, "t=-5,v1=" + "a" * 64, "t=1e9,v1=" + "a" * 64,
     "t=1_700_000_000,v1=" + "a" * 64, "v1=" + "a" * 64, f"t={int(NOW)}", f"t={int(NOW)},v0=" + "a" * 64,
     f"t={int(NOW)},v1=", ",,,", "=,=,=", "t=" + "9" * 400 + ",v1=" + "a" * 64,
     f"t={int(NOW)}," + ",".join(["v1=" + "a" * 64] * 200)],
)
def test_stripe_malformed_header_gives_a_reason(value):
    result = StripeVerifier(SECRET).verify({"stripe-signature": value}, BODY, now=NOW)
    assert not result.ok
    assert result.reason.startswith("malformed Stripe-Signature header")


@pytest.mark.parametrize("signature", ["zz" * 32, "a" * 63, "é" * 64, "ab"])
def test_stripe_non_hex_v1_is_a_mismatch_not_an_error(signature):
    header = f"t={int(NOW)},v1={signature}"
    assert StripeVerifier(SECRET).verify({"stripe-signature": header}, BODY, now=NOW).reason == "signature mismatch"


@pytest.mark.parametrize(
    ("body", "expected"),
    [(BODY, "evt_1"), (b'{"id": 5}', None), (b"[1, 2]", None), (b"not json", None), (b"\xff\xfe", None),
     (b"{" * 100_000, None), (b"", None), (b'  {"id": "evt_2"}', "evt_2")],
)
def test_stripe_delivery_id_is_the_event_id(body, expected):
    assert StripeVerifier(SECRET).delivery_id({}, body) == expected


# --- Slack ----------------------------------------------------------------------------------------------


def test_slack_accepts_a_correct_signature():
    result = SlackVerifier(SECRET).verify(slack_headers(), BODY, now=NOW)
    assert result == Verification(ok=True)


def test_slack_rejects_a_wrong_secret_and_a_tampered_body():
    verifier = SlackVerifier(SECRET)
    assert verifier.verify(slack_headers(secret="other"), BODY, now=NOW).reason == "signature mismatch"
    assert verifier.verify(slack_headers(), BODY + b"\n", now=NOW).reason == "signature mismatch"


def test_slack_rejects_a_signature_replayed_with_another_timestamp():
    headers = slack_headers() | {"x-slack-request-timestamp": str(int(NOW) + 1)}
    assert SlackVerifier(SECRET).verify(headers, BODY, now=NOW).reason == "signature mismatch"


@pytest.mark.parametrize("offset", [-301, 301, -3600])
def test_slack_rejects_a_timestamp_outside_five_minutes(offset):
    result = SlackVerifier(SECRET).verify(slack_headers(t=int(NOW) + offset), BODY, now=NOW)
    assert result == Verification(ok=False, reason="timestamp outside the tolerance")


@pytest.mark.parametrize(
    ("headers", "reason"),
    [
        ({}, "missing X-Slack-Request-Timestamp header"),
        ({"x-slack-signature": "v0=" + "a" * 64}, "missing X-Slack-Request-Timestamp header"),
        ({"x-slack-request-timestamp": str(int(NOW))}, "missing X-Slack-Signature header"),
        ({"x-slack-request-timestamp": "soon", "x-slack-signature": "v0=" + "a" * 64},
         "malformed X-Slack-Request-Timestamp header"),
        ({"x-slack-request-timestamp": "1.5", "x-slack-signature": "v0=" + "a" * 64},
         "malformed X-Slack-Request-Timestamp header"),
        ({"x-slack-request-timestamp": str(int(NOW)), "x-slack-signature": "v1=" + "a" * 64},
         "malformed X-Slack-Signature header (expected v0=<64 hex digits>)"),
        ({"x-slack-request-timestamp": str(int(NOW)), "x-slack-signature": "v0=xyz"},
         "malformed X-Slack-Signature header (expected v0=<64 hex digits>)"),
        ({"x-slack-request-timestamp": str(int(NOW)), "x-slack-signature": "v0=" + "a" * 5000},
         "malformed X-Slack-Signature header (expected v0=<64 hex digits>)"),
    ],
)
def test_slack_malformed_or_missing_headers_give_a_reason(headers, reason):
    assert SlackVerifier(SECRET).verify(headers, BODY, now=NOW) == Verification(ok=False, reason=reason)


CHALLENGE_BODY = json.dumps({"token": "x", "challenge": "3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P",
                             "type": "url_verification"}).encode()


def test_slack_url_verification_answers_the_challenge_once_verified():
    result = SlackVerifier(SECRET).verify(slack_headers(CHALLENGE_BODY), CHALLENGE_BODY, now=NOW)
    assert result.ok
    assert json.loads(result.challenge) == {"challenge": "3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P"}


@pytest.mark.parametrize(
    "headers",
    [slack_headers(CHALLENGE_BODY, secret="other"), slack_headers(CHALLENGE_BODY, t=int(NOW) - 600), {}],
)
def test_slack_url_verification_gets_no_challenge_without_a_valid_signature(headers):
    result = SlackVerifier(SECRET).verify(headers, CHALLENGE_BODY, now=NOW)
    assert not result.ok
    assert result.challenge is None


@pytest.mark.parametrize(
    "body",
    [BODY, b'{"type": "url_verification"}', b'{"type": "url_verification", "challenge": 5}', b"payload=%7B%7D",
     b'["url_verification"]'],
)
def test_slack_other_bodies_get_no_challenge(body):
    result = SlackVerifier(SECRET).verify(slack_headers(body), body, now=NOW)
    assert result.ok
    assert result.challenge is None


def test_slack_delivery_id_is_the_event_id():
    assert SlackVerifier(SECRET).delivery_id({}, BODY) == "Ev123"
    assert SlackVerifier(SECRET).delivery_id({}, CHALLENGE_BODY) is None
    assert SlackVerifier(SECRET).delivery_id({}, b"payload=%7B%7D") is None


# --- generic HMAC ---------------------------------------------------------------------------------------

DIGEST = hmac.new(SECRET.encode(), BODY, hashlib.sha256).digest()


@pytest.mark.parametrize(
    ("encoding", "prefix", "value"),
    [
        ("hex", "", DIGEST.hex()),
        ("hex", "", DIGEST.hex().upper()),
        ("hex", "sha256=", "sha256=" + DIGEST.hex()),
        ("hex", "sha256=", "SHA256=" + DIGEST.hex()),
        ("base64", "", base64.b64encode(DIGEST).decode()),
        ("base64", "", base64.b64encode(DIGEST).decode().rstrip("=")),
        ("base64", "", base64.urlsafe_b64encode(DIGEST).decode()),
        ("base64", "v1,", "v1," + base64.b64encode(DIGEST).decode()),
    ],
)
def test_hmac_accepts_hex_base64_and_prefix_variants(encoding, prefix, value):
    verifier = HmacVerifier(SECRET, header="X-Webhook-Signature", encoding=encoding, prefix=prefix)
    assert verifier.verify({"x-webhook-signature": value}, BODY).ok


@pytest.mark.parametrize("encoding", ["hex", "base64"])
def test_hmac_rejects_a_wrong_secret_and_a_tampered_body(encoding):
    def encode(digest: bytes) -> str:
        return digest.hex() if encoding == "hex" else base64.b64encode(digest).decode()

    verifier = HmacVerifier(SECRET, encoding=encoding)
    wrong = encode(hmac.new(b"other", BODY, hashlib.sha256).digest())
    assert verifier.verify({"x-signature": wrong}, BODY).reason == "signature mismatch"
    assert verifier.verify({"x-signature": encode(DIGEST)}, BODY + b"x").reason == "signature mismatch"
    assert verifier.verify({"x-signature": encode(DIGEST)}, BODY).ok


@pytest.mark.parametrize(
    ("encoding", "prefix", "value", "reason"),
    [
        ("hex", "", None, "missing X-Sig header"),
        ("hex", "", "", "missing X-Sig header"),
        ("hex", "", "nothex", "malformed X-Sig header (expected hex of an HMAC-SHA256)"),
        ("hex", "", DIGEST.hex()[:-2], "malformed X-Sig header (expected hex of an HMAC-SHA256)"),
        ("hex", "sha256=", DIGEST.hex(), "malformed X-Sig header (expected the prefix 'sha256=')"),
        ("hex", "", "a" * 100_000, "malformed X-Sig header (too long)"),
        ("base64", "", "!!!!", "malformed X-Sig header (expected base64 of an HMAC-SHA256)"),
        ("base64", "", "YWJj", "malformed X-Sig header (expected base64 of an HMAC-SHA256)"),
        ("base64", "", "a", "malformed X-Sig header (expected base64 of an HMAC-SHA256)"),
        ("base64", "", "é" * 44, "malformed X-Sig header (expected base64 of an HMAC-SHA256)"),
    ],
)
def test_hmac_malformed_or_missing_header_gives_a_reason(encoding, prefix, value, reason):
    headers = {} if value is None else {"x-sig": value}
    result = HmacVerifier(SECRET, header="X-Sig", encoding=encoding, prefix=prefix).verify(headers, BODY)
    assert result == Verification(ok=False, reason=reason)


def test_hmac_rejects_an_unknown_encoding_when_configured():
    with pytest.raises(ValueError, match="unknown HMAC encoding"):
        HmacVerifier(SECRET, encoding="base32")


def test_hmac_has_no_delivery_id_of_its_own():
    assert HmacVerifier(SECRET).delivery_id({"x-github-delivery": "x"}, BODY) is None


# --- all verifiers --------------------------------------------------------------------------------------


def test_no_verifier_always_accepts():
    assert NoVerifier().verify({}, b"") == Verification(ok=True)
    assert NoVerifier().delivery_id({}, BODY) is None


@pytest.mark.parametrize(
    ("verifier", "headers"),
    [(GitHubVerifier(""), github_headers(secret="")), (StripeVerifier(""), stripe_headers(secret="")),
     (SlackVerifier(""), slack_headers(secret="")), (HmacVerifier(""), {"x-signature": hexmac("", BODY)})],
)
def test_an_empty_secret_fails_closed(verifier, headers):
    result = verifier.verify(headers, BODY, now=NOW)
    assert result == Verification(ok=False, reason="no signing secret configured for this trigger")


def signed_cases():
    return [
        (GitHubVerifier(SECRET), github_headers()),
        (StripeVerifier(SECRET), stripe_headers()),
        (SlackVerifier(SECRET), slack_headers()),
        (HmacVerifier(SECRET), {"x-signature": hexmac(SECRET, BODY)}),
    ]


@pytest.mark.parametrize(("verifier", "headers"), signed_cases(), ids=lambda v: getattr(v, "kind", ""))
def test_signatures_are_compared_in_constant_time(monkeypatch, verifier, headers):
    calls = []
    real = hmac.compare_digest

    def counting(a, b):
        calls.append((a, b))
        return real(a, b)

    monkeypatch.setattr(hmac, "compare_digest", counting)
    assert verifier.verify(headers, BODY, now=NOW).ok
    assert len(calls) >= 1
    calls.clear()
    assert not verifier.verify(headers, BODY + b"!", now=NOW).ok
    assert len(calls) >= 1


@pytest.mark.parametrize(("verifier", "headers"), signed_cases(), ids=lambda v: getattr(v, "kind", ""))
def test_reasons_and_reprs_never_contain_the_secret_or_the_signature(verifier, headers):
    result = verifier.verify(headers, BODY + b"tampered", now=NOW)
    signature = next(iter(headers.values()))
    for text in (result.reason, repr(result), repr(verifier)):
        assert SECRET not in text
        assert signature[-64:] not in text
        assert "tampered" not in text


@pytest.mark.parametrize(("verifier", "headers"), signed_cases(), ids=lambda v: getattr(v, "kind", ""))
@pytest.mark.parametrize("body", [None, "a string", 42, bytearray(BODY), memoryview(BODY)])
def test_odd_body_types_never_raise(verifier, headers, body):
    result = verifier.verify(headers, body, now=NOW)
    assert isinstance(result, Verification)
    assert result.ok == isinstance(body, bytearray | memoryview)
    verifier.delivery_id(headers, body)


@pytest.mark.parametrize(("verifier", "headers"), signed_cases(), ids=lambda v: getattr(v, "kind", ""))
def test_bytes_header_values_are_read_like_strings(verifier, headers):
    assert verifier.verify({k: v.encode() for k, v in headers.items()}, BODY, now=NOW).ok


HEADER_NAMES = ["x-hub-signature-256", "stripe-signature", "x-slack-request-timestamp", "x-slack-signature",
                "x-signature", "x-github-delivery"]
HEADER_VALUES = st.one_of(
    st.text(max_size=300),
    st.from_regex(r"(sha256=|v0=|t=[0-9]{1,12},v1=)[0-9a-fA-F]{0,70}", fullmatch=True),
    st.from_regex(r"t=-?[0-9]{0,20}(,(v0|v1|t|x)=[^,]{0,70}){0,5}", fullmatch=True),
)


@settings(max_examples=300, deadline=None)
@given(
    headers=st.dictionaries(st.sampled_from(HEADER_NAMES) | st.text(max_size=20), HEADER_VALUES, max_size=6),
    body=st.binary(max_size=300) | st.text(max_size=100).map(lambda s: json.dumps({"id": s, "event_id": s}).encode()),
    now=st.none() | st.floats(allow_nan=True, allow_infinity=True),
    kind=st.sampled_from(KINDS),
    encoding=st.sampled_from(["hex", "base64"]),
    prefix=st.sampled_from(["", "sha256=", "é"]),
    dedupe=st.sampled_from(["", "idempotency-key", "X-Signature"]),
)
def test_random_headers_and_bodies_never_raise(headers, body, now, kind, encoding, prefix, dedupe):
    verifier = verifier_for(kind, SECRET, encoding=encoding, prefix=prefix)
    result = verifier.verify(headers, body, now=now)
    assert isinstance(result, Verification)
    assert result.ok == (kind == "none")
    assert len(result.reason) <= 300  # fits Delivery.verification_error
    delivery_id = provider_delivery_id(verifier, headers, body, dedupe)
    assert delivery_id is None or 0 < len(delivery_id) <= 200
    redact(list(headers.items()), verifier)


# --- verifier_for -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "cls"),
    [("none", NoVerifier), ("github", GitHubVerifier), ("stripe", StripeVerifier), ("slack", SlackVerifier),
     ("hmac", HmacVerifier)],
)
def test_verifier_for_builds_each_kind(kind, cls):
    verifier = verifier_for(kind, SECRET)
    assert type(verifier) is cls
    assert verifier.kind == kind


def test_kinds_match_the_verifiers():
    assert KINDS == ("none", "github", "stripe", "slack", "hmac")


def test_verifier_for_passes_the_hmac_configuration():
    verifier = verifier_for("hmac", SECRET, header="X-Hook-Sig", encoding="base64", prefix="sha256=")
    value = "sha256=" + base64.b64encode(DIGEST).decode()
    assert verifier.verify({"x-hook-sig": value}, BODY).ok
    assert verifier.signature_headers == ("x-hook-sig",)


def test_verifier_for_defaults_the_hmac_header():
    assert verifier_for("hmac", SECRET, header="").verify({"x-signature": DIGEST.hex()}, BODY).ok


def test_verifier_for_rejects_an_unknown_kind():
    with pytest.raises(ValueError, match="unknown verification 'pagerduty'"):
        verifier_for("pagerduty", SECRET)


# --- delivery ids -------------------------------------------------------------------------------------


def test_the_configured_dedupe_header_wins():
    headers = github_headers() | {"idempotency-key": "key-1"}
    assert provider_delivery_id(GitHubVerifier(SECRET), headers, BODY, "Idempotency-Key") == "key-1"


def test_the_provider_id_is_used_when_the_dedupe_header_is_absent_or_blank():
    verifier = StripeVerifier(SECRET)
    assert provider_delivery_id(verifier, {}, BODY, "Idempotency-Key") == "evt_1"
    assert provider_delivery_id(verifier, {"idempotency-key": "  "}, BODY, "Idempotency-Key") == "evt_1"
    assert provider_delivery_id(verifier, {"idempotency-key": "k"}, BODY) == "evt_1"


def test_each_provider_gives_its_delivery_id():
    assert provider_delivery_id(GitHubVerifier(SECRET), github_headers(), BODY) == "72d3162e-cc78"
    assert provider_delivery_id(StripeVerifier(SECRET), {}, BODY) == "evt_1"
    assert provider_delivery_id(SlackVerifier(SECRET), {}, BODY) == "Ev123"
    assert provider_delivery_id(HmacVerifier(SECRET), {}, BODY) is None
    assert provider_delivery_id(NoVerifier(), {"x-request-id": "r"}, BODY, "X-Request-Id") == "r"


def test_delivery_ids_are_capped_at_200_characters():
    assert provider_delivery_id(NoVerifier(), {"idempotency-key": "k" * 500}, BODY, "Idempotency-Key") == "k" * 200
    body = json.dumps({"id": "e" * 500}).encode()
    assert provider_delivery_id(StripeVerifier(SECRET), {}, body) == "e" * 200


# --- redaction ------------------------------------------------------------------------------------------

RAW = [
    ("Content-Type", "application/json"),
    ("Authorization", "Bearer abc"),
    ("cookie", "session=1"),
    ("Set-Cookie", "a=b"),
    ("Proxy-Authorization", "Basic eA=="),
    ("X-Hub-Signature-256", "sha256=abc"),
    ("X-Hub-Signature", "sha1=abc"),
    ("Stripe-Signature", "t=1,v1=abc"),
    ("X-Slack-Signature", "v0=abc"),
    ("X-Slack-Request-Timestamp", "1700000000"),
    ("X-Custom-Sig", "abc"),
    ("X-GitHub-Delivery", "d-1"),
]


def redacted_names(verifier) -> set[str]:
    return {name for name, value in redact(RAW, verifier) if value == "[redacted]"}


ALWAYS = {"Authorization", "cookie", "Set-Cookie", "Proxy-Authorization",  # and every name with "signature"…
          "X-Hub-Signature-256", "X-Hub-Signature", "Stripe-Signature", "X-Slack-Signature"}


def test_redact_hides_credentials_for_every_verifier():
    for verifier in (NoVerifier(), None):
        assert redacted_names(verifier) == ALWAYS


@pytest.mark.parametrize(
    ("verifier", "extra"),
    [
        (GitHubVerifier(SECRET), set()),
        (StripeVerifier(SECRET), set()),
        (SlackVerifier(SECRET), set()),
        (HmacVerifier(SECRET, header="x-custom-SIG"), {"X-Custom-Sig"}),
    ],
)
def test_redact_hides_the_verifiers_signature_headers(verifier, extra):
    assert redacted_names(verifier) == ALWAYS | extra


def test_redact_keeps_order_names_and_other_values():
    result = redact(RAW, SlackVerifier(SECRET))
    assert [name for name, _ in result] == [name for name, _ in RAW]
    assert dict(result)["X-Slack-Request-Timestamp"] == "1700000000"
    assert dict(result)["Content-Type"] == "application/json"
    assert RAW[1] == ("Authorization", "Bearer abc")  # the input is not modified


def test_redacted_headers_constant():
    assert signatures.REDACTED_HEADERS == {"authorization", "cookie", "set-cookie", "proxy-authorization"}


@pytest.mark.parametrize("now", [float("nan"), float("inf"), float("-inf")])
def test_a_broken_clock_fails_the_timestamp_check(now):
    assert StripeVerifier(SECRET).verify(stripe_headers(), BODY, now=now).reason == "timestamp outside the tolerance"
    assert SlackVerifier(SECRET).verify(slack_headers(), BODY, now=now).reason == "timestamp outside the tolerance"
