"""Encoder options and the HLS/poster commands (pure); what the commands make ffmpeg write."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from tests.transcoding.ffmpeg.helpers import (
    DEFAULT_TIERS,
    SEGMENT_SECONDS,
    Transcoded,
    ffprobe_json,
    make_probe,
    master_entries,
    transcode,
)
from transcoding.ffmpeg.commands import (
    EncoderOptions,
    build_hls_command,
    poster_command,
    poster_time,
    video_encoder_args,
)
from transcoding.ffmpeg.ladder import plan_renditions
from transcoding.ffmpeg.probe import probe_file
from transcoding.ffmpeg.process import run_ffmpeg

# ---------------------------------------------------------------------------
# command building (pure)
# ---------------------------------------------------------------------------


def test_build_hls_command_without_audio_maps_no_audio(tmp_path: Path) -> None:
    probe = make_probe(1920, 1080, has_audio=False, audio_codec=None, audio_stream_index=None)
    renditions = plan_renditions(probe, DEFAULT_TIERS)
    cmd = build_hls_command(input_path=tmp_path / "in.mp4", output_dir=tmp_path, probe=probe, renditions=renditions)
    stream_map = cmd[cmd.index("-var_stream_map") + 1]
    assert stream_map == "v:0,name:720p v:1,name:480p v:2,name:240p"
    assert "-c:a" not in cmd and "0:a?" not in " ".join(cmd)


def test_build_hls_command_with_audio(tmp_path: Path) -> None:
    probe = make_probe(1920, 1080)
    renditions = plan_renditions(probe, DEFAULT_TIERS)
    cmd = build_hls_command(input_path=tmp_path / "in.mp4", output_dir=tmp_path, probe=probe, renditions=renditions)
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
    renditions = plan_renditions(probe, DEFAULT_TIERS)
    cmd = build_hls_command(
        input_path=tmp_path / "in.mp4",
        output_dir=tmp_path,
        probe=probe,
        renditions=renditions,
        options=EncoderOptions(cascade=False),
    )
    assert cmd[cmd.index("-filter_complex") + 1].startswith("[0:0]split=3[s0][s1][s2]")


@pytest.mark.parametrize(("segment_seconds", "keyframe_interval"), [(5, 2), (1, 2), (6, 0)])
def test_build_hls_command_needs_segments_made_of_whole_gops(
    tmp_path: Path, segment_seconds: float, keyframe_interval: float
) -> None:
    probe = make_probe(640, 360)
    with pytest.raises(ValueError, match="multiple of keyframe_interval"):
        build_hls_command(
            input_path=tmp_path / "in.mp4",
            output_dir=tmp_path,
            probe=probe,
            renditions=plan_renditions(probe, DEFAULT_TIERS),
            segment_seconds=segment_seconds,
            keyframe_interval=keyframe_interval,
        )


def test_build_hls_command_rejects_percent_in_output_dir(tmp_path: Path) -> None:
    probe = make_probe(640, 360)
    with pytest.raises(ValueError, match="'%'"):
        build_hls_command(
            input_path=tmp_path / "in.mp4",
            output_dir=tmp_path / "100%",
            probe=probe,
            renditions=plan_renditions(probe, DEFAULT_TIERS),
        )


def test_fixed_bitrate_sets_b_v_to_the_cap() -> None:
    rendition = plan_renditions(make_probe(1280, 720), DEFAULT_TIERS)[0]
    args = video_encoder_args(rendition=rendition, stream=None, frame_rate=30, rate_control="fixed_bitrate")
    assert args[args.index("-b:v") + 1] == args[args.index("-maxrate:v") + 1] == "1500000"
    assert "-crf:v" not in args


def test_cbr_sets_minrate_and_hrd_cbr() -> None:
    rendition = plan_renditions(make_probe(1280, 720), DEFAULT_TIERS)[0]
    args = video_encoder_args(rendition=rendition, stream=1, frame_rate=30, rate_control="cbr")
    assert args[args.index("-b:v:1") + 1] == args[args.index("-minrate:v:1") + 1] == "1500000"
    assert args[args.index("-maxrate:v:1") + 1] == "1500000"
    assert args[args.index("-x264-params:v:1") + 1] == "nal-hrd=cbr"
    assert "-crf:v:1" not in args


def test_unknown_rate_control_is_refused() -> None:
    rendition = plan_renditions(make_probe(1280, 720), DEFAULT_TIERS)[0]
    with pytest.raises(ValueError, match="unknown rate control 'vbr'"):
        video_encoder_args(rendition=rendition, stream=None, frame_rate=30, rate_control="vbr")  # type: ignore[arg-type]


@pytest.mark.parametrize(("duration", "expected"), [(100.0, 10.0), (1.0, 0.1), (0.05, 0.0)])
def test_poster_time_stays_inside_short_clips(duration: float, expected: float) -> None:
    probe = make_probe(640, 360, duration=duration)
    assert poster_time(probe) == pytest.approx(expected, abs=1e-6)
    assert poster_time(probe) < duration


# ---------------------------------------------------------------------------
# the commands on real clips
# ---------------------------------------------------------------------------


@pytest.mark.slow
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


@pytest.mark.slow
def test_audio_is_stereo_aac(landscape_hls: Transcoded) -> None:
    for rendition in landscape_hls.renditions:
        streams = ffprobe_json(
            landscape_hls.directory / rendition.name / "seg_00000.ts", "-show_streams", "-select_streams", "a"
        )["streams"]
        assert [(s["codec_name"], s["profile"], s["channels"], s["sample_rate"]) for s in streams] == [
            ("aac", "LC", 2, "48000")
        ]


@pytest.mark.slow
def test_whole_ladder_decodes_without_errors(landscape_hls: Transcoded) -> None:
    completed = subprocess.run(
        [
            "ffmpeg",
            "-v",
            "error",
            "-nostdin",
            "-i",
            str(landscape_hls.directory / "master.m3u8"),
            "-map",
            "0",
            "-f",
            "null",
            "-",
        ],
        capture_output=True,
        text=True,
    )
    assert completed.returncode == 0 and completed.stderr == ""


@pytest.mark.slow
def test_source_without_audio(no_audio_clip: Path, tmp_path: Path) -> None:
    done = transcode(no_audio_clip, tmp_path)
    for attributes, uri in master_entries(done.directory / "master.m3u8"):
        assert "mp4a" not in attributes["CODECS"]
        segment = done.directory / uri.replace("index.m3u8", "seg_00000.ts")
        assert ffprobe_json(segment, "-show_streams", "-select_streams", "a")["streams"] == []


def gray_frame(path: Path, *options: str) -> bytes:
    """First frame of a file as 8-bit grey pixels (ffmpeg applies rotation metadata by default)."""
    return subprocess.run(
        [
            "ffmpeg",
            "-v",
            "error",
            "-nostdin",
            "-i",
            str(path),
            "-frames:v",
            "1",
            *options,
            "-f",
            "rawvideo",
            "-pix_fmt",
            "gray",
            "-",
        ],
        check=True,
        capture_output=True,
    ).stdout


def mean_abs_diff(a: bytes, b: bytes) -> float:
    assert len(a) == len(b)
    return sum(abs(x - y) for x, y in zip(a, b, strict=True)) / len(a)


@pytest.mark.slow
def test_rotated_source_is_turned_the_right_way(rotated_portrait_clip: Path, tmp_path: Path) -> None:
    done = transcode(rotated_portrait_clip, tmp_path, ladder="180p:300k", segment_seconds=2)
    ours = gray_frame(done.directory / "180p" / "seg_00000.ts")
    upright = gray_frame(rotated_portrait_clip)
    turned_the_wrong_way = gray_frame(rotated_portrait_clip, "-vf", "hflip,vflip")
    assert len(ours) == 180 * 320
    assert mean_abs_diff(ours, upright) < 6
    assert mean_abs_diff(ours, turned_the_wrong_way) > 20


@pytest.mark.slow
def test_poster(landscape_clip: Path, below_ladder_clip: Path, tmp_path: Path) -> None:
    for clip, size in ((landscape_clip, (320, 180)), (below_ladder_clip, (160, 90))):
        probe = probe_file(clip)
        poster = tmp_path / f"{clip.stem}.jpg"
        cmd = poster_command(input_path=clip, output_path=poster, probe=probe)
        run_ffmpeg(cmd, duration=probe.duration, timeout=30)
        stream = ffprobe_json(poster, "-show_streams")["streams"][0]
        assert (stream["codec_name"], stream["width"], stream["height"]) == ("mjpeg", *size)


@pytest.mark.slow
def test_capped_crf_spends_fewer_bytes_than_fixed_bitrate_on_slides(slides_clip: Path, tmp_path: Path) -> None:
    crf = transcode(slides_clip, tmp_path / "crf", drop_audio=True)
    fixed = transcode(
        slides_clip, tmp_path / "fixed", drop_audio=True, options=EncoderOptions(rate_control="fixed_bitrate")
    )
    crf_bytes = sum(r.segment_bytes for r in crf.output.renditions)
    fixed_bytes = sum(r.segment_bytes for r in fixed.output.renditions)
    assert crf_bytes < 0.8 * fixed_bytes


@pytest.mark.slow
def test_cbr_spends_the_tier_bitrate_even_on_still_pictures(slides_clip: Path, tmp_path: Path) -> None:
    # the benchmark's "every second costs the tier bitrate" comparison point really does
    cbr = transcode(slides_clip, tmp_path / "cbr", drop_audio=True, options=EncoderOptions(rate_control="cbr"))
    fixed = transcode(
        slides_clip, tmp_path / "fixed", drop_audio=True, options=EncoderOptions(rate_control="fixed_bitrate")
    )
    duration = cbr.probe.duration
    for planned, written, abr in zip(cbr.renditions, cbr.output.renditions, fixed.output.renditions, strict=True):
        assert written.segment_bytes * 8 / duration >= 0.9 * planned.video_bitrate
        assert abr.segment_bytes < written.segment_bytes
