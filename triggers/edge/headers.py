"""What crosses the webhook edge in each direction, besides the body.

Towards the handler (`sender_headers`, `forwarded_headers`): the sender's headers minus those only
relayweb, or a proxy relayweb trusts, may set, and minus the dashboard's own cookies; then relayweb's
own `X-Forwarded-*`. Towards the sender (`relayed_headers`): the handler's headers minus those that
would act on the whole origin the webhook is served from (cookies and other origin-wide state), sandboxed.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from django.conf import settings
from django.contrib.messages.storage.cookie import CookieStorage

from relayweb.proxies import is_trusted_proxy

# Headers a sender never gets to set for the handler (name prefixes, lower case):
# - x-relay-*: relayweb's own (X-Relay-Delivery-Id, X-Relay-Trigger); a handler dedupes and routes by them.
# - x-envoy-*: Envoy, Ambassador's data plane, trusts these on requests it considers internal, and
#   relayweb's requests come from inside the cluster: a sender's x-envoy-max-retries,
#   x-envoy-retry-on or x-envoy-upstream-rq-timeout-ms would be obeyed. Envoy strips them only from
#   requests it deems external ("HTTP header sanitizing",
#   https://www.envoyproxy.io/docs/envoy/latest/configuration/http/http_conn_man/header_sanitizing).
# - knative-* and k-*: Knative's internal routing and probe headers (Knative-Serving-Namespace,
#   Knative-Serving-Revision, K-Network-Probe, …), set by the gateway and read by the activator.
# - x-forwarded-* and forwarded: only from a trusted proxy (RELAY_TRUSTED_PROXIES), see forwarded_headers().
# Connection-level headers (and those the client recomputes), never copied from one hop to the next.
HOP_BY_HOP = {"connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te", "trailer",
              "transfer-encoding", "upgrade", "host", "content-length"}
RESERVED_PREFIXES = ("x-relay-", "x-envoy-", "knative-", "k-")
FORWARDING_PREFIXES = ("x-forwarded-", "forwarded")
_NOT_FROM_SENDERS = RESERVED_PREFIXES + FORWARDING_PREFIXES

# Handler response headers that reach beyond the one response, onto every page of the origin:
# cookies; clearing the origin's storage; HSTS and key pinning of the host; alternative services;
# origin-wide network-error and reporting endpoints (which would see the dashboard's URLs); client
# hints the origin asks for; service-worker scope. X-Content-Type-Options is replaced by ours.
ORIGIN_WIDE = frozenset({
    b"set-cookie", b"set-cookie2", b"clear-site-data", b"strict-transport-security", b"public-key-pins",
    b"public-key-pins-report-only", b"expect-ct", b"alt-svc", b"nel", b"report-to", b"reporting-endpoints",
    b"accept-ch", b"critical-ch", b"service-worker-allowed", b"x-content-type-options",
})
# Every relayed response is a sandboxed document (no script, no forms, an opaque origin) that is never
# sniffed into something else. A handler's own Content-Security-Policy is kept beside ours: a browser
# enforces every policy it is given, so another policy can only restrict further and never lift the sandbox.
SANDBOX = [(b"content-security-policy", b"sandbox"), (b"x-content-type-options", b"nosniff")]


def relayed_headers(headers: Iterable[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    """The handler's response headers as the sender gets them (hop-by-hop ones already removed)."""
    return [(k, v) for k, v in headers if k.lower() not in ORIGIN_WIDE] + SANDBOX


def sender_headers(headers: Iterable[Sequence[str]]) -> list[tuple[str, str]]:
    """The sender's request headers the handler may see: without X-Relay-*, x-envoy-*, Knative's, and
    X-Forwarded-* / Forwarded (which forwarded_headers() rebuilds), and without the dashboard's own cookies.
    Used for every forward: sync, async, replay."""
    out = [(k, v) for k, v in headers if not k.lower().startswith(_NOT_FROM_SENDERS)]
    if any(k.lower() == "cookie" for k, _ in out):
        out = [(k, _without_dashboard_cookies(v) if k.lower() == "cookie" else v) for k, v in out]
        out = [(k, v) for k, v in out if v or k.lower() != "cookie"]
    return out


def _without_dashboard_cookies(value: str) -> str:
    """A browser signed in to the dashboard sends its session and CSRF cookies along to /hooks/ on the same
    host (a link is enough: SameSite=Lax allows top-level GETs). They are the user's, never the handler's."""
    ours = {settings.SESSION_COOKIE_NAME, settings.CSRF_COOKIE_NAME, settings.LANGUAGE_COOKIE_NAME,
            CookieStorage.cookie_name}
    pairs = (pair.strip() for pair in value.split(";"))
    return "; ".join(pair for pair in pairs if pair and pair.split("=", 1)[0].strip() not in ours)


def forwarded_headers(headers: Sequence[tuple[str, str]], peer: str, scheme: str) -> list[tuple[str, str]]:
    """X-Forwarded-For / -Proto / -Host for the handler (request header names in lower case).

    From an untrusted peer, the sender's own are ignored: the chain starts at the peer. From a trusted
    proxy, its X-Forwarded-For chain is continued with the peer, its X-Forwarded-Proto / -Host (and any
    other X-Forwarded-*) are kept, and a Forwarded header gets the peer appended (RFC 7239)."""
    if not is_trusted_proxy(peer):
        out = [("X-Forwarded-For", peer)] if peer else []
        return out + [("X-Forwarded-Proto", scheme), ("X-Forwarded-Host", _first(headers, "host"))]
    chain = [hop.strip() for k, v in headers if k == "x-forwarded-for" for hop in v.split(",") if hop.strip()]
    out = [("X-Forwarded-For", ", ".join([*chain, peer])),
           ("X-Forwarded-Proto", _first(headers, "x-forwarded-proto") or scheme),
           ("X-Forwarded-Host", _first(headers, "x-forwarded-host") or _first(headers, "host"))]
    out += [(k, v) for k, v in headers
            if k.startswith("x-forwarded-") and k not in ("x-forwarded-for", "x-forwarded-proto", "x-forwarded-host")]
    forwarded = [v.strip() for k, v in headers if k == "forwarded" and v.strip()]
    if forwarded:
        node = f'"[{peer}]"' if ":" in peer else peer
        out.append(("Forwarded", ", ".join([*forwarded, f"for={node}"])))
    return out


def _first(headers: Sequence[tuple[str, str]], name: str) -> str:
    return next((v for k, v in headers if k == name), "")
