"""Tests for transcoding/ffmpeg.py: pure helpers directly, the pipeline with real ffmpeg on tiny clips."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil
import pytest

from tests import clips
from transcoding import ffmpeg as tx

TEST_LADDER = "90p:150k,144p:250k,240p:400k"
SEGMENT_SECONDS = 4.0


# ---------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------


def make_probe(width: int, height: int, **overrides: Any) -> tx.ProbeResult:
    """A ProbeResult for planning tests (display size already applied)."""
    values: dict[str, Any] = {
        "duration": 10.0,
        "width": width,
        "height": height,
        "rotation": 0,
        "video_codec": "h264",
        "video_bitrate": None,
        "bitrate": None,
        "frame_rate": 30.0,
        "audio_codec": "aac",
        "has_audio": True,
        "raw": {},
        "video_stream_index": 0,
        "audio_stream_index": 1,
    }
    values.update(overrides)
    return tx.ProbeResult(**values)


def ffprobe_json(path: Path, *args: str) -> dict[str, Any]:
    out = subprocess.run(
        ["ffprobe", "-v", "error", "-print_format", "json", *args, str(path)],
        check=True, capture_output=True, text=True,
    )
    return json.loads(out.stdout)


def video_packets(path: Path) -> list[dict[str, Any]]:
    """Video packets of a file in decode order, with pts_time and flags."""
    data = ffprobe_json(path, "-select_streams", "v:0", "-show_entries", "packet=pts_time,flags")
    return data["packets"]


def master_entries(master: Path) -> list[tuple[dict[str, str], str]]:
    """(attributes, uri) for each EXT-X-STREAM-INF of a master playlist."""
    lines = master.read_text().splitlines()
    entries = []
    for index, line in enumerate(lines):
        if line.startswith("#EXT-X-STREAM-INF:"):
            entries.append((parse_attributes(line.split(":", 1)[1]), lines[index + 1]))
    return entries


def parse_attributes(text: str) -> dict[str, str]:
    return {key: value.strip('"') for key, value in re.findall(r'([A-Z0-9-]+)=("[^"]*"|[^,]*)', text)}


@dataclass
class Transcoded:
    probe: tx.ProbeResult
    renditions: list[tx.PlannedRendition]
    output: tx.HlsOutput
    result: tx.FfmpegResult
    directory: Path
    progress: list[float]
    command: list[str]
    conversion: tx.SourceConversion


def transcode(
    source: Path,
    directory: Path,
    *,
    ladder: str = TEST_LADDER,
    drop_audio: bool = False,
    available: Collection[str] | None = None,
    **kwargs: Any,
) -> Transcoded:
    """Run the pipeline as the service does; ``available`` pretends ffmpeg has only those filters."""
    probe = tx.probe_file(source)
    if drop_audio:
        probe = dataclasses.replace(probe, has_audio=False, audio_codec=None, audio_stream_index=None)
    renditions = tx.plan_renditions(probe, tx.parse_ladder(ladder))
    conversion = tx.source_conversion(
        probe, renditions=renditions, available=tx.available_filters() if available is None else available
    )
    directory.mkdir(parents=True, exist_ok=True)
    cmd = tx.build_hls_command(
        input_path=source, output_dir=directory, probe=probe, renditions=renditions, conversion=conversion,
        segment_seconds=kwargs.pop("segment_seconds", SEGMENT_SECONDS), **kwargs,
    )
    progress: list[float] = []
    result = tx.run_ffmpeg(cmd, duration=probe.duration, timeout=60, on_progress=progress.append)
    output = tx.rewrite_master_playlist(output_dir=directory, renditions=renditions, probe=probe)
    return Transcoded(probe, renditions, output, result, directory, progress, cmd, conversion)


# ---------------------------------------------------------------------------
# ladder parsing and planning (pure)
# ---------------------------------------------------------------------------


def test_parse_ladder_sorts_and_reads_units() -> None:
    tiers = tx.parse_ladder(" 720p:1.5M, 240p:400k ,480p:800000")
    assert [(t.name, t.height, t.video_bitrate) for t in tiers] == [
        ("240p", 240, 400_000),
        ("480p", 480, 800_000),
        ("720p", 720, 1_500_000),
    ]
    assert tiers[2].maxrate == 1_500_000
    assert tiers[2].bufsize == 3_000_000


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("", "empty"),
        ("480p", "must look like '480p:800k'"),
        ("480:800k", "must look like '480p:800k'"),
        ("480p:fast", "must look like '480p:800k'"),
        ("481p:800k", "must be even"),
        ("8p:100k", "between 16 and 4320"),
        ("480p:0k", "greater than zero"),
        ("480p:800k,480p:900k", "lists 480p twice"),
        ("480p:800k,720p:500k", "lower bitrate"),
    ],
)
def test_parse_ladder_rejects_bad_specs(spec: str, message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        tx.parse_ladder(spec)


DEFAULT_TIERS = tx.parse_ladder("240p:400k,480p:800k,720p:1500k")


@pytest.mark.parametrize(
    ("width", "height", "expected"),
    [
        # landscape 1080p: sized by height
        (1920, 1080, [("720p", 1280, 720), ("480p", 854, 480), ("240p", 426, 240)]),
        # portrait phone clip: sized by its short side (width)
        (1080, 1920, [("720p", 720, 1280), ("480p", 480, 854), ("240p", 240, 426)]),
        # exactly a tier size: kept once, never duplicated
        (1280, 720, [("720p", 1280, 720), ("480p", 854, 480), ("240p", 426, 240)]),
        # between tiers, well above 480: the 720p tier shrinks to the source size
        (1000, 600, [("600p", 1000, 600), ("480p", 800, 480), ("240p", 400, 240)]),
        # barely above 480: the 720p tier is dropped instead of nearly duplicating 480p
        (864, 500, [("480p", 830, 480), ("240p", 414, 240)]),
        # below the lowest tier: one rendition at the source size
        (160, 90, [("90p", 160, 90)]),
        # odd source size: floored to even, never upscaled
        (853, 479, [("478p", 852, 478), ("240p", 428, 240)]),
        # square
        (600, 600, [("600p", 600, 600), ("480p", 480, 480), ("240p", 240, 240)]),
    ],
)
def test_plan_renditions(width: int, height: int, expected: list[tuple[str, int, int]]) -> None:
    planned = tx.plan_renditions(make_probe(width, height), DEFAULT_TIERS)
    assert [(r.name, r.width, r.height) for r in planned] == expected
    for rendition in planned:
        assert rendition.width % 2 == 0 and rendition.height % 2 == 0
        assert rendition.width <= width and rendition.height <= height
        assert rendition.width / rendition.height == pytest.approx(width / height, rel=0.02)
    assert len({(r.width, r.height) for r in planned}) == len(planned)


def test_plan_renditions_shrunk_tier_gets_a_scaled_bitrate() -> None:
    planned = tx.plan_renditions(make_probe(1000, 600), DEFAULT_TIERS)
    top = planned[0]
    assert 800_000 <= top.video_bitrate < 1_500_000
    assert top.maxrate == top.video_bitrate and top.bufsize == 2 * top.video_bitrate


def test_plan_renditions_keeps_a_1080p_tier_for_1080p_sources() -> None:
    tiers = tx.parse_ladder("360p:600k,1080p:4M")
    planned = tx.plan_renditions(make_probe(1920, 1080), tiers)
    assert [(r.name, r.width, r.height, r.video_bitrate) for r in planned] == [
        ("1080p", 1920, 1080, 4_000_000),
        ("360p", 640, 360, 600_000),
    ]


# ---------------------------------------------------------------------------
# parse_probe (pure)
# ---------------------------------------------------------------------------


def video_stream(**overrides: Any) -> dict[str, Any]:
    stream = {
        "index": 0, "codec_type": "video", "codec_name": "h264", "width": 1920, "height": 1080,
        "avg_frame_rate": "30000/1001", "r_frame_rate": "30000/1001", "bit_rate": "5000000", "pix_fmt": "yuv420p",
    }
    stream.update(overrides)
    return stream


AUDIO_STREAM = {"index": 1, "codec_type": "audio", "codec_name": "aac", "channels": 2}
FORMAT = {"format_name": "mov,mp4,m4a,3gp,3g2,mj2", "duration": "12.5", "bit_rate": "5200000"}


def test_parse_probe_reads_the_basics() -> None:
    result = tx.parse_probe({"streams": [video_stream(), AUDIO_STREAM], "format": FORMAT})
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
    result = tx.parse_probe({"streams": [stream], "format": FORMAT})
    assert (result.width, result.height) == (1080, 1920)
    assert result.rotation in (90, 270)
    assert (result.coded_width, result.coded_height) == (1920, 1080)
    assert not result.has_audio


def test_parse_probe_widens_anamorphic_sources() -> None:
    result = tx.parse_probe(
        {"streams": [video_stream(width=720, height=576, sample_aspect_ratio="64:45")], "format": FORMAT}
    )
    assert (result.width, result.height) == (1024, 576)


def test_parse_probe_reads_field_order_and_colours() -> None:
    stream = video_stream(
        field_order="tt", color_transfer="arib-std-b67", color_primaries="bt2020", color_space="bt2020nc",
        color_range="tv", pix_fmt="yuv420p10le",
    )
    result = tx.parse_probe({"streams": [stream], "format": FORMAT})
    assert result.field_order == "tt" and result.is_interlaced
    assert (result.color_transfer, result.color_primaries, result.color_space, result.color_range) == (
        "arib-std-b67", "bt2020", "bt2020nc", "tv",
    )
    assert result.hdr_format == "HLG" and result.is_wide_gamut
    assert tx.parse_probe({"streams": [video_stream(color_transfer="smpte2084")], "format": FORMAT}).hdr_format == "PQ"


def test_parse_probe_plain_sources_are_progressive_sdr() -> None:
    stream = video_stream(field_order="progressive", color_transfer="unknown", color_primaries="bt709")
    result = tx.parse_probe({"streams": [stream], "format": FORMAT})
    assert not result.is_interlaced and result.hdr_format is None and not result.is_wide_gamut
    assert result.color_transfer is None
    unstated = tx.parse_probe({"streams": [video_stream()], "format": FORMAT})
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
    result = tx.parse_probe({"streams": [video_stream(field_order="unknown")], "format": FORMAT, "frames": frames})
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
    with pytest.raises(tx.ProbeError, match=re.escape(message)) as caught:
        tx.parse_probe(data)
    assert caught.value.reason == reason


# ---------------------------------------------------------------------------
# command building (pure)
# ---------------------------------------------------------------------------


def test_build_hls_command_without_audio_maps_no_audio(tmp_path: Path) -> None:
    probe = make_probe(1920, 1080, has_audio=False, audio_codec=None, audio_stream_index=None)
    renditions = tx.plan_renditions(probe, DEFAULT_TIERS)
    cmd = tx.build_hls_command(input_path=tmp_path / "in.mp4", output_dir=tmp_path, probe=probe, renditions=renditions)
    stream_map = cmd[cmd.index("-var_stream_map") + 1]
    assert stream_map == "v:0,name:720p v:1,name:480p v:2,name:240p"
    assert "-c:a" not in cmd and "0:a?" not in " ".join(cmd)


def test_build_hls_command_with_audio(tmp_path: Path) -> None:
    probe = make_probe(1920, 1080)
    renditions = tx.plan_renditions(probe, DEFAULT_TIERS)
    cmd = tx.build_hls_command(input_path=tmp_path / "in.mp4", output_dir=tmp_path, probe=probe, renditions=renditions)
    assert cmd[cmd.index("-var_stream_map") + 1] == "v:0,a:0,name:720p v:1,a:1,name:480p v:2,a:2,name:240p"
    assert cmd.count("0:1") == 3
    assert cmd[cmd.index("-ac:a") + 1] == "2"
    assert cmd[cmd.index("-hls_playlist_type") + 1] == "vod"
    assert cmd[cmd.index("-master_pl_name") + 1] == "master.m3u8"
    assert cmd[cmd.index("-progress") + 1] == "pipe:1" and "-nostats" in cmd
    assert cmd[cmd.index("-force_key_frames:v:0") + 1] == "expr:gte(t,n_forced*2)"
    assert cmd[cmd.index("-maxrate:v:0") + 1] == "1500000" and cmd[cmd.index("-bufsize:v:2") + 1] == "800000"
    graph = cmd[cmd.index("-filter_complex") + 1]
    # cascade: 480p is scaled from the 720p picture, 240p from the 480p one
    assert graph.startswith("[0:0]scale=1280:720")
    assert "[c0]scale=854:480" in graph and "[c1]scale=426:240" in graph


def test_build_hls_command_can_scale_every_tier_from_the_source(tmp_path: Path) -> None:
    probe = make_probe(1920, 1080)
    renditions = tx.plan_renditions(probe, DEFAULT_TIERS)
    cmd = tx.build_hls_command(
        input_path=tmp_path / "in.mp4", output_dir=tmp_path, probe=probe, renditions=renditions, cascade=False
    )
    assert cmd[cmd.index("-filter_complex") + 1].startswith("[0:0]split=3[s0][s1][s2]")


@pytest.mark.parametrize(("segment_seconds", "keyframe_interval"), [(5, 2), (1, 2), (6, 0)])
def test_build_hls_command_needs_segments_made_of_whole_gops(
    tmp_path: Path, segment_seconds: float, keyframe_interval: float
) -> None:
    probe = make_probe(640, 360)
    with pytest.raises(ValueError, match="multiple of keyframe_interval"):
        tx.build_hls_command(
            input_path=tmp_path / "in.mp4", output_dir=tmp_path, probe=probe,
            renditions=tx.plan_renditions(probe, DEFAULT_TIERS),
            segment_seconds=segment_seconds, keyframe_interval=keyframe_interval,
        )


def test_build_hls_command_rejects_percent_in_output_dir(tmp_path: Path) -> None:
    probe = make_probe(640, 360)
    with pytest.raises(ValueError, match="'%'"):
        tx.build_hls_command(
            input_path=tmp_path / "in.mp4", output_dir=tmp_path / "100%", probe=probe,
            renditions=tx.plan_renditions(probe, DEFAULT_TIERS),
        )


HLG_PROBE = {"color_transfer": "arib-std-b67", "color_primaries": "bt2020", "color_space": "bt2020nc",
             "color_range": "tv", "pix_fmt": "yuv420p10le"}


def test_progressive_sdr_sources_are_not_converted(tmp_path: Path) -> None:
    probe = make_probe(1920, 1080, field_order="progressive", color_primaries="bt709", color_transfer="bt709")
    assert tx.source_conversion(probe) == tx.SourceConversion()
    cmd = tx.build_hls_command(
        input_path=tmp_path / "in.mp4", output_dir=tmp_path, probe=probe,
        renditions=tx.plan_renditions(probe, DEFAULT_TIERS),
    )
    graph = cmd[cmd.index("-filter_complex") + 1]
    assert not re.search(r"bwdif|yadif|zscale|tonemap|colorspace", graph)
    assert "-color_primaries:v:0" not in cmd


@pytest.mark.parametrize("cascade", [True, False])
def test_interlaced_sources_are_deinterlaced_once_before_the_split(tmp_path: Path, cascade: bool) -> None:
    probe = make_probe(1920, 1080, field_order="tt", frame_rate=25.0)
    cmd = tx.build_hls_command(
        input_path=tmp_path / "in.mp4", output_dir=tmp_path, probe=probe,
        renditions=tx.plan_renditions(probe, DEFAULT_TIERS), cascade=cascade,
    )
    graph = cmd[cmd.index("-filter_complex") + 1]
    assert graph.count("bwdif") == 1
    assert graph.startswith("[0:0]bwdif=mode=send_frame:parity=auto:deint=all,")
    assert graph.index("bwdif") < graph.index("split")


def test_hdr_is_tone_mapped_once_at_the_top_tier_size_and_tagged_bt709(tmp_path: Path) -> None:
    probe = make_probe(3840, 2160, field_order="bb", **HLG_PROBE)
    renditions = tx.plan_renditions(probe, DEFAULT_TIERS)
    conversion = tx.source_conversion(probe, renditions=renditions)
    assert conversion.filters[0].startswith("bwdif=")
    assert conversion.filters[1].startswith("zscale=w=1280:h=720:f=bicubic:tin=arib-std-b67:pin=bt2020:min=bt2020nc")
    assert "tonemap=tonemap=hable:desat=0" in conversion.filters
    assert conversion.filters[-1] == "format=yuv420p"
    assert conversion.tag_bt709 and not conversion.warnings
    assert any("tone-mapped to BT.709 SDR" in note for note in conversion.notes)
    cmd = tx.build_hls_command(
        input_path=tmp_path / "in.mp4", output_dir=tmp_path, probe=probe, renditions=renditions,
        conversion=conversion,
    )
    graph = cmd[cmd.index("-filter_complex") + 1]
    assert graph.count("tonemap=tonemap=") == 1 and graph.index("tonemap=") < graph.index("split")
    for index in range(len(renditions)):
        assert cmd[cmd.index(f"-color_trc:v:{index}") + 1] == "bt709"
        assert cmd[cmd.index(f"-color_primaries:v:{index}") + 1] == "bt709"
        assert cmd[cmd.index(f"-colorspace:v:{index}") + 1] == "bt709"


@pytest.mark.parametrize(
    ("available", "expected", "warning"),
    [
        ({"colorspace"}, "colorspace=all=bt709:iall=bt2020:itrc=bt2020-10:irange=tv:format=yuv420p", "NOT tone-mapped"),
        (set(), None, "colours were NOT converted"),
    ],
)
def test_hdr_without_zscale_is_converted_with_what_exists_and_warned_about(
    available: set[str], expected: str | None, warning: str
) -> None:
    conversion = tx.source_conversion(make_probe(1920, 1080, **HLG_PROBE), available=available)
    assert conversion.filters == ((expected,) if expected else ())
    assert len(conversion.warnings) == 1 and warning in conversion.warnings[0]
    assert conversion.warnings[0].startswith("WARNING: HDR source (HLG, bt2020 primaries, yuv420p10le)")
    assert conversion.tag_bt709


def test_interlaced_without_a_deinterlacer_is_warned_about() -> None:
    probe = make_probe(1920, 1080, field_order="bb")
    assert tx.source_conversion(probe, available={"yadif"}).filters == ("yadif=mode=send_frame:parity=auto:deint=all",)
    bare = tx.source_conversion(probe, available=set())
    assert bare.filters == () and "without deinterlacing" in bare.warnings[0]


def test_wide_gamut_sdr_gets_bt709_colours() -> None:
    probe = make_probe(1920, 1080, color_primaries="bt2020", color_transfer="bt2020-10", color_space="bt2020nc")
    conversion = tx.source_conversion(probe)
    assert conversion.filters == ("colorspace=all=bt709:iall=bt2020:itrc=bt2020-10:irange=tv:format=yuv420p",)
    assert conversion.tag_bt709 and not conversion.warnings


def test_available_filters_reads_this_ffmpeg() -> None:
    names = tx.available_filters("ffmpeg")
    assert {"bwdif", "scale", "split", "colorspace"} <= names
    assert tx.available_filters("/nonexistent/ffmpeg") == frozenset()


def test_fixed_bitrate_sets_b_v_to_the_cap() -> None:
    rendition = tx.plan_renditions(make_probe(1280, 720), DEFAULT_TIERS)[0]
    args = tx.video_encoder_args(rendition=rendition, stream=None, frame_rate=30, rate_control="fixed_bitrate")
    assert args[args.index("-b:v") + 1] == args[args.index("-maxrate:v") + 1] == "1500000"
    assert "-crf:v" not in args


def test_cbr_sets_minrate_and_hrd_cbr() -> None:
    rendition = tx.plan_renditions(make_probe(1280, 720), DEFAULT_TIERS)[0]
    args = tx.video_encoder_args(rendition=rendition, stream=1, frame_rate=30, rate_control="cbr")
    assert args[args.index("-b:v:1") + 1] == args[args.index("-minrate:v:1") + 1] == "1500000"
    assert args[args.index("-maxrate:v:1") + 1] == "1500000"
    assert args[args.index("-x264-params:v:1") + 1] == "nal-hrd=cbr"
    assert "-crf:v:1" not in args


def test_unknown_rate_control_is_refused() -> None:
    rendition = tx.plan_renditions(make_probe(1280, 720), DEFAULT_TIERS)[0]
    with pytest.raises(ValueError, match="unknown rate control 'vbr'"):
        tx.video_encoder_args(rendition=rendition, stream=None, frame_rate=30, rate_control="vbr")  # type: ignore[arg-type]


@pytest.mark.parametrize(("duration", "expected"), [(100.0, 10.0), (1.0, 0.1), (0.05, 0.0)])
def test_poster_time_stays_inside_short_clips(duration: float, expected: float) -> None:
    probe = make_probe(640, 360, duration=duration)
    assert tx.poster_time(probe) == pytest.approx(expected, abs=1e-6)
    assert tx.poster_time(probe) < duration


def test_master_lists_the_start_rendition_first() -> None:
    def output(name: str, width: int, height: int) -> tx.RenditionOutput:
        return tx.RenditionOutput(
            name=name, width=width, height=height, bandwidth=1, average_bandwidth=1, codecs="avc1.64001f",
            video_codec="avc1.64001f", frame_rate=25.0, playlist=f"{name}/index.m3u8", iframe_playlist=None,
            iframe_bandwidth=None, segment_durations=(6.0,), segment_bytes=1, bytes=1, keyframe_aligned=True,
        )

    text = tx.render_master_playlist([output("240p", 426, 240), output("720p", 1280, 720), output("480p", 854, 480)])
    assert [line for line in text.splitlines() if line.endswith(".m3u8")] == [
        "480p/index.m3u8", "720p/index.m3u8", "240p/index.m3u8",
    ]
    assert "FRAME-RATE=25.000" in text and "I-FRAME" not in text


# ---------------------------------------------------------------------------
# progress parsing (pure)
# ---------------------------------------------------------------------------

PROGRESS_BLOCK = """frame=45
fps=0.00
stream_0_0_q=28.0
bitrate=N/A
total_size=N/A
out_time_us=1500000
out_time_ms=1500000
out_time=00:00:01.500000
dup_frames=0
drop_frames=0
speed=2.99x
progress=continue
"""


def test_parse_progress_line() -> None:
    assert tx.parse_progress_line("out_time_us=1500000\n") == ("out_time_us", "1500000")
    assert tx.parse_progress_line("progress=end") == ("progress", "end")
    assert tx.parse_progress_line("[hls @ 0x1] Opening 'x' for writing") is None
    assert tx.parse_progress_line("") is None


def test_progress_parser_reports_blocks() -> None:
    parser = tx.ProgressParser()
    snapshots = [s for s in (parser.feed(line) for line in PROGRESS_BLOCK.splitlines()) if s is not None]
    assert len(snapshots) == 1
    snapshot = snapshots[0]
    assert snapshot.out_time == 1.5 and not snapshot.finished and snapshot.speed == pytest.approx(2.99)
    assert snapshot.percent(6.0) == 25.0
    assert snapshot.fields["frame"] == "45"

    end = [parser.feed(line) for line in ["out_time_us=6000000", "progress=end"]][-1]
    assert end is not None and end.finished and end.percent(6.0) == 100.0


@pytest.mark.parametrize(
    ("lines", "expected"),
    [
        (["out_time_us=N/A", "out_time_ms=N/A", "out_time=N/A"], 0.0),
        (["out_time=00:01:02.250000"], 62.25),
        (["out_time_us=-23220", "out_time=-00:00:00.023220"], 0.0),
        (["out_time_ms=2500000"], 2.5),
    ],
)
def test_progress_parser_out_time_variants(lines: list[str], expected: float) -> None:
    parser = tx.ProgressParser()
    for line in lines:
        assert parser.feed(line) is None
    snapshot = parser.feed("progress=continue")
    assert snapshot is not None and snapshot.out_time == pytest.approx(expected)
    assert 0.0 <= snapshot.percent(10.0) <= 100.0


def test_progress_percent_is_clamped() -> None:
    snapshot = tx.ProgressSnapshot(out_time=12.0, finished=False, speed=None, fields={})
    assert snapshot.percent(10.0) == 100.0
    assert snapshot.percent(0.0) == 0.0


# ---------------------------------------------------------------------------
# probing real files
# ---------------------------------------------------------------------------


def test_probe_landscape(landscape_clip: Path) -> None:
    probe = tx.probe_file(landscape_clip)
    assert (probe.width, probe.height, probe.rotation) == (320, 180, 0)
    assert probe.duration == pytest.approx(6.0, abs=0.1)
    assert probe.frame_rate == pytest.approx(30.0)
    assert probe.video_codec == "h264" and probe.audio_codec == "aac" and probe.has_audio
    assert probe.video_bitrate and probe.bitrate
    assert probe.raw["format"]["format_name"].startswith("mov")


def test_probe_rotated_portrait_reports_display_size(rotated_portrait_clip: Path) -> None:
    probe = tx.probe_file(rotated_portrait_clip)
    assert (probe.coded_width, probe.coded_height) == (320, 180)
    assert (probe.width, probe.height) == (180, 320)
    assert probe.rotation in (90, 270) and probe.is_portrait


def test_probe_native_portrait(native_portrait_clip: Path) -> None:
    probe = tx.probe_file(native_portrait_clip)
    assert (probe.width, probe.height, probe.rotation) == (180, 320, 0)


def test_probe_no_audio(no_audio_clip: Path) -> None:
    probe = tx.probe_file(no_audio_clip)
    assert not probe.has_audio and probe.audio_codec is None and probe.audio_stream_index is None


def test_truncated_faststart_passes_ffprobe_but_not_the_copy_pass(truncated_faststart_clip: Path) -> None:
    # ffprobe alone is fooled: the index at the front still describes the whole clip
    assert tx.probe_file(truncated_faststart_clip, check_integrity=False).duration == pytest.approx(4.0, abs=0.1)
    started = time.monotonic()
    with pytest.raises(tx.ProbeError) as caught:
        tx.probe_file(truncated_faststart_clip)
    assert time.monotonic() - started < 5
    assert caught.value.reason == "truncated"
    assert str(caught.value).startswith("file is truncated")
    assert "'mdat' box" in str(caught.value)


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
    with pytest.raises(tx.ProbeError) as caught:
        tx.probe_file(request.getfixturevalue(clip))
    assert caught.value.reason == reason
    assert message in str(caught.value)


@pytest.fixture(scope="session")
def mpegts_clip(clip_dir: Path) -> Path:
    """A real video in MPEG-TS, a container outside the accepted list, named .mp4."""
    return clips.make_clip(clip_dir / "mpegts.mp4", duration=1.0, container="mpegts")


def test_probe_empty_file(tmp_path: Path) -> None:
    empty = tmp_path / "empty.mp4"
    empty.touch()
    with pytest.raises(tx.ProbeError, match="file is empty"):
        tx.probe_file(empty)


def test_mp4_structure_problem(landscape_clip: Path, not_video_clip: Path, cut_before_moov_clip: Path) -> None:
    assert tx.mp4_structure_problem(landscape_clip) is None
    assert tx.mp4_structure_problem(not_video_clip) is None
    assert "moov atom not found" in (tx.mp4_structure_problem(cut_before_moov_clip) or "")


# ---------------------------------------------------------------------------
# the pipeline on real clips
# ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def landscape_hls(landscape_clip: Path, tmp_path_factory: pytest.TempPathFactory) -> Transcoded:
    return transcode(landscape_clip, tmp_path_factory.mktemp("hls_landscape"))


def test_landscape_ladder_sizes(landscape_hls: Transcoded) -> None:
    # 240p is above the 180-line source: it becomes a source-sized 180p rendition
    assert [(r.name, r.width, r.height) for r in landscape_hls.renditions] == [
        ("180p", 320, 180), ("144p", 256, 144), ("90p", 160, 90),
    ]
    for rendition in landscape_hls.renditions:
        stream = ffprobe_json(
            landscape_hls.directory / rendition.name / "seg_00000.ts", "-show_streams", "-select_streams", "v:0"
        )["streams"][0]
        assert (stream["width"], stream["height"]) == (rendition.width, rendition.height)
        assert stream["height"] <= landscape_hls.probe.height
        assert stream["width"] / stream["height"] == pytest.approx(16 / 9, rel=0.02)
        assert stream.get("sample_aspect_ratio", "1:1") in ("1:1", "0:1")


def test_layout_and_returned_sizes(landscape_hls: Transcoded) -> None:
    directory = landscape_hls.directory
    assert (directory / "master.m3u8").is_file()
    for rendition in landscape_hls.output.renditions:
        files = sorted(p.name for p in (directory / rendition.name).iterdir())
        segments = [name for name in files if name.endswith(".ts")]
        assert files == sorted(["index.m3u8", "iframes.m3u8", *segments])
        assert segments[0] == "seg_00000.ts"
        assert rendition.segment_bytes == sum((directory / rendition.name / s).stat().st_size for s in segments)
        assert rendition.bytes == sum(p.stat().st_size for p in (directory / rendition.name).iterdir())
    on_disk = sum(p.stat().st_size for p in directory.rglob("*") if p.is_file())
    assert landscape_hls.output.total_bytes == on_disk


def test_master_playlist_has_measured_attributes(landscape_hls: Transcoded) -> None:
    master = landscape_hls.directory / "master.m3u8"
    text = master.read_text()
    assert text.startswith("#EXTM3U\n#EXT-X-VERSION:")
    assert "#EXT-X-INDEPENDENT-SEGMENTS" in text
    entries = master_entries(master)
    assert sorted(uri for _, uri in entries) == sorted(f"{r.name}/index.m3u8" for r in landscape_hls.renditions)
    for attributes, uri in entries:
        rendition = next(r for r in landscape_hls.renditions if uri.startswith(r.name + "/"))
        assert attributes["RESOLUTION"] == f"{rendition.width}x{rendition.height}"
        assert attributes["FRAME-RATE"] == "30.000"
        video_codec, audio_codec = attributes["CODECS"].split(",")
        assert re.fullmatch(r"avc1\.64[0-9a-f]{4}", video_codec)
        assert audio_codec == "mp4a.40.2"

        # BANDWIDTH is the peak segment bitrate, AVERAGE-BANDWIDTH the mean, both measured from the files
        playlist = landscape_hls.directory / uri
        durations = [float(x) for x in re.findall(r"#EXTINF:([\d.]+),", playlist.read_text())]
        names = [line for line in playlist.read_text().splitlines() if line.endswith(".ts")]
        sizes = [(playlist.parent / name).stat().st_size for name in names]
        peak = max(size * 8 / duration for size, duration in zip(sizes, durations, strict=True))
        average = sum(sizes) * 8 / sum(durations)
        assert int(attributes["BANDWIDTH"]) == math.ceil(peak)
        assert int(attributes["AVERAGE-BANDWIDTH"]) == math.ceil(average)
        assert int(attributes["BANDWIDTH"]) >= int(attributes["AVERAGE-BANDWIDTH"])

        # the level in CODECS is the one in the stream
        stream = ffprobe_json(playlist.parent / names[0], "-show_streams", "-select_streams", "v:0")["streams"][0]
        assert stream["profile"] == "High"
        assert int(video_codec[-2:], 16) == stream["level"]


def test_media_playlists_are_vod_with_aligned_segments(landscape_hls: Transcoded) -> None:
    durations_per_tier = []
    for rendition in landscape_hls.renditions:
        text = (landscape_hls.directory / rendition.name / "index.m3u8").read_text()
        assert "#EXT-X-PLAYLIST-TYPE:VOD" in text and text.rstrip().endswith("#EXT-X-ENDLIST")
        target = int(re.search(r"#EXT-X-TARGETDURATION:(\d+)", text).group(1))
        assert target == SEGMENT_SECONDS
        durations = [float(x) for x in re.findall(r"#EXTINF:([\d.]+),", text)]
        assert all(d <= SEGMENT_SECONDS + 0.5 for d in durations)
        assert all(d == pytest.approx(SEGMENT_SECONDS, abs=0.1) for d in durations[:-1])
        assert sum(durations) == pytest.approx(landscape_hls.probe.duration, abs=0.1)
        durations_per_tier.append(durations)
    assert all(d == durations_per_tier[0] for d in durations_per_tier)


def test_every_segment_starts_with_a_keyframe_and_idr_every_two_seconds(landscape_hls: Transcoded) -> None:
    for rendition in landscape_hls.output.renditions:
        assert rendition.keyframe_aligned
        directory = landscape_hls.directory / rendition.name
        keyframe_times: list[float] = []
        for segment in sorted(directory.glob("seg_*.ts")):
            packets = video_packets(segment)
            assert packets[0]["flags"].startswith("K"), f"{segment} does not start with a keyframe"
            keyframe_times += [float(p["pts_time"]) for p in packets if p["flags"].startswith("K")]
        start = keyframe_times[0]
        assert [round(t - start, 2) for t in keyframe_times] == [0.0, 2.0, 4.0]


def test_audio_is_stereo_aac(landscape_hls: Transcoded) -> None:
    for rendition in landscape_hls.renditions:
        streams = ffprobe_json(
            landscape_hls.directory / rendition.name / "seg_00000.ts", "-show_streams", "-select_streams", "a"
        )["streams"]
        assert [(s["codec_name"], s["profile"], s["channels"], s["sample_rate"]) for s in streams] == [
            ("aac", "LC", 2, "48000")
        ]


def test_iframe_playlists_point_at_decodable_idr_frames(landscape_hls: Transcoded, tmp_path: Path) -> None:
    master = (landscape_hls.directory / "master.m3u8").read_text()
    iframe_lines = [line for line in master.splitlines() if line.startswith("#EXT-X-I-FRAME-STREAM-INF:")]
    assert len(iframe_lines) == len(landscape_hls.renditions)
    for line in iframe_lines:
        attributes = parse_attributes(line.split(":", 1)[1])
        assert {"BANDWIDTH", "CODECS", "RESOLUTION", "URI"} <= set(attributes)
        playlist = landscape_hls.directory / attributes["URI"]
        text = playlist.read_text()
        assert "#EXT-X-I-FRAMES-ONLY" in text and "#EXT-X-PLAYLIST-TYPE:VOD" in text
        ranges = re.findall(r"#EXTINF:([\d.]+),\n#EXT-X-BYTERANGE:(\d+)@(\d+)\n(\S+)", text)
        assert [float(d) for d, _, _, _ in ranges] == pytest.approx([2.0, 2.0, 2.0], abs=0.05)
        for _, length, offset, uri in ranges:
            data = (playlist.parent / uri).read_bytes()[int(offset):int(offset) + int(length)]
            piece = tmp_path / "iframe.ts"
            piece.write_bytes(data)
            frames = ffprobe_json(piece, "-show_frames", "-show_entries", "frame=pict_type,key_frame")["frames"]
            assert [(f["pict_type"], f["key_frame"]) for f in frames] == [("I", 1)]


def test_whole_ladder_decodes_without_errors(landscape_hls: Transcoded) -> None:
    completed = subprocess.run(
        ["ffmpeg", "-v", "error", "-nostdin", "-i", str(landscape_hls.directory / "master.m3u8"),
         "-map", "0", "-f", "null", "-"],
        capture_output=True, text=True,
    )
    assert completed.returncode == 0 and completed.stderr == ""


def test_progress_and_resources_are_reported(landscape_hls: Transcoded) -> None:
    progress = landscape_hls.progress
    assert progress and progress[-1] == 100.0
    assert progress == sorted(progress) and all(0.0 <= p <= 100.0 for p in progress)
    assert landscape_hls.result.wall_seconds > 0 and landscape_hls.result.cpu_seconds > 0
    assert landscape_hls.result.max_rss_kb > 0


def test_source_without_audio(no_audio_clip: Path, tmp_path: Path) -> None:
    done = transcode(no_audio_clip, tmp_path)
    for attributes, uri in master_entries(done.directory / "master.m3u8"):
        assert "mp4a" not in attributes["CODECS"]
        segment = done.directory / uri.replace("index.m3u8", "seg_00000.ts")
        assert ffprobe_json(segment, "-show_streams", "-select_streams", "a")["streams"] == []


@pytest.mark.parametrize("clip", ["rotated_portrait_clip", "native_portrait_clip"])
def test_portrait_sources_keep_portrait_renditions(request: pytest.FixtureRequest, clip: str, tmp_path: Path) -> None:
    done = transcode(request.getfixturevalue(clip), tmp_path)
    assert [(r.name, r.width, r.height) for r in done.renditions] == [
        ("180p", 180, 320), ("144p", 144, 256), ("90p", 90, 160),
    ]
    for rendition in done.renditions:
        segment = done.directory / rendition.name / "seg_00000.ts"
        stream = ffprobe_json(segment, "-show_streams", "-select_streams", "v:0")["streams"][0]
        # the picture itself is upright: no rotation left for the player to apply
        assert (stream["width"], stream["height"]) == (rendition.width, rendition.height)
        assert not stream.get("side_data_list")


def gray_frame(path: Path, *options: str) -> bytes:
    """First frame of a file as 8-bit grey pixels (ffmpeg applies rotation metadata by default)."""
    return subprocess.run(
        ["ffmpeg", "-v", "error", "-nostdin", "-i", str(path), "-frames:v", "1", *options,
         "-f", "rawvideo", "-pix_fmt", "gray", "-"],
        check=True, capture_output=True,
    ).stdout


def mean_abs_diff(a: bytes, b: bytes) -> float:
    assert len(a) == len(b)
    return sum(abs(x - y) for x, y in zip(a, b, strict=True)) / len(a)


def test_rotated_source_is_turned_the_right_way(rotated_portrait_clip: Path, tmp_path: Path) -> None:
    done = transcode(rotated_portrait_clip, tmp_path, ladder="180p:300k", segment_seconds=2)
    ours = gray_frame(done.directory / "180p" / "seg_00000.ts")
    upright = gray_frame(rotated_portrait_clip)
    turned_the_wrong_way = gray_frame(rotated_portrait_clip, "-vf", "hflip,vflip")
    assert len(ours) == 180 * 320
    assert mean_abs_diff(ours, upright) < 6
    assert mean_abs_diff(ours, turned_the_wrong_way) > 20


def test_source_below_the_lowest_tier(tiny_clip: Path, tmp_path: Path) -> None:
    done = transcode(tiny_clip, tmp_path, ladder="240p:400k,480p:800k", segment_seconds=2)
    assert [(r.name, r.width, r.height) for r in done.renditions] == [("90p", 160, 90)]
    entries = master_entries(done.directory / "master.m3u8")
    assert [(a["RESOLUTION"], uri) for a, uri in entries] == [("160x90", "90p/index.m3u8")]


def test_poster(landscape_clip: Path, tiny_clip: Path, tmp_path: Path) -> None:
    for clip, size in ((landscape_clip, (320, 180)), (tiny_clip, (160, 90))):
        probe = tx.probe_file(clip)
        poster = tmp_path / f"{clip.stem}.jpg"
        cmd = tx.poster_command(input_path=clip, output_path=poster, probe=probe)
        tx.run_ffmpeg(cmd, duration=probe.duration, timeout=30)
        stream = ffprobe_json(poster, "-show_streams")["streams"][0]
        assert (stream["codec_name"], stream["width"], stream["height"]) == ("mjpeg", *size)


def test_capped_crf_spends_fewer_bytes_than_fixed_bitrate_on_slides(slides_clip: Path, tmp_path: Path) -> None:
    crf = transcode(slides_clip, tmp_path / "crf", drop_audio=True)
    fixed = transcode(slides_clip, tmp_path / "fixed", drop_audio=True, rate_control="fixed_bitrate")
    crf_bytes = sum(r.segment_bytes for r in crf.output.renditions)
    fixed_bytes = sum(r.segment_bytes for r in fixed.output.renditions)
    assert crf_bytes < 0.8 * fixed_bytes


def test_cbr_spends_the_tier_bitrate_even_on_still_pictures(slides_clip: Path, tmp_path: Path) -> None:
    # the benchmark's "every second costs the tier bitrate" comparison point really does
    cbr = transcode(slides_clip, tmp_path / "cbr", drop_audio=True, rate_control="cbr")
    fixed = transcode(slides_clip, tmp_path / "fixed", drop_audio=True, rate_control="fixed_bitrate")
    duration = cbr.probe.duration
    for planned, written, abr in zip(cbr.renditions, cbr.output.renditions, fixed.output.renditions, strict=True):
        assert written.segment_bytes * 8 / duration >= 0.9 * planned.video_bitrate
        assert abr.segment_bytes < written.segment_bytes


# ---------------------------------------------------------------------------
# interlaced, 10-bit and HDR sources (real ffmpeg)
# ---------------------------------------------------------------------------


def idet_verdicts(path: Path) -> dict[str, int]:
    """How many frames ffmpeg's idet filter (multi-frame) calls TFF, BFF and progressive."""
    stderr = subprocess.run(
        ["ffmpeg", "-hide_banner", "-nostdin", "-i", str(path), "-vf", "idet", "-f", "null", "-"],
        check=True, capture_output=True, text=True,
    ).stderr
    match = re.search(r"Multi frame detection: TFF:\s*(\d+) BFF:\s*(\d+) Progressive:\s*(\d+)", stderr)
    assert match, stderr
    return dict(zip(("tff", "bff", "progressive"), map(int, match.groups()), strict=True))


def mean_luma(path: Path) -> float:
    """Average 8-bit luma over every frame (signalstats YAVG)."""
    stdout = subprocess.run(
        ["ffmpeg", "-hide_banner", "-nostdin", "-v", "error", "-i", str(path),
         "-vf", "signalstats,metadata=print:key=lavfi.signalstats.YAVG:file=-", "-f", "null", "-"],
        check=True, capture_output=True, text=True,
    ).stdout
    values = [float(value) for value in re.findall(r"YAVG=([0-9.]+)", stdout)]
    assert values
    return sum(values) / len(values)


def first_segment_streams(done: Transcoded) -> list[dict[str, Any]]:
    return [
        ffprobe_json(done.directory / r.name / "seg_00000.ts", "-show_streams", "-select_streams", "v:0")["streams"][0]
        for r in done.renditions
    ]


@pytest.mark.parametrize(
    ("clip", "field_order", "from_frames", "top"),
    [("interlaced_clip", "tt", False, (320, 180)), ("dv_pal_clip", "bb", True, (320, 240))],
)
def test_interlaced_sources_come_out_progressive_at_their_frame_rate(
    request: pytest.FixtureRequest, clip: str, field_order: str, from_frames: bool, top: tuple[int, int],
    tmp_path: Path,
) -> None:
    source = request.getfixturevalue(clip)
    done = transcode(source, tmp_path, segment_seconds=2)
    assert done.probe.field_order == field_order and done.probe.is_interlaced
    # DV states no field order on the stream: the first decoded frame tells
    assert ("frames" in done.probe.raw) == from_frames
    assert done.probe.frame_rate == 25
    assert " ".join(done.command).count("bwdif=") == 1
    assert (done.renditions[0].width, done.renditions[0].height) == top
    for stream in first_segment_streams(done):
        assert stream.get("field_order", "progressive") == "progressive"
        assert stream["r_frame_rate"] == "25/1" and stream["avg_frame_rate"] == "25/1"
    for attributes, _ in master_entries(done.directory / "master.m3u8"):
        assert attributes["FRAME-RATE"] == "25.000"
    # the source combs on every frame; after deinterlacing the top tier hardly ever does
    combed = idet_verdicts(source)
    assert combed["progressive"] == 0 and combed["tff" if field_order == "tt" else "bff"] >= 45
    verdicts = idet_verdicts(done.directory / done.renditions[0].name / "seg_00000.ts")
    assert verdicts["progressive"] > 4 * (verdicts["tff"] + verdicts["bff"])


def test_progressive_source_gets_no_deinterlacer(landscape_hls: Transcoded) -> None:
    assert landscape_hls.probe.field_order == "progressive"
    assert landscape_hls.conversion == tx.SourceConversion()
    assert not re.search(r"bwdif|yadif|zscale|tonemap|colorspace", " ".join(landscape_hls.command))


@pytest.fixture(scope="module")
def ten_bit_sdr_clip(clip_dir: Path) -> Path:
    return clips.make_ten_bit(clip_dir / "ten_bit_sdr.mp4")


@pytest.fixture(scope="module")
def pq_clip(clip_dir: Path) -> Path:
    return clips.make_ten_bit(clip_dir / "pq.mp4", primaries="bt2020", transfer="smpte2084", matrix="bt2020nc")


@pytest.fixture(scope="module")
def wide_gamut_clip(clip_dir: Path) -> Path:
    return clips.make_ten_bit(clip_dir / "bt2020_sdr.mp4", primaries="bt2020", transfer="bt2020-10", matrix="bt2020nc")


def test_ten_bit_sdr_source_gives_eight_bit_high_profile(ten_bit_sdr_clip: Path, tmp_path: Path) -> None:
    source = ffprobe_json(ten_bit_sdr_clip, "-show_streams")["streams"][0]
    assert (source["profile"], source["pix_fmt"]) == ("High 10", "yuv420p10le")
    done = transcode(ten_bit_sdr_clip, tmp_path, segment_seconds=2)
    assert done.conversion == tx.SourceConversion()
    for stream in first_segment_streams(done):
        assert (stream["profile"], stream["pix_fmt"]) == ("High", "yuv420p")
        assert stream.get("color_transfer", "unknown") in ("unknown", "bt709")
    assert all(r.codecs.startswith("avc1.64") for r in done.output.renditions)


@pytest.mark.parametrize(
    ("clip", "hdr", "available", "note"),
    [
        ("hlg_clip", "HLG", None, "tone-mapped to BT.709 SDR 8-bit with zscale and tonemap"),
        ("pq_clip", "PQ", None, "tone-mapped to BT.709 SDR 8-bit with zscale and tonemap"),
        ("wide_gamut_clip", None, None, "colours converted to BT.709 with the colorspace filter"),
        ("hlg_clip", "HLG", {"bwdif", "colorspace"}, "WARNING: HDR source (HLG, bt2020 primaries, yuv420p10le)"),
        ("pq_clip", "PQ", set(), "colours were NOT converted"),
    ],
)
def test_hdr_and_wide_gamut_sources_become_bt709_sdr(
    request: pytest.FixtureRequest, clip: str, hdr: str | None, available: set[str] | None, note: str,
    tmp_path: Path,
) -> None:
    source = request.getfixturevalue(clip)
    done = transcode(source, tmp_path, segment_seconds=2, available=available)
    assert done.probe.hdr_format == hdr and done.probe.color_primaries == "bt2020"
    assert done.probe.pix_fmt == "yuv420p10le"
    assert any(line.startswith(note) or note in line for line in done.conversion.notes)
    assert bool(done.conversion.warnings) == (available is not None)
    for stream in first_segment_streams(done):
        assert (stream["profile"], stream["pix_fmt"]) == ("High", "yuv420p")
        assert (stream["color_primaries"], stream["color_transfer"], stream["color_space"]) == ("bt709",) * 3
        assert stream["color_range"] == "tv"
    # synthetic pixels: no judgement of looks, only that the picture is neither black nor blown out
    assert 40 < mean_luma(done.directory / done.renditions[0].name / "seg_00000.ts") < 200


@pytest.mark.parametrize(("clip", "filter_name"), [("hlg_clip", "tonemap="), ("interlaced_clip", "bwdif=")])
def test_poster_is_converted_like_the_ladder(
    request: pytest.FixtureRequest, clip: str, filter_name: str, tmp_path: Path
) -> None:
    source = request.getfixturevalue(clip)
    probe = tx.probe_file(source)
    poster = tmp_path / "poster.jpg"
    cmd = tx.poster_command(input_path=source, output_path=poster, probe=probe)
    assert filter_name in cmd[cmd.index("-vf") + 1]
    tx.run_ffmpeg(cmd, duration=probe.duration, timeout=30)
    stream = ffprobe_json(poster, "-show_streams")["streams"][0]
    assert (stream["codec_name"], stream["width"], stream["height"]) == ("mjpeg", 320, 180)
    assert 40 < mean_luma(poster) < 200


# ---------------------------------------------------------------------------
# the process runner
# ---------------------------------------------------------------------------

ENDLESS = ["ffmpeg", "-hide_banner", "-nostdin", "-progress", "pipe:1", "-nostats", "-re",
           "-f", "lavfi", "-i", "testsrc2=size=64x64:rate=10", "-f", "null", "-"]


@pytest.fixture
def spawned(monkeypatch: pytest.MonkeyPatch) -> list[subprocess.Popen[str]]:
    """Processes started by run_ffmpeg, to check they were killed and reaped."""
    started: list[subprocess.Popen[str]] = []
    original = subprocess.Popen
    tx.launch_command(ENDLESS)  # its one-off setpriv check runs now, unrecorded

    def recording_popen(*args: Any, **kwargs: Any) -> subprocess.Popen[str]:
        process = original(*args, **kwargs)
        started.append(process)
        return process

    monkeypatch.setattr(tx.subprocess, "Popen", recording_popen)
    return started


def assert_killed_and_reaped(process: subprocess.Popen[str]) -> None:
    assert process.returncode == -9
    assert not os.path.exists(f"/proc/{process.pid}") or "zombie" not in Path(f"/proc/{process.pid}/status").read_text()


def test_timeout_kills_and_reaps(spawned: list[subprocess.Popen[str]]) -> None:
    started = time.monotonic()
    with pytest.raises(tx.TranscodeTimeout, match="timed out after 1 s") as caught:
        tx.run_ffmpeg(ENDLESS, duration=60, timeout=1)
    assert time.monotonic() - started < 4
    assert caught.value.wall_seconds >= 1
    assert_killed_and_reaped(spawned[0])


def test_cancel_kills_and_reaps(spawned: list[subprocess.Popen[str]]) -> None:
    seen: list[float] = []
    with pytest.raises(tx.TranscodeCancelled) as caught:
        tx.run_ffmpeg(
            ENDLESS, duration=60, timeout=30, on_progress=seen.append,
            should_cancel=lambda: bool(seen), cancel_check_interval=0.1,
        )
    assert seen and caught.value.wall_seconds < 5
    assert_killed_and_reaped(spawned[0])


# A worker stand-in: transcoding/ffmpeg.py has no Django imports, so a bare interpreter can run it.
WORKER_SCRIPT = """
import sys
from transcoding import ffmpeg as tx
tx.run_ffmpeg(sys.argv[1:], duration=60, timeout=600, on_progress=lambda percent: print(percent, flush=True))
"""
PROJECT_ROOT = Path(__file__).resolve().parents[2]


def gone(process: psutil.Process) -> bool:
    """True once the process has exited (a zombie waiting for its new parent counts as exited)."""
    try:
        return not process.is_running() or process.status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the parent-death signal is Linux-only")
def test_ffmpeg_dies_with_a_hard_killed_worker() -> None:
    worker = subprocess.Popen(
        [sys.executable, "-c", WORKER_SCRIPT, *ENDLESS], cwd=PROJECT_ROOT, stdout=subprocess.PIPE, text=True,
    )
    children: list[psutil.Process] = []
    try:
        assert worker.stdout is not None
        worker.stdout.readline()  # ffmpeg reported progress: it is running
        children = psutil.Process(worker.pid).children()
        assert [child.name() for child in children] == ["ffmpeg"]
        worker.send_signal(signal.SIGKILL)
        assert worker.wait() == -signal.SIGKILL
        # a correctness bound, not a speed target: an orphaned ffmpeg would run for ever
        deadline = time.monotonic() + 10
        while not gone(children[0]) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert gone(children[0]), "ffmpeg kept running after its worker was killed"
    finally:
        worker.kill()
        worker.wait()
        for child in children:
            with contextlib.suppress(psutil.NoSuchProcess):
                child.kill()


@pytest.fixture
def fresh_launch_prefix() -> Any:
    """Let launch_command decide again (it decides once per process), here and after the test."""
    tx._parent_death_prefix.cache_clear()
    yield
    tx._parent_death_prefix.cache_clear()


def test_without_setpriv_ffmpeg_still_runs_and_it_is_logged_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, fresh_launch_prefix: None
) -> None:
    only_ffmpeg = tmp_path / "bin"
    only_ffmpeg.mkdir()
    (only_ffmpeg / "ffmpeg").symlink_to(shutil.which("ffmpeg"))
    monkeypatch.setenv("PATH", str(only_ffmpeg))
    short = ["ffmpeg", "-nostdin", "-progress", "pipe:1", "-f", "lavfi", "-i", "testsrc2=size=64x64:rate=10",
             "-t", "0.5", "-f", "null", "-"]
    with caplog.at_level("WARNING", logger=tx.logger.name):
        for _ in range(2):
            assert tx.run_ffmpeg(short, duration=0.5, timeout=30).returncode == 0
    assert tx.launch_command(short) == short
    assert [r.getMessage() for r in caplog.records if "setpriv" in r.getMessage()] == [
        "setpriv (util-linux) not found: ffmpeg will outlive a worker that is killed"
    ]


def test_a_missing_program_is_reported_as_missing(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="ffmpeg-that-is-not-installed"):
        tx.run_ffmpeg(["ffmpeg-that-is-not-installed", "-version"], duration=1, timeout=30)
    clip = tmp_path / "any.mp4"
    clip.write_bytes(b"not empty")
    with pytest.raises(FileNotFoundError, match="ffprobe-that-is-not-installed"):
        tx.probe_file(clip, ffprobe_bin="ffprobe-that-is-not-installed")


def test_failure_carries_the_log_tail(tmp_path: Path) -> None:
    cmd = ["ffmpeg", "-hide_banner", "-nostdin", "-progress", "pipe:1", "-i", str(tmp_path / "missing.mp4"),
           "-f", "null", "-"]
    with pytest.raises(tx.TranscodeFailed) as caught:
        tx.run_ffmpeg(cmd, duration=1, timeout=30, log_tail_lines=5)
    assert caught.value.returncode != 0
    assert "No such file or directory" in str(caught.value)
    assert 0 < len(caught.value.log_tail) <= 5
