"""Content-Type and Cache-Control of stored objects by key."""

from __future__ import annotations

import pytest

from unpuzzle.content_types import AssetKind, asset_kind_for_key, content_headers_for_key


@pytest.mark.parametrize(
    ("key", "content_type", "cache_control"),
    [
        (
            "videos/a/hls/1/master.m3u8",
            "application/vnd.apple.mpegurl",
            "public, max-age=3600, stale-while-revalidate=86400",
        ),
        ("videos/a/hls/1/480p/seg_00001.ts", "video/mp2t", "public, max-age=31536000, immutable"),
        ("videos/a/hls/1/480p/seg_00001.m4s", "video/iso.segment", "public, max-age=31536000, immutable"),
        ("videos/a/hls/1/480p/init.mp4", "video/mp4", "public, max-age=31536000, immutable"),
        ("videos/a/hls/1/audio/seg_1.aac", "audio/aac", "public, max-age=31536000, immutable"),
        ("videos/a/poster.jpg", "image/jpeg", "public, max-age=604800"),
        ("videos/a/poster.JPEG", "image/jpeg", "public, max-age=604800"),
        ("videos/a/thumb.png", "image/png", "public, max-age=604800"),
        ("videos/a/thumb.webp", "image/webp", "public, max-age=604800"),
        ("videos/a/captions/en.vtt", "text/vtt", "public, max-age=86400"),
        (
            "videos/a/hls/1/INDEX.M3U8",
            "application/vnd.apple.mpegurl",
            "public, max-age=3600, stale-while-revalidate=86400",
        ),
        ("videos/a/raw.bin", "application/octet-stream", "no-cache"),
        ("videos/a/noextension", "application/octet-stream", "no-cache"),
        ("videos/a.ts/README", "application/octet-stream", "no-cache"),
    ],
)
def test_content_headers_for_key(key: str, content_type: str, cache_control: str) -> None:
    assert content_headers_for_key(key) == (content_type, cache_control)


@pytest.mark.parametrize(
    ("key", "kind"),
    [
        ("a/master.m3u8", AssetKind.PLAYLIST),
        ("a/seg.ts", AssetKind.SEGMENT),
        ("a/poster.jpg", AssetKind.IMAGE),
        ("a/en.vtt", AssetKind.CAPTIONS),
        ("a/other.txt", AssetKind.OTHER),
    ],
)
def test_asset_kind_for_key(key: str, kind: AssetKind) -> None:
    assert asset_kind_for_key(key) is kind
