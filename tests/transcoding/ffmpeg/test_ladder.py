"""Ladder parsing and planning; the planned sizes in real output (ffmpeg)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.transcoding.ffmpeg.helpers import (
    DEFAULT_TIERS,
    Transcoded,
    ffprobe_json,
    make_probe,
    master_entries,
    transcode,
)
from transcoding.ffmpeg.ladder import parse_ladder, plan_renditions

# ---------------------------------------------------------------------------
# ladder parsing and planning (pure)
# ---------------------------------------------------------------------------


def test_parse_ladder_sorts_and_reads_units() -> None:
    tiers = parse_ladder(" 720p:1.5M, 240p:400k ,480p:800000")
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
        parse_ladder(spec)


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
    planned = plan_renditions(make_probe(width, height), DEFAULT_TIERS)
    assert [(r.name, r.width, r.height) for r in planned] == expected
    for rendition in planned:
        assert rendition.width % 2 == 0 and rendition.height % 2 == 0
        assert rendition.width <= width and rendition.height <= height
        assert rendition.width / rendition.height == pytest.approx(width / height, rel=0.02)
    assert len({(r.width, r.height) for r in planned}) == len(planned)


def test_plan_renditions_shrunk_tier_gets_a_scaled_bitrate() -> None:
    planned = plan_renditions(make_probe(1000, 600), DEFAULT_TIERS)
    top = planned[0]
    assert 800_000 <= top.video_bitrate < 1_500_000
    assert top.maxrate == top.video_bitrate and top.bufsize == 2 * top.video_bitrate


def test_plan_renditions_keeps_a_1080p_tier_for_1080p_sources() -> None:
    tiers = parse_ladder("360p:600k,1080p:4M")
    planned = plan_renditions(make_probe(1920, 1080), tiers)
    assert [(r.name, r.width, r.height, r.video_bitrate) for r in planned] == [
        ("1080p", 1920, 1080, 4_000_000),
        ("360p", 640, 360, 600_000),
    ]


# ---------------------------------------------------------------------------
# planned sizes on real clips
# ---------------------------------------------------------------------------


@pytest.mark.slow
def test_landscape_ladder_sizes(landscape_hls: Transcoded) -> None:
    # 240p is above the 180-line source: it becomes a source-sized 180p rendition
    assert [(r.name, r.width, r.height) for r in landscape_hls.renditions] == [
        ("180p", 320, 180),
        ("144p", 256, 144),
        ("90p", 160, 90),
    ]
    for rendition in landscape_hls.renditions:
        stream = ffprobe_json(
            landscape_hls.directory / rendition.name / "seg_00000.ts", "-show_streams", "-select_streams", "v:0"
        )["streams"][0]
        assert (stream["width"], stream["height"]) == (rendition.width, rendition.height)
        assert stream["height"] <= landscape_hls.probe.height
        assert stream["width"] / stream["height"] == pytest.approx(16 / 9, rel=0.02)
        assert stream.get("sample_aspect_ratio", "1:1") in ("1:1", "0:1")


@pytest.mark.slow
@pytest.mark.parametrize("clip", ["rotated_portrait_clip", "native_portrait_clip"])
def test_portrait_sources_keep_portrait_renditions(request: pytest.FixtureRequest, clip: str, tmp_path: Path) -> None:
    done = transcode(request.getfixturevalue(clip), tmp_path)
    assert [(r.name, r.width, r.height) for r in done.renditions] == [
        ("180p", 180, 320),
        ("144p", 144, 256),
        ("90p", 90, 160),
    ]
    for rendition in done.renditions:
        segment = done.directory / rendition.name / "seg_00000.ts"
        stream = ffprobe_json(segment, "-show_streams", "-select_streams", "v:0")["streams"][0]
        # the picture itself is upright: no rotation left for the player to apply
        assert (stream["width"], stream["height"]) == (rendition.width, rendition.height)
        assert not stream.get("side_data_list")


@pytest.mark.slow
def test_source_below_the_lowest_tier(below_ladder_clip: Path, tmp_path: Path) -> None:
    done = transcode(below_ladder_clip, tmp_path, ladder="240p:400k,480p:800k", segment_seconds=2)
    assert [(r.name, r.width, r.height) for r in done.renditions] == [("90p", 160, 90)]
    entries = master_entries(done.directory / "master.m3u8")
    assert [(a["RESOLUTION"], uri) for a, uri in entries] == [("160x90", "90p/index.m3u8")]
