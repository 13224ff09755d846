"""Where a webhook may be sent: public addresses only (SSRF guard); no Django here.

A URL is checked when it is registered (an IP literal or a name that resolves into a
forbidden range is refused; a name that does not resolve yet is accepted) and again at each
send, after resolution: the sender connects to the very address checked here.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Collection
from dataclasses import dataclass
from urllib.parse import urlsplit

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

# Cloud instance metadata services (AWS, GCP, Azure, OpenStack on IPv4; AWS on IPv6).
METADATA_ADDRESSES = frozenset({ipaddress.ip_address("169.254.169.254"), ipaddress.ip_address("fd00:ec2::254")})


class AddressRefused(ValueError):
    """The URL may not receive webhooks; the message says why."""


@dataclass(frozen=True)
class Target:
    """A webhook URL split into what the sender needs."""

    scheme: str
    host: str
    port: int
    path: str


def address_problem(address: IPAddress) -> str:
    """Why ``address`` may not receive webhooks ("" for a public address)."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address_problem(address.ipv4_mapped)
    if address in METADATA_ADDRESSES:
        return "a cloud metadata address"
    for label, flagged in (
        ("a loopback address", address.is_loopback),
        ("an unspecified address", address.is_unspecified),
        ("a link-local address", address.is_link_local),
        ("a multicast address", address.is_multicast),
        ("a reserved address", address.is_reserved),
        ("a private address", address.is_private),
    ):
        if flagged:
            return label
    if not address.is_global:
        return "not a public address"
    return ""


def target_parse(url: str, *, allow_http: bool) -> Target:
    """Split ``url``; AddressRefused when it is not an absolute https (or, when allowed, http) URL."""
    parts = urlsplit(url)
    schemes = ("https", "http") if allow_http else ("https",)
    if parts.scheme not in schemes:
        raise AddressRefused(
            f"the URL must start with https:// (got {parts.scheme or 'no scheme'}://)"
            if not allow_http
            else f"the URL must start with https:// or http:// (got {parts.scheme or 'no scheme'}://)"
        )
    if not parts.hostname:
        raise AddressRefused("the URL has no host name")
    if parts.username or parts.password:
        raise AddressRefused("the URL must not carry a user name or password")
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError as exc:
        raise AddressRefused(f"the URL's port is not a number from 1 to 65535: {exc}") from exc
    path = parts.path or "/"
    if parts.query:
        path += "?" + parts.query
    return Target(scheme=parts.scheme, host=parts.hostname.lower(), port=port, path=path)


def _literal(host: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        return None


def host_resolve(host: str, port: int) -> list[IPAddress]:
    """Every address ``host`` resolves to (an IP literal: itself); OSError when it does not resolve."""
    literal = _literal(host)
    if literal is not None:
        return [literal]
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    found: list[IPAddress] = []
    for info in infos:
        address = ipaddress.ip_address(str(info[4][0]).split("%")[0])
        if address not in found:
            found.append(address)
    return found


def _refuse_forbidden(host: str, addresses: list[IPAddress]) -> None:
    for address in addresses:
        problem = address_problem(address)
        if problem:
            shown = host if str(address) == host else f"{host} resolves to {address}, which"
            raise AddressRefused(
                f"{shown} is {problem}; webhooks go to public addresses only (or list the host in WEBHOOK_ALLOWED_HOSTS)"
            )


def url_check_registration(url: str, *, allow_http: bool, allowed_hosts: Collection[str]) -> Target:
    """Check a URL being registered: scheme, and an address (literal or resolved now) outside the forbidden ranges.

    A name that does not resolve (yet) is accepted: it is checked again at every send.
    """
    target = target_parse(url, allow_http=allow_http)
    if target.host in allowed_hosts:
        return target
    try:
        addresses = host_resolve(target.host, target.port)
    except OSError:
        return target
    _refuse_forbidden(target.host, addresses)
    return target


def url_resolve_for_send(url: str, *, allow_http: bool, allowed_hosts: Collection[str]) -> tuple[Target, IPAddress]:
    """The target and the one checked address to connect to; AddressRefused for a forbidden one.

    Every address the name resolves to must be public (a name mixing public and private
    addresses is refused); OSError when the name does not resolve (a retryable failure).
    """
    target = target_parse(url, allow_http=allow_http)
    addresses = host_resolve(target.host, target.port)
    if not addresses:
        raise OSError(f"{target.host} resolves to no address")
    if target.host not in allowed_hosts:
        _refuse_forbidden(target.host, addresses)
    return target, addresses[0]
