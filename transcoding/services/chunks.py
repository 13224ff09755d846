"""Chunked transcoding: the chunks of a long source encoded in parallel by every transcode worker,
then assembled into one HLS output that players cannot tell from a single process's.

An attempt of a chunked job (``pipeline.transcode_run`` planned it) has one ``audio`` chunk (the
loudness measurement, the whole audio track as the audio rendition every tier plays, the poster) and
``video`` chunks (a time range of the source into every tier, with its preview sheets). A chunk task
claims whichever chunk is queued next, encodes it from the original (local file, or byte ranges of a
presigned URL on S3/B2: a worker fetches only its share), uploads its segments straight to the
attempt's folder with their final numbers, and records what it wrote; the worker that finishes the
last chunk writes the playlists and switches the video, as a single-process attempt does.

Each chunk has its own heartbeat, retries and reaper (``transcode_chunks_reap``); a failed or killed
chunk is retried alone. A chunk that finds its job cancelled, failed or re-attempted stops and deletes
what it uploaded. Progress is the chunks' sum; the job's CPU (and its cost) is every chunk's.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import os
import shutil
import socket
import time
import uuid
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import F, Q, QuerySet
from django.utils import timezone

from media_library.webvtt import format_timestamp
from transcoding.costs.selectors import spending_allowed
from transcoding.ffmpeg.chunks import LAST_CHUNK_READ_PAST_S, ChunkRange, chunk_sprite_template
from transcoding.ffmpeg.commands import audio_hls_command, build_hls_command, poster_command
from transcoding.ffmpeg.filters import available_filters, source_conversion
from transcoding.ffmpeg.ladder import parse_ladder, plan_renditions
from transcoding.ffmpeg.previews import (
    THUMBNAILS_VTT_NAME,
    PreviewPlan,
    preview_frames_cut,
    sheets_in,
    thumbnail_cues,
    thumbnails_vtt_join,
)
from transcoding.ffmpeg.probe import ProbeResult, parse_probe
from transcoding.ffmpeg.process import TranscodeCancelled, TranscodeFailed, TranscodeTimeout, run_ffmpeg
from transcoding.ffmpeg.sanity import human_duration
from transcoding.hls.playlists import (
    AUDIO_RENDITION_NAME,
    IFRAME_PLAYLIST_NAME,
    MASTER_PLAYLIST_NAME,
    MEDIA_PLAYLIST_NAME,
    HlsOutput,
    assemble_audio,
    assemble_rendition,
    measure_chunk_part,
    render_master_playlist,
)
from transcoding.hls.ts import HlsOutputError
from transcoding.models import TranscodeChunk, TranscodeJob
from transcoding.services.jobs import (
    attempt_output_delete,
    transcode_block_for_budget,
    transcode_chunk_requeue,
    transcode_chunks_dispatch,
    transcode_job_finish,
    transcode_lock,
    video_job_ended,
)
from transcoding.services.maintenance import work_dir_create
from transcoding.services.pipeline import (
    POSTER_TIMEOUT_S,
    _attempt_error,
    _attempt_failed_for_good,
    _Claim,
    _Encoded,
    _is_transient,
    _keyframe_interval,
    _LostJob,
    _loudness_measure,
    _Permanent,
    _raise_if_writes_failed,
    _Reporter,
    _transcode_attempt_failed,
    _transcode_switch,
    encoder_options,
    transient_backoff_s,
)
from unpuzzle.failures import failure_for
from unpuzzle.storage import StoredObjectMissing, open_for_ranges, save_directory

logger = logging.getLogger(__name__)

#: A chunk task stops taking further chunks after this share of ``TRANSCODE_TIMEOUT_S`` (django-q2 kills
#: a task at its cluster's timeout); the chunks left are dispatched again by the reaper.
RUNNER_TIME_SHARE = 0.5


def _worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"[:255]


# --- Claiming ---------------------------------------------------------------------------------


def _queued(now: datetime) -> QuerySet[TranscodeChunk]:
    """Chunks a worker may start now: queued, their backoff over, their job running that attempt."""
    return (
        TranscodeChunk.objects.filter(status=TranscodeChunk.Status.QUEUED)
        .filter(Q(not_before__isnull=True) | Q(not_before__lte=now))
        .filter(job__status=TranscodeJob.Status.RUNNING, job__attempts=F("job_attempt"))
    )


def _chunk_claim(*, prefer_job: uuid.UUID | str | None = None) -> TranscodeChunk | None:
    """Take the next queued chunk (of ``prefer_job`` first, then the oldest job's, audio first, then by
    position) for this worker; None when there is none. The budget gate is asked before each chunk."""
    while True:
        now = timezone.now()
        candidates = _queued(now).order_by("job__created_at", "kind", "index")
        candidate = None
        if prefer_job is not None:
            candidate = candidates.filter(job_id=uuid.UUID(str(prefer_job))).values_list("pk", "job_id").first()
        candidate = candidate or candidates.values_list("pk", "job_id").first()
        if candidate is None:
            return None
        chunk_id, job_id = candidate
        with transaction.atomic():
            job, video = transcode_lock(job_id=job_id)
            chunk = TranscodeChunk.objects.select_for_update().filter(pk=chunk_id).first()
            if (
                job is None
                or video is None
                or chunk is None
                or chunk.status != TranscodeChunk.Status.QUEUED
                or job.status != TranscodeJob.Status.RUNNING
                or job.attempts != chunk.job_attempt
            ):
                continue  # another worker was quicker, or the job ended meanwhile: look again
            decision = spending_allowed(owner=video.owner)
            if not decision.allowed:
                transcode_block_for_budget(job=job, video=video, reason=decision.reason)
                transaction.on_commit(
                    functools.partial(attempt_output_delete, video_id=video.id, prefix=job.output_prefix)
                )
                continue
            chunk.status = TranscodeChunk.Status.RUNNING
            chunk.attempts += 1
            chunk.started_at = chunk.heartbeat_at = now
            chunk.finished_at = None
            chunk.progress = 0
            chunk.not_before = None
            chunk.worker = _worker_name()
            chunk.save(
                update_fields=[
                    "status",
                    "attempts",
                    "started_at",
                    "heartbeat_at",
                    "finished_at",
                    "progress",
                    "not_before",
                    "worker",
                ]
            )
            logger.info("job_id=%s %s started on %s (run %d)", job.id, chunk, chunk.worker, chunk.attempts)
            return chunk


class _ChunkReporter(_Reporter):
    """Heartbeat and progress of one chunk run; the job's progress is the sum over its chunks
    (weighted by length), and its heartbeat moves with every chunk's."""

    def __init__(self, claim: _Claim, chunk: TranscodeChunk) -> None:
        super().__init__(claim)
        self.chunk = chunk

    def on_encode_progress(self, percent: float) -> None:
        self.percent = max(self.percent, percent * 0.95)

    def _store(self, progress: int) -> bool:
        now = timezone.now()
        mine = TranscodeChunk.objects.filter(
            pk=self.chunk.pk, status=TranscodeChunk.Status.RUNNING, attempts=self.chunk.attempts
        )
        if mine.update(progress=progress, heartbeat_at=now) != 1:
            return False
        rows = TranscodeChunk.objects.filter(
            job_id=self.claim.job_id, job_attempt=self.claim.attempt, kind=TranscodeChunk.Kind.VIDEO
        ).values_list("progress", "length_s")
        total = sum(length for _, length in rows) or 1.0
        job_progress = min(99, int(sum(p * length for p, length in rows) / total))
        return self._mine().update(progress=job_progress, heartbeat_at=now) == 1


def _claim_of(job: TranscodeJob) -> _Claim:
    return _Claim(
        job_id=job.id,
        video_id=job.video_id,
        attempt=job.attempts,
        prefix=job.output_prefix,
        storage_key=job.plan["storage_key"],
        media_file_id=uuid.UUID(int=0),
        needs_probe=False,
    )


# --- Running ----------------------------------------------------------------------------------


def transcode_chunks_run(*, prefer_job: uuid.UUID | str | None = None) -> int:
    """Encode queued chunks one after another until none is left (or this task has run for half of
    ``TRANSCODE_TIMEOUT_S``); returns how many ran. What the django-q2 chunk task calls."""
    started = time.monotonic()
    ran = 0
    while time.monotonic() - started < settings.TRANSCODE_TIMEOUT_S * RUNNER_TIME_SHARE:
        chunk = _chunk_claim(prefer_job=prefer_job)
        if chunk is None:
            break
        _chunk_run(chunk)
        ran += 1
    return ran


@dataclasses.dataclass
class _ChunkResult:
    output: dict[str, Any]
    cpu_seconds: float
    log_tail: list[str]


def _chunk_run(chunk: TranscodeChunk) -> None:
    """Encode one claimed chunk, upload what it wrote and record it; assemble when it was the last."""
    job = TranscodeJob.objects.get(pk=chunk.job_id)
    claim = _claim_of(job)
    reporter = _ChunkReporter(claim, chunk)
    started = time.monotonic()
    work = work_dir_create(job_id=job.id, attempt=chunk.job_attempt)
    cpu = 0.0
    try:
        probe = parse_probe(job.plan["probe"])
        with open_for_ranges(claim.storage_key, expire_seconds=settings.TRANSCODE_TIMEOUT_S, directory=work) as source:
            if chunk.kind == TranscodeChunk.Kind.AUDIO:
                result = _audio_encode(
                    claim=claim, plan=job.plan, probe=probe, source=source, work=work, reporter=reporter
                )
            else:
                result = _video_encode(
                    claim=claim,
                    chunk=chunk,
                    last=chunk.index == job.chunk_count - 1,
                    plan=job.plan,
                    probe=probe,
                    source=source,
                    work=work,
                    reporter=reporter,
                )
        cpu = result.cpu_seconds
        reporter.check(97)
        stored = save_directory(claim.prefix, work / "hls", on_saved=reporter.on_output_saved)
        result.output["stored_bytes"] = sum(size for _, size in stored)
        last = _chunk_done(chunk=chunk, result=result, wall_seconds=time.monotonic() - started)
    except _LostJob as exc:
        logger.info("job_id=%s %s stopped: %s", job.id, chunk, exc)
        _chunk_ended(chunk=chunk, status=TranscodeChunk.Status.CANCELLED, error=str(exc), cpu=cpu)
        if not _attempt_running(claim):
            # cancelled, failed or re-attempted: nothing of this attempt will play; its other chunks'
            # segments go with this one's (what it uploaded after the job ended included)
            attempt_output_delete(video_id=claim.video_id, prefix=claim.prefix)
        # else the reaper gave this chunk to another worker, whose run writes the same segments: leave them
        return
    except (_Permanent, StoredObjectMissing) as exc:
        _chunk_ended(chunk=chunk, status=TranscodeChunk.Status.FAILED, error=str(exc), cpu=cpu)
        _attempt_failed_for_good(claim=claim, exc=exc, what=f"{chunk}: ")
        return
    except Exception as exc:
        logger.exception("job_id=%s %s failed", job.id, chunk)
        _chunk_failed(chunk=chunk, claim=claim, exc=exc, cpu=cpu)
        return
    finally:
        shutil.rmtree(work, ignore_errors=True)
    if last:
        _chunks_assemble(claim=claim)


def _attempt_running(claim: _Claim) -> bool:
    return TranscodeJob.objects.filter(
        pk=claim.job_id, status=TranscodeJob.Status.RUNNING, attempts=claim.attempt
    ).exists()


def _chunk_ended(*, chunk: TranscodeChunk, status: str, error: str, cpu: float) -> None:
    TranscodeChunk.objects.filter(pk=chunk.pk, attempts=chunk.attempts, status=TranscodeChunk.Status.RUNNING).update(
        status=status,
        error=error,
        finished_at=timezone.now(),
        cpu_seconds=(chunk.cpu_seconds or 0.0) + cpu,
    )


@transaction.atomic
def _chunk_failed(*, chunk: TranscodeChunk, claim: _Claim, exc: Exception, cpu: float) -> None:
    """A storage, network or database error is retried for this chunk alone, after a backoff
    (``TRANSCODE_TRANSIENT_RETRIES``); anything else fails the attempt, as it would a single process."""
    job, video = transcode_lock(job_id=claim.job_id)
    locked = TranscodeChunk.objects.select_for_update().filter(pk=chunk.pk).first()
    if job is None or video is None or locked is None or locked.attempts != chunk.attempts:
        return
    if job.status != TranscodeJob.Status.RUNNING or job.attempts != locked.job_attempt:
        locked.status = TranscodeChunk.Status.CANCELLED
        locked.save(update_fields=["status"])
        return
    message = f"{type(exc).__name__}: {exc}"
    locked.cpu_seconds = (locked.cpu_seconds or 0.0) + cpu
    locked.save(update_fields=["cpu_seconds"])
    if _is_transient(exc) and locked.transient_failures < settings.TRANSCODE_TRANSIENT_RETRIES:
        locked.transient_failures += 1
        locked.attempts -= 1  # an outage does not use up the chunk's attempts
        wait = transient_backoff_s(locked.transient_failures)
        transcode_chunk_requeue(
            chunk=locked, reason=f"retrying in {wait} s: {message}", not_before=timezone.now() + timedelta(seconds=wait)
        )
        return
    locked.status = TranscodeChunk.Status.FAILED
    locked.error = message
    locked.finished_at = timezone.now()
    locked.save(update_fields=["status", "error", "finished_at"])
    transaction.on_commit(lambda: attempt_output_delete(video_id=claim.video_id, prefix=claim.prefix))
    _transcode_attempt_failed(
        claim=claim,
        message=f"{locked}: {message}",
        failure=failure_for("server_error"),
        log_tail=[],
        transient=_is_transient(exc),
    )


@transaction.atomic
def _chunk_done(*, chunk: TranscodeChunk, result: _ChunkResult, wall_seconds: float) -> bool:
    """Record a chunk's output; True when it was the attempt's last one (its worker assembles)."""
    job, video = transcode_lock(job_id=chunk.job_id)
    locked = TranscodeChunk.objects.select_for_update().filter(pk=chunk.pk).first()
    if (
        job is None
        or locked is None
        or job.status != TranscodeJob.Status.RUNNING
        or job.attempts != chunk.job_attempt
        or locked.status != TranscodeChunk.Status.RUNNING
        or locked.attempts != chunk.attempts
    ):
        raise _LostJob("the job was cancelled, its video deleted, or the chunk was given to another worker")
    locked.status = TranscodeChunk.Status.SUCCEEDED
    locked.progress = 100
    locked.output = result.output
    locked.error = ""
    locked.finished_at = timezone.now()
    locked.wall_seconds = round(wall_seconds, 3)
    locked.cpu_seconds = round((locked.cpu_seconds or 0.0) + result.cpu_seconds, 3)
    locked.save(update_fields=["status", "progress", "output", "error", "finished_at", "wall_seconds", "cpu_seconds"])
    logger.info(
        "job_id=%s %s done on %s in %.1f s wall, %.1f s CPU",
        job.id,
        locked,
        locked.worker,
        wall_seconds,
        result.cpu_seconds,
    )
    left = (
        TranscodeChunk.objects.filter(job=job, job_attempt=chunk.job_attempt)
        .exclude(status=TranscodeChunk.Status.SUCCEEDED)
        .exists()
    )
    return not left


# --- Encoding ---------------------------------------------------------------------------------


def _run(
    command: list[str], *, duration: float, reporter: _ChunkReporter, work: Path, what: str
) -> tuple[float, list[str]]:
    """Run one ffmpeg of a chunk: CPU seconds and log tail; failures as the single-process encode has them."""
    try:
        result = run_ffmpeg(
            command,
            duration=duration,
            timeout=settings.TRANSCODE_TIMEOUT_S,
            on_progress=reporter.on_encode_progress,
            should_cancel=reporter.should_cancel,
        )
    except TranscodeCancelled as exc:
        raise _LostJob(str(exc)) from exc
    except TranscodeTimeout as exc:
        raise _Permanent(
            f"{what} took longer than TRANSCODE_TIMEOUT_S={settings.TRANSCODE_TIMEOUT_S} s and was stopped",
            failure=failure_for("transcode_timeout", detail=human_duration(settings.TRANSCODE_TIMEOUT_S)),
            log_tail=exc.log_tail,
        ) from exc
    except TranscodeFailed as exc:
        _raise_if_writes_failed(work=work, log_tail=exc.log_tail, cause=exc)
        if any("Server returned" in line or "Connection" in line for line in exc.log_tail):
            # the original's URL stopped answering: storage, not the file
            raise ConnectionError(f"reading the original failed: {exc}") from exc
        raise _Permanent(
            f"ffmpeg could not decode or encode the original ({what}): {exc}",
            failure=failure_for("encode_failed"),
            log_tail=exc.log_tail,
        ) from exc
    return result.cpu_seconds, result.log_tail


def _video_encode(
    *,
    claim: _Claim,
    chunk: TranscodeChunk,
    last: bool,
    plan: dict[str, Any],
    probe: ProbeResult,
    source: Path | str,
    work: Path,
    reporter: _ChunkReporter,
) -> _ChunkResult:
    """Encode the chunk's time range into every tier (one decode, the ladder's filter graph and encoder
    settings), segments numbered and timed for their place in the video, with its preview sheets."""
    renditions = plan_renditions(probe, parse_ladder(plan["ladder"]))
    conversion = source_conversion(probe, renditions=renditions, available=available_filters(settings.FFMPEG_BIN))
    output_dir = work / "hls"
    output_dir.mkdir()
    segment_seconds = plan["segment_seconds"]
    previews = _chunk_previews(plan=plan, length=chunk.length_s)
    rng = ChunkRange(
        index=chunk.index, start=chunk.start_s, length=chunk.length_s + (LAST_CHUNK_READ_PAST_S if last else 0.0)
    )
    command = build_hls_command(
        ffmpeg_bin=settings.FFMPEG_BIN,
        input_path=source,
        output_dir=output_dir,
        probe=probe,
        renditions=renditions,
        segment_seconds=segment_seconds,
        keyframe_interval=_keyframe_interval(segment_seconds),
        audio_bitrate=plan["audio_bitrate"],
        crf=plan["crf"],
        preset=plan["preset"],
        options=encoder_options(),
        conversion=conversion,
        previews=previews,
        chunk=rng,
    )
    cpu, log_tail = _run(command, duration=chunk.length_s, reporter=reporter, work=work, what=str(chunk))
    try:
        tiers = {r.name: measure_chunk_part(directory=output_dir / r.name) for r in renditions}
    except HlsOutputError as exc:
        raise _Permanent(
            f"ffmpeg's output of {chunk} is unusable: {exc}", failure=failure_for("encode_failed"), log_tail=log_tail
        ) from exc
    for name in tiers:
        # the assembly writes the tier's playlists for the whole video
        (output_dir / name / MEDIA_PLAYLIST_NAME).unlink()
    top = tiers[renditions[0].name]
    video_seconds = sum(duration for _, duration, _ in top["segments"])
    output: dict[str, Any] = {"tiers": tiers, "video_seconds": video_seconds}
    if previews is not None:
        template = chunk_sprite_template(chunk.index)
        sheets = sheets_in(output_dir, template)
        if sheets:
            output["preview_frames"] = preview_frames_cut(
                plan=previews, video_seconds=video_seconds, frame_rate=probe.frame_rate, sheets_written=sheets
            )
    return _ChunkResult(output=output, cpu_seconds=cpu, log_tail=log_tail)


def _chunk_previews(*, plan: dict[str, Any], length: float) -> PreviewPlan | None:
    """The preview frames of a chunk: the video's interval and tile size, over the chunk's length."""
    if not plan.get("previews"):
        return None
    whole = PreviewPlan(**plan["previews"])
    frames = max(1, int(-(-length // whole.interval)))
    return dataclasses.replace(whole, frames=frames)


def _audio_encode(
    *, claim: _Claim, plan: dict[str, Any], probe: ProbeResult, source: Path | str, work: Path, reporter: _ChunkReporter
) -> _ChunkResult:
    """The loudness measurement over the whole file, the audio rendition every tier plays, the poster."""
    output_dir = work / "hls"
    output_dir.mkdir()
    cpu = 0.0
    notes: list[str] = []
    output: dict[str, Any] = {"audio": None, "poster": False}
    if probe.has_audio and probe.audio_stream_index is not None:
        audio, measure_cpu = _loudness_measure(claim=claim, source=source, probe=probe, reporter=reporter)
        cpu += measure_cpu
        if audio is not None:
            notes.append(audio.note)
        (output_dir / AUDIO_RENDITION_NAME).mkdir()
        command = audio_hls_command(
            ffmpeg_bin=settings.FFMPEG_BIN,
            input_path=source,
            output_dir=output_dir,
            probe=probe,
            segment_seconds=plan["segment_seconds"],
            audio_bitrate=plan["audio_bitrate"],
            audio_filter=audio.filter if audio is not None else None,
        )
        encode_cpu, _ = _run(command, duration=probe.duration, reporter=reporter, work=work, what="the audio")
        cpu += encode_cpu
        part = measure_chunk_part(directory=output_dir / AUDIO_RENDITION_NAME, with_keyframes=False)
        (output_dir / AUDIO_RENDITION_NAME / MEDIA_PLAYLIST_NAME).unlink()
        output["audio"] = part
    renditions = plan_renditions(probe, parse_ladder(plan["ladder"]))
    top = renditions[0]
    poster = output_dir / "poster.jpg"
    try:
        result = run_ffmpeg(
            poster_command(
                ffmpeg_bin=settings.FFMPEG_BIN,
                input_path=source,
                output_path=poster,
                probe=probe,
                width=top.width,
                height=top.height,
                conversion=source_conversion(
                    probe, renditions=renditions, available=available_filters(settings.FFMPEG_BIN)
                ),
            ),
            duration=probe.duration,
            timeout=min(POSTER_TIMEOUT_S, settings.TRANSCODE_TIMEOUT_S),
            should_cancel=reporter.should_cancel,
        )
        cpu += result.cpu_seconds
    except TranscodeCancelled as exc:
        raise _LostJob(str(exc)) from exc
    except (TranscodeFailed, TranscodeTimeout) as exc:
        logger.warning("job_id=%s video_id=%s no poster: %s", claim.job_id, claim.video_id, exc)
    output["poster"] = poster.is_file() and poster.stat().st_size > 0
    output["notes"] = notes
    return _ChunkResult(output=output, cpu_seconds=cpu, log_tail=notes)


# --- Assembly ---------------------------------------------------------------------------------


def _chunks_assemble(*, claim: _Claim) -> None:
    """Write the playlists of the finished chunks and switch the video to the output (one transaction,
    as a single-process attempt does); a failure here fails (or, storage being down, retries) the attempt."""
    work = work_dir_create(job_id=claim.job_id, attempt=claim.attempt)
    started = time.monotonic()
    try:
        job = TranscodeJob.objects.get(pk=claim.job_id)
        chunks = list(TranscodeChunk.objects.filter(job=job, job_attempt=claim.attempt).order_by("index"))
        audio_chunk = next(c for c in chunks if c.kind == TranscodeChunk.Kind.AUDIO)
        video_chunks = [c for c in chunks if c.kind == TranscodeChunk.Kind.VIDEO]
        encoded = _assemble_into(job=job, audio_chunk=audio_chunk, video_chunks=video_chunks, directory=work)
        stored = save_directory(claim.prefix, work)
        stored += [(claim.prefix, sum(c.output.get("stored_bytes", 0) for c in chunks))]
        wall = (timezone.now() - job.started_at).total_seconds() if job.started_at else time.monotonic() - started
        _transcode_switch(claim=claim, encoded=encoded, stored=stored, wall_seconds=wall)
    except _LostJob as exc:
        logger.info("job_id=%s video_id=%s stopped before assembly: %s", claim.job_id, claim.video_id, exc)
        attempt_output_delete(video_id=claim.video_id, prefix=claim.prefix)
    except Exception as exc:
        logger.exception("job_id=%s video_id=%s assembly failed", claim.job_id, claim.video_id)
        _attempt_error(claim=claim, exc=exc, what="assembling the chunks failed: ")
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _assemble_into(
    *, job: TranscodeJob, audio_chunk: TranscodeChunk, video_chunks: list[TranscodeChunk], directory: Path
) -> _Encoded:
    """Write master, media, I-frame and thumbnails playlists of the chunks' output into ``directory``."""
    plan = job.plan
    probe = parse_probe(plan["probe"])
    renditions = plan_renditions(probe, parse_ladder(plan["ladder"]))
    audio_part = audio_chunk.output.get("audio")
    audio_bandwidth = None
    audio_playlist = None
    if audio_part:
        text, peak, average = assemble_audio([audio_part])
        (directory / AUDIO_RENDITION_NAME).mkdir(parents=True)
        (directory / AUDIO_RENDITION_NAME / MEDIA_PLAYLIST_NAME).write_text(text)
        audio_bandwidth = (peak, average)
        audio_playlist = f"{AUDIO_RENDITION_NAME}/{MEDIA_PLAYLIST_NAME}"
    outputs = []
    for rendition in renditions:
        assembled = assemble_rendition(
            rendition=rendition,
            parts=[c.output["tiers"][rendition.name] for c in video_chunks],
            frame_rate=probe.frame_rate,
            audio_bandwidth=audio_bandwidth,
        )
        folder = directory / rendition.name
        folder.mkdir(parents=True)
        (folder / MEDIA_PLAYLIST_NAME).write_text(assembled.media_playlist)
        if assembled.iframe_playlist:
            (folder / IFRAME_PLAYLIST_NAME).write_text(assembled.iframe_playlist)
        outputs.append(assembled.output)
    master = directory / MASTER_PLAYLIST_NAME
    master.write_text(render_master_playlist(outputs, audio_playlist=audio_playlist))
    has_thumbnails = _thumbnails_assemble(
        plan=plan, duration=probe.duration, video_chunks=video_chunks, directory=directory
    )
    log_tail = [*audio_chunk.output.get("notes", []), *_timeline(audio_chunk=audio_chunk, video_chunks=video_chunks)]
    total = sum(output.bytes for output in outputs) + (audio_part or {}).get("bytes", 0)
    return _Encoded(
        probe=probe,
        output=HlsOutput(master_playlist=master, renditions=outputs, total_bytes=total),
        has_poster=bool(audio_chunk.output.get("poster")),
        has_thumbnails=has_thumbnails,
        cpu_seconds=sum(c.cpu_seconds or 0.0 for c in [audio_chunk, *video_chunks]),
        log_tail=log_tail,
    )


def _thumbnails_assemble(
    *, plan: dict[str, Any], duration: float, video_chunks: list[TranscodeChunk], directory: Path
) -> bool:
    """One thumbnails track over every chunk's sheets; False when a chunk has none (no previews then)."""
    if not plan.get("previews") or any("preview_frames" not in c.output for c in video_chunks):
        return False
    parts = []
    for position, chunk in enumerate(video_chunks):
        previews = _chunk_previews(plan=plan, length=chunk.length_s)
        assert previews is not None
        last = position == len(video_chunks) - 1
        end = duration if last else chunk.start_s + chunk.output["video_seconds"]
        parts.append(
            thumbnail_cues(
                plan=previews,
                start=chunk.start_s,
                end=end,
                frames=chunk.output["preview_frames"],
                template=chunk_sprite_template(chunk.index),
            )
        )
    (directory / THUMBNAILS_VTT_NAME).write_text(thumbnails_vtt_join(parts), encoding="utf-8")
    return True


def _timeline(*, audio_chunk: TranscodeChunk, video_chunks: list[TranscodeChunk]) -> list[str]:
    """The job log's account of the chunks: which ran where, when and how long."""
    lines = []
    for chunk in [audio_chunk, *video_chunks]:
        what = (
            "audio and poster"
            if chunk.kind == TranscodeChunk.Kind.AUDIO
            else f"chunk {chunk.index + 1}/{len(video_chunks)} "
            f"{format_timestamp(chunk.start_s)}-{format_timestamp(chunk.start_s + chunk.output.get('video_seconds', 0))}"
        )
        lines.append(
            f"{what} on {chunk.worker}, run {chunk.attempts}: started {chunk.started_at:%H:%M:%S}, "
            f"{chunk.wall_seconds or 0:.1f} s wall, {chunk.cpu_seconds or 0:.1f} s CPU"
        )
    return lines


# --- Reaper -----------------------------------------------------------------------------------


def transcode_chunks_reap(*, now: datetime | None = None) -> dict[str, int]:
    """Requeue running chunks whose heartbeat is older than ``TRANSCODE_HEARTBEAT_STALE_S`` (their worker
    died): alone, while the chunk has attempts left (``TRANSCODE_MAX_ATTEMPTS``), else the attempt fails.
    Chunks of attempts that are over are marked cancelled. Returns ``{"chunks_requeued", "chunks_failed"}``."""
    now = now or timezone.now()
    cutoff = now - timedelta(seconds=settings.TRANSCODE_HEARTBEAT_STALE_S)
    counts = {"chunks_requeued": 0, "chunks_failed": 0}
    stale = TranscodeChunk.objects.filter(status=TranscodeChunk.Status.RUNNING, heartbeat_at__lt=cutoff)
    for chunk_id, job_id in list(stale.values_list("pk", "job_id")):
        outcome = _reap_chunk(chunk_id=chunk_id, job_id=job_id, cutoff=cutoff)
        if outcome:
            counts[outcome] += 1
    for job in TranscodeJob.objects.filter(
        chunks__status__in=[TranscodeChunk.Status.QUEUED, TranscodeChunk.Status.RUNNING]
    ).distinct():
        from_over = TranscodeChunk.objects.filter(
            job=job, status__in=[TranscodeChunk.Status.QUEUED, TranscodeChunk.Status.RUNNING]
        )
        if job.status == TranscodeJob.Status.RUNNING:
            from_over = from_over.exclude(job_attempt=job.attempts)
        from_over.update(status=TranscodeChunk.Status.CANCELLED, finished_at=now)
    if any(counts.values()):
        logger.warning("reaper: %(chunks_requeued)d stale chunks requeued, %(chunks_failed)d failed", counts)
    return counts


@transaction.atomic
def _reap_chunk(*, chunk_id: int, job_id: uuid.UUID, cutoff: datetime) -> str | None:
    job, video = transcode_lock(job_id=job_id)
    chunk = TranscodeChunk.objects.select_for_update().filter(pk=chunk_id).first()
    if job is None or video is None or chunk is None or chunk.status != TranscodeChunk.Status.RUNNING:
        return None
    if chunk.heartbeat_at is not None and chunk.heartbeat_at >= cutoff:
        return None
    if job.status != TranscodeJob.Status.RUNNING or job.attempts != chunk.job_attempt:
        chunk.status = TranscodeChunk.Status.CANCELLED
        chunk.save(update_fields=["status"])
        return None
    message = (
        f"{chunk}: the worker {chunk.worker} stopped reporting (last heartbeat "
        f"{chunk.heartbeat_at:%Y-%m-%d %H:%M:%S %Z}); it was probably killed"
    )
    if chunk.attempts - chunk.transient_failures < settings.TRANSCODE_MAX_ATTEMPTS:
        transcode_chunk_requeue(chunk=chunk, reason=message)
        return "chunks_requeued"
    chunk.status = TranscodeChunk.Status.FAILED
    chunk.error = message
    chunk.save(update_fields=["status", "error"])
    failure = failure_for("worker_lost")
    transcode_job_finish(
        job=job,
        status=TranscodeJob.Status.FAILED,
        error=f"gave up after {chunk.attempts} runs of {chunk} (TRANSCODE_MAX_ATTEMPTS): {message}",
        error_code=failure.code,
    )
    video_job_ended(video=video, failure=failure)
    prefix = job.output_prefix
    transaction.on_commit(lambda: attempt_output_delete(video_id=video.id, prefix=prefix))
    return "chunks_failed"


def transcode_chunks_dispatch_due(*, now: datetime | None = None) -> int:
    """Queue a chunk task for each queued chunk whose backoff is over, or whose task was handed out more
    than ``TRANSCODE_DISPATCH_STALE_S`` ago without any worker taking the chunk; returns how many."""
    now = now or timezone.now()
    due = _queued(now).filter(
        Q(dispatched_at__isnull=True)
        | Q(dispatched_at__lt=now - timedelta(seconds=settings.TRANSCODE_DISPATCH_STALE_S))
    )
    ids = list(due.values_list("pk", flat=True))
    if ids:
        TranscodeChunk.objects.filter(pk__in=ids).update(dispatched_at=now)
        transcode_chunks_dispatch(count=len(ids))
        logger.info("dispatch: %d queued chunks handed to the transcode cluster", len(ids))
    return len(ids)
