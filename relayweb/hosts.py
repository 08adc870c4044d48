"""Two origins: the dashboard's (SITE_URL: pages, API, admin, websockets) and the webhooks' (RELAY_HOOKS_URL).

A handler's response is a tenant's content. With RELAY_HOOKS_URL on a host of its own, webhook URLs
are shown on that host and it answers nothing but `/hooks/…`, so no tenant content is ever served
next to a dashboard session, and no page of the dashboard is served where tenants' content lives.
`/hooks/` keeps answering on SITE_URL's host too: senders set up before the split keep working, and
every relayed response is sandboxed and cookie-free whichever host it is served on (triggers/edge/headers.py).
"""

from __future__ import annotations

import json
from functools import lru_cache
from urllib.parse import urlsplit

from django.conf import settings

REFUSAL = json.dumps({"detail": "Not found. This host serves webhooks only (/hooks/<token>); "
                                "the dashboard, API and admin are not served here."}).encode()
REFUSAL_HEADERS = [(b"content-type", b"application/json"), (b"content-length", str(len(REFUSAL)).encode()),
                   (b"x-content-type-options", b"nosniff")]


def hooks_url() -> str:
    """The base of every webhook URL shown (UI, API, curl examples): RELAY_HOOKS_URL, else SITE_URL."""
    return settings.RELAY_HOOKS_URL or settings.SITE_URL


def _hostname(url_or_host: str) -> str:
    try:
        return (urlsplit(url_or_host if "//" in url_or_host else f"//{url_or_host}").hostname or "").rstrip(".")
    except ValueError:  # e.g. an unbalanced "[" in a Host header
        return ""


@lru_cache(maxsize=8)
def _hooks_only_host(site_url: str, hooks: str) -> str:
    host = _hostname(hooks)
    return host if host != _hostname(site_url) else ""


def hooks_only_host() -> str:
    """The host name that serves webhooks only, or "" while webhooks share SITE_URL's host."""
    return _hooks_only_host(settings.SITE_URL, hooks_url())


def on_hooks_only_host(scope) -> bool:
    host = hooks_only_host()
    if not host:
        return False
    sent = next((value for name, value in scope.get("headers", ()) if name == b"host"), b"")
    return _hostname(sent.decode("latin-1").strip()) == host


async def refuse(scope, receive, send) -> None:
    """404 for anything but /hooks/ on the webhooks-only host (a websocket is refused before it opens)."""
    if scope["type"] == "http":
        await send({"type": "http.response.start", "status": 404, "headers": REFUSAL_HEADERS})
        await send({"type": "http.response.body", "body": REFUSAL})
    elif scope["type"] == "websocket":
        await receive()  # websocket.connect
        if "websocket.http.response" in (scope.get("extensions") or {}):
            await send({"type": "websocket.http.response.start", "status": 404, "headers": REFUSAL_HEADERS})
            await send({"type": "websocket.http.response.body", "body": REFUSAL})
        else:
            await send({"type": "websocket.close", "code": 1008})
