"""Planning the scrubbing previews, their WebVTT track, and the choice of loudness normalisation (pure)."""

from __future__ import annotations

import json

import pytest

from transcoding.ffmpeg.loudness import (
    LoudnessMeasurement,
    LoudnessMeasurementError,
    loudness_filter,
    parse_loudness_measurement,
)
from transcoding.ffmpeg.previews import plan_previews, preview_frames_cut, thumbnails_vtt


def test_short_videos_get_a_frame_every_interval():
    plan = plan_previews(duration=62.0, width=1280, height=720, interval=5.0)
    assert (plan.interval, plan.frames, plan.sheets) == (5.0, 13, 2)
    # the first frame alone on sheet 0 (its last cell), then a hundred per sheet
    assert [plan.cell(frame) for frame in (0, 1, 2, 11, 12)] == [
        (0, 1440, 810),
        (1, 0, 0),
        (1, 160, 0),
        (1, 0, 90),
        (1, 160, 90),
    ]
    assert (plan.tile_width, plan.tile_height) == (160, 90)


def test_long_videos_get_a_longer_interval_and_at_most_eleven_sheets():
    plan = plan_previews(duration=3 * 3600.0, width=1920, height=1080, interval=5.0)
    assert plan.interval == 11.0 and plan.frames == 982 and plan.sheets == 11
    one_hour = plan_previews(duration=3600.0, width=1920, height=1080, interval=5.0)
    assert (one_hour.interval, one_hour.frames, one_hour.sheets) == (5.0, 720, 9)


def test_a_zero_interval_is_refused():
    with pytest.raises(ValueError, match="more than 0 seconds"):
        plan_previews(duration=10, width=320, height=180, interval=0)


def test_the_track_runs_to_the_end_on_the_frames_ffmpeg_cut():
    plan = plan_previews(duration=1000.0, width=320, height=180, interval=5.0)
    assert plan.sheets == 3
    # the video stream ends 0.01 s before the declared duration: its last interval starts too late to be cut
    frames = preview_frames_cut(plan=plan, video_seconds=995.01, frame_rate=25, sheets_written=3)
    assert frames == 199
    # a sheet missing: no cue points at it
    assert preview_frames_cut(plan=plan, video_seconds=1000.0, frame_rate=25, sheets_written=2) == 101
    text = thumbnails_vtt(plan=plan, duration=1000.0, frames=101)
    assert text.count("-->") == 101
    assert text.rstrip().endswith("00:08:20.000 --> 00:16:40.000\nsprite-1.jpg#xywh=1440,810,160,90")


def _measured(integrated: float, peak: float, lra: float = 5.0) -> LoudnessMeasurement:
    return LoudnessMeasurement(integrated=integrated, true_peak=peak, loudness_range=lra, threshold=integrated - 10)


def test_a_constant_gain_is_used_when_the_peaks_stay_under_the_limit():
    chosen = loudness_filter(_measured(-30.0, -20.0), target_lufs=-16.0)
    assert chosen is not None and chosen.mode == "linear"
    assert chosen.filter == "volume=14.00dB"
    assert "+14.0 dB" in chosen.note


def test_dynamic_mode_only_when_the_gain_would_pass_the_true_peak_limit():
    chosen = loudness_filter(_measured(-35.0, -19.0), target_lufs=-16.0)
    assert chosen is not None and chosen.mode == "dynamic" and "linear=false" in chosen.filter
    assert "would peak at +0.0 dBTP" in chosen.note


def test_silence_is_left_alone():
    assert loudness_filter(_measured(-99.0, -99.0), target_lufs=-16.0) is None


def test_the_measurement_is_read_from_the_end_of_the_log():
    figures = {"input_i": "-27.61", "input_tp": "-4.47", "input_lra": "18.06", "input_thresh": "-39.20"}
    lines = ["Output #0, null, to 'pipe:':", "[Parsed_loudnorm_0 @ 0x55] ", *json.dumps(figures, indent=1).splitlines()]
    assert parse_loudness_measurement(lines) == LoudnessMeasurement(
        integrated=-27.61, true_peak=-4.47, loudness_range=18.06, threshold=-39.2
    )
    with pytest.raises(LoudnessMeasurementError, match="no loudnorm figures"):
        parse_loudness_measurement(["Stream #0:0: Audio: aac"])
