"""Running one transcode job end to end: claim it, encode the HLS ladder in one ffmpeg process,
upload the output to a fresh folder and switch it on the video, or record why the attempt failed."""

from __future__ import annotations

import dataclasses
import errno
import logging
import shutil
import time
import uuid
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.db import DatabaseError, transaction
from django.db.models import Sum
from django.utils import timezone

from media_library.models import Rendition, Video
from media_library.services import video_output_switch
from transcoding.costs.ledger import cost_record_transcode
from transcoding.costs.selectors import spending_allowed, transcode_ceiling_reason, transcode_running_ceiling_reason
from transcoding.ffmpeg.chunks import ChunkRange, plan_chunks
from transcoding.ffmpeg.commands import EncoderOptions, build_hls_command, poster_command
from transcoding.ffmpeg.filters import available_filters, source_conversion
from transcoding.ffmpeg.ladder import PlannedRendition, parse_bitrate, parse_ladder, plan_renditions
from transcoding.ffmpeg.loudness import (
    LoudnessFilter,
    LoudnessMeasurementError,
    loudness_filter,
    loudness_measure_command,
    parse_loudness_measurement,
)
from transcoding.ffmpeg.previews import (
    THUMBNAILS_VTT_NAME,
    PreviewPlan,
    plan_previews,
    preview_frames_cut,
    sheets_in,
    thumbnails_vtt,
)
from transcoding.ffmpeg.probe import ProbeError, ProbeResult
from transcoding.ffmpeg.process import (
    TranscodeCancelled,
    TranscodeFailed,
    TranscodeOverLimit,
    TranscodeTimeout,
    run_ffmpeg,
)
from transcoding.ffmpeg.sanity import human_duration
from transcoding.hls.playlists import MASTER_PLAYLIST_NAME, HlsOutput, rewrite_master_playlist
from transcoding.hls.ts import HlsOutputError, HlsOutputIncomplete
from transcoding.models import TranscodeChunk, TranscodeJob
from transcoding.serializers import video_representation
from transcoding.services.jobs import (
    attempt_output_delete,
    transcode_block_for_budget,
    transcode_chunks_dispatch,
    transcode_job_finish,
    transcode_lock,
    transcode_requeue,
    video_duplicates_settle,
    video_job_ended,
    video_move_to,
)
from transcoding.services.maintenance import (
    hls_folder_number,
    older_outputs_delete,
    previous_output_keep,
    transcode_work_dirs_sweep,
    work_dir_create,
)
from transcoding.services.media_files import media_file_probe_update, original_probe
from unpuzzle.failures import Failure, failure_for
from unpuzzle.storage import StoredObjectMissing, delete_prefix, is_storage_outage, open_local_copy, save_directory
from unpuzzle.webhooks.services import webhook_event_record
from unpuzzle.workers import cluster_beat

if TYPE_CHECKING:
    from django.db.models import QuerySet

logger = logging.getLogger(__name__)

# Share of the progress bar the ffmpeg encode fills; poster, measuring and upload take the rest.
ENCODE_PROGRESS_SHARE = 0.9
PROGRESS_SAVE_SECONDS = 2.0
CLUSTER_BEAT_SECONDS = 60.0
POSTER_TIMEOUT_S = 300
# The audio-only measuring pass of a 1-hour source takes about a minute of one core.
LOUDNESS_MEASURE_TIMEOUT_S = 3600


class _LostJob(Exception):
    """The job was cancelled, the video deleted, or another worker took the job over."""


class _Permanent(Exception):
    """A failure that another attempt cannot fix: the message (raw) is for staff, ``failure`` for the owner."""

    def __init__(self, message: str, *, failure: Failure, log_tail: list[str] | None = None) -> None:
        super().__init__(message)
        self.failure = failure
        self.log_tail = log_tail or []


@dataclass(frozen=True)
class _Claim:
    """What a worker holds after starting a job: the attempt it owns and where it writes."""

    job_id: uuid.UUID
    video_id: uuid.UUID
    attempt: int
    prefix: str
    storage_key: str
    media_file_id: uuid.UUID
    needs_probe: bool


@transaction.atomic
def _transcode_claim(*, job_id: uuid.UUID | str) -> _Claim | None:
    """Take a queued job: budget gate, attempts+1, running, a fresh output folder. None = nothing to do."""
    job, video = transcode_lock(job_id=job_id)
    if job is None or video is None or job.status != TranscodeJob.Status.QUEUED:
        logger.info("job_id=%s not queued (%s): nothing to run", job_id, job.status if job else "gone")
        return None
    if job.not_before is not None and job.not_before > timezone.now():
        # An older task of the job, run early: the reaper dispatches it when the backoff is over.
        logger.info("job_id=%s waits until %s before its next attempt", job_id, job.not_before)
        return None

    decision = spending_allowed(owner=video.owner)
    if not decision.allowed:
        transcode_block_for_budget(job=job, video=video, reason=decision.reason)
        return None

    now = timezone.now()
    job.transition(TranscodeJob.Status.RUNNING)
    job.attempts += 1
    job.started_at = now
    job.heartbeat_at = now
    job.progress = 0
    job.not_before = None
    job.chunk_count = 0
    job.plan = {}
    job.save(
        update_fields=[
            "status",
            "attempts",
            "started_at",
            "heartbeat_at",
            "progress",
            "not_before",
            "chunk_count",
            "plan",
            "updated_at",
        ]
    )
    # Folder numbers only grow: every attempt of every job of this video gets its own.
    attempts_total = TranscodeJob.objects.filter(video=video).aggregate(total=Sum("attempts"))["total"] or 0
    folder = max(attempts_total, hls_folder_number(video.hls_master_key) + 1)
    job.output_prefix = f"videos/{video.id}/hls/{folder}/"
    job.save(update_fields=["output_prefix", "updated_at"])
    video_move_to(video=video, status=Video.Status.PROCESSING)
    video.status_reason = ""
    video.status_code = ""
    video.save(update_fields=["status", "status_reason", "status_code", "updated_at"])
    media_file = video.media_file
    if media_file is None:
        raise ValueError(f"video {video.id} has no original file to transcode")
    logger.info(
        "job_id=%s video_id=%s attempt %d started, output %s", job.id, video.id, job.attempts, job.output_prefix
    )
    return _Claim(
        job_id=job.id,
        video_id=video.id,
        attempt=job.attempts,
        prefix=job.output_prefix,
        storage_key=media_file.storage_key,
        media_file_id=media_file.id,
        needs_probe=media_file.duration is None,
    )


class _Reporter:
    """Progress and heartbeat for one attempt: one UPDATE every couple of seconds that also
    tells whether the attempt still owns the job (cancelled, deleted or taken over -> stop)."""

    def __init__(self, claim: _Claim) -> None:
        self.claim = claim
        self.percent = 0.0
        self.last_save = 0.0
        self.last_cluster_beat = -CLUSTER_BEAT_SECONDS

    def _mine(self) -> QuerySet[TranscodeJob]:
        return TranscodeJob.objects.filter(
            pk=self.claim.job_id, status=TranscodeJob.Status.RUNNING, attempts=self.claim.attempt
        )

    def save(self, percent: float | None = None) -> bool:
        """Store progress and heartbeat now; False when the attempt no longer owns the job."""
        if percent is not None:
            self.percent = max(self.percent, percent)
        self.last_save = time.monotonic()
        if self.last_save - self.last_cluster_beat >= CLUSTER_BEAT_SECONDS:
            # A cluster whose workers all transcode for hours is alive all the same (/healthz).
            self.last_cluster_beat = self.last_save
            cluster_beat()
        return self._store(min(99, int(self.percent)))

    def _store(self, progress: int) -> bool:
        return self._mine().update(progress=progress, heartbeat_at=timezone.now()) == 1

    def on_encode_progress(self, percent: float) -> None:
        self.percent = max(self.percent, percent * ENCODE_PROGRESS_SHARE)

    def should_cancel(self) -> bool:
        if time.monotonic() - self.last_save < PROGRESS_SAVE_SECONDS:
            return False
        return not self.save()

    def on_output_saved(self, key: str, size: int) -> None:
        """Heartbeat while outputs upload; raise when the job was cancelled meanwhile."""
        if self.should_cancel():
            raise _LostJob(f"the job was cancelled or taken over while its output was uploading ({key})")

    def check(self, percent: float) -> None:
        """Save a milestone; raise when the job was cancelled meanwhile."""
        if not self.save(percent):
            raise _LostJob("the job was cancelled or taken over while it ran")


def encoder_options() -> EncoderOptions:
    """Production's encoder options; ``TRANSCODE_THREADS`` sets x264's threads (0: its own choice)."""
    return EncoderOptions(x264_threads=settings.TRANSCODE_THREADS or None)


def _keyframe_interval(segment_seconds: int) -> float:
    # Segments must start with an IDR frame: 2 s keyframes when they divide the segment, else 1 s.
    return 2.0 if segment_seconds % 2 == 0 else 1.0


@dataclass
class _Encoded:
    probe: ProbeResult
    output: HlsOutput
    has_poster: bool
    has_thumbnails: bool
    cpu_seconds: float
    log_tail: list[str]


@dataclass(frozen=True)
class _Chunked:
    """A long source's plan: its chunks are encoded in parallel (``transcoding.services.chunks``)."""

    probe: ProbeResult
    renditions: list[PlannedRendition]
    chunks: list[ChunkRange]


def _encode(*, claim: _Claim, source: Path, work: Path, reporter: _Reporter) -> _Encoded | _Chunked:
    """Probe, encode the ladder in one ffmpeg process, write the poster and the measured master.

    Nothing is encoded for a source outside the limits (``original_probe``) or whose estimate is
    over ``TRANSCODE_MAX_VIDEO_USD``; an encode whose output and CPU pass the ceiling is stopped.
    A source longer than ``TRANSCODE_CHUNK_MIN_SECONDS`` is not encoded here: its chunked plan is
    returned instead.
    """
    try:
        probe = original_probe(path=source)
    except ProbeError as exc:
        raise _Permanent(
            f"the original cannot be transcoded: {exc}", failure=failure_for(exc.reason, detail=str(exc))
        ) from exc
    if claim.needs_probe:
        media_file_probe_update(media_file_id=claim.media_file_id, probe=probe)
    over_ceiling = transcode_ceiling_reason(probe=probe)
    if over_ceiling:
        raise _Permanent(f"not started: {over_ceiling}", failure=failure_for("over_cost_ceiling", detail=over_ceiling))
    renditions = plan_renditions(probe, parse_ladder(settings.HLS_LADDER))
    chunks = plan_chunks(
        duration=probe.duration,
        chunk_seconds=settings.TRANSCODE_CHUNK_SECONDS,
        min_seconds=settings.TRANSCODE_CHUNK_MIN_SECONDS,
        segment_seconds=settings.HLS_SEGMENT_SECONDS,
    )
    if chunks is not None:
        return _Chunked(probe=probe, renditions=renditions, chunks=chunks)

    def ceiling(encoded_s: float, cpu_seconds: float) -> str:
        return transcode_running_ceiling_reason(
            declared_s=probe.duration, encoded_s=encoded_s, renditions=len(renditions), cpu_seconds=cpu_seconds
        )

    logger.info(
        "job_id=%s video_id=%s source %dx%d %.1fs -> %s",
        claim.job_id,
        claim.video_id,
        probe.width,
        probe.height,
        probe.duration,
        ", ".join(f"{r.name} {r.width}x{r.height}" for r in renditions),
    )
    conversion = source_conversion(probe, renditions=renditions, available=available_filters(settings.FFMPEG_BIN))
    for note in conversion.notes:
        log = logger.warning if note in conversion.warnings else logger.info
        log("job_id=%s video_id=%s %s", claim.job_id, claim.video_id, note)
    output_dir = work / "hls"
    output_dir.mkdir()
    notes = list(conversion.notes)
    audio, measure_cpu = _loudness_measure(claim=claim, source=source, probe=probe, reporter=reporter)
    if audio is not None:
        notes.append(audio.note)
        logger.info("job_id=%s video_id=%s %s", claim.job_id, claim.video_id, audio.note)
    previews = _preview_plan(probe=probe, renditions=renditions)
    command = build_hls_command(
        ffmpeg_bin=settings.FFMPEG_BIN,
        input_path=source,
        output_dir=output_dir,
        probe=probe,
        renditions=renditions,
        segment_seconds=settings.HLS_SEGMENT_SECONDS,
        keyframe_interval=_keyframe_interval(settings.HLS_SEGMENT_SECONDS),
        audio_bitrate=parse_bitrate(settings.HLS_AUDIO_BITRATE),
        crf=settings.HLS_CRF,
        preset=settings.HLS_X264_PRESET,
        options=encoder_options(),
        conversion=conversion,
        previews=previews,
        audio_filter=audio.filter if audio is not None else None,
    )
    try:
        result = run_ffmpeg(
            command,
            duration=probe.duration,
            timeout=settings.TRANSCODE_TIMEOUT_S,
            on_progress=reporter.on_encode_progress,
            should_cancel=reporter.should_cancel,
            limit=ceiling,
        )
    except TranscodeCancelled as exc:
        raise _LostJob(str(exc)) from exc
    except TranscodeOverLimit as exc:
        raise _Permanent(
            str(exc), failure=failure_for("over_cost_ceiling", detail=str(exc)), log_tail=exc.log_tail
        ) from exc
    except TranscodeTimeout as exc:
        raise _Permanent(
            f"encoding took longer than TRANSCODE_TIMEOUT_S={settings.TRANSCODE_TIMEOUT_S} s and was stopped",
            failure=failure_for("transcode_timeout", detail=human_duration(settings.TRANSCODE_TIMEOUT_S)),
            log_tail=exc.log_tail,
        ) from exc
    except TranscodeFailed as exc:
        _raise_if_writes_failed(work=work, log_tail=exc.log_tail, cause=exc)
        raise _Permanent(
            f"ffmpeg could not decode or encode the original: {exc}",
            failure=failure_for("encode_failed"),
            log_tail=[*notes, *exc.log_tail],
        ) from exc
    reporter.check(ENCODE_PROGRESS_SHARE * 100)

    top = renditions[0]
    poster = output_dir / "poster.jpg"
    cpu = result.cpu_seconds + measure_cpu
    try:
        poster_result = run_ffmpeg(
            poster_command(
                ffmpeg_bin=settings.FFMPEG_BIN,
                input_path=source,
                output_path=poster,
                probe=probe,
                width=top.width,
                height=top.height,
                conversion=conversion,
            ),
            duration=probe.duration,
            timeout=min(POSTER_TIMEOUT_S, settings.TRANSCODE_TIMEOUT_S),
            should_cancel=reporter.should_cancel,
        )
        cpu += poster_result.cpu_seconds
    except TranscodeCancelled as exc:
        raise _LostJob(str(exc)) from exc
    except (TranscodeFailed, TranscodeTimeout) as exc:
        # The stream plays without a poster; players show the first frame instead.
        logger.warning("job_id=%s video_id=%s no poster: %s", claim.job_id, claim.video_id, exc)
    has_poster = poster.is_file() and poster.stat().st_size > 0
    try:
        output = rewrite_master_playlist(output_dir=output_dir, renditions=renditions, probe=probe)
    except HlsOutputError as exc:
        if isinstance(exc, HlsOutputIncomplete):
            raise OSError(
                errno.ENOSPC,
                f"ffmpeg's output is incomplete ({exc}); its writes failed, the work dir's disk may be full",
            ) from exc
        _raise_if_writes_failed(work=work, log_tail=result.log_tail, cause=exc)
        raise _Permanent(
            f"ffmpeg's output is unusable: {exc}", failure=failure_for("encode_failed"), log_tail=result.log_tail
        ) from exc
    has_thumbnails = _thumbnails_write(
        claim=claim,
        output_dir=output_dir,
        plan=previews,
        duration=probe.duration,
        video_seconds=sum(output.renditions[0].segment_durations),
        frame_rate=probe.frame_rate,
    )
    # what was done to the source heads the job's log, above ffmpeg's own lines
    return _Encoded(
        probe=probe,
        output=output,
        has_poster=has_poster,
        has_thumbnails=has_thumbnails,
        cpu_seconds=cpu,
        log_tail=[*notes, *result.log_tail],
    )


def _loudness_measure(
    *, claim: _Claim, source: Path | str, probe: ProbeResult, reporter: _Reporter
) -> tuple[LoudnessFilter | None, float]:
    """The encode's loudness filter from an audio-only measuring pass, and the pass's CPU seconds.

    None when ``LOUDNESS_NORMALIZE`` is off, the source has no audio or it is silent; a pass
    that fails or times out leaves the audio as it is (logged) rather than failing the job.
    """
    if not settings.LOUDNESS_NORMALIZE or not probe.has_audio or probe.audio_stream_index is None:
        return None, 0.0
    command = loudness_measure_command(
        ffmpeg_bin=settings.FFMPEG_BIN,
        input_path=source,
        audio_stream_index=probe.audio_stream_index,
        target_lufs=settings.LOUDNESS_TARGET_LUFS,
    )
    try:
        result = run_ffmpeg(
            command,
            duration=probe.duration,
            timeout=min(LOUDNESS_MEASURE_TIMEOUT_S, settings.TRANSCODE_TIMEOUT_S),
            should_cancel=reporter.should_cancel,
            log_tail_lines=200,
        )
    except TranscodeCancelled as exc:
        raise _LostJob(str(exc)) from exc
    except (TranscodeFailed, TranscodeTimeout) as exc:
        logger.warning("job_id=%s video_id=%s loudness not normalised: %s", claim.job_id, claim.video_id, exc)
        return None, exc.cpu_seconds
    try:
        measurement = parse_loudness_measurement(result.log_tail)
    except LoudnessMeasurementError as exc:
        logger.warning("job_id=%s video_id=%s loudness not normalised: %s", claim.job_id, claim.video_id, exc)
        return None, result.cpu_seconds
    return loudness_filter(measurement, target_lufs=settings.LOUDNESS_TARGET_LUFS), result.cpu_seconds


def _preview_plan(*, probe: ProbeResult, renditions: list[PlannedRendition]) -> PreviewPlan | None:
    """How the scrubbing previews are cut (``PREVIEW_THUMBNAILS``, ``PREVIEW_INTERVAL_S``), None when off."""
    if not settings.PREVIEW_THUMBNAILS:
        return None
    top = renditions[0]
    return plan_previews(
        duration=probe.duration, width=top.width, height=top.height, interval=settings.PREVIEW_INTERVAL_S
    )


def _thumbnails_write(
    *,
    claim: _Claim,
    output_dir: Path,
    plan: PreviewPlan | None,
    duration: float,
    video_seconds: float,
    frame_rate: float,
) -> bool:
    """Write the thumbnails WebVTT track for the frames ffmpeg cut from ``video_seconds`` of video
    onto the sheets it wrote; False (logged) when there are none."""
    if plan is None:
        return False
    sheets = sheets_in(output_dir)
    if sheets == 0:
        # The video plays without scrubbing previews.
        logger.warning("job_id=%s video_id=%s ffmpeg wrote no preview sheet", claim.job_id, claim.video_id)
        return False
    frames = preview_frames_cut(plan=plan, video_seconds=video_seconds, frame_rate=frame_rate, sheets_written=sheets)
    text = thumbnails_vtt(plan=plan, duration=duration, frames=frames)
    (output_dir / THUMBNAILS_VTT_NAME).write_text(text, encoding="utf-8")
    return True


_WRITE_FAILURES = ("No space left on device", "Disk quota exceeded")


def _raise_if_writes_failed(*, work: Path, log_tail: list[str], cause: Exception) -> None:
    """Raise ENOSPC (an outage: retried with backoff) when ffmpeg's failure came from its writes, not
    the source: its log says so, or the work dir's filesystem is full. ffmpeg 5 may even exit 0 then."""
    said = next((line for line in log_tail for text in _WRITE_FAILURES if text in line), None)
    free = shutil.disk_usage(work).free
    if said is not None or free < 1024 * 1024:
        raise OSError(
            errno.ENOSPC, f"ffmpeg could not write its output ({said or f'{free} bytes free in the work dir'})"
        ) from cause


@transaction.atomic
def _transcode_switch(*, claim: _Claim, encoded: _Encoded, stored: list[tuple[str, int]], wall_seconds: float) -> None:
    """Make the new output the video's, in one transaction.

    The replaced output is kept for ``HLS_PREVIOUS_OUTPUT_GRACE_S`` (a ``PreviousHlsOutput``
    row; 0 deletes it at once); other lower-numbered folders go after commit.
    """
    job, video = transcode_lock(job_id=claim.job_id)
    if job is None or video is None or job.status != TranscodeJob.Status.RUNNING or job.attempts != claim.attempt:
        raise _LostJob("the job was cancelled, its video deleted, or another worker took it over")
    probe, output = encoded.probe, encoded.output
    now = timezone.now()
    previous_output_keep(video=video, new_folder=hls_folder_number(claim.prefix), now=now)
    # Its own output now: a duplicate no longer shares the other video's.
    video_output_switch(
        video=video,
        master_key=claim.prefix + MASTER_PLAYLIST_NAME,
        poster_key=claim.prefix + "poster.jpg" if encoded.has_poster else "",
        thumbnails_key=claim.prefix + THUMBNAILS_VTT_NAME if encoded.has_thumbnails else "",
        duration=probe.duration,
        renditions=[
            Rendition(
                name=r.name,
                width=r.width,
                height=r.height,
                bandwidth=r.bandwidth,
                average_bandwidth=r.average_bandwidth,
                codecs=r.codecs,
                playlist_key=claim.prefix + r.playlist,
                bytes=r.bytes,
                segment_count=len(r.segment_durations),
            )
            for r in output.renditions
        ],
        now=now,
    )
    video_duplicates_settle(video=video)

    transcode_job_finish(
        job=job,
        status=TranscodeJob.Status.SUCCEEDED,
        error="",
        now=now,
        progress=100,
        heartbeat_at=now,
        log_tail="\n".join(encoded.log_tail),
        wall_seconds=round(wall_seconds, 3),
        cpu_seconds=round(encoded.cpu_seconds, 3),
        output_bytes=sum(size for _, size in stored),
    )
    output_minutes = Decimal(str(probe.duration)) / 60 * len(output.renditions)
    cost_record_transcode(job=job, output_minutes=output_minutes, cpu_seconds=encoded.cpu_seconds)
    webhook_event_record(type="video.ready", data=video_representation(video=video))
    # robust: a storage error while cleaning up must not reach transcode_run, whose error path
    # would delete this attempt's folder, now the video's output.
    transaction.on_commit(
        lambda: older_outputs_delete(video_id=video.id, keep=hls_folder_number(video.hls_master_key)), robust=True
    )
    logger.info(
        "job_id=%s video_id=%s ready: %d renditions, %d bytes, %.1f s wall, %.1f s CPU",
        job.id,
        video.id,
        len(output.renditions),
        job.output_bytes,
        wall_seconds,
        encoded.cpu_seconds,
    )


def _is_transient(exc: BaseException) -> bool:
    """Failures another attempt can fix after a wait: storage and network errors, a database hiccup."""
    return isinstance(exc, DatabaseError) or is_storage_outage(exc)


def transient_backoff_s(failures: int) -> int:
    """Wait before the attempt after the ``failures``-th transient failure: doubling from
    ``TRANSCODE_RETRY_BACKOFF_S``, capped at ``TRANSCODE_RETRY_BACKOFF_MAX_S``."""
    base, cap = settings.TRANSCODE_RETRY_BACKOFF_S, settings.TRANSCODE_RETRY_BACKOFF_MAX_S
    return int(min(cap, base * 2 ** min(max(failures - 1, 0), 30)))


@transaction.atomic
def _transcode_attempt_failed(
    *, claim: _Claim, message: str, failure: Failure, log_tail: list[str], transient: bool
) -> None:
    """Record a failed attempt: the raw ``message`` on the job (staff), ``failure`` on the video (owner).

    A transient failure (storage, network, database) is retried after a growing backoff, up
    to ``TRANSCODE_TRANSIENT_RETRIES`` times, without using up ``TRANSCODE_MAX_ATTEMPTS``;
    any other failure fails the job and the video with the reason.
    """
    job, video = transcode_lock(job_id=claim.job_id)
    if job is None or video is None or job.status != TranscodeJob.Status.RUNNING or job.attempts != claim.attempt:
        return
    if transient and job.transient_failures < settings.TRANSCODE_TRANSIENT_RETRIES:
        job.transient_failures += 1
        job.error = message
        job.log_tail = "\n".join(log_tail)
        wait = transient_backoff_s(job.transient_failures)
        transcode_requeue(
            job=job,
            video=video,
            reason=f"attempt {job.attempts} failed, retrying in {wait} s: {message}",
            not_before=timezone.now() + timedelta(seconds=wait),
        )
        return
    if transient:
        job.transient_failures += 1
        message = (
            f"gave up after {job.transient_failures} attempts ended by storage, network or database errors "
            f"(TRANSCODE_TRANSIENT_RETRIES): {message}"
        )
    transcode_job_finish(
        job=job,
        status=TranscodeJob.Status.FAILED,
        error=message,
        error_code=failure.code,
        log_tail="\n".join(log_tail),
        transient_failures=job.transient_failures,
    )
    video_job_ended(video=video, failure=failure)
    logger.warning("job_id=%s video_id=%s failed: %s", job.id, video.id, message)


def chunk_plan_data(*, plan: _Chunked, claim: _Claim) -> dict[str, Any]:
    """What every chunk of the attempt encodes with, fixed when the attempt starts (so a chunk run on
    another machine, or after a settings change, makes the same ladder): stored on the job."""
    previews = _preview_plan(probe=plan.probe, renditions=plan.renditions)
    return {
        "storage_key": claim.storage_key,
        "probe": plan.probe.raw,
        "ladder": settings.HLS_LADDER,
        "segment_seconds": settings.HLS_SEGMENT_SECONDS,
        "audio_bitrate": parse_bitrate(settings.HLS_AUDIO_BITRATE),
        "crf": settings.HLS_CRF,
        "preset": settings.HLS_X264_PRESET,
        "previews": dataclasses.asdict(previews) if previews is not None else None,
    }


@transaction.atomic
def _chunks_create(*, claim: _Claim, plan: _Chunked) -> None:
    """Write the attempt's chunks (the audio chunk first, then the video ones) and queue a chunk task
    for each; the job stays running until the last chunk assembles the output."""
    job, video = transcode_lock(job_id=claim.job_id)
    if job is None or video is None or job.status != TranscodeJob.Status.RUNNING or job.attempts != claim.attempt:
        raise _LostJob("the job was cancelled, its video deleted, or another worker took it over")
    job.chunk_count = len(plan.chunks)
    job.plan = chunk_plan_data(plan=plan, claim=claim)
    job.save(update_fields=["chunk_count", "plan", "updated_at"])
    rows = [
        TranscodeChunk(
            job=job,
            job_attempt=claim.attempt,
            kind=TranscodeChunk.Kind.AUDIO,
            index=0,
            start_s=0.0,
            length_s=plan.probe.duration,
        )
    ]
    rows += [
        TranscodeChunk(job=job, job_attempt=claim.attempt, index=c.index, start_s=c.start, length_s=c.length)
        for c in plan.chunks
    ]
    now = timezone.now()
    for row in rows:
        row.dispatched_at = now
    TranscodeChunk.objects.bulk_create(rows)
    # this worker runs one of them itself: one task fewer
    transaction.on_commit(lambda: transcode_chunks_dispatch(count=len(rows) - 1))
    logger.info(
        "job_id=%s video_id=%s %.1f s cut into %d chunks of %d s, encoded in parallel",
        claim.job_id,
        claim.video_id,
        plan.probe.duration,
        len(plan.chunks),
        settings.TRANSCODE_CHUNK_SECONDS,
    )


def transcode_run(*, job_id: uuid.UUID | str) -> None:
    """Run one queued transcode job to the end (the django-q2 task calls this).

    Re-runs are no-ops (only a ``queued`` job starts). The budget gate is asked first; a
    stopped budget cancels the job and blocks the video. The attempt is marked running and
    committed, then the original is copied to a temp dir, probed and encoded by one ffmpeg
    process (progress and heartbeat every ~2 s; ffmpeg is killed when the job is cancelled
    or the video deleted), uploaded to a fresh ``videos/<id>/hls/<n>/`` and switched on
    the video in one transaction. A failed attempt leaves no objects (or, storage being down,
    leaves them to the reaper's sweep): transient errors (storage, network, database) requeue
    the job with a growing backoff (``TRANSCODE_TRANSIENT_RETRIES``); a file that cannot be
    decoded fails the job and the video with the reason.
    """
    claim = _transcode_claim(job_id=job_id)
    if claim is None:
        return
    started = time.monotonic()
    reporter = _Reporter(claim)
    # Leftovers of attempts that died on this machine go before this one adds its own copy.
    transcode_work_dirs_sweep()
    work = work_dir_create(job_id=claim.job_id, attempt=claim.attempt)
    try:
        with open_local_copy(claim.storage_key, directory=work) as source:
            encoded = _encode(claim=claim, source=source, work=work, reporter=reporter)
        if isinstance(encoded, _Chunked):
            # The workers of the transcode cluster take it from here, this one included (tasks.transcode_video).
            _chunks_create(claim=claim, plan=encoded)
            return
        reporter.check(95)
        # A folder number can only hold leftovers of a lost attempt; start it empty.
        delete_prefix(claim.prefix)
        # Uploading a long ladder takes a while: keep the heartbeat going so the reaper leaves it alone.
        stored = save_directory(claim.prefix, work / "hls", on_saved=reporter.on_output_saved)
        _transcode_switch(claim=claim, encoded=encoded, stored=stored, wall_seconds=time.monotonic() - started)
    except _LostJob as exc:
        logger.info("job_id=%s video_id=%s stopped: %s", claim.job_id, claim.video_id, exc)
        attempt_output_delete(video_id=claim.video_id, prefix=claim.prefix)
    except (_Permanent, StoredObjectMissing) as exc:
        _attempt_failed_for_good(claim=claim, exc=exc)
    except Exception as exc:
        logger.exception("job_id=%s video_id=%s attempt %d failed", claim.job_id, claim.video_id, claim.attempt)
        _attempt_error(claim=claim, exc=exc)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _attempt_failed_for_good(*, claim: _Claim, exc: _Permanent | StoredObjectMissing, what: str = "") -> None:
    """End an attempt that another one cannot mend (the file cannot be transcoded, or the original is
    gone from storage): its folder goes, the job and the video fail with the reason."""
    attempt_output_delete(video_id=claim.video_id, prefix=claim.prefix)
    if isinstance(exc, _Permanent):
        message, failure, log_tail = f"{what}{exc}", exc.failure, exc.log_tail
    else:
        message, failure, log_tail = f"the original is missing from storage: {exc}", failure_for("original_missing"), []
    _transcode_attempt_failed(claim=claim, message=message, failure=failure, log_tail=log_tail, transient=False)


def _attempt_error(*, claim: _Claim, exc: Exception, what: str = "") -> None:
    """End an attempt an unexpected error stopped: its folder goes; storage, network and database
    errors are retried after a backoff, anything else fails the job (``server_error``)."""
    attempt_output_delete(video_id=claim.video_id, prefix=claim.prefix)
    _transcode_attempt_failed(
        claim=claim,
        message=f"{what}{type(exc).__name__}: {exc}",
        failure=failure_for("server_error"),
        log_tail=[],
        transient=_is_transient(exc),
    )
