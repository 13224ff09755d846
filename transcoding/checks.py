"""System checks: transcoding settings that would fail every job are reported at start-up."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.core import checks

from transcoding.ffmpeg.commands import check_crf, check_preset
from transcoding.ffmpeg.ladder import parse_bitrate, parse_ladder


def _check_segment_seconds(value: int) -> None:
    if value < 1:
        raise ValueError(f"{value} must be at least 1 second")


# setting, the function that raises ValueError with what to fix, and the check's number
_VALIDATORS: tuple[tuple[str, Callable[[Any], object], int], ...] = (
    ("HLS_LADDER", parse_ladder, 1),
    ("HLS_AUDIO_BITRATE", parse_bitrate, 2),
    ("HLS_SEGMENT_SECONDS", _check_segment_seconds, 3),
    ("HLS_CRF", check_crf, 4),
    ("HLS_X264_PRESET", check_preset, 5),
)


@checks.register()
def transcoding_settings_check(app_configs=None, **kwargs) -> list[checks.CheckMessage]:
    """HLS_LADDER, HLS_AUDIO_BITRATE, HLS_SEGMENT_SECONDS, HLS_CRF and HLS_X264_PRESET parse and make sense."""
    errors: list[checks.CheckMessage] = []
    for name, validate, code in _VALIDATORS:
        try:
            validate(getattr(settings, name))
        except ValueError as exc:
            errors.append(checks.Error(f"{name}: {exc}", id=f"transcoding.E{code:03d}"))
    return errors
