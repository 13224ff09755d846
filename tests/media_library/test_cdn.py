"""Bunny token signing, checked against Bunny's published test vectors.

The vectors below are data from Bunny's reference repository
github.com/BunnyWay/BunnyCDN.TokenAuthentication:

* ``E2E_VECTORS``: ``e2e/inputs.json`` (inputs) and ``e2e/vectors.json`` (signed
  URLs), the cross-language vectors every reference signer must reproduce. The
  ``ip_v6_blocked`` case is in vectors.json only; its inputs follow from its name
  and URL (IPv6 client, countries RU,CN blocked).
* ``SDK_VECTORS``: the cases without a client IP from ``rust/src/lib.rs``'s unit
  tests (that file's IP cases predate the current IP binding and are not used).
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urljoin

import pytest

from media_library.cdn import plain_cdn_url, sign_url, signed_cdn_url

KEY = "SecurityKey"
EXPIRES = 1598024587
HOST = "https://token-tester.b-cdn.net"
IPV6 = "2001:0db8:85a3:0000:0000:8a2e:0370:7334"


@dataclass(frozen=True)
class Vector:
    """One signing case: inputs to sign_url and the URL Bunny's signers produce."""

    name: str
    path: str
    expected: str
    user_ip: str | None = None
    directory: bool = False
    token_path: str | None = None
    countries_allowed: str | None = None
    countries_blocked: str | None = None
    ignore_params: bool = False
    speed_limit_kbps: int | None = None


E2E_VECTORS = [
    Vector(
        "plain",
        "/300kb.jpg",
        f"{HOST}/300kb.jpg?token=HS256-o10JRWlsAItyAsdKS6jJKjabHN4FrFsplDHPV1idcX4&expires=1598024587",
    ),
    Vector(
        "countries_only",
        "/300kb.jpg",
        f"{HOST}/300kb.jpg?token=HS256-i5s3Uv7mnrFfN5nznwU2BxhILpnipYeE18TapV0WNFM"
        "&token_countries=CA%2CUS&expires=1598024587",
        countries_allowed="CA,US",
    ),
    Vector(
        "blocked_only",
        "/300kb.jpg",
        f"{HOST}/300kb.jpg?token=HS256-JS8dSuBSjSH-W2-xhdkCPC36-2rlxfDCQJjlNMPqKZQ"
        "&token_countries_blocked=RU%2CCN&expires=1598024587",
        countries_blocked="RU,CN",
    ),
    Vector(
        "path_only",
        "/abc/300kb.jpg",
        f"{HOST}/abc/300kb.jpg?token=HS256-uVZvT3SbEoVKYJyDJgbcsDmSFf73cv-uNUVaJiKWpbQ"
        "&token_path=%2Fabc&expires=1598024587",
        token_path="/abc",
    ),
    Vector(
        "ignore_params",
        "/300kb.jpg",
        f"{HOST}/300kb.jpg?token=HS256-1lwWBD_c1IAGSj1UKPoxreu8ePDQ-Z9FoWLcRn_RRH0"
        "&token_ignore_params=true&expires=1598024587",
        ignore_params=True,
    ),
    Vector(
        "limit_only",
        "/300kb.jpg",
        f"{HOST}/300kb.jpg?token=HS256-DAVapqNNED3Z7JkjRTYX0UOIHNtbHEuuhRNEc4A7mMQ&limit=1000&expires=1598024587",
        speed_limit_kbps=1000,
    ),
    Vector(
        "ip_v4_only",
        "/300kb.jpg",
        f"{HOST}/300kb.jpg?token=HS256-1-L2rISTLcujMY9UFf2tbZ41d5i-Bme1g1oTK_Z2QMLJk&expires=1598024587",
        user_ip="1.2.3.4",
    ),
    Vector(
        "ip_v6_only",
        "/300kb.jpg",
        f"{HOST}/300kb.jpg?token=HS256-1-Z1BaGdhTZdU4iANcyKpurFR2VgCNdqC6hlBv5x_TyaI&expires=1598024587",
        user_ip=IPV6,
    ),
    Vector(
        "ip_v4_countries",
        "/abc/",
        f"{HOST}/bcdn_token=HS256-1-4lIDGI2_t3wiTmopXzB7z71wtZKTe1Ic0lDlL72iAJw"
        "&token_countries=CA%2CUS&expires=1598024587/abc/",
        user_ip="1.2.3.4",
        directory=True,
        countries_allowed="CA,US",
    ),
    Vector(
        "ip_v6_countries",
        "/abc/",
        f"{HOST}/bcdn_token=HS256-1-LGpoP8i1bV4P1kN4NrO_iYxLJuLAD2R3Clstsy9kWAc"
        "&token_countries=CA%2CUS&expires=1598024587/abc/",
        user_ip=IPV6,
        directory=True,
        countries_allowed="CA,US",
    ),
    Vector(
        "ip_v4_limit",
        "/abc/",
        f"{HOST}/bcdn_token=HS256-1-X01Z6A9xAo1_ds1XFf9y8gAIzk_JpmoevOx7EtgMQhY&limit=5000&expires=1598024587/abc/",
        user_ip="1.2.3.4",
        directory=True,
        speed_limit_kbps=5000,
    ),
    Vector(
        "ip_v4_path",
        "/abc/300kb.jpg",
        f"{HOST}/abc/300kb.jpg?token=HS256-1-wag9tC0r1QWfg-2eMj5QcdzgPLCIdQb-D0WVU1Mhg2w"
        "&token_path=%2Fabc&expires=1598024587",
        user_ip="1.2.3.4",
        token_path="/abc",
    ),
    Vector(
        "ip_v4_ignore",
        "/300kb.jpg",
        f"{HOST}/300kb.jpg?token=HS256-1-rWalmQRJ-A_qrb08-JoeU3b-gOS5mJiJjPOfDWa0gsQ"
        "&token_ignore_params=true&expires=1598024587",
        user_ip="1.2.3.4",
        ignore_params=True,
    ),
    Vector(
        "ip_v4_blocked",
        "/300kb.jpg",
        f"{HOST}/300kb.jpg?token=HS256-1-myF6Rnz7Z9VAfAjjkyUHJQ_6gr-AJ7VyPsG5rQdQKm8"
        "&token_countries_blocked=RU%2CCN&expires=1598024587",
        user_ip="1.2.3.4",
        countries_blocked="RU,CN",
    ),
    Vector(
        "ip_v6_blocked",
        "/300kb.jpg",
        f"{HOST}/300kb.jpg?token=HS256-1-XGkCf_JKNfOrpWAM_CIYjZBbVHbB4U1mxHg8pXJtBNc"
        "&token_countries_blocked=RU%2CCN&expires=1598024587",
        user_ip=IPV6,
        countries_blocked="RU,CN",
    ),
]

SDK_VECTORS = [
    Vector(
        "countries_allowed_with_root_path",
        "/300kb.jpg",
        f"{HOST}/300kb.jpg?token=HS256-JWU7jhpnBGI-O54AYDAtrlZT86Ied4RTO2-Y8mUj60A"
        "&token_countries=CA&token_path=%2F&expires=1598024587",
        token_path="/",
        countries_allowed="CA",
    ),
    Vector(
        "countries_blocked",
        "/300kb.jpg",
        f"{HOST}/300kb.jpg?token=HS256-zKGmNRBaHRmB4THCwmIQK5U21wH-S9KaJ6Ht7Kq9Zlw"
        "&token_countries_blocked=CA&expires=1598024587",
        countries_blocked="CA",
    ),
    Vector(
        "directory",
        "/abc/",
        f"{HOST}/bcdn_token=HS256-bTMv4RVOkjx2UXLfVDl-JIygaxfSIQP8UCnCy7CILuY&expires=1598024587/abc/",
        directory=True,
    ),
    Vector(
        "directory_and_token_path",
        "/abc/",
        f"{HOST}/bcdn_token=HS256-uVZvT3SbEoVKYJyDJgbcsDmSFf73cv-uNUVaJiKWpbQ&token_path=%2Fabc&expires=1598024587/abc/",
        directory=True,
        token_path="/abc",
    ),
    Vector(
        "ignore_params_drops_query",
        "/300kb.jpg?v=123",
        f"{HOST}/300kb.jpg?token=HS256-1lwWBD_c1IAGSj1UKPoxreu8ePDQ-Z9FoWLcRn_RRH0"
        "&token_ignore_params=true&expires=1598024587",
        ignore_params=True,
    ),
    Vector(
        "existing_query_is_signed",
        "/300kb.jpg?v=123",
        f"{HOST}/300kb.jpg?token=HS256-q6oRQr-5ccQ-piO1HSEQu1DVMy9UMppRxGlIQwoeM5Y&v=123&expires=1598024587",
    ),
]


def _sign(vector: Vector) -> str:
    return sign_url(
        url=HOST + vector.path,
        security_key=KEY,
        expires=EXPIRES,
        token_path=vector.token_path,
        directory=vector.directory,
        user_ip=vector.user_ip,
        countries_allowed=vector.countries_allowed,
        countries_blocked=vector.countries_blocked,
        speed_limit_kbps=vector.speed_limit_kbps,
        ignore_params=vector.ignore_params,
    )


@pytest.mark.parametrize("vector", E2E_VECTORS, ids=lambda v: v.name)
def test_matches_bunny_e2e_vectors(vector: Vector) -> None:
    assert _sign(vector) == vector.expected


@pytest.mark.parametrize("vector", SDK_VECTORS, ids=lambda v: v.name)
def test_matches_bunny_sdk_vectors(vector: Vector) -> None:
    assert _sign(vector) == vector.expected


def test_country_codes_accept_lists_and_any_case() -> None:
    from_list = sign_url(url=f"{HOST}/300kb.jpg", security_key=KEY, expires=EXPIRES, countries_allowed=["ca", " us"])
    assert from_list == E2E_VECTORS[1].expected


def test_ipv4_mapped_ipv6_signs_as_ipv4() -> None:
    mapped = sign_url(url=f"{HOST}/300kb.jpg", security_key=KEY, expires=EXPIRES, user_ip="::ffff:1.2.3.4")
    assert mapped == E2E_VECTORS[6].expected


def test_ipv6_is_bound_by_its_64_prefix() -> None:
    def sign_for(ip: str) -> str:
        return sign_url(url=f"{HOST}/300kb.jpg", security_key=KEY, expires=EXPIRES, user_ip=ip)

    assert sign_for("2001:db8:85a3::1") == sign_for(IPV6)
    assert sign_for("2001:db8:85a4::1") != sign_for(IPV6)


def test_hls_directory_token_is_inherited_by_relative_uris() -> None:
    signed = signed_cdn_url(
        base="https://zone.b-cdn.net/",
        key="videos/abc/hls/master.m3u8",
        directory_key="videos/abc/hls/",
        security_key=KEY,
        expires=EXPIRES,
    )
    token_segment, _, path = signed.removeprefix("https://zone.b-cdn.net/").partition("/")
    assert token_segment.startswith("bcdn_token=HS256-")
    assert token_segment.endswith("&token_path=%2Fvideos%2Fabc%2Fhls%2F&expires=1598024587")
    assert path == "videos/abc/hls/master.m3u8"
    # A player resolves variant and segment URIs against the master URL.
    segment = urljoin(urljoin(signed, "1/480p/index.m3u8"), "seg_00001.ts")
    assert segment == f"https://zone.b-cdn.net/{token_segment}/videos/abc/hls/1/480p/seg_00001.ts"


def test_directory_token_equals_sign_url_with_token_path() -> None:
    expected = sign_url(
        url="https://cdn.example.com/media/videos/abc/hls/master.m3u8",
        security_key=KEY,
        expires=EXPIRES,
        token_path="/media/videos/abc/hls/",
        directory=True,
        user_ip="1.2.3.4",
    )
    signed = signed_cdn_url(
        base="https://cdn.example.com/media",
        key="videos/abc/hls/master.m3u8",
        directory_key="videos/abc/hls",
        security_key=KEY,
        expires=EXPIRES,
        user_ip="1.2.3.4",
    )
    assert signed == expected


def test_signed_cdn_url_without_directory_signs_the_file() -> None:
    signed = signed_cdn_url(base=HOST, key="300kb.jpg", security_key=KEY, expires=EXPIRES)
    assert signed == E2E_VECTORS[0].expected


def test_signed_cdn_url_refuses_key_outside_directory() -> None:
    with pytest.raises(ValueError, match="not under directory_key"):
        signed_cdn_url(
            base=HOST,
            key="videos/abcd/hls/master.m3u8",
            directory_key="videos/abc",
            security_key=KEY,
            expires=EXPIRES,
        )


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"security_key": ""}, "security_key is empty"),
        ({"expires": 0}, "positive Unix timestamp"),
        ({"expires": True}, "positive Unix timestamp"),
        ({"url": "/300kb.jpg"}, "absolute http"),
        ({"url": f"{HOST}/300kb.jpg#t=10"}, "fragment"),
        ({"url": f"{HOST}/300kb.jpg?token=x&expires=1"}, "already has a 'token'"),
        ({"url": f"{HOST}/300kb.jpg?limit=5"}, "pass it as a sign_url argument"),
        ({"url": f"{HOST}/300kb.jpg?a=1&a=2"}, "repeats the query parameter"),
        ({"token_path": "abc"}, "must start with '/'"),
        ({"token_path": "/other/"}, "does not cover"),
        ({"user_ip": "1.2.3"}, "not an IPv4 or IPv6 address"),
        ({"countries_allowed": "USA"}, "alpha-2"),
        ({"speed_limit_kbps": 0}, "positive integer"),
        ({"ignore_params": True, "countries_blocked": "RU"}, "ignore_params cannot be combined"),
    ],
)
def test_rejects_invalid_input(kwargs: dict[str, object], message: str) -> None:
    arguments: dict[str, object] = {"url": f"{HOST}/300kb.jpg", "security_key": KEY, "expires": EXPIRES}
    arguments.update(kwargs)
    with pytest.raises(ValueError, match=message):
        sign_url(**arguments)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("base", "key", "expected"),
    [
        ("https://zone.b-cdn.net", "videos/a/hls/master.m3u8", "https://zone.b-cdn.net/videos/a/hls/master.m3u8"),
        ("https://zone.b-cdn.net/", "/videos/a/poster.jpg", "https://zone.b-cdn.net/videos/a/poster.jpg"),
        (
            "https://cdn.example.com/media/",
            "originals/my clip.mp4",
            "https://cdn.example.com/media/originals/my%20clip.mp4",
        ),
        ("/media/", "videos/a/hls/master.m3u8", "/media/videos/a/hls/master.m3u8"),
    ],
)
def test_plain_cdn_url_joins_base_and_key(base: str, key: str, expected: str) -> None:
    assert plain_cdn_url(base, key) == expected


@pytest.mark.parametrize(("base", "key"), [("", "a.ts"), ("https://zone.b-cdn.net", ""), ("https://z", "a/../b.ts")])
def test_plain_cdn_url_rejects_bad_input(base: str, key: str) -> None:
    with pytest.raises(ValueError):
        plain_cdn_url(base, key)
