"""Chunked transcoding with tiny chunks: a 13 s clip cut into 4 s chunks of 2 s segments, encoded by
real ffmpeg, assembled, and checked as players and ffprobe see it."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from media_library.models import Video
from tests.clips import make_clip
from tests.factories import make_stored_video
from transcoding.costs.ledger import Kind
from transcoding.models import CostLogEntry, TranscodeChunk, TranscodeJob
from transcoding.services.jobs import transcode_enqueue
from transcoding.services.pipeline import transcode_run
from transcoding.tasks import transcode_video
from unpuzzle import storage

pytestmark = [pytest.mark.django_db, pytest.mark.slow]

FPS = 30


@pytest.fixture(autouse=True)
def tiny_chunks(settings):
    settings.HLS_LADDER = "120p:200k,180p:400k"
    settings.HLS_SEGMENT_SECONDS = 2
    settings.HLS_AUDIO_BITRATE = "64k"
    settings.TRANSCODE_CHUNK_SECONDS = 4
    settings.TRANSCODE_CHUNK_MIN_SECONDS = 5
    settings.PREVIEW_INTERVAL_S = 1.0


@pytest.fixture(scope="module")
def long_clip(tmp_path_factory) -> Path:
    """320x180 30 fps, 13 s with a 440 Hz tone: four chunks (4+4+4+1 s)."""
    return make_clip(tmp_path_factory.mktemp("chunks") / "lecture.mp4", duration=13.0, gop_seconds=5.0)


def transcode_chunked(video: Video) -> TranscodeJob:
    job = transcode_enqueue(video=video)
    assert job is not None
    transcode_video(str(job.id))
    job.refresh_from_db()
    video.refresh_from_db()
    return job


def local_path(key: str) -> Path:
    return Path(storage.get_storage().path(key))


def packets(path: Path, stream: str) -> list[dict]:
    out = subprocess.run(
        ["ffprobe", "-v", "error", "-select_streams", stream, "-show_entries", "packet=pts_time,flags", "-of", "json", path],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    return [p for p in json.loads(out)["packets"] if "pts_time" in p]


def media_segments(playlist: Path) -> list[tuple[float, str]]:
    lines = playlist.read_text().splitlines()
    return [
        (float(line.split(":", 1)[1].rstrip(",")), lines[i + 1])
        for i, line in enumerate(lines)
        if line.startswith("#EXTINF:")
    ]


def test_a_long_source_is_encoded_in_chunks_and_plays_as_one_seamless_ladder(user, long_clip):
    video = make_stored_video(user, long_clip)
    job = transcode_chunked(video)
    assert job.status == TranscodeJob.Status.SUCCEEDED, job.error
    assert video.status == Video.Status.READY, video.status_reason
    assert job.chunk_count == 4
    chunks = list(TranscodeChunk.objects.filter(job=job).order_by("-kind", "index"))
    assert [(c.kind, c.index, c.status) for c in chunks] == [
        ("video", 0, "succeeded"),
        ("video", 1, "succeeded"),
        ("video", 2, "succeeded"),
        ("video", 3, "succeeded"),
        ("audio", 0, "succeeded"),
    ]
    folder = local_path(video.hls_master_key).parent
    master = (folder / "master.m3u8").read_text()
    assert '#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID="audio"' in master and 'URI="audio/index.m3u8"' in master
    assert master.count('AUDIO="audio"') == 2 and 'CODECS="avc1.' in master and ',mp4a.40.2"' in master

    for rendition in video.renditions.all():
        tier = folder / rendition.name
        segments = media_segments(tier / "index.m3u8")
        # numbering and durations continue across the chunks as in one process: 2 s segments, 1 s at the end
        assert [uri for _, uri in segments] == [f"seg_{n:05d}.ts" for n in range(7)]
        assert [round(d, 3) for d, _ in segments] == [2.0] * 6 + [1.0]
        assert rendition.segment_count == 7
        frames: list[float] = []
        for _, uri in segments:
            video_packets = packets(tier / uri, "v")
            assert "K" in video_packets[0]["flags"], f"{rendition.name}/{uri} does not start with a key frame"
            frames += sorted(float(p["pts_time"]) for p in video_packets)
        # every frame once, 1/30 s apart, across every chunk boundary
        assert len(frames) == 13 * FPS
        gaps = {round(b - a, 4) for a, b in zip(frames, frames[1:], strict=False)}
        assert gaps == {round(1 / FPS, 4)}
        assert (tier / "iframes.m3u8").read_text().count("#EXT-X-BYTERANGE") == 7

    audio = [float(p["pts_time"]) for uri in media_segments(folder / "audio" / "index.m3u8") for p in packets(folder / "audio" / uri[1], "a")]
    first_frame = min(float(p["pts_time"]) for p in packets(folder / "120p" / "seg_00000.ts", "v"))
    # audio starts with the picture (less the AAC encoder's priming frame) and runs without a gap
    assert audio[0] == pytest.approx(first_frame - 1024 / 48000, abs=1 / FPS)
    steps = {round(b - a, 5) for a, b in zip(audio, audio[1:], strict=False)}
    assert steps == {round(1024 / 48000, 5)}
    assert audio[-1] - audio[0] == pytest.approx(13.0, abs=0.05)

    # ffprobe reads the whole assembled stream through the master playlist: 13 s of both
    probe = json.loads(
        subprocess.run(
            ["ffprobe", "-v", "error", "-show_entries", "format=duration:stream=codec_type", "-of", "json", folder / "master.m3u8"],
            check=True,
            capture_output=True,
            text=True,
        ).stdout
    )
    assert float(probe["format"]["duration"]) == pytest.approx(13.0, abs=0.1)
    assert {s["codec_type"] for s in probe["streams"]} >= {"video", "audio"}

    # previews cover the whole video, one cue a second, from every chunk's sheets
    vtt = local_path(video.thumbnails_key).read_text()
    assert vtt.count("#xywh=") == 13 and "sprite-3-0.jpg" in vtt and vtt.rstrip().splitlines()[-2].endswith("00:13.000")
    assert video.poster_key and local_path(video.poster_key).stat().st_size > 0

    # cost and CPU count every chunk; the log says where each ran
    assert job.cpu_seconds == pytest.approx(sum(c.cpu_seconds for c in chunks), rel=0.01)
    assert CostLogEntry.objects.filter(job=job, kind=Kind.TRANSCODE).exists()
    assert "chunk 4/4" in job.log_tail and "audio and poster on" in job.log_tail


def test_a_source_at_or_below_the_minimum_keeps_one_process(user, landscape_clip, settings):
    settings.TRANSCODE_CHUNK_MIN_SECONDS = 6  # the clip's length
    video = make_stored_video(user, landscape_clip)
    job = transcode_enqueue(video=video)
    transcode_run(job_id=job.id)
    job.refresh_from_db()
    assert job.status == TranscodeJob.Status.SUCCEEDED and job.chunk_count == 0
    assert not TranscodeChunk.objects.filter(job=job).exists()
