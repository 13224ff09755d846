"""Source conversion and the filter graph (pure); interlaced, 10-bit and HDR sources through real ffmpeg."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests import clips
from tests.transcoding.ffmpeg.helpers import (
    DEFAULT_TIERS,
    Transcoded,
    ffprobe_json,
    make_probe,
    master_entries,
    transcode,
)
from transcoding.ffmpeg.commands import EncoderOptions, build_hls_command, poster_command
from transcoding.ffmpeg.filters import SourceConversion, available_filters, source_conversion
from transcoding.ffmpeg.ladder import plan_renditions
from transcoding.ffmpeg.probe import probe_file
from transcoding.ffmpeg.process import run_ffmpeg

# ---------------------------------------------------------------------------
# source conversion in the command (pure)
# ---------------------------------------------------------------------------


HLG_PROBE = {
    "color_transfer": "arib-std-b67",
    "color_primaries": "bt2020",
    "color_space": "bt2020nc",
    "color_range": "tv",
    "pix_fmt": "yuv420p10le",
}


def test_progressive_sdr_sources_are_not_converted(tmp_path: Path) -> None:
    probe = make_probe(1920, 1080, field_order="progressive", color_primaries="bt709", color_transfer="bt709")
    assert source_conversion(probe) == SourceConversion()
    cmd = build_hls_command(
        input_path=tmp_path / "in.mp4",
        output_dir=tmp_path,
        probe=probe,
        renditions=plan_renditions(probe, DEFAULT_TIERS),
    )
    graph = cmd[cmd.index("-filter_complex") + 1]
    assert not re.search(r"bwdif|yadif|zscale|tonemap|colorspace", graph)
    assert "-color_primaries:v:0" not in cmd


@pytest.mark.parametrize("cascade", [True, False])
def test_interlaced_sources_are_deinterlaced_once_before_the_split(tmp_path: Path, cascade: bool) -> None:
    probe = make_probe(1920, 1080, field_order="tt", frame_rate=25.0)
    cmd = build_hls_command(
        input_path=tmp_path / "in.mp4",
        output_dir=tmp_path,
        probe=probe,
        renditions=plan_renditions(probe, DEFAULT_TIERS),
        options=EncoderOptions(cascade=cascade),
    )
    graph = cmd[cmd.index("-filter_complex") + 1]
    assert graph.count("bwdif") == 1
    assert graph.startswith("[0:0]bwdif=mode=send_frame:parity=auto:deint=all,")
    assert graph.index("bwdif") < graph.index("split")


def test_hdr_is_tone_mapped_once_at_the_top_tier_size_and_tagged_bt709(tmp_path: Path) -> None:
    probe = make_probe(3840, 2160, field_order="bb", **HLG_PROBE)
    renditions = plan_renditions(probe, DEFAULT_TIERS)
    conversion = source_conversion(probe, renditions=renditions)
    assert conversion.filters[0].startswith("bwdif=")
    assert conversion.filters[1].startswith("zscale=w=1280:h=720:f=bicubic:tin=arib-std-b67:pin=bt2020:min=bt2020nc")
    assert "tonemap=tonemap=hable:desat=0" in conversion.filters
    assert conversion.filters[-1] == "format=yuv420p"
    assert conversion.tag_bt709 and not conversion.warnings
    assert any("tone-mapped to BT.709 SDR" in note for note in conversion.notes)
    cmd = build_hls_command(
        input_path=tmp_path / "in.mp4",
        output_dir=tmp_path,
        probe=probe,
        renditions=renditions,
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
    conversion = source_conversion(make_probe(1920, 1080, **HLG_PROBE), available=available)
    assert conversion.filters == ((expected,) if expected else ())
    assert len(conversion.warnings) == 1 and warning in conversion.warnings[0]
    assert conversion.warnings[0].startswith("WARNING: HDR source (HLG, bt2020 primaries, yuv420p10le)")
    assert conversion.tag_bt709


def test_interlaced_without_a_deinterlacer_is_warned_about() -> None:
    probe = make_probe(1920, 1080, field_order="bb")
    assert source_conversion(probe, available={"yadif"}).filters == ("yadif=mode=send_frame:parity=auto:deint=all",)
    bare = source_conversion(probe, available=set())
    assert bare.filters == () and "without deinterlacing" in bare.warnings[0]


def test_wide_gamut_sdr_gets_bt709_colours() -> None:
    probe = make_probe(1920, 1080, color_primaries="bt2020", color_transfer="bt2020-10", color_space="bt2020nc")
    conversion = source_conversion(probe)
    assert conversion.filters == ("colorspace=all=bt709:iall=bt2020:itrc=bt2020-10:irange=tv:format=yuv420p",)
    assert conversion.tag_bt709 and not conversion.warnings


@pytest.mark.slow
def test_available_filters_reads_this_ffmpeg() -> None:
    names = available_filters("ffmpeg")
    assert {"bwdif", "scale", "split", "colorspace"} <= names
    assert available_filters("/nonexistent/ffmpeg") == frozenset()


# ---------------------------------------------------------------------------
# interlaced, 10-bit and HDR sources (real ffmpeg)
# ---------------------------------------------------------------------------


def idet_verdicts(path: Path) -> dict[str, int]:
    """How many frames ffmpeg's idet filter (multi-frame) calls TFF, BFF and progressive."""
    stderr = subprocess.run(
        ["ffmpeg", "-hide_banner", "-nostdin", "-i", str(path), "-vf", "idet", "-f", "null", "-"],
        check=True,
        capture_output=True,
        text=True,
    ).stderr
    match = re.search(r"Multi frame detection: TFF:\s*(\d+) BFF:\s*(\d+) Progressive:\s*(\d+)", stderr)
    assert match, stderr
    return dict(zip(("tff", "bff", "progressive"), map(int, match.groups()), strict=True))


def mean_luma(path: Path) -> float:
    """Average 8-bit luma over every frame (signalstats YAVG)."""
    stdout = subprocess.run(
        [
            "ffmpeg",
            "-hide_banner",
            "-nostdin",
            "-v",
            "error",
            "-i",
            str(path),
            "-vf",
            "signalstats,metadata=print:key=lavfi.signalstats.YAVG:file=-",
            "-f",
            "null",
            "-",
        ],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    values = [float(value) for value in re.findall(r"YAVG=([0-9.]+)", stdout)]
    assert values
    return sum(values) / len(values)


def first_segment_streams(done: Transcoded) -> list[dict[str, Any]]:
    return [
        ffprobe_json(done.directory / r.name / "seg_00000.ts", "-show_streams", "-select_streams", "v:0")["streams"][0]
        for r in done.renditions
    ]


@pytest.mark.slow
@pytest.mark.parametrize(
    ("clip", "field_order", "from_frames", "top"),
    [("interlaced_clip", "tt", False, (320, 180)), ("dv_pal_clip", "bb", True, (320, 240))],
)
def test_interlaced_sources_come_out_progressive_at_their_frame_rate(
    request: pytest.FixtureRequest,
    clip: str,
    field_order: str,
    from_frames: bool,
    top: tuple[int, int],
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


@pytest.mark.slow
def test_progressive_source_gets_no_deinterlacer(landscape_hls: Transcoded) -> None:
    assert landscape_hls.probe.field_order == "progressive"
    assert landscape_hls.conversion == SourceConversion()
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


@pytest.mark.slow
def test_ten_bit_sdr_source_gives_eight_bit_high_profile(ten_bit_sdr_clip: Path, tmp_path: Path) -> None:
    source = ffprobe_json(ten_bit_sdr_clip, "-show_streams")["streams"][0]
    assert (source["profile"], source["pix_fmt"]) == ("High 10", "yuv420p10le")
    done = transcode(ten_bit_sdr_clip, tmp_path, segment_seconds=2)
    assert done.conversion == SourceConversion()
    for stream in first_segment_streams(done):
        assert (stream["profile"], stream["pix_fmt"]) == ("High", "yuv420p")
        assert stream.get("color_transfer", "unknown") in ("unknown", "bt709")
    assert all(r.codecs.startswith("avc1.64") for r in done.output.renditions)


@pytest.mark.slow
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
    request: pytest.FixtureRequest,
    clip: str,
    hdr: str | None,
    available: set[str] | None,
    note: str,
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


@pytest.mark.slow
@pytest.mark.parametrize(("clip", "filter_name"), [("hlg_clip", "tonemap="), ("interlaced_clip", "bwdif=")])
def test_poster_is_converted_like_the_ladder(
    request: pytest.FixtureRequest, clip: str, filter_name: str, tmp_path: Path
) -> None:
    source = request.getfixturevalue(clip)
    probe = probe_file(source)
    poster = tmp_path / "poster.jpg"
    cmd = poster_command(input_path=source, output_path=poster, probe=probe)
    assert filter_name in cmd[cmd.index("-vf") + 1]
    run_ffmpeg(cmd, duration=probe.duration, timeout=30)
    stream = ffprobe_json(poster, "-show_streams")["streams"][0]
    assert (stream["codec_name"], stream["width"], stream["height"]) == ("mjpeg", 320, 180)
    assert 40 < mean_luma(poster) < 200
