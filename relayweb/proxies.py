"""Which TCP peers are proxies relayweb trusts (RELAY_TRUSTED_PROXIES): their X-Forwarded-* headers are
believed. Shared by the webhook edge (triggers.edge), the audit log and the sign-in throttle (tenants)."""

from __future__ import annotations

import ipaddress
from functools import lru_cache

from django.conf import settings


@lru_cache(maxsize=8)
def _networks(cidrs: tuple[str, ...]) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    return tuple(ipaddress.ip_network(cidr, strict=False) for cidr in cidrs)


def is_trusted_proxy(peer: str) -> bool:
    """Whether the TCP peer is one of RELAY_TRUSTED_PROXIES (CIDRs; none by default)."""
    networks = _networks(tuple(settings.RELAY_TRUSTED_PROXIES))
    if not networks or not peer:
        return False
    try:
        address = ipaddress.ip_address(peer)
    except ValueError:  # a Unix socket path, or no address at all
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
        address = address.ipv4_mapped
    return any(address in network for network in networks)
