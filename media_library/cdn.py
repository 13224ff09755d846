"""Bunny CDN URL signing (token authentication), with no Django imports.

Implements Bunny's current ("advanced") token authentication: an HMAC-SHA256 over
the signed path, the expiry, the client IP and the sorted token parameters, sent
as ``HS256-<base64url>``. Two URL shapes carry the same token:

* query form, for single files::

      https://zone.b-cdn.net/videos/ID/poster.jpg?token=HS256-…&expires=1700000000

* path ("directory") form, for HLS: the token sits in the first path segment, so
  every URI a player resolves relative to the playlist carries it too::

      https://zone.b-cdn.net/bcdn_token=HS256-…&expires=1700000000&token_path=%2Fvideos%2FID%2Fhls%2F/videos/ID/hls/master.m3u8

  With ``token_path`` set to the directory, Bunny accepts the token for every file
  under that directory (the variant playlists and their segments).

The algorithm and the test vectors it is checked against come from Bunny's
reference signers (github.com/BunnyWay/BunnyCDN.TokenAuthentication, ``e2e/``).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import ipaddress
import re
from collections.abc import Iterable
from urllib.parse import parse_qsl, quote, unquote, urlsplit

__all__ = [
    "TOKEN_PREFIX",
    "plain_cdn_url",
    "sign_url",
    "signed_cdn_url",
]

#: Prefix Bunny uses to tell HMAC-SHA256 tokens from the older SHA-256 ones.
TOKEN_PREFIX = "HS256-"
#: Extra prefix flag marking a token that is bound to the client's IP address.
_IP_BOUND_FLAG = "1-"

#: Query names the signer writes itself; a URL that already has them is signed twice.
_RESERVED_QUERY_NAMES = frozenset({"token", "expires", "bcdn_token"})
#: Query names that sign_url's own keyword arguments own.
_OPTION_QUERY_NAMES = frozenset(
    {"token_path", "token_countries", "token_countries_blocked", "token_ignore_params", "limit"}
)
_COUNTRY_CODE = re.compile(r"[A-Z]{2}")


def sign_url(
    *,
    url: str,
    security_key: str,
    expires: int,
    token_path: str | None = None,
    directory: bool = False,
    user_ip: str | None = None,
    countries_allowed: str | Iterable[str] | None = None,
    countries_blocked: str | Iterable[str] | None = None,
    speed_limit_kbps: int | None = None,
    ignore_params: bool = False,
) -> str:
    """Return ``url`` signed with Bunny token authentication.

    Args:
        url: Absolute CDN URL (``https://zone.b-cdn.net/path/file.m3u8``). Its own
            query parameters are covered by the signature unless ``ignore_params``.
        security_key: The pull zone's "Url Token Authentication Key".
        expires: Absolute expiry as a Unix timestamp in seconds.
        token_path: Path prefix the token is valid for (``/videos/ID/hls/``); every
            URL under it is accepted with this token. Defaults to the URL's own path.
        directory: Put the token in the first path segment (``/bcdn_token=…/path``)
            instead of the query string, so relative URIs inherit it.
        user_ip: Bind the token to this client IPv4/IPv6 address (needs "Token IP
            Validation" enabled on the pull zone). IPv6 is bound by its /64 prefix.
        countries_allowed: ISO 3166-1 alpha-2 codes allowed to fetch, as a list or
            a comma-separated string.
        countries_blocked: ISO 3166-1 alpha-2 codes refused.
        speed_limit_kbps: Download speed limit in kB/s (Bunny's ``limit``).
        ignore_params: Leave the URL's own query parameters out of the signature
            (and out of the signed URL), e.g. for players that append cache busters.

    Raises:
        ValueError: on an empty key, a non-positive expiry, a relative URL, a URL
            that is already signed or has repeated query names, a ``token_path``
            that does not cover the URL's path, a bad IP or country code, or
            ``ignore_params`` combined with country or speed limits.
    """
    if not security_key:
        raise ValueError("security_key is empty: set the pull zone's token authentication key")
    if isinstance(expires, bool) or not isinstance(expires, int) or expires <= 0:
        raise ValueError(f"expires must be a positive Unix timestamp in seconds, got {expires!r}")

    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError(f"url must be an absolute http(s) URL, got {url!r}")
    if parts.fragment:
        raise ValueError(f"url must not carry a fragment (#{parts.fragment}): it is never sent to the CDN")
    path = parts.path or "/"

    params = _query_params(parts.query)
    if ignore_params:
        if countries_allowed or countries_blocked or speed_limit_kbps is not None:
            # Bunny's reference signers drop these with ignore_params; refuse rather than guess.
            raise ValueError("ignore_params cannot be combined with country or speed limits")
        # The URL's own query then stays out of the signature (and out of the signed URL).
        params = {"token_ignore_params": "true"}
    allowed = _country_list(countries_allowed, "countries_allowed")
    if allowed:
        params["token_countries"] = allowed
    blocked = _country_list(countries_blocked, "countries_blocked")
    if blocked:
        params["token_countries_blocked"] = blocked
    if speed_limit_kbps is not None:
        if isinstance(speed_limit_kbps, bool) or speed_limit_kbps <= 0:
            raise ValueError(f"speed_limit_kbps must be a positive integer, got {speed_limit_kbps!r}")
        params["limit"] = str(speed_limit_kbps)

    # Bunny's reference signers sign the percent-decoded path.
    decoded_path = unquote(path)
    if token_path is not None:
        if not token_path.startswith("/"):
            raise ValueError(f"token_path must start with '/', got {token_path!r}")
        if not decoded_path.startswith(token_path):
            raise ValueError(f"token_path {token_path!r} does not cover the URL path {decoded_path!r}")
        params["token_path"] = token_path
        signature_path = token_path
    else:
        signature_path = decoded_path

    ordered = sorted(params.items())
    signing_data = "&".join(f"{name}={value}" for name, value in ordered)
    url_params = "".join(f"&{name}={quote(value, safe='')}" for name, value in ordered)

    expires_text = str(expires)
    ip_bytes = _ip_signature_bytes(user_ip) if user_ip else b""
    message = signature_path.encode() + expires_text.encode() + ip_bytes + signing_data.encode()
    digest = hmac.new(security_key.encode(), message, hashlib.sha256).digest()
    flags = _IP_BOUND_FLAG if user_ip else ""
    token = TOKEN_PREFIX + flags + base64.urlsafe_b64encode(digest).decode("ascii").rstrip("=")

    origin = f"{parts.scheme}://{parts.netloc}"
    if directory:
        return f"{origin}/bcdn_token={token}{url_params}&expires={expires_text}{path}"
    return f"{origin}{path}?token={token}{url_params}&expires={expires_text}"


def plain_cdn_url(base: str, key: str) -> str:
    """Join a CDN (or local media) base URL and a storage key into a URL.

    ``plain_cdn_url("https://zone.b-cdn.net/", "videos/ID/hls/master.m3u8")`` gives
    ``https://zone.b-cdn.net/videos/ID/hls/master.m3u8``. A base with a path
    (``https://cdn.example.com/media``) is kept as a prefix; characters of the key
    that are not allowed in a URL path are percent-encoded.

    Raises:
        ValueError: on an empty base or key, or a key with ``.``/``..`` segments.
    """
    if not base:
        raise ValueError("base URL is empty: set CDN_URL (or the local media URL)")
    key = key.lstrip("/")
    if not key:
        raise ValueError("storage key is empty")
    if any(segment in (".", "..") for segment in key.split("/")):
        raise ValueError(f"storage key {key!r} has '.' or '..' segments")
    return f"{base.rstrip('/')}/{quote(key, safe='/')}"


def signed_cdn_url(
    *,
    base: str,
    key: str,
    security_key: str,
    expires: int,
    directory_key: str | None = None,
    user_ip: str | None = None,
) -> str:
    """Return the signed CDN URL of a storage key.

    Without ``directory_key`` the token covers exactly this file (query form).
    With ``directory_key`` (``videos/ID/hls``) the token is a directory token in
    path form covering every key under that prefix, which is what an HLS master
    playlist needs so that variant playlists and segments inherit it.

    Raises:
        ValueError: if ``key`` is not under ``directory_key``, or as ``sign_url``.
    """
    url = plain_cdn_url(base, key)
    if directory_key is None:
        return sign_url(url=url, security_key=security_key, expires=expires, user_ip=user_ip)
    directory = directory_key.strip("/")
    if not directory:
        raise ValueError("directory_key is empty: a token for the whole zone is never intended")
    if not key.lstrip("/").startswith(directory + "/"):
        raise ValueError(f"key {key!r} is not under directory_key {directory_key!r}")
    # The token path is the directory's URL path, including any path of the base URL.
    token_path = unquote(urlsplit(plain_cdn_url(base, directory)).path) + "/"
    return sign_url(
        url=url,
        security_key=security_key,
        expires=expires,
        token_path=token_path,
        directory=True,
        user_ip=user_ip,
    )


def _query_params(query: str) -> dict[str, str]:
    """Parse the URL's own query string, refusing names that would be ambiguous."""
    params: dict[str, str] = {}
    for name, value in parse_qsl(query, keep_blank_values=True):
        if name in _RESERVED_QUERY_NAMES:
            raise ValueError(f"url already has a {name!r} parameter: sign the unsigned URL")
        if name in _OPTION_QUERY_NAMES:
            raise ValueError(f"url has a {name!r} parameter: pass it as a sign_url argument instead")
        if name in params:
            raise ValueError(f"url repeats the query parameter {name!r}, which Bunny's token cannot express")
        params[name] = value
    return params


def _country_list(countries: str | Iterable[str] | None, argument: str) -> str:
    """Normalise country codes to Bunny's comma-separated upper-case form."""
    if countries is None:
        return ""
    codes = countries.split(",") if isinstance(countries, str) else list(countries)
    normalised = [code.strip().upper() for code in codes if code.strip()]
    for code in normalised:
        if not _COUNTRY_CODE.fullmatch(code):
            raise ValueError(f"{argument} has {code!r}, which is not an ISO 3166-1 alpha-2 code")
    return ",".join(normalised)


def _ip_signature_bytes(user_ip: str) -> bytes:
    """Return the packed address Bunny signs: IPv4 as 4 bytes, IPv6 as its /64 prefix."""
    try:
        address = ipaddress.ip_address(user_ip.strip())
    except ValueError as exc:
        raise ValueError(f"user_ip {user_ip!r} is not an IPv4 or IPv6 address") from exc
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        # A v4-mapped v6 address reaches Bunny as the IPv4 client it is.
        address = address.ipv4_mapped
    if isinstance(address, ipaddress.IPv4Address):
        return address.packed
    # Clients rotate the interface half of IPv6 addresses; Bunny binds the network half.
    return address.packed[:8] + bytes(8)
