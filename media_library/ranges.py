"""HTTP ``Range`` header parsing for single byte ranges (RFC 9110 §14), no Django imports."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["ByteRange", "RangeNotSatisfiable", "parse_range_header"]


@dataclass(frozen=True)
class ByteRange:
    """An inclusive byte range ``start..end`` of a representation of ``size`` bytes."""

    start: int
    end: int
    size: int

    @property
    def length(self) -> int:
        return self.end - self.start + 1

    @property
    def content_range(self) -> str:
        return f"bytes {self.start}-{self.end}/{self.size}"


class RangeNotSatisfiable(ValueError):
    """The range is well-formed but lies entirely outside the representation (answer 416)."""


def parse_range_header(header: str | None, size: int) -> ByteRange | None:
    """Return the one byte range ``header`` asks for, or None to send the whole file.

    None is returned for a missing or malformed header, another unit, or several
    ranges at once (RFC 9110 lets a server ignore a Range it does not support; the
    full 200 response is always correct).

    Raises:
        RangeNotSatisfiable: when the single range starts at or past the end of the
            representation, or is a zero-length suffix (``bytes=-0``).
    """
    if not header:
        return None
    unit, equals, spec = header.strip().partition("=")
    if not equals or unit.strip().lower() != "bytes":
        return None
    spec = spec.strip()
    if "," in spec:
        return None
    first, dash, last = spec.partition("-")
    first, last = first.strip(), last.strip()
    if not dash or not (first.isdigit() or first == "") or not (last.isdigit() or last == ""):
        return None
    if first == "":
        if last == "":
            return None
        suffix = int(last)
        if suffix == 0 or size == 0:
            raise RangeNotSatisfiable(f"suffix range bytes=-{suffix} selects nothing of a {size}-byte file")
        return ByteRange(start=max(size - suffix, 0), end=size - 1, size=size)
    start = int(first)
    end = int(last) if last else size - 1
    if last and end < start:
        return None
    if start >= size:
        raise RangeNotSatisfiable(f"range starts at byte {start} but the file has {size} bytes")
    return ByteRange(start=start, end=min(end, size - 1), size=size)
