"""Sign-in throttling: failed sign-ins per username and per client address, failed API tokens per address.

A counter per key in Redis (shared by every web process): the first failure starts a window of
RELAY_SIGNIN_WINDOW seconds; at RELAY_SIGNIN_FAILURES failures within it, the key is blocked until the
window ends. A successful sign-in clears its username's counter, not its address's (an attacker who owns
one account cannot use it to reset the address's count while guessing others).
If Redis cannot be reached, nothing is blocked (sign-in stays available) and a warning is logged.
"""

from __future__ import annotations

import ipaddress
import logging
import math
from functools import lru_cache

import redis
from django.conf import settings
from django.http import HttpRequest

from relayweb.proxies import is_trusted_proxy

log = logging.getLogger(__name__)
PREFIX = "relayweb:throttle:"


@lru_cache(maxsize=4)
def _client(url: str) -> redis.Redis:
    return redis.Redis.from_url(url, socket_timeout=2, socket_connect_timeout=2)


def _redis() -> redis.Redis:
    return _client(settings.REDIS_URL)


def client_address(request: HttpRequest) -> str:
    """The client's IP address: the TCP peer, unless the peer is one of RELAY_TRUSTED_PROXIES; then the
    nearest address in its X-Forwarded-For chain that is not itself a trusted proxy (the right-most
    untrusted hop: entries left of it were written by the client and prove nothing)."""
    peer = request.META.get("REMOTE_ADDR", "") or ""
    if not is_trusted_proxy(peer):
        return peer
    chain = [hop.strip() for hop in request.META.get("HTTP_X_FORWARDED_FOR", "").split(",") if hop.strip()]
    for hop in reversed(chain):
        try:
            ipaddress.ip_address(hop)
        except ValueError:
            return peer  # a malformed chain: the proxy's own address is all that is known
        if not is_trusted_proxy(hop):
            return hop
    return chain[0] if chain else peer


def username_key(username: str) -> str:
    return f"user:{username.strip().casefold()}"


def address_key(scope: str, address: str) -> str:
    return f"{scope}:{address}"


def blocked_for(*keys: str) -> int:
    """Seconds until the first blocked key among `keys` is allowed again; 0 if none is blocked."""
    try:
        pipe = _redis().pipeline(transaction=False)
        for key in keys:
            pipe.get(PREFIX + key)
            pipe.pttl(PREFIX + key)
        values = pipe.execute()
    except redis.RedisError as e:
        log.warning("sign-in throttle unavailable (Redis: %s): not blocking", e)
        return 0
    waits = [ttl for count, ttl in zip(values[::2], values[1::2], strict=True)
             if count is not None and int(count) >= settings.RELAY_SIGNIN_FAILURES and ttl > 0]
    return math.ceil(max(waits) / 1000) if waits else 0


def record_failure(*keys: str) -> None:
    try:
        pipe = _redis().pipeline(transaction=True)
        for key in keys:
            pipe.set(PREFIX + key, 0, ex=settings.RELAY_SIGNIN_WINDOW, nx=True)  # the window starts
            pipe.incr(PREFIX + key)  # keeps the key's expiry
        pipe.execute()
    except redis.RedisError as e:
        log.warning("sign-in throttle unavailable (Redis: %s): failure not counted", e)


def clear(*keys: str) -> None:
    try:
        _redis().delete(*(PREFIX + key for key in keys))
    except redis.RedisError as e:
        log.warning("sign-in throttle unavailable (Redis: %s): counter not cleared", e)


def message(seconds: int) -> str:
    minutes = max(1, math.ceil(seconds / 60))
    return f"Too many attempts, try again in {minutes} minute{'s' if minutes != 1 else ''}."
