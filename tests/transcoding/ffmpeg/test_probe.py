"""parse_probe on ffprobe JSON (pure); probe_file on real and broken files (ffprobe)."""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Any

import pytest

from tests import clips
from transcoding.ffmpeg.probe import ProbeError, mp4_structure_problem, parse_probe, probe_file

# ---------------------------------------------------------------------------
# parse_probe (pure)
# ---------------------------------------------------------------------------


def video_stream(**overrides: Any) -> dict[str, Any]:
    stream = {
        "index": 0,
        "codec_type": "video",
        "codec_name": "h264",
        "width": 1920,
        "height": 1080,
        "avg_frame_rate": "30000/1001",
        "r_frame_rate": "30000/1001",
        "bit_rate": "5000000",
        "pix_fmt": "yuv420p",
    }
    stream.update(overrides)
    return stream


AUDIO_STREAM = {"index": 1, "codec_type": "audio", "codec_name": "aac", "channels": 2}


FORMAT = {"format_name": "mov,mp4,m4a,3gp,3g2,mj2", "duration": "12.5", "bit_rate": "5200000"}


def test_parse_probe_reads_the_basics() -> None:
    result = parse_probe({"streams": [video_stream(), AUDIO_STREAM], "format": FORMAT})
    assert (result.width, result.height, result.rotation) == (1920, 1080, 0)
    assert result.duration == 12.5
    assert result.frame_rate == pytest.approx(29.97, abs=0.01)
    assert result.video_bitrate == 5_000_000 and result.bitrate == 5_200_000
    assert result.has_audio and result.audio_codec == "aac" and result.audio_stream_index == 1
    assert result.raw["format"] == FORMAT


@pytest.mark.parametrize(
    "stream",
    [
        video_stream(side_data_list=[{"side_data_type": "Display Matrix", "rotation": -90}]),
        video_stream(side_data_list=[{"side_data_type": "Display Matrix", "rotation": 90}]),
        video_stream(tags={"rotate": "90"}),
        video_stream(tags={"rotate": "270"}),
    ],
)
def test_parse_probe_applies_rotation(stream: dict[str, Any]) -> None:
    result = parse_probe({"streams": [stream], "format": FORMAT})
    assert (result.width, result.height) == (1080, 1920)
    assert result.rotation in (90, 270)
    assert (result.coded_width, result.coded_height) == (1920, 1080)
    assert not result.has_audio


def test_parse_probe_widens_anamorphic_sources() -> None:
    result = parse_probe(
        {"streams": [video_stream(width=720, height=576, sample_aspect_ratio="64:45")], "format": FORMAT}
    )
    assert (result.width, result.height) == (1024, 576)


def test_parse_probe_reads_field_order_and_colours() -> None:
    stream = video_stream(
        field_order="tt",
        color_transfer="arib-std-b67",
        color_primaries="bt2020",
        color_space="bt2020nc",
        color_range="tv",
        pix_fmt="yuv420p10le",
    )
    result = parse_probe({"streams": [stream], "format": FORMAT})
    assert result.field_order == "tt" and result.is_interlaced
    assert (result.color_transfer, result.color_primaries, result.color_space, result.color_range) == (
        "arib-std-b67",
        "bt2020",
        "bt2020nc",
        "tv",
    )
    assert result.hdr_format == "HLG" and result.is_wide_gamut
    assert parse_probe({"streams": [video_stream(color_transfer="smpte2084")], "format": FORMAT}).hdr_format == "PQ"


def test_parse_probe_plain_sources_are_progressive_sdr() -> None:
    stream = video_stream(field_order="progressive", color_transfer="unknown", color_primaries="bt709")
    result = parse_probe({"streams": [stream], "format": FORMAT})
    assert not result.is_interlaced and result.hdr_format is None and not result.is_wide_gamut
    assert result.color_transfer is None
    unstated = parse_probe({"streams": [video_stream()], "format": FORMAT})
    assert unstated.field_order is None and not unstated.is_interlaced


@pytest.mark.parametrize(
    ("frames", "field_order"),
    [
        ([{"interlaced_frame": 1, "top_field_first": 0}], "bb"),
        ([{"interlaced_frame": 1, "top_field_first": 1}], "tt"),
        ([{"interlaced_frame": 0, "top_field_first": 0}], "progressive"),
        ([], None),
    ],
)
def test_parse_probe_takes_the_field_order_from_the_first_frame_when_the_stream_has_none(
    frames: list[dict[str, int]], field_order: str | None
) -> None:
    result = parse_probe({"streams": [video_stream(field_order="unknown")], "format": FORMAT, "frames": frames})
    assert result.field_order == field_order


@pytest.mark.parametrize(
    ("data", "reason", "message"),
    [
        ({"streams": [], "format": {}}, "not_video", "not a video file"),
        ({"streams": [AUDIO_STREAM], "format": FORMAT}, "audio_only", "audio-only file"),
        (
            {
                "streams": [video_stream(disposition={"attached_pic": 1}, codec_name="mjpeg"), AUDIO_STREAM],
                "format": FORMAT,
            },
            "audio_only",
            "audio-only file",
        ),
        ({"streams": [{"index": 0, "codec_type": "data"}], "format": FORMAT}, "no_video", "no video stream found"),
        (
            {"streams": [video_stream(codec_name="png")], "format": {"format_name": "png_pipe"}},
            "not_video",
            "still image (png)",
        ),
        ({"streams": [video_stream()], "format": {"format_name": "mov"}}, "corrupt", "duration"),
    ],
)
def test_parse_probe_rejects_non_videos(data: dict[str, Any], reason: str, message: str) -> None:
    with pytest.raises(ProbeError, match=re.escape(message)) as caught:
        parse_probe(data)
    assert caught.value.reason == reason


# ---------------------------------------------------------------------------
# probing real files
# ---------------------------------------------------------------------------


@pytest.mark.slow
def test_probe_landscape(landscape_clip: Path) -> None:
    probe = probe_file(landscape_clip)
    assert (probe.width, probe.height, probe.rotation) == (320, 180, 0)
    assert probe.duration == pytest.approx(6.0, abs=0.1)
    assert probe.frame_rate == pytest.approx(30.0)
    assert probe.video_codec == "h264" and probe.audio_codec == "aac" and probe.has_audio
    assert probe.video_bitrate and probe.bitrate
    assert probe.raw["format"]["format_name"].startswith("mov")


@pytest.mark.slow
def test_probe_rotated_portrait_reports_display_size(rotated_portrait_clip: Path) -> None:
    probe = probe_file(rotated_portrait_clip)
    assert (probe.coded_width, probe.coded_height) == (320, 180)
    assert (probe.width, probe.height) == (180, 320)
    assert probe.rotation in (90, 270) and probe.is_portrait


@pytest.mark.slow
def test_probe_native_portrait(native_portrait_clip: Path) -> None:
    probe = probe_file(native_portrait_clip)
    assert (probe.width, probe.height, probe.rotation) == (180, 320, 0)


@pytest.mark.slow
def test_probe_no_audio(no_audio_clip: Path) -> None:
    probe = probe_file(no_audio_clip)
    assert not probe.has_audio and probe.audio_codec is None and probe.audio_stream_index is None


@pytest.mark.slow
def test_truncated_faststart_passes_ffprobe_but_not_the_copy_pass(truncated_faststart_clip: Path) -> None:
    # ffprobe alone is fooled: the index at the front still describes the whole clip
    assert probe_file(truncated_faststart_clip, check_integrity=False).duration == pytest.approx(4.0, abs=0.1)
    started = time.monotonic()
    with pytest.raises(ProbeError) as caught:
        probe_file(truncated_faststart_clip)
    assert time.monotonic() - started < 5
    assert caught.value.reason == "truncated"
    assert str(caught.value).startswith("file is truncated")
    assert "'mdat' box" in str(caught.value)


@pytest.mark.slow
@pytest.mark.parametrize(
    ("clip", "reason", "message"),
    [
        ("cut_before_moov_clip", "truncated", "moov atom not found → file is truncated or incomplete"),
        ("not_video_clip", "not_video", "not a video file"),
        ("png_clip", "not_video", "not a video file: it is a still image (png)"),
        ("mpegts_clip", "unsupported", "unsupported container: the file holds mpegts data"),
        ("audio_only_clip", "audio_only", "audio-only file"),
    ],
)
def test_probe_explains_unusable_files(request: pytest.FixtureRequest, clip: str, reason: str, message: str) -> None:
    with pytest.raises(ProbeError) as caught:
        probe_file(request.getfixturevalue(clip))
    assert caught.value.reason == reason
    assert message in str(caught.value)


@pytest.fixture(scope="session")
def mpegts_clip(clip_dir: Path) -> Path:
    """A real video in MPEG-TS, a container outside the accepted list, named .mp4."""
    return clips.make_clip(clip_dir / "mpegts.mp4", duration=1.0, container="mpegts")


def test_probe_empty_file(tmp_path: Path) -> None:
    empty = tmp_path / "empty.mp4"
    empty.touch()
    with pytest.raises(ProbeError, match="file is empty"):
        probe_file(empty)


@pytest.mark.slow
def test_mp4_structure_problem(landscape_clip: Path, not_video_clip: Path, cut_before_moov_clip: Path) -> None:
    assert mp4_structure_problem(landscape_clip) is None
    assert mp4_structure_problem(not_video_clip) is None
    assert "moov atom not found" in (mp4_structure_problem(cut_before_moov_clip) or "")
