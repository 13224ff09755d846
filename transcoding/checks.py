"""System checks: transcoding settings that would fail every job are reported at start-up."""

from __future__ import annotations

from django.conf import settings
from django.core import checks

from transcoding import ffmpeg


@checks.register()
def transcoding_settings_check(app_configs=None, **kwargs) -> list[checks.CheckMessage]:
    """HLS_LADDER, HLS_AUDIO_BITRATE, HLS_SEGMENT_SECONDS, HLS_CRF and HLS_X264_PRESET parse and make sense."""
    errors: list[checks.CheckMessage] = []

    def error(setting: str, message: str, code: int) -> None:
        errors.append(checks.Error(f"{setting}: {message}", id=f"transcoding.E{code:03d}"))

    try:
        ffmpeg.parse_ladder(settings.HLS_LADDER)
    except ValueError as exc:
        error("HLS_LADDER", str(exc), 1)
    try:
        ffmpeg.parse_bitrate(settings.HLS_AUDIO_BITRATE)
    except ValueError as exc:
        error("HLS_AUDIO_BITRATE", str(exc), 2)
    if settings.HLS_SEGMENT_SECONDS < 1:
        error("HLS_SEGMENT_SECONDS", f"{settings.HLS_SEGMENT_SECONDS} must be at least 1 second", 3)
    try:
        ffmpeg.check_crf(settings.HLS_CRF)
    except ValueError as exc:
        error("HLS_CRF", str(exc), 4)
    try:
        ffmpeg.check_preset(settings.HLS_X264_PRESET)
    except ValueError as exc:
        error("HLS_X264_PRESET", str(exc), 5)
    return errors
