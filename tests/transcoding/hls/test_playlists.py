"""Master and media playlists: order (pure), layout and measured attributes of real output."""

from __future__ import annotations

import math
import re

import pytest

from tests.transcoding.ffmpeg.helpers import Transcoded, ffprobe_json, master_entries
from transcoding.hls.playlists import RenditionOutput, render_master_playlist


def test_master_lists_the_start_rendition_first() -> None:
    def output(name: str, width: int, height: int) -> RenditionOutput:
        return RenditionOutput(
            name=name,
            width=width,
            height=height,
            bandwidth=1,
            average_bandwidth=1,
            codecs="avc1.64001f",
            video_codec="avc1.64001f",
            frame_rate=25.0,
            playlist=f"{name}/index.m3u8",
            iframe_playlist=None,
            iframe_bandwidth=None,
            segment_durations=(6.0,),
            segment_bytes=1,
            bytes=1,
            keyframe_aligned=True,
        )

    text = render_master_playlist([output("240p", 426, 240), output("720p", 1280, 720), output("480p", 854, 480)])
    assert [line for line in text.splitlines() if line.endswith(".m3u8")] == [
        "480p/index.m3u8",
        "720p/index.m3u8",
        "240p/index.m3u8",
    ]
    assert "FRAME-RATE=25.000" in text and "I-FRAME" not in text


@pytest.mark.slow
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


@pytest.mark.slow
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


def test_a_listed_segment_that_is_empty_or_missing_means_the_writes_failed(tmp_path):
    from transcoding.hls.playlists import read_media_playlist
    from transcoding.hls.ts import HlsOutputIncomplete

    playlist = tmp_path / "index.m3u8"
    playlist.write_text("#EXTM3U\n#EXTINF:2.0,\nseg_0.ts\n#EXTINF:2.0,\nseg_1.ts\n")
    (tmp_path / "seg_0.ts").write_bytes(b"G" * 188)
    with pytest.raises(HlsOutputIncomplete, match="segment seg_1.ts is missing"):
        read_media_playlist(playlist)
    (tmp_path / "seg_1.ts").write_bytes(b"")  # what a full disk leaves while ffmpeg exits 0
    with pytest.raises(HlsOutputIncomplete, match="segment seg_1.ts is empty"):
        read_media_playlist(playlist)
