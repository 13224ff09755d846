"""MPEG-TS scanning on segments ffmpeg wrote: IDR frames at segment starts, I-frame byte ranges."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from tests.transcoding.ffmpeg.helpers import Transcoded, ffprobe_json, parse_attributes

pytestmark = pytest.mark.slow


def video_packets(path: Path) -> list[dict[str, Any]]:
    """Video packets of a file in decode order, with pts_time and flags."""
    data = ffprobe_json(path, "-select_streams", "v:0", "-show_entries", "packet=pts_time,flags")
    return data["packets"]


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
            data = (playlist.parent / uri).read_bytes()[int(offset) : int(offset) + int(length)]
            piece = tmp_path / "iframe.ts"
            piece.write_bytes(data)
            frames = ffprobe_json(piece, "-show_frames", "-show_entries", "frame=pict_type,key_frame")["frames"]
            assert [(f["pict_type"], f["key_frame"]) for f in frames] == [("I", 1)]
