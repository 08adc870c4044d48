"""Websocket Origin check: scheme, host and port, as Django's CSRF check compares them for forms.

A socket is accepted only when its Origin header is
- the origin of SITE_URL (what the pages are served from, e.g. behind a TLS proxy), or
- one of CSRF_TRUSTED_ORIGINS (`https://*.example.com` allows subdomains, as Django does), or
- the socket's own origin: ws→http, wss→https (or https when SECURE_PROXY_SSL_HEADER says the proxy
  received it over TLS, as Django's request.is_secure() does), with the Host header, when that host is in
  ALLOWED_HOSTS.

A missing Origin, `null` or a malformed one is refused: the sockets serve the browser pages only, browsers
always send Origin on a websocket handshake, and a client that leaves it out is not one of our pages.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from channels.security.websocket import WebsocketDenier
from django.conf import settings
from django.http.request import split_domain_port, validate_host

DEFAULT_PORTS = {"http": 80, "https": 443}
Origin = tuple[str, str, int]


def parse_origin(value: str) -> Origin | None:
    """(scheme, host, port) of an origin or URL, or None when it is not an http(s) origin."""
    try:
        parts = urlsplit(value.strip())
        scheme, host, port = parts.scheme.lower(), (parts.hostname or "").lower(), parts.port
    except ValueError:  # an invalid port, an unbalanced [ in the host
        return None
    if scheme not in DEFAULT_PORTS or not host:
        return None
    return scheme, host, port or DEFAULT_PORTS[scheme]


def _header(scope, name: bytes) -> str | None:
    return next((v.decode("latin1") for k, v in scope.get("headers", []) if k == name), None)


def _secure(scope) -> bool:
    if settings.SECURE_PROXY_SSL_HEADER:
        meta_name, secure_value = settings.SECURE_PROXY_SSL_HEADER
        forwarded = _header(scope, meta_name.removeprefix("HTTP_").replace("_", "-").lower().encode())
        if forwarded is not None:
            return forwarded.split(",")[0].strip() == secure_value
    return scope.get("scheme", "ws") == "wss"


def _own_origin(scope) -> Origin | None:
    host = _header(scope, b"host") or ""
    domain, _ = split_domain_port(host)
    allowed = settings.ALLOWED_HOSTS or ([".localhost", "127.0.0.1", "[::1]"] if settings.DEBUG else [])
    if not domain or not validate_host(domain, allowed):
        return None
    return parse_origin(f"{'https' if _secure(scope) else 'http'}://{host}")


def _trusted(origin: Origin, pattern: str) -> bool:
    wildcard = "://*." in pattern
    trusted = parse_origin(pattern.replace("://*.", "://", 1) if wildcard else pattern)
    if trusted is None or trusted[0] != origin[0] or trusted[2] != origin[2]:
        return False
    return origin[1] == trusted[1] or (wildcard and origin[1].endswith("." + trusted[1]))


def origin_allowed(scope) -> bool:
    header = _header(scope, b"origin")
    origin = parse_origin(header) if header else None
    if origin is None:
        return False
    if origin == parse_origin(settings.SITE_URL) or origin == _own_origin(scope):
        return True
    return any(_trusted(origin, pattern) for pattern in settings.CSRF_TRUSTED_ORIGINS)


class OriginValidator:
    """ASGI middleware: a websocket whose Origin is not allowed is refused (HTTP 403) before it is accepted."""

    def __init__(self, application) -> None:
        self.application = application

    async def __call__(self, scope, receive, send):
        if scope["type"] == "websocket" and not origin_allowed(scope):
            return await WebsocketDenier()(scope, receive, send)
        return await self.application(scope, receive, send)
