"""Chunked transcoding with tiny chunks: a 13 s clip cut into 4 s chunks of 2 s segments, encoded by
real ffmpeg, assembled, and checked as players and ffprobe see it."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
import requests
from django.test import Client

from media_library.models import Video
from media_library.selectors import video_playback
from media_library.services import video_first_pts
from tests.clips import make_clip
from tests.factories import make_stored_video
from tests.hls_player import follow_playlists
from transcoding.costs.ledger import Kind
from transcoding.models import CostLogEntry, TranscodeChunk, TranscodeJob
from transcoding.services import chunks
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
        [
            "ffprobe",
            "-v",
            "error",
            "-select_streams",
            stream,
            "-show_entries",
            "packet=pts_time,flags",
            "-of",
            "json",
            path,
        ],
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

    audio = [
        float(p["pts_time"])
        for uri in media_segments(folder / "audio" / "index.m3u8")
        for p in packets(folder / "audio" / uri[1], "a")
    ]
    first_frame = min(float(p["pts_time"]) for p in packets(folder / "120p" / "seg_00000.ts", "v"))
    # audio starts with the picture (less the AAC encoder's priming frame) and runs without a gap
    assert audio[0] == pytest.approx(first_frame - 1024 / 48000, abs=1 / FPS)
    steps = {round(b - a, 5) for a, b in zip(audio, audio[1:], strict=False)}
    assert steps == {round(1024 / 48000, 5)}
    assert audio[-1] - audio[0] == pytest.approx(13.0, abs=0.05)

    # ffprobe reads the whole assembled stream through the master playlist: 13 s of both
    probe = json.loads(
        subprocess.run(
            [
                "ffprobe",
                "-v",
                "error",
                "-show_entries",
                "format=duration:stream=codec_type",
                "-of",
                "json",
                folder / "master.m3u8",
            ],
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
    # caption files line up with this clock: cue time 0 is the first frame's timestamp (1 s + ffmpeg's 1.4 s)
    assert video_first_pts(video=video) == round((1.0 + 1.4) * 90_000)

    # cost and CPU count every chunk; the log says where each ran
    assert job.cpu_seconds == pytest.approx(sum(c.cpu_seconds for c in chunks), rel=0.01)
    assert CostLogEntry.objects.filter(job=job, kind=Kind.TRANSCODE).exists()
    assert "chunk 4/4" in job.log_tail and "audio and poster on" in job.log_tail
    fetched = {"/".join(url.split("?")[0].split("/")[-2:]) for url in plays(video, user)}
    audio_segments = [uri for _, uri in media_segments(folder / "audio" / "index.m3u8")]
    assert {f"audio/{uri}" for uri in audio_segments} | {"audio/index.m3u8"} <= fetched
    assert {
        f"{tier}/{name}" for tier in ("120p", "180p") for name in ("index.m3u8", "iframes.m3u8", "seg_00006.ts")
    } <= fetched


def test_a_source_at_or_below_the_minimum_keeps_one_process(user, landscape_clip, settings):
    settings.TRANSCODE_CHUNK_MIN_SECONDS = 6  # the clip's length
    video = make_stored_video(user, landscape_clip)
    job = transcode_enqueue(video=video)
    transcode_run(job_id=job.id)
    job.refresh_from_db()
    assert job.status == TranscodeJob.Status.SUCCEEDED and job.chunk_count == 0
    assert not TranscodeChunk.objects.filter(job=job).exists()


@pytest.fixture(scope="module")
def grainy_clip(tmp_path_factory) -> Path:
    """320x240, 12 s of grain that defeats compression (~1.5 MB/s): each ranged request reads ahead
    a little, which this makes small next to a chunk's share."""
    return make_clip(
        tmp_path_factory.mktemp("grain") / "grainy.mp4", width=320, height=240, duration=12.0, noise=True, crf=14
    )


def test_on_s3_each_chunk_reads_only_its_share_of_the_original_by_byte_ranges(user, grainy_clip, s3_proxy, settings):
    long_clip = grainy_clip
    settings.PREVIEW_THUMBNAILS = False
    size = long_clip.stat().st_size
    video = make_stored_video(user, long_clip)
    job = transcode_enqueue(video=video)
    # the planner copies the original once to probe it whole, as a single process does
    transcode_run(job_id=job.id)
    job.refresh_from_db()
    assert job.chunk_count == 3 and job.status == TranscodeJob.Status.RUNNING
    read: dict[str, int] = {}
    while True:
        before = s3_proxy.bytes_down
        chunk = chunks._chunk_claim()
        if chunk is None:
            break
        chunks._chunk_run(chunk)
        read[str(chunk)] = s3_proxy.bytes_down - before
    job.refresh_from_db()
    video.refresh_from_db()
    assert job.status == TranscodeJob.Status.SUCCEEDED, job.error
    assert video.status == Video.Status.READY
    audio = next(value for name, value in read.items() if name.startswith("audio"))
    shares = [value for name, value in read.items() if name.startswith("chunk")]
    # the audio reads the whole file (it is interleaved with the picture); each video chunk about its third
    assert audio >= size
    assert len(shares) == 3 and all(share < size * 0.6 for share in shares), (shares, size)
    assert sum(shares) < size * 1.6
    # the audio chunk measured loudness over the URL too
    assert "normalised to -16 LUFS" in job.log_tail
    assert plays(video, user)


def plays(video: Video, user) -> list[str]:
    """Every playlist and segment the player fetches through the product's playback URL."""
    video.refresh_from_db()
    with requests.Session() as session:
        fetched = follow_playlists(
            Client(),
            video_playback(video=video, user=user).hls_url,
            fetch_external=lambda url: session.get(url, timeout=10),
        )
    assert any("/audio/" in uri for uri in fetched), "the audio rendition is not reached from the master"
    return fetched


# --- Lifecycle: each chunk on its own ---------------------------------------------------------


def planned(user, clip: Path) -> tuple[Video, TranscodeJob]:
    """A video whose attempt the planner has cut into chunks, none of them run yet."""
    video = make_stored_video(user, clip)
    job = transcode_enqueue(video=video)
    transcode_run(job_id=job.id)
    job.refresh_from_db()
    assert job.status == TranscodeJob.Status.RUNNING and job.chunk_count == 4
    return video, job


def run_one(**claim) -> TranscodeChunk | None:
    chunk = chunks._chunk_claim(**claim)
    if chunk is not None:
        chunks._chunk_run(chunk)
    return chunk


def objects_under(prefix: str) -> list[str]:
    return [key for key, _ in storage.iter_objects(prefix)]


def test_a_chunk_ended_by_a_storage_outage_is_retried_alone(user, long_clip, settings, monkeypatch):
    settings.TRANSCODE_RETRY_BACKOFF_S = 0
    real_save = chunks.save_directory
    failed = []

    def outage_once(prefix, directory, **kwargs):
        if (Path(directory) / "120p" / "seg_00002.ts").exists() and not failed:
            failed.append(prefix)
            raise ConnectionResetError(104, "Connection reset by peer")
        return real_save(prefix, directory, **kwargs)

    monkeypatch.setattr(chunks, "save_directory", outage_once)
    video = make_stored_video(user, long_clip)
    job = transcode_chunked(video)
    assert failed, "the outage never happened"
    assert job.status == TranscodeJob.Status.SUCCEEDED, job.error
    assert job.attempts == 1, "the whole job was not run again"
    runs = {c.index: (c.attempts, c.transient_failures) for c in job.chunks.filter(kind="video")}
    assert runs == {0: (1, 0), 1: (1, 1), 2: (1, 0), 3: (1, 0)}
    assert video.status == Video.Status.READY


def test_progress_is_the_sum_over_the_chunks(user, long_clip):
    video, job = planned(user, long_clip)
    run_one(prefer_job=job.id)  # the audio
    run_one(prefer_job=job.id)  # chunk 0: 4 of 13 s
    chunk = chunks._chunk_claim()
    reporter = chunks._ChunkReporter(chunks._claim_of(job), chunk)
    assert reporter.save(50)
    job.refresh_from_db()
    # (100 % of 4 s + 50 % of 4 s) of 13 s
    assert job.progress == int((100 * 4 + 50 * 4) / 13)


def test_a_chunk_finishing_after_its_job_was_cancelled_publishes_nothing(user, long_clip, admin_user, monkeypatch):
    from transcoding.services.jobs import transcode_cancel

    video, job = planned(user, long_clip)
    real_done = chunks._chunk_done

    def cancelled_meanwhile(*, chunk, **kwargs):
        if chunk.index == 2 and chunk.kind == "video":
            transcode_cancel(job=job, by=admin_user)
        return real_done(chunk=chunk, **kwargs)

    monkeypatch.setattr(chunks, "_chunk_done", cancelled_meanwhile)
    ran = chunks.transcode_chunks_run(prefer_job=job.id)
    job.refresh_from_db()
    video.refresh_from_db()
    assert job.status == TranscodeJob.Status.CANCELLED
    assert ran == 4, "the audio and chunks 0-2 ran; chunk 3 was never started"
    statuses = dict(job.chunks.filter(kind="video").values_list("index", "status"))
    assert statuses == {0: "succeeded", 1: "succeeded", 2: "cancelled", 3: "queued"}
    # nothing of the attempt is left in storage: the late chunk's segments and the earlier chunks' too
    assert objects_under(job.output_prefix) == []
    assert video.status == Video.Status.FAILED and not video.hls_master_key


def test_the_budget_gate_stops_the_chunks_not_yet_started(
    user, long_clip, admin_user, django_capture_on_commit_callbacks
):
    from transcoding.costs.budget import budget_engage_kill_switch

    video, job = planned(user, long_clip)
    run_one(prefer_job=job.id)
    run_one(prefer_job=job.id)
    budget_engage_kill_switch(by=admin_user, reason="month over budget")
    with django_capture_on_commit_callbacks(execute=True):
        assert run_one(prefer_job=job.id) is None
    job.refresh_from_db()
    video.refresh_from_db()
    assert job.status == TranscodeJob.Status.CANCELLED
    assert video.status == Video.Status.BLOCKED
    assert job.chunks.filter(status="succeeded").count() == 2
    assert objects_under(job.output_prefix) == []


def test_the_reaper_requeues_a_silent_chunk_alone_then_gives_up(
    user, long_clip, settings, django_capture_on_commit_callbacks
):
    from datetime import timedelta

    from django.utils import timezone

    from transcoding.tasks import transcode_reap_stale

    settings.TRANSCODE_MAX_ATTEMPTS = 2
    video, job = planned(user, long_clip)
    run_one(prefer_job=job.id)  # the audio
    for run in (1, 2):
        # a worker takes chunk 0 and is killed: its heartbeat stops
        chunk = chunks._chunk_claim(prefer_job=job.id)
        assert (chunk.index, chunk.attempts) == (0, run)
        TranscodeChunk.objects.filter(pk=chunk.pk).update(heartbeat_at=timezone.now() - timedelta(hours=1))
        TranscodeJob.objects.filter(pk=job.pk).update(heartbeat_at=timezone.now() - timedelta(hours=1))
        with django_capture_on_commit_callbacks(execute=True):
            counts = transcode_reap_stale()
        job.refresh_from_db()
        if run == 1:
            assert counts["chunks_requeued"] == 1 and counts["requeued"] == 0
            assert job.status == TranscodeJob.Status.RUNNING and job.attempts == 1
            assert job.chunks.get(pk=chunk.pk).status == "queued"
    assert counts["chunks_failed"] == 1
    assert job.status == TranscodeJob.Status.FAILED and "gave up after 2 runs of chunk 0" in job.error
    video.refresh_from_db()
    assert video.status == Video.Status.FAILED
    assert objects_under(job.output_prefix) == []


def test_chunked_output_matches_a_single_process_encode_of_the_same_source(user, other_user, long_clip, settings):
    from media_library.models import Rendition

    chunked_video = make_stored_video(user, long_clip)
    assert transcode_chunked(chunked_video).chunk_count == 4
    settings.TRANSCODE_CHUNK_SECONDS = 0
    single_video = make_stored_video(other_user, long_clip)
    assert transcode_chunked(single_video).chunk_count == 0
    audio_bytes = sum(
        size for key, size in storage.iter_objects(chunked_video.hls_master_key.rsplit("/", 1)[0] + "/audio/")
    )

    def tiers(video: Video) -> dict[str, Rendition]:
        return {r.name: r for r in video.renditions.all()}

    for name, single in tiers(single_video).items():
        chunked = tiers(chunked_video)[name]
        assert (chunked.width, chunked.height, chunked.segment_count) == (
            single.width,
            single.height,
            single.segment_count,
        )
        assert chunked.codecs == single.codecs  # H.264 profile/level from the SPS, and AAC-LC
        # the same picture at the same quality: bytes (with the shared audio) and bandwidths close to one process's
        assert chunked.bytes + audio_bytes == pytest.approx(single.bytes, rel=0.1)
        assert chunked.average_bandwidth == pytest.approx(single.average_bandwidth, rel=0.1)
        assert chunked.bandwidth == pytest.approx(single.bandwidth, rel=0.25)


def test_the_transcode_command_waits_for_a_chunked_job_and_encodes_its_chunks(user, long_clip, capsys):
    from django.core.management import call_command

    video = make_stored_video(user, long_clip)
    call_command("transcode", str(video.id), "--wait")
    video.refresh_from_db()
    assert video.status == Video.Status.READY
    assert TranscodeChunk.objects.filter(job__video=video, status="succeeded").count() == 5
    assert "succeeded after 1 attempt(s); video ready" in capsys.readouterr().out
