"""A tiny real HLS output (made by ffmpeg) stored as the transcoding pipeline lays it out."""

from __future__ import annotations

import io
import subprocess
from pathlib import Path

from django.utils import timezone

from media_library.models import Rendition, Video
from tests.factories import make_media_file, make_video
from unpuzzle.storage import save_directory, save_stream

MASTER = (
    "#EXTM3U\n"
    "#EXT-X-VERSION:3\n"
    "#EXT-X-INDEPENDENT-SEGMENTS\n"
    '#EXT-X-STREAM-INF:BANDWIDTH=300000,AVERAGE-BANDWIDTH=250000,CODECS="avc1.640015,mp4a.40.2",RESOLUTION=320x240\n'
    "240p/index.m3u8\n"
)


def build_hls_source(directory: Path) -> Path:
    """Write a 3 s, 320x240 HLS set (1 s segments, with audio) and a poster into ``directory``."""
    rendition = directory / "240p"
    rendition.mkdir(parents=True)
    subprocess.run(
        [
            "ffmpeg",
            "-v",
            "error",
            "-f",
            "lavfi",
            "-i",
            "testsrc2=size=320x240:rate=25",
            "-f",
            "lavfi",
            "-i",
            "sine=frequency=440:sample_rate=48000",
            "-t",
            "3",
            "-c:v",
            "libx264",
            "-preset",
            "ultrafast",
            "-g",
            "25",
            "-sc_threshold",
            "0",
            "-c:a",
            "aac",
            "-ac",
            "2",
            "-b:a",
            "64k",
            "-f",
            "hls",
            "-hls_time",
            "1",
            "-hls_playlist_type",
            "vod",
            "-hls_segment_filename",
            str(rendition / "seg_%05d.ts"),
            str(rendition / "index.m3u8"),
        ],
        check=True,
    )
    subprocess.run(
        [
            "ffmpeg",
            "-v",
            "error",
            "-f",
            "lavfi",
            "-i",
            "testsrc2=size=320x240:rate=25",
            "-frames:v",
            "1",
            str(directory / "poster.jpg"),
        ],
        check=True,
    )
    (directory / "master.m3u8").write_text(MASTER)
    return directory


def make_ready_video(*, owner, source: Path, attempt: int = 1, media_file=None, **fields) -> Video:
    """A ready video whose HLS output (and a small original) are in the default storage."""
    media_file = media_file or make_media_file(owner=owner)
    save_stream(media_file.storage_key, io.BytesIO(b"original bytes"))
    video = make_video(owner=owner, media_file=media_file, **fields)
    prefix = f"videos/{video.id}/hls/{attempt}"
    stored = dict(save_directory(prefix, source))
    video.status = Video.Status.READY
    video.hls_master_key = f"{prefix}/master.m3u8"
    video.poster_key = f"{prefix}/poster.jpg"
    video.duration = 3.0
    video.max_quality = "240p"
    video.ready_at = timezone.now()
    video.save()
    Rendition.objects.create(
        video=video,
        name="240p",
        width=320,
        height=240,
        bandwidth=300_000,
        average_bandwidth=250_000,
        codecs="avc1.640015,mp4a.40.2",
        playlist_key=f"{prefix}/240p/index.m3u8",
        bytes=sum(size for key, size in stored.items() if key.startswith(f"{prefix}/240p/")),
        segment_count=sum(1 for key in stored if key.endswith(".ts")),
    )
    return video
