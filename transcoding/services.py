"""Writes for transcoding: queueing, running, cancelling and reaping HLS transcode jobs,
and deleting the HLS folders re-transcodes replaced once their grace period is over."""
from __future__ import annotations

import logging
import re
import shutil
import tempfile
import time
import uuid
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

from botocore.exceptions import BotoCoreError, ClientError
from django.conf import settings
from django.db import DatabaseError, transaction
from django.db.models import Q, Sum
from django.utils import timezone
from django_q.tasks import async_task

from media_library.models import MediaFile, PreviousHlsOutput, Rendition, Video
from media_library.selectors import previous_output_grace_cutoff
from transcoding import ffmpeg
from transcoding.costs import cost_record_transcode
from transcoding.models import TranscodeJob
from transcoding.selectors import spending_allowed
from unpuzzle.exceptions import NotFound
from unpuzzle.storage import delete_prefix, iter_objects, open_local_copy, save_directory

logger = logging.getLogger(__name__)

TRANSCODE_TASK = "transcoding.tasks.transcode_video"


def _dispatch(job_id) -> None:
    # Its own cluster: hours-long transcodes never hold up the short tasks, and keep their long timeout.
    task_id = async_task(
        TRANSCODE_TASK, str(job_id), task_name=f"transcode-{job_id}", group="transcode", cluster=settings.TRANSCODE_CLUSTER
    )
    TranscodeJob.objects.filter(pk=job_id).update(task_id=str(task_id or ""))


@transaction.atomic
def transcode_enqueue(*, video: Video, requested_by=None) -> TranscodeJob | None:
    """Queue ``video`` for HLS transcoding; the one entry point uploads and admin actions call.

    Idempotent: a video with a queued or running job gets that job back. When spending is
    not allowed (kill switch, budget) the video becomes ``blocked`` with the reason and
    nothing is queued; releasing the switch calls this again.
    """
    video = Video.objects.select_for_update().get(pk=video.pk)
    active = video.jobs.filter(status__in=TranscodeJob.ACTIVE_STATUSES).first()
    if active is not None:
        return active
    if video.media_file_id is None:
        raise ValueError(f"video {video.id} has no original file to transcode")

    decision = spending_allowed(owner=video.owner)
    if not decision.allowed:
        if video.status != Video.Status.BLOCKED:
            video.transition(Video.Status.BLOCKED)
        video.status_reason = decision.reason
        video.save(update_fields=["status", "status_reason", "updated_at"])
        logger.info("video_id=%s blocked: %s", video.id, decision.reason)
        return None

    video.transition(Video.Status.QUEUED)
    video.status_reason = ""
    video.save(update_fields=["status", "status_reason", "updated_at"])
    job = TranscodeJob.objects.create(video=video, requested_by=requested_by)
    transaction.on_commit(lambda: _dispatch(job.id))
    logger.info("video_id=%s queued as job_id=%s", video.id, job.id)
    return job


# --- Running a job --------------------------------------------------------------------

# Share of the progress bar the ffmpeg encode fills; poster, measuring and upload take the rest.
ENCODE_PROGRESS_SHARE = 0.9
PROGRESS_SAVE_SECONDS = 2.0
WORK_DIR_PREFIX = "unpuzzle-transcode-"
WORK_DIR_GRACE_S = 600
_WORK_DIR_RE = re.compile(rf"^{WORK_DIR_PREFIX}(?P<job>[0-9a-f-]{{36}})-a(?P<attempt>\d+)-")
POSTER_TIMEOUT_S = 300


class _LostJob(Exception):
    """The job was cancelled, the video deleted, or another worker took the job over."""


class _Permanent(Exception):
    """A failure that another attempt cannot fix; the message is shown to people."""

    def __init__(self, message: str, *, log_tail: list[str] | None = None):
        super().__init__(message)
        self.log_tail = log_tail or []


@dataclass(frozen=True)
class _Claim:
    """What a worker holds after starting a job: the attempt it owns and where it writes."""

    job_id: object
    video_id: object
    attempt: int
    prefix: str
    storage_key: str
    media_file_id: object
    needs_probe: bool
    owner_name: str


def _hls_folder_number(key: str) -> int:
    """The attempt number in ``videos/<id>/hls/<n>/master.m3u8`` (or the folder ``…/<n>/``); 0 when there is none."""
    parts = key.split("/")
    return int(parts[3]) if len(parts) > 4 and parts[2] == "hls" and parts[3].isdigit() else 0


def _video_to(video: Video, status: str) -> None:
    """Move a video to ``status``, through ``queued`` when there is no direct edge (failed -> processing)."""
    if video.status == status:
        return
    if status not in Video.TRANSITIONS[Video.Status(video.status)] and Video.Status.QUEUED in Video.TRANSITIONS[Video.Status(video.status)]:
        video.transition(Video.Status.QUEUED)
    video.transition(status)


def _video_end(video: Video, reason: str) -> None:
    """Leave a video whose job ended without output: back to its previous output if it has one, else failed."""
    if video.hls_master_key and video.status in (Video.Status.QUEUED, Video.Status.PROCESSING):
        video.transition(Video.Status.READY)
        video.status_reason = f"{reason} (the previous output is still served)"
    else:
        _video_to(video, Video.Status.FAILED)
        video.status_reason = reason
    video.save(update_fields=["status", "status_reason", "updated_at"])


def _lock(job_id) -> tuple[TranscodeJob | None, Video | None]:
    """Lock the video, then its job (the order every writer uses, so no deadlock)."""
    video_id = TranscodeJob.objects.filter(pk=job_id).values_list("video_id", flat=True).first()
    if video_id is None:
        return None, None
    video = Video.objects.select_for_update().filter(pk=video_id).first()
    job = TranscodeJob.objects.select_for_update().filter(pk=job_id).first()
    return job, video


@transaction.atomic
def _transcode_claim(*, job_id) -> _Claim | None:
    """Take a queued job: budget gate, attempts+1, running, a fresh output folder. None = nothing to do."""
    job, video = _lock(job_id)
    if job is None or video is None or job.status != TranscodeJob.Status.QUEUED:
        logger.info("job_id=%s not queued (%s): nothing to run", job_id, job.status if job else "gone")
        return None

    decision = spending_allowed(owner=video.owner)
    if not decision.allowed:
        job.transition(TranscodeJob.Status.CANCELLED)
        job.error = f"not started, spending is stopped: {decision.reason}"
        job.finished_at = timezone.now()
        job.save(update_fields=["status", "error", "finished_at", "updated_at"])
        _video_to(video, Video.Status.BLOCKED)
        video.status_reason = decision.reason
        video.save(update_fields=["status", "status_reason", "updated_at"])
        logger.info("job_id=%s video_id=%s blocked before start: %s", job.id, video.id, decision.reason)
        return None

    now = timezone.now()
    job.transition(TranscodeJob.Status.RUNNING)
    job.attempts += 1
    job.started_at = now
    job.heartbeat_at = now
    job.progress = 0
    job.save(update_fields=["status", "attempts", "started_at", "heartbeat_at", "progress", "updated_at"])
    # Folder numbers only grow: every attempt of every job of this video gets its own.
    attempts_total = TranscodeJob.objects.filter(video=video).aggregate(total=Sum("attempts"))["total"] or 0
    folder = max(attempts_total, _hls_folder_number(video.hls_master_key) + 1)
    job.output_prefix = f"videos/{video.id}/hls/{folder}/"
    job.save(update_fields=["output_prefix", "updated_at"])
    _video_to(video, Video.Status.PROCESSING)
    video.status_reason = ""
    video.save(update_fields=["status", "status_reason", "updated_at"])
    media_file = video.media_file
    logger.info("job_id=%s video_id=%s attempt %d started, output %s", job.id, video.id, job.attempts, job.output_prefix)
    return _Claim(
        job_id=job.id, video_id=video.id, attempt=job.attempts, prefix=job.output_prefix,
        storage_key=media_file.storage_key, media_file_id=media_file.id, needs_probe=media_file.duration is None,
        owner_name=video.owner.get_username(),
    )


class _Reporter:
    """Progress and heartbeat for one attempt: one UPDATE every couple of seconds that also
    tells whether the attempt still owns the job (cancelled, deleted or taken over -> stop)."""

    def __init__(self, claim: _Claim):
        self.claim = claim
        self.percent = 0.0
        self.last_save = 0.0

    def _mine(self):
        return TranscodeJob.objects.filter(pk=self.claim.job_id, status=TranscodeJob.Status.RUNNING, attempts=self.claim.attempt)

    def save(self, percent: float | None = None) -> bool:
        """Store progress and heartbeat now; False when the attempt no longer owns the job."""
        if percent is not None:
            self.percent = max(self.percent, percent)
        self.last_save = time.monotonic()
        return self._mine().update(progress=min(99, int(self.percent)), heartbeat_at=timezone.now()) == 1

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


def _keyframe_interval(segment_seconds: int) -> float:
    # Segments must start with an IDR frame: 2 s keyframes when they divide the segment, else 1 s.
    return 2.0 if segment_seconds % 2 == 0 else 1.0


def _probe_store(*, media_file_id, probe: ffmpeg.ProbeResult) -> None:
    MediaFile.objects.filter(pk=media_file_id).update(
        duration=probe.duration, width=probe.width, height=probe.height, video_codec=probe.video_codec,
        video_bitrate=probe.video_bitrate, bitrate=probe.bitrate, frame_rate=probe.frame_rate,
        audio_codec=probe.audio_codec or "", has_audio=probe.has_audio, probe=probe.raw, updated_at=timezone.now(),
    )


@dataclass
class _Encoded:
    probe: ffmpeg.ProbeResult
    output: ffmpeg.HlsOutput
    has_poster: bool
    cpu_seconds: float
    log_tail: list[str]


def _encode(*, claim: _Claim, source: Path, work: Path, reporter: _Reporter) -> _Encoded:
    """Probe, encode the ladder in one ffmpeg process, write the poster and the measured master."""
    try:
        probe = ffmpeg.probe_file(source, ffprobe_bin=settings.FFPROBE_BIN, ffmpeg_bin=settings.FFMPEG_BIN)
    except ffmpeg.ProbeError as exc:
        raise _Permanent(f"the original cannot be transcoded: {exc}") from exc
    if claim.needs_probe:
        _probe_store(media_file_id=claim.media_file_id, probe=probe)
    renditions = ffmpeg.plan_renditions(probe, ffmpeg.parse_ladder(settings.HLS_LADDER))
    logger.info(
        "job_id=%s video_id=%s source %dx%d %.1fs -> %s", claim.job_id, claim.video_id, probe.width, probe.height,
        probe.duration, ", ".join(f"{r.name} {r.width}x{r.height}" for r in renditions),
    )
    conversion = ffmpeg.source_conversion(
        probe, renditions=renditions, available=ffmpeg.available_filters(settings.FFMPEG_BIN)
    )
    for note in conversion.notes:
        log = logger.warning if note in conversion.warnings else logger.info
        log("job_id=%s video_id=%s %s", claim.job_id, claim.video_id, note)
    output_dir = work / "hls"
    output_dir.mkdir()
    command = ffmpeg.build_hls_command(
        ffmpeg_bin=settings.FFMPEG_BIN, input_path=source, output_dir=output_dir, probe=probe, renditions=renditions,
        segment_seconds=settings.HLS_SEGMENT_SECONDS, keyframe_interval=_keyframe_interval(settings.HLS_SEGMENT_SECONDS),
        audio_bitrate=ffmpeg.parse_bitrate(settings.HLS_AUDIO_BITRATE), crf=settings.HLS_CRF,
        preset=settings.HLS_X264_PRESET, conversion=conversion,
    )
    try:
        result = ffmpeg.run_ffmpeg(
            command, duration=probe.duration, timeout=settings.TRANSCODE_TIMEOUT_S,
            on_progress=reporter.on_encode_progress, should_cancel=reporter.should_cancel,
        )
    except ffmpeg.TranscodeCancelled as exc:
        raise _LostJob(str(exc)) from exc
    except ffmpeg.TranscodeTimeout as exc:
        raise _Permanent(
            f"encoding took longer than TRANSCODE_TIMEOUT_S={settings.TRANSCODE_TIMEOUT_S} s and was stopped", log_tail=exc.log_tail
        ) from exc
    except ffmpeg.TranscodeFailed as exc:
        raise _Permanent(
            f"ffmpeg could not decode or encode the original: {exc}", log_tail=[*conversion.notes, *exc.log_tail]
        ) from exc
    reporter.check(ENCODE_PROGRESS_SHARE * 100)

    top = renditions[0]
    poster = output_dir / "poster.jpg"
    cpu = result.cpu_seconds
    try:
        poster_result = ffmpeg.run_ffmpeg(
            ffmpeg.poster_command(ffmpeg_bin=settings.FFMPEG_BIN, input_path=source, output_path=poster, probe=probe,
                                  width=top.width, height=top.height, conversion=conversion),
            duration=probe.duration, timeout=min(POSTER_TIMEOUT_S, settings.TRANSCODE_TIMEOUT_S),
            should_cancel=reporter.should_cancel,
        )
        cpu += poster_result.cpu_seconds
    except ffmpeg.TranscodeCancelled as exc:
        raise _LostJob(str(exc)) from exc
    except (ffmpeg.TranscodeFailed, ffmpeg.TranscodeTimeout) as exc:
        # The stream plays without a poster; players show the first frame instead.
        logger.warning("job_id=%s video_id=%s no poster: %s", claim.job_id, claim.video_id, exc)
    has_poster = poster.is_file() and poster.stat().st_size > 0
    try:
        output = ffmpeg.rewrite_master_playlist(output_dir=output_dir, renditions=renditions, probe=probe)
    except ffmpeg.HlsOutputError as exc:
        raise _Permanent(f"ffmpeg's output is unusable: {exc}", log_tail=result.log_tail) from exc
    # what was done to the source heads the job's log, above ffmpeg's own lines
    return _Encoded(
        probe=probe, output=output, has_poster=has_poster, cpu_seconds=cpu,
        log_tail=[*conversion.notes, *result.log_tail],
    )


@transaction.atomic
def _transcode_switch(*, claim: _Claim, encoded: _Encoded, stored: list[tuple[str, int]], wall_seconds: float) -> None:
    """Make the new output the video's, in one transaction.

    The replaced output is kept for ``HLS_PREVIOUS_OUTPUT_GRACE_S`` (a ``PreviousHlsOutput``
    row; 0 deletes it at once); other lower-numbered folders go after commit.
    """
    job, video = _lock(claim.job_id)
    if job is None or video is None or job.status != TranscodeJob.Status.RUNNING or job.attempts != claim.attempt:
        raise _LostJob("the job was cancelled, its video deleted, or another worker took it over")
    probe, output = encoded.probe, encoded.output
    now = timezone.now()
    _keep_previous_output(video=video, new_folder=_hls_folder_number(claim.prefix), now=now)
    Rendition.objects.filter(video=video).delete()
    Rendition.objects.bulk_create([
        Rendition(
            video=video, name=r.name, width=r.width, height=r.height, bandwidth=r.bandwidth,
            average_bandwidth=r.average_bandwidth, codecs=r.codecs, playlist_key=claim.prefix + r.playlist,
            bytes=r.bytes, segment_count=len(r.segment_durations),
        )
        for r in output.renditions
    ])
    video.transition(Video.Status.READY)
    video.status_reason = ""
    video.hls_master_key = claim.prefix + ffmpeg.MASTER_PLAYLIST_NAME
    video.poster_key = claim.prefix + "poster.jpg" if encoded.has_poster else ""
    video.duration = probe.duration
    video.max_quality = max(output.renditions, key=lambda r: min(r.width, r.height)).name
    video.ready_at = now
    video.save(update_fields=["status", "status_reason", "hls_master_key", "poster_key", "duration", "max_quality", "ready_at", "updated_at"])

    job.transition(TranscodeJob.Status.SUCCEEDED)
    job.progress = 100
    job.finished_at = now
    job.heartbeat_at = now
    job.error = ""
    job.log_tail = "\n".join(encoded.log_tail)
    job.wall_seconds = round(wall_seconds, 3)
    job.cpu_seconds = round(encoded.cpu_seconds, 3)
    job.output_bytes = sum(size for _, size in stored)
    job.save(update_fields=[
        "status", "progress", "finished_at", "heartbeat_at", "error", "log_tail", "wall_seconds", "cpu_seconds",
        "output_bytes", "updated_at",
    ])
    output_minutes = Decimal(str(probe.duration)) / 60 * len(output.renditions)
    cost_record_transcode(job=job, output_minutes=output_minutes, cpu_seconds=encoded.cpu_seconds)
    # robust: a storage error while cleaning up must not reach transcode_run, whose error path
    # would delete this attempt's folder, now the video's output.
    transaction.on_commit(
        lambda: _delete_older_outputs(video_id=video.id, keep=_hls_folder_number(video.hls_master_key)), robust=True
    )
    logger.info(
        "job_id=%s video_id=%s ready: %d renditions, %d bytes, %.1f s wall, %.1f s CPU",
        job.id, video.id, len(output.renditions), job.output_bytes, wall_seconds, encoded.cpu_seconds,
    )


def _keep_previous_output(*, video: Video, new_folder: int, now) -> None:
    """Record the video's current output as replaced at ``now`` (caller holds the video's lock).

    Nothing is recorded with ``HLS_PREVIOUS_OUTPUT_GRACE_S=0`` (the folder is then deleted
    after commit with the other earlier folders), for a video without own output yet, or
    for an output outside the numbered ``videos/<id>/hls/<n>/`` layout.
    """
    previous_folder = _hls_folder_number(video.hls_master_key)
    if settings.HLS_PREVIOUS_OUTPUT_GRACE_S <= 0 or not 0 < previous_folder < new_folder:
        return
    PreviousHlsOutput.objects.update_or_create(
        video=video, master_key=video.hls_master_key, defaults={"superseded_at": now}
    )
    logger.info(
        "video_id=%s output %s kept for %d s after its replacement", video.id, video.hls_master_key,
        settings.HLS_PREVIOUS_OUTPUT_GRACE_S,
    )


def _delete_older_outputs(*, video_id, keep: int) -> None:
    """Delete the video's HLS folders numbered below ``keep`` (leftovers of lost attempts, and the
    replaced output when it is not kept), except previous outputs still waiting for the sweep."""
    root = f"videos/{video_id}/hls/"
    kept = {
        _hls_folder_number(master_key)
        for master_key in PreviousHlsOutput.objects.filter(video_id=video_id).values_list("master_key", flat=True)
    }
    folders = {key[len(root):].split("/", 1)[0] for key, _ in iter_objects(root)}
    for folder in sorted(folders):
        if folder.isdigit() and int(folder) < keep and int(folder) not in kept:
            removed = delete_prefix(f"{root}{folder}/")
            logger.info("video_id=%s removed %d objects of the earlier output %s%s/", video_id, removed, root, folder)


def transcode_previous_outputs_sweep(*, now=None) -> int:
    """Delete the HLS folders re-transcodes replaced more than ``HLS_PREVIOUS_OUTPUT_GRACE_S`` ago.

    Runs with the reaper schedule. Each folder is deleted, then its ``PreviousHlsOutput``
    row; a storage error keeps the row for the next run. A video deleted meanwhile is fine
    (``video_delete`` removed its objects; deleting nothing recreates nothing), and a
    video's current folder is never deleted. Returns how many folders were deleted.
    """
    due = PreviousHlsOutput.objects.filter(superseded_at__lte=previous_output_grace_cutoff(now=now)).select_related("video")
    removed = 0
    for previous in list(due.order_by("superseded_at")):
        prefix = previous.prefix
        if _hls_folder_number(previous.master_key) == 0 or previous.video.hls_master_key.startswith(prefix):
            logger.error("video_id=%s %s is the current output or not an attempt folder; not deleted", previous.video_id, prefix)
        else:
            try:
                count = delete_prefix(prefix)
            except Exception:
                logger.exception("video_id=%s could not delete the previous output %s; next run retries", previous.video_id, prefix)
                continue
            removed += 1
            logger.info("video_id=%s removed %d objects of the previous output %s", previous.video_id, count, prefix)
        PreviousHlsOutput.objects.filter(pk=previous.pk).delete()
    return removed


def _is_transient(exc: BaseException) -> bool:
    """Failures another attempt can fix: storage and network errors, a database hiccup."""
    return isinstance(exc, (OSError, BotoCoreError, ClientError, DatabaseError)) and not isinstance(exc, FileNotFoundError)


@transaction.atomic
def _transcode_attempt_failed(*, claim: _Claim, message: str, log_tail: list[str], retry: bool) -> None:
    """Record a failed attempt: requeue it (transient, attempts left) or fail the job and the video."""
    job, video = _lock(claim.job_id)
    if job is None or video is None or job.status != TranscodeJob.Status.RUNNING or job.attempts != claim.attempt:
        return
    job.error = message
    job.log_tail = "\n".join(log_tail)
    if retry and job.attempts < settings.TRANSCODE_MAX_ATTEMPTS:
        _requeue(job=job, video=video, reason=f"attempt {job.attempts} failed, retrying: {message}")
        return
    if retry:
        message = f"gave up after {job.attempts} attempts (TRANSCODE_MAX_ATTEMPTS): {message}"
        job.error = message
    job.transition(TranscodeJob.Status.FAILED)
    job.finished_at = timezone.now()
    job.save(update_fields=["status", "error", "log_tail", "finished_at", "updated_at"])
    _video_end(video, f"transcoding failed: {message}")
    logger.warning("job_id=%s video_id=%s failed: %s", job.id, video.id, message)


def _requeue(*, job: TranscodeJob, video: Video, reason: str) -> None:
    """Hand a running job back to the queue (caller holds the locks) and dispatch it after commit."""
    job.transition(TranscodeJob.Status.QUEUED)
    job.progress = 0
    job.save(update_fields=["status", "error", "log_tail", "progress", "updated_at"])
    _video_to(video, Video.Status.QUEUED)
    video.status_reason = reason
    video.save(update_fields=["status", "status_reason", "updated_at"])
    transaction.on_commit(lambda: _dispatch(job.id))
    logger.warning("job_id=%s video_id=%s requeued: %s", job.id, video.id, reason)


def _delete_attempt_output(claim: _Claim) -> None:
    try:
        removed = delete_prefix(claim.prefix)
        logger.info("job_id=%s removed %d objects of the abandoned attempt %s", claim.job_id, removed, claim.prefix)
    except Exception:
        # The next successful attempt deletes lower-numbered folders of the video too.
        logger.exception("job_id=%s could not delete %s", claim.job_id, claim.prefix)


def transcode_run(*, job_id) -> None:
    """Run one queued transcode job to the end (the django-q2 task calls this).

    Re-runs are no-ops (only a ``queued`` job starts). The budget gate is asked first; a
    stopped budget cancels the job and blocks the video. The attempt is marked running and
    committed, then the original is copied to a temp dir, probed and encoded by one ffmpeg
    process (progress and heartbeat every ~2 s; ffmpeg is killed when the job is cancelled
    or the video deleted), uploaded to a fresh ``videos/<id>/hls/<n>/`` and switched on
    the video in one transaction. A failed attempt leaves no objects: transient errors
    (storage, network, database) requeue the job until ``TRANSCODE_MAX_ATTEMPTS``; a file
    that cannot be decoded fails the job and the video with the reason.
    """
    claim = _transcode_claim(job_id=job_id)
    if claim is None:
        return
    started = time.monotonic()
    reporter = _Reporter(claim)
    # Leftovers of attempts that died on this machine go before this one adds its own copy.
    transcode_work_dirs_sweep()
    work = Path(tempfile.mkdtemp(prefix=f"{WORK_DIR_PREFIX}{claim.job_id}-a{claim.attempt}-"))
    try:
        with open_local_copy(claim.storage_key) as source:
            encoded = _encode(claim=claim, source=source, work=work, reporter=reporter)
        reporter.check(95)
        # A folder number can only hold leftovers of a lost attempt; start it empty.
        delete_prefix(claim.prefix)
        # Uploading a long ladder takes a while: keep the heartbeat going so the reaper leaves it alone.
        stored = save_directory(claim.prefix, work / "hls", on_saved=reporter.on_output_saved)
        _transcode_switch(claim=claim, encoded=encoded, stored=stored, wall_seconds=time.monotonic() - started)
    except _LostJob as exc:
        logger.info("job_id=%s video_id=%s stopped: %s", claim.job_id, claim.video_id, exc)
        _delete_attempt_output(claim)
    except _Permanent as exc:
        _delete_attempt_output(claim)
        _transcode_attempt_failed(claim=claim, message=str(exc), log_tail=exc.log_tail, retry=False)
    except FileNotFoundError as exc:
        _delete_attempt_output(claim)
        _transcode_attempt_failed(claim=claim, message=f"the original is missing from storage: {exc}", log_tail=[], retry=False)
    except Exception as exc:
        logger.exception("job_id=%s video_id=%s attempt %d failed", claim.job_id, claim.video_id, claim.attempt)
        _delete_attempt_output(claim)
        _transcode_attempt_failed(
            claim=claim, message=f"{type(exc).__name__}: {exc}", log_tail=[], retry=_is_transient(exc)
        )
    finally:
        shutil.rmtree(work, ignore_errors=True)


# --- Cancel and reaper ------------------------------------------------------------------


@transaction.atomic
def transcode_cancel(*, job: TranscodeJob, by) -> TranscodeJob:
    """Cancel a queued or running job; a running worker sees it within ~2 s and kills ffmpeg.

    The video goes back to its previous output (``ready``) when it has one, else to
    ``failed`` with "cancelled by <user>"; retrying queues it again. Raises
    InvalidTransition for a job that already ended.
    """
    job, video = _lock(job.pk)
    if job is None:
        raise NotFound("the transcode job no longer exists (its video was deleted)")
    who = by.get_username() if by is not None else "the system"
    job.transition(TranscodeJob.Status.CANCELLED)
    job.error = f"cancelled by {who}"
    job.finished_at = timezone.now()
    job.save(update_fields=["status", "error", "finished_at", "updated_at"])
    _video_end(video, f"transcoding cancelled by {who}")
    logger.info("job_id=%s video_id=%s cancelled by %s", job.id, video.id, who)
    return job


def transcode_reap_stale(*, now=None) -> dict[str, int]:
    """Requeue running jobs whose heartbeat is older than ``TRANSCODE_HEARTBEAT_STALE_S``.

    Their worker died (killed, OOM, machine gone). A job with attempts left goes back to
    the queue; one at ``TRANSCODE_MAX_ATTEMPTS`` fails with its video. The dead attempt's
    output folder is deleted. Returns ``{"requeued": n, "failed": m}``.
    """
    now = now or timezone.now()
    cutoff = now - timedelta(seconds=settings.TRANSCODE_HEARTBEAT_STALE_S)
    stale = TranscodeJob.objects.filter(status=TranscodeJob.Status.RUNNING).filter(
        Q(heartbeat_at__lt=cutoff) | Q(heartbeat_at__isnull=True, started_at__lt=cutoff)
    )
    counts = {"requeued": 0, "failed": 0}
    for job_id in list(stale.values_list("id", flat=True)):
        outcome = _reap_one(job_id=job_id, cutoff=cutoff)
        if outcome:
            counts[outcome] += 1
    if any(counts.values()):
        logger.warning("reaper: %(requeued)d stale jobs requeued, %(failed)d failed", counts)
    return counts


def transcode_work_dirs_sweep(*, now: float | None = None) -> int:
    """Remove transcode temp dirs on this machine whose attempt is over; returns how many.

    A worker killed hard never reaches its ``finally``, and its dir holds a copy of the
    original. A dir is named after its job and attempt: it goes as soon as that attempt is
    no longer the job's running one (requeued by the reaper, failed, cancelled, deleted).
    Any dir older than ``TRANSCODE_TIMEOUT_S`` goes too (no live attempt runs that long).
    Runs before every transcode on the worker's machine and with the reaper schedule.
    """
    cutoff = (now or time.time()) - settings.TRANSCODE_TIMEOUT_S - WORK_DIR_GRACE_S
    candidates: dict[Path, tuple[str, int] | None] = {}
    for path in Path(tempfile.gettempdir()).glob(f"{WORK_DIR_PREFIX}*"):
        candidates[path] = _work_dir_owner(path.name)
    running = {
        (str(job_id), attempts)
        for job_id, attempts in TranscodeJob.objects.filter(
            pk__in={owner[0] for owner in candidates.values() if owner}, status=TranscodeJob.Status.RUNNING
        ).values_list("id", "attempts")
    }
    removed = 0
    for path, owner in candidates.items():
        try:
            if not path.is_dir():
                continue
            if (owner is not None and owner not in running) or path.stat().st_mtime < cutoff:
                shutil.rmtree(path, ignore_errors=True)
                removed += 1
        except FileNotFoundError:
            continue
    if removed:
        logger.warning("removed %d transcode work dirs of attempts that are over", removed)
    return removed


def _work_dir_owner(name: str) -> tuple[str, int] | None:
    """(job id, attempt) a transcode work dir belongs to, from its name; None if it does not say."""
    match = _WORK_DIR_RE.match(name)
    if match is None:
        return None
    try:
        return str(uuid.UUID(match.group("job"))), int(match.group("attempt"))
    except ValueError:
        return None


@transaction.atomic
def _reap_one(*, job_id, cutoff) -> str | None:
    job, video = _lock(job_id)
    if job is None or video is None or job.status != TranscodeJob.Status.RUNNING:
        return None
    beat = job.heartbeat_at or job.started_at
    if beat is not None and beat >= cutoff:
        return None
    message = f"the worker stopped reporting (last heartbeat {beat:%Y-%m-%d %H:%M:%S %Z}); it was probably killed"
    job.error = message
    prefix = job.output_prefix
    if prefix and not video.hls_master_key.startswith(prefix):
        transaction.on_commit(lambda: delete_prefix(prefix))
    if job.attempts < settings.TRANSCODE_MAX_ATTEMPTS:
        _requeue(job=job, video=video, reason=f"attempt {job.attempts} stopped, retrying: {message}")
        return "requeued"
    job.error = f"gave up after {job.attempts} attempts (TRANSCODE_MAX_ATTEMPTS): {message}"
    job.transition(TranscodeJob.Status.FAILED)
    job.finished_at = timezone.now()
    job.save(update_fields=["status", "error", "finished_at", "updated_at"])
    _video_end(video, f"transcoding failed: {job.error}")
    logger.warning("job_id=%s video_id=%s failed by the reaper: %s", job.id, video.id, job.error)
    return "failed"
