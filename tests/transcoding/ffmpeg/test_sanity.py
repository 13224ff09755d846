"""Source limits: declared size, rate, duration and bytes (pure); the packet timeline of the
integrity pass (pure); and probe_file refusing bombs before ffmpeg runs (real ffmpeg)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from transcoding.ffmpeg import probe as probe_module
from transcoding.ffmpeg.probe import ProbeError, probe_file
from transcoding.ffmpeg.sanity import PacketTimeline, SourceLimits, declared_problem, human_duration, timeline_problem

# The settings' defaults (docs/configuration.md).
LIMITS = SourceLimits(
    max_pixels=4096 * 2304,
    max_pixel_rate=4096 * 2304 * 60,
    max_duration_s=6 * 3600,
    min_bytes_per_s=16,
    max_gap_s=300,
)


def declared(**overrides: Any):
    values: dict[str, Any] = {
        "width": 1920,
        "height": 1080,
        "frame_rate": 30.0,
        "duration": 3600.0,
        "size_bytes": 200_000_000,
    }
    values.update(overrides)
    return declared_problem(LIMITS, **values)


@pytest.mark.parametrize(
    "overrides",
    [
        {},
        {"width": 3840, "height": 2160, "frame_rate": 60.0},
        {"width": 2160, "height": 3840, "frame_rate": 60.0},  # a phone's 4K portrait clip
        {"width": 4096, "height": 2160, "frame_rate": 50.0},  # DCI 4K
        {"width": 1920, "height": 1080, "frame_rate": 240.0},  # slow motion
        {"duration": 6 * 3600.0, "size_bytes": 6 * 3600 * 2600},  # 6 h of static slides, no sound
        {"duration": 600.0, "size_bytes": 600 * 34},  # 1 fps, one keyframe, no sound: the thinnest seen
    ],
)
def test_ordinary_sources_are_within_the_limits(overrides: dict[str, Any]) -> None:
    assert declared(**overrides) is None


def test_a_picture_over_max_source_pixels_is_too_large() -> None:
    problem = declared(width=8192, height=8192)
    assert problem is not None and problem.reason == "too_large"
    assert problem.message.startswith("the picture is 8192x8192 (67.1 megapixels)")
    assert "MAX_SOURCE_PIXELS" in problem.message and "4K" in problem.message


def test_a_pixel_rate_over_the_cap_is_too_large() -> None:
    problem = declared(width=3840, height=2160, frame_rate=120.0)
    assert problem is not None and problem.reason == "too_large"
    assert "120 frames per second" in problem.message and "MAX_SOURCE_PIXEL_RATE" in problem.message


def test_a_video_over_max_source_duration_is_too_long() -> None:
    problem = declared(duration=7.5 * 3600, size_bytes=2_000_000_000)
    assert problem is not None and problem.reason == "too_large"
    assert (
        problem.message.startswith("the video is 7 h 30 min long; the longest accepted is 6 h")
        and "MAX_SOURCE_DURATION_S" in problem.message
    )


def test_a_long_duration_in_a_few_bytes_is_implausible() -> None:
    problem = declared(duration=36001.0, size_bytes=1310)
    assert problem is not None and problem.reason == "implausible"
    assert problem.message.startswith("the file's timestamps are broken: it says it lasts 10 h 0 min")
    assert "1,310 bytes" in problem.message and "Re-export" in problem.message


def test_no_limits_check_nothing() -> None:
    assert (
        declared_problem(SourceLimits(), width=8192, height=8192, frame_rate=1000, duration=1e6, size_bytes=1) is None
    )


@pytest.mark.parametrize(
    ("seconds", "text"), [(0.4, "0.4 s"), (59, "59 s"), (61, "1 min 1 s"), (36001, "10 h 0 min 1 s"), (21600, "6 h")]
)
def test_human_duration(seconds: float, text: str) -> None:
    assert human_duration(seconds) == text


# framecrc lines of the stream-copy pass: stream, dts, pts, duration, size, checksum
BOMB_FRAMECRC = """\
#tb 0: 1/1000
#media_type 0: video
0,      -2000,          0,     1000,      741, 0xb91700c1
0,      -1000,   36000000,     1000,       16, 0x229b05d2, F=0x0
"""


def timeline_of(text: str) -> PacketTimeline:
    timeline = PacketTimeline()
    for line in text.splitlines():
        timeline.feed(line)
    return timeline


def test_the_timeline_finds_the_jump_between_two_frames() -> None:
    timeline = timeline_of(BOMB_FRAMECRC)
    assert timeline.video_frames == 2
    assert timeline.largest_gap == pytest.approx((1.0, 36000.0))
    problem = timeline_problem(LIMITS, timeline, start=0.0, duration=36001.0)
    assert problem is not None and problem.reason == "implausible"
    assert "its 2 frames" in problem.message and "nothing plays for 9 h 59 min 59 s" in problem.message
    assert "MAX_SOURCE_TIMESTAMP_GAP_S" in problem.message


def test_reordered_frames_and_sound_over_a_frozen_picture_are_no_gap() -> None:
    lines = ["#tb 0: 1/90000", "#tb 1: 1/48000"]
    # B-frames: presentation order differs from file order
    lines += ["0, 0, 3000, 3000, 900, 0x0", "0, 3000, 12000, 3000, 50, 0x0", "0, 6000, 6000, 3000, 50, 0x0"]
    # one more picture 400 s later, with sound all along
    lines += [f"1, {n * 1024}, {n * 1024}, 1024, 6, 0x0" for n in range(401 * 48000 // 1024)]
    lines += ["0, 36000000, 36000000, 3000, 900, 0x0"]
    timeline = timeline_of("\n".join(lines))
    assert timeline.video_frames == 4
    assert timeline_problem(LIMITS, timeline, start=0.0, duration=400.05) is None


def test_a_declared_duration_beyond_the_last_packet_is_a_gap() -> None:
    timeline = timeline_of("#tb 0: 1/1000\n0, 0, 0, 40, 900, 0x0\n0, 40, 40, 40, 900, 0x0\n")
    problem = timeline_problem(LIMITS, timeline, start=0.0, duration=3600.0)
    assert problem is not None and "nothing plays for 59 min 59.9 s" in problem.message


def test_a_video_stream_without_frames_is_implausible() -> None:
    problem = timeline_problem(LIMITS, timeline_of("#tb 0: 1/1000\n"), start=0.0, duration=10.0)
    assert problem is not None and "holds no pictures" in problem.message


# ---------------------------------------------------------------------------
# probe_file with limits (real ffmpeg)
# ---------------------------------------------------------------------------


@pytest.fixture
def tools_started(monkeypatch: pytest.MonkeyPatch) -> list[list[str]]:
    """The ffprobe/ffmpeg commands probe_file starts."""
    started: list[list[str]] = []
    real = probe_module.launch_command

    def recording(cmd: list[str]) -> list[str]:
        started.append(list(cmd))
        return real(cmd)

    monkeypatch.setattr(probe_module, "launch_command", recording)
    return started


@pytest.mark.slow
@pytest.mark.parametrize(
    "clip",
    [
        "landscape_clip",
        "no_audio_clip",
        "rotated_portrait_clip",
        "native_portrait_clip",
        "below_ladder_clip",
        "interlaced_clip",
        "dv_pal_clip",
        "hlg_clip",
        "slides_clip",
    ],
)
def test_ordinary_clips_pass_the_limits_and_the_decode_check(request: pytest.FixtureRequest, clip: str) -> None:
    probe = probe_file(request.getfixturevalue(clip), limits=LIMITS)
    assert probe.duration > 0 and probe.field_order is not None


@pytest.mark.slow
def test_the_timestamp_bomb_is_refused_before_anything_is_decoded(
    timestamp_bomb_clip: Path, tools_started: list[list[str]]
) -> None:
    with pytest.raises(ProbeError) as caught:
        probe_file(timestamp_bomb_clip, limits=LIMITS)
    assert caught.value.reason == "implausible"
    assert str(caught.value).startswith("the file's timestamps are broken: it says it lasts 10 h 0 min 1 s")
    assert [cmd[0] for cmd in tools_started] == ["ffprobe"], "only the ffprobe of the container ran"


@pytest.mark.slow
def test_the_timestamp_bomb_fails_the_gap_check_of_the_copy_pass(timestamp_bomb_clip: Path) -> None:
    limits = SourceLimits(max_gap_s=300)
    with pytest.raises(ProbeError) as caught:
        probe_file(timestamp_bomb_clip, limits=limits)
    assert caught.value.reason == "implausible"
    assert "its 2 frames" in str(caught.value) and "nothing plays for 9 h 59 min 59 s" in str(caught.value)


@pytest.mark.slow
def test_a_huge_declared_picture_is_refused_before_anything_is_decoded(
    huge_sps_clip: Path, tools_started: list[list[str]]
) -> None:
    with pytest.raises(ProbeError) as caught:
        probe_file(huge_sps_clip, limits=LIMITS)
    assert caught.value.reason == "too_large"
    assert str(caught.value).startswith("the picture is 8192x8192")
    assert [cmd[0] for cmd in tools_started] == ["ffprobe"]


@pytest.mark.slow
@pytest.mark.parametrize("clip", ["lying_sps_clip", "huge_sps_clip"])
def test_a_stream_whose_pictures_do_not_decode_fails_the_decode_check(
    request: pytest.FixtureRequest, clip: str
) -> None:
    started = time.monotonic()
    with pytest.raises(ProbeError) as caught:
        probe_file(request.getfixturevalue(clip))  # no size limits: the decode check alone
    assert time.monotonic() - started < 10
    assert caught.value.reason == "corrupt"
    assert str(caught.value).startswith("the video stream is damaged: its first pictures cannot be decoded (h264:")
