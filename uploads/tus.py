"""tus 1.0.0 header parsing and formatting; pure functions, no Django.

Each parser raises ``TusHeaderError`` with the HTTP status the server answers and a
message that says what to send instead.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import format_datetime
from typing import TYPE_CHECKING, Literal, overload

if TYPE_CHECKING:
    from _hashlib import HASH

TUS_VERSION = "1.0.0"
SUPPORTED_VERSIONS = (TUS_VERSION,)
EXTENSIONS = (
    "creation",
    "creation-with-upload",
    "creation-defer-length",
    "expiration",
    "checksum",
    "termination",
    "concatenation",
)
# hashlib names; the order is the server's preference in Tus-Checksum-Algorithm.
CHECKSUM_ALGORITHMS = ("sha1", "sha256", "md5")
OFFSET_CONTENT_TYPE = "application/offset+octet-stream"
CHECKSUM_MISMATCH_STATUS = 460
# A 64-bit signed integer bounds every length and offset the database can store.
MAX_INT64 = 2**63 - 1

_KEY_RE = re.compile(r"^[^\s,]+$")


class TusHeaderError(ValueError):
    """A request header the protocol does not allow; ``status`` is the answer to send."""

    def __init__(self, message: str, *, status: int = 400) -> None:
        super().__init__(message)
        self.message = message
        self.status = status


def check_tus_resumable(value: str | None) -> None:
    """Refuse a request whose Tus-Resumable is missing or not a version we speak (412)."""
    if value is None or value.strip() == "":
        raise TusHeaderError(f"Tus-Resumable header is required; send 'Tus-Resumable: {TUS_VERSION}'", status=412)
    if value.strip() not in SUPPORTED_VERSIONS:
        raise TusHeaderError(
            f"tus version {value.strip()!r} is not supported; this server speaks {', '.join(SUPPORTED_VERSIONS)}",
            status=412,
        )


@overload
def parse_non_negative_int(name: str, value: str | None, *, required: Literal[True]) -> int: ...
@overload
def parse_non_negative_int(name: str, value: str, *, required: bool = False) -> int: ...
@overload
def parse_non_negative_int(name: str, value: str | None, *, required: bool = False) -> int | None: ...
def parse_non_negative_int(name: str, value: str | None, *, required: bool = False) -> int | None:
    """Parse an Upload-Offset / Upload-Length style header: digits only, fits in 64 bits."""
    if value is None:
        if required:
            raise TusHeaderError(f"{name} header is required")
        return None
    text = value.strip()
    if not text.isascii() or not text.isdigit():
        raise TusHeaderError(f"{name} must be a non-negative integer, got {value!r}")
    significant = text.lstrip("0")
    # Checked before int(): Python refuses to convert more than 4,300 digits (and 20 never fit).
    if len(significant) > len(str(MAX_INT64)):
        raise TusHeaderError(
            f"{name} has {len(significant)} digits: it is larger than the largest supported size {MAX_INT64}",
            status=413,
        )
    number = int(significant or "0")
    if number > MAX_INT64:
        raise TusHeaderError(f"{name} {number} is larger than the largest supported size {MAX_INT64}", status=413)
    return number


def parse_defer_length(value: str | None) -> bool:
    """True for ``Upload-Defer-Length: 1``; any other value is a 400."""
    if value is None:
        return False
    if value.strip() != "1":
        raise TusHeaderError(f"Upload-Defer-Length must be 1 when present, got {value!r}")
    return True


def parse_metadata(value: str | None) -> dict[str, str]:
    """Decode ``Upload-Metadata`` (``key base64value,key2 base64value2``) into text values.

    Values must be UTF-8 text once decoded, because they are kept as JSON and shown to people.
    """
    if value is None or value.strip() == "":
        return {}
    result: dict[str, str] = {}
    for pair in value.split(","):
        pair = pair.strip()
        if not pair:
            raise TusHeaderError(
                "Upload-Metadata has an empty pair; separate 'key base64value' pairs with single commas"
            )
        key, _, encoded = pair.partition(" ")
        encoded = encoded.strip()
        if not _KEY_RE.match(key):
            raise TusHeaderError(f"Upload-Metadata key {key!r} must be non-empty without spaces or commas")
        if key in result:
            raise TusHeaderError(f"Upload-Metadata key {key!r} appears twice; keys must be unique")
        try:
            raw = base64.b64decode(encoded, validate=True) if encoded else b""
        except (binascii.Error, ValueError):
            raise TusHeaderError(f"Upload-Metadata value of {key!r} is not valid base64") from None
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise TusHeaderError(f"Upload-Metadata value of {key!r} must be UTF-8 text once decoded") from None
        # NUL cannot be stored in PostgreSQL text or JSON, and no file name or title needs control characters.
        if any((ord(char) < 32 and char != "\t") or ord(char) == 127 for char in text):
            raise TusHeaderError(f"Upload-Metadata value of {key!r} contains control characters; send plain text")
        result[key] = text
    return result


def format_metadata(metadata: dict[str, str]) -> str:
    """Encode metadata back into an ``Upload-Metadata`` header value."""
    parts = []
    for key, text in metadata.items():
        encoded = base64.b64encode(str(text).encode("utf-8")).decode("ascii")
        parts.append(f"{key} {encoded}" if encoded else key)
    return ",".join(parts)


@dataclass(frozen=True)
class Checksum:
    algorithm: str
    digest: bytes

    def new_hasher(self) -> HASH:
        return hashlib.new(self.algorithm)


def parse_checksum(value: str | None) -> Checksum | None:
    """Parse ``Upload-Checksum: <algorithm> <base64 digest>``; an unknown algorithm is a 400."""
    if value is None:
        return None
    algorithm, _, encoded = value.strip().partition(" ")
    if algorithm not in CHECKSUM_ALGORITHMS:
        raise TusHeaderError(
            f"checksum algorithm {algorithm!r} is not supported; use one of {', '.join(CHECKSUM_ALGORITHMS)}"
        )
    try:
        digest = base64.b64decode(encoded.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise TusHeaderError("Upload-Checksum digest is not valid base64") from None
    expected_size = hashlib.new(algorithm).digest_size
    if len(digest) != expected_size:
        raise TusHeaderError(f"Upload-Checksum {algorithm} digest must be {expected_size} bytes, got {len(digest)}")
    return Checksum(algorithm=algorithm, digest=digest)


@dataclass(frozen=True)
class Concat:
    partial: bool
    urls: tuple[str, ...] = ()


def parse_concat(value: str | None) -> Concat | None:
    """Parse ``Upload-Concat: partial`` or ``Upload-Concat: final;<url> <url> ...``."""
    if value is None:
        return None
    text = value.strip()
    if text == "partial":
        return Concat(partial=True)
    kind, sep, rest = text.partition(";")
    if kind.strip() != "final" or not sep:
        raise TusHeaderError(f"Upload-Concat must be 'partial' or 'final;<url> <url> ...', got {value!r}")
    urls = tuple(rest.split())
    if not urls:
        raise TusHeaderError("Upload-Concat final needs at least one partial upload URL after the semicolon")
    return Concat(partial=False, urls=urls)


def format_concat(*, partial: bool, urls: list[str] | tuple[str, ...] = ()) -> str:
    """The ``Upload-Concat`` value a HEAD response repeats."""
    return "partial" if partial else "final;" + " ".join(urls)


def format_http_date(moment: datetime) -> str:
    """RFC 7231 IMF-fixdate, e.g. ``Wed, 25 Jun 2014 16:00:00 GMT`` (for Upload-Expires)."""
    if moment.tzinfo is None:
        raise ValueError("format_http_date needs a timezone-aware datetime")
    return format_datetime(moment.astimezone(UTC), usegmt=True)


METHOD_OVERRIDES = ("PATCH", "DELETE")


def parse_method_override(method: str, override: str | None) -> str:
    """The effective method: on a POST, ``X-HTTP-Method-Override`` (PATCH or DELETE) wins when present;
    other methods are what they say."""
    if method.upper() != "POST" or override is None or not override.strip():
        return method.upper()
    wanted = override.strip().upper()
    if wanted not in METHOD_OVERRIDES:
        raise TusHeaderError(
            f"X-HTTP-Method-Override: {override.strip()!r} is not accepted: send PATCH or DELETE (on a POST)"
        )
    return wanted
