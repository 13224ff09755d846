"""The transcoding settings check: a setting that would fail every job stops start-up with what to fix."""

from __future__ import annotations

import pytest
from django.core import checks

from transcoding.checks import transcoding_settings_check


def ids(messages: list[checks.CheckMessage]) -> list[str]:
    return [m.id for m in messages]


def test_the_embedded_defaults_pass() -> None:
    assert transcoding_settings_check() == []


@pytest.mark.parametrize(
    ("name", "value", "code", "words"),
    [
        ("HLS_LADDER", "480:800k", "transcoding.E001", "must look like '480p:800k'"),
        ("HLS_LADDER", "", "transcoding.E001", "empty"),
        ("HLS_AUDIO_BITRATE", "loud", "transcoding.E002", "optional k or M suffix"),
        ("HLS_SEGMENT_SECONDS", 0, "transcoding.E003", "at least 1 second"),
        ("HLS_CRF", 0.0, "transcoding.E004", "outside 1-51"),
        ("HLS_CRF", 52.0, "transcoding.E004", "outside 1-51"),
        ("HLS_X264_PRESET", "fastest", "transcoding.E005", "not one of ultrafast"),
    ],
)
def test_a_bad_setting_is_named_with_what_to_fix(settings, name, value, code, words) -> None:
    setattr(settings, name, value)
    messages = transcoding_settings_check()
    assert ids(messages) == [code]
    assert messages[0].msg.startswith(f"{name}: ") and words in messages[0].msg


def test_the_check_is_registered_with_django(settings) -> None:
    settings.HLS_X264_PRESET = "fastest"
    assert "transcoding.E005" in ids(checks.run_checks())
