"""Safe object names for originals; pure helpers, no Django."""

from __future__ import annotations

import re
import unicodedata

_UNSAFE = re.compile(r"[^\w]+", re.UNICODE)
_EXT = re.compile(r"^[a-z0-9]{1,10}$")
MAX_STEM = 100


def safe_filename(name: str, *, fallback: str = "video") -> str:
    """A storage-safe version of an uploaded file name, extension kept.

    Letters of any script survive (``Übung 1.MP4`` -> ``übung-1.mp4``); separators,
    punctuation and path parts become single dashes, so the name is one URL path segment.
    """
    base = unicodedata.normalize("NFKC", name or "").replace("\\", "/").rsplit("/", 1)[-1]
    stem, dot, ext = base.rpartition(".")
    if not dot:
        stem, ext = base, ""
    ext = ext.lower()
    if not _EXT.match(ext):
        stem, ext = base, ""
    slug = _UNSAFE.sub("-", stem.lower()).replace("_", "-")
    slug = re.sub(r"-{2,}", "-", slug).strip("-")[:MAX_STEM].strip("-") or fallback
    return f"{slug}.{ext}" if ext else slug


def file_extension(name: str) -> str:
    """Lower-case extension without the dot, or '' when the name has none."""
    base = (name or "").replace("\\", "/").rsplit("/", 1)[-1]
    stem, dot, ext = base.rpartition(".")
    return ext.lower() if dot and stem and _EXT.match(ext.lower()) else ""
