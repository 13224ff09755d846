"""Content-Type and Cache-Control of stored media objects, by key extension.

No Django imports: the storage backends, the HLS views and direct uploads call these with
plain storage keys.
"""

from __future__ import annotations

import posixpath
from enum import StrEnum

__all__ = ["AssetKind", "asset_kind_for_key", "content_headers_for_key"]


class AssetKind(StrEnum):
    """What an HLS output file is, which decides how long the CDN may cache it."""

    PLAYLIST = "playlist"
    SEGMENT = "segment"
    IMAGE = "image"
    CAPTIONS = "captions"
    OTHER = "other"


_SEGMENT_CACHE = "public, max-age=31536000, immutable"
_PLAYLIST_CACHE = "public, max-age=3600, stale-while-revalidate=86400"
_IMAGE_CACHE = "public, max-age=604800"
_CAPTIONS_CACHE = "public, max-age=86400"
# Unknown files are never pinned in a cache, so a wrong guess costs a revalidation only.
_OTHER_CACHE = "no-cache"
_FALLBACK_TYPE = "application/octet-stream"

# Set explicitly: Debian's mimetypes maps .ts to Qt translations (text/vnd.trolltech.linguist).
_TYPES_BY_EXTENSION: dict[str, tuple[AssetKind, str]] = {
    ".m3u8": (AssetKind.PLAYLIST, "application/vnd.apple.mpegurl"),
    ".ts": (AssetKind.SEGMENT, "video/mp2t"),
    ".m4s": (AssetKind.SEGMENT, "video/iso.segment"),
    ".mp4": (AssetKind.SEGMENT, "video/mp4"),
    ".aac": (AssetKind.SEGMENT, "audio/aac"),
    ".jpg": (AssetKind.IMAGE, "image/jpeg"),
    ".jpeg": (AssetKind.IMAGE, "image/jpeg"),
    ".png": (AssetKind.IMAGE, "image/png"),
    ".webp": (AssetKind.IMAGE, "image/webp"),
    ".vtt": (AssetKind.CAPTIONS, "text/vtt"),
}

_CACHE_BY_KIND: dict[AssetKind, str] = {
    AssetKind.PLAYLIST: _PLAYLIST_CACHE,
    AssetKind.SEGMENT: _SEGMENT_CACHE,
    AssetKind.IMAGE: _IMAGE_CACHE,
    AssetKind.CAPTIONS: _CAPTIONS_CACHE,
    AssetKind.OTHER: _OTHER_CACHE,
}


def asset_kind_for_key(key: str) -> AssetKind:
    """Classify a storage key by its extension (case-insensitive)."""
    extension = posixpath.splitext(key)[1].lower()
    entry = _TYPES_BY_EXTENSION.get(extension)
    return entry[0] if entry else AssetKind.OTHER


def content_headers_for_key(key: str) -> tuple[str, str]:
    """Return ``(Content-Type, Cache-Control)`` the CDN should see for a key.

    Segments and init segments never change once written (a re-transcode goes to
    a fresh prefix), so they are immutable for a year; playlists are cached for an
    hour and may be served stale for a day while revalidating; posters for a week;
    captions for a day; anything else is ``application/octet-stream``, revalidated.
    """
    extension = posixpath.splitext(key)[1].lower()
    kind, content_type = _TYPES_BY_EXTENSION.get(extension, (AssetKind.OTHER, _FALLBACK_TYPE))
    return content_type, _CACHE_BY_KIND[kind]
