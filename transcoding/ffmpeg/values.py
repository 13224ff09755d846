"""Lenient reading of the numbers ffprobe and ffmpeg print, where ``N/A`` and junk mean "not known" (pure)."""

from __future__ import annotations

import math
from typing import Any


def to_float(value: Any) -> float | None:
    """A finite float, or None for anything else (``N/A``, ``nan``, None)."""
    try:
        result = float(value)
    except (TypeError, ValueError):
        return None
    return result if math.isfinite(result) else None


def to_int(value: Any) -> int | None:
    """An int, or None for anything that is not one."""
    try:
        return int(value)
    except (TypeError, ValueError):
        return None
