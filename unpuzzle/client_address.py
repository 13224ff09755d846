"""The client address that sign-in and request limits count: the TCP peer, or what trusted proxies forwarded."""

from __future__ import annotations

import ipaddress

from django.conf import settings
from django.http import HttpRequest

# One IPv6 subscriber usually gets a whole /64: counting single addresses would let it rotate freely.
IPV6_PREFIX = 64


def client_address(request: HttpRequest) -> str:
    """The address of the client, as text; IPv6 clients as their /64 network.

    X-Forwarded-For is read only when ``NUM_PROXIES`` proxies are declared, and then only
    the entry the outermost of them appended (``NUM_PROXIES`` from the right): entries to
    its left are whatever the client sent. An entry that is not an address (a misconfigured
    proxy) falls back to the TCP peer.
    """
    peer = request.META.get("REMOTE_ADDR", "")
    address = peer
    if settings.NUM_PROXIES > 0:
        forwarded = [part.strip() for part in request.META.get("HTTP_X_FORWARDED_FOR", "").split(",")]
        forwarded = [part for part in forwarded if part]
        if forwarded:
            address = forwarded[-min(settings.NUM_PROXIES, len(forwarded))]
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        try:
            ip = ipaddress.ip_address(peer)
        except ValueError:
            return peer
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return str(ip.ipv4_mapped)
    if ip.version == 6:
        return str(ipaddress.IPv6Network(f"{ip}/{IPV6_PREFIX}", strict=False))
    return str(ip)
