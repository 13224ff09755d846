"""Housekeeping of transcoding: the stale-job reaper, transcode work dirs, and the numbered HLS output
folders (keeping a replaced output for its grace period, deleting earlier folders and expired ones)."""

from __future__ import annotations

import logging
import re
import shutil
import tempfile
import time
import uuid
from datetime import datetime, timedelta
from pathlib import Path

from django.conf import settings
from django.db import transaction
from django.db.models import Exists, OuterRef, Q, QuerySet
from django.utils import timezone

from media_library.models import PreviousHlsOutput, Video
from media_library.selectors import hls_folders_in_use, previous_output_grace_cutoff
from transcoding.models import TranscodeChunk, TranscodeJob
from transcoding.services.jobs import transcode_job_finish, transcode_lock, transcode_requeue, video_job_ended
from unpuzzle.failures import failure_for
from unpuzzle.storage import delete_prefix, iter_objects

logger = logging.getLogger(__name__)

WORK_DIR_PREFIX = "unpuzzle-transcode-"
WORK_DIR_GRACE_S = 600
_WORK_DIR_RE = re.compile(rf"^{WORK_DIR_PREFIX}(?P<job>[0-9a-f-]{{36}})-a(?P<attempt>\d+)-")


def work_dir_prefix(*, job_id: uuid.UUID, attempt: int) -> str:
    """Name prefix of an attempt's work dir; ``transcode_work_dirs_sweep`` reads the owner back from it."""
    return f"{WORK_DIR_PREFIX}{job_id}-a{attempt}-"


def work_dir_create(*, job_id: uuid.UUID, attempt: int) -> Path:
    """A fresh work dir for one attempt, under this deployment's ``TRANSCODE_WORK_DIR``."""
    root = Path(settings.TRANSCODE_WORK_DIR)
    root.mkdir(mode=0o700, parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix=work_dir_prefix(job_id=job_id, attempt=attempt), dir=root))


def hls_folder_number(key: str) -> int:
    """The attempt number in ``videos/<id>/hls/<n>/master.m3u8`` (or the folder ``…/<n>/``); 0 when there is none."""
    parts = key.split("/")
    return int(parts[3]) if len(parts) > 4 and parts[2] == "hls" and parts[3].isdigit() else 0


# --- Output folders -----------------------------------------------------------------------


def previous_output_keep(*, video: Video, new_folder: int, now: datetime) -> None:
    """Record the video's current output as replaced at ``now`` (caller holds the video's lock).

    Nothing is recorded with ``HLS_PREVIOUS_OUTPUT_GRACE_S=0`` (the folder is then deleted
    after commit with the other earlier folders), for a video without own output yet, or
    for an output outside the numbered ``videos/<id>/hls/<n>/`` layout. A duplicate's shared
    output (another video's folder) is always recorded, already past its grace when the
    grace is 0: the sweep deletes it once no video plays it any more.
    """
    previous_folder = hls_folder_number(video.hls_master_key)
    shared = previous_folder > 0 and not video.hls_master_key.startswith(f"videos/{video.id}/")
    if shared:
        superseded_at = now if settings.HLS_PREVIOUS_OUTPUT_GRACE_S > 0 else previous_output_grace_cutoff(now=now)
    elif settings.HLS_PREVIOUS_OUTPUT_GRACE_S <= 0 or not 0 < previous_folder < new_folder:
        return
    else:
        superseded_at = now
    PreviousHlsOutput.objects.update_or_create(
        video=video, master_key=video.hls_master_key, defaults={"superseded_at": superseded_at}
    )
    logger.info(
        "video_id=%s output %s kept for %d s after its replacement",
        video.id,
        video.hls_master_key,
        settings.HLS_PREVIOUS_OUTPUT_GRACE_S,
    )


def older_outputs_delete(*, video_id: uuid.UUID, keep: int) -> None:
    """Delete the video's HLS folders numbered below ``keep`` (leftovers of lost attempts, and the
    replaced output when it is not kept), except folders still in use: previous outputs waiting
    for the sweep, and outputs duplicates of the video play."""
    root = f"videos/{video_id}/hls/"
    kept = {hls_folder_number(folder) for folder in hls_folders_in_use(under=[root])}
    folders = {key[len(root) :].split("/", 1)[0] for key, _ in iter_objects(root)}
    for folder in sorted(folders):
        if folder.isdigit() and int(folder) < keep and int(folder) not in kept:
            removed = delete_prefix(f"{root}{folder}/")
            logger.info("video_id=%s removed %d objects of the earlier output %s%s/", video_id, removed, root, folder)


def transcode_previous_outputs_sweep(*, now: datetime | None = None) -> int:
    """Delete the HLS folders re-transcodes replaced more than ``HLS_PREVIOUS_OUTPUT_GRACE_S`` ago.

    Runs with the reaper schedule. Each folder is deleted, then its ``PreviousHlsOutput``
    row; a storage error keeps the row for the next run. A video deleted meanwhile is fine
    (``video_delete`` removed its objects; deleting nothing recreates nothing), and a
    video's current folder is never deleted. A folder another video still uses (a duplicate
    sharing it, or that video's own grace period) stays: only the row goes, and the last
    video using it deletes it. Returns how many folders were deleted.
    """
    due = PreviousHlsOutput.objects.filter(superseded_at__lte=previous_output_grace_cutoff(now=now)).select_related(
        "video"
    )
    removed = 0
    for previous in list(due.order_by("superseded_at")):
        prefix = previous.prefix
        if hls_folder_number(previous.master_key) == 0 or previous.video.hls_master_key.startswith(prefix):
            logger.error(
                "video_id=%s %s is the current output or not an attempt folder; not deleted", previous.video_id, prefix
            )
        elif prefix in hls_folders_in_use(under=[prefix], exclude_previous_id=previous.pk):
            logger.info("video_id=%s %s is still used by another video; kept", previous.video_id, prefix)
        else:
            try:
                count = delete_prefix(prefix)
            except Exception:
                logger.exception(
                    "video_id=%s could not delete the previous output %s; next run retries", previous.video_id, prefix
                )
                continue
            removed += 1
            logger.info("video_id=%s removed %d objects of the previous output %s", previous.video_id, count, prefix)
        PreviousHlsOutput.objects.filter(pk=previous.pk).delete()
    return removed


def attempt_output_delete(*, video_id: uuid.UUID, prefix: str) -> None:
    """Delete the output folder of an attempt that ended without being switched on.

    When storage refuses (the outage that may have ended the attempt), the folder is recorded
    as a ``PreviousHlsOutput`` already past its grace, so the reaper's sweep deletes it once
    storage answers again; a video deleted meanwhile took its objects with it.
    """
    try:
        removed = delete_prefix(prefix)
        logger.info("video_id=%s removed %d objects of the abandoned attempt %s", video_id, removed, prefix)
        return
    except Exception as exc:
        logger.warning("video_id=%s could not delete %s now (%s); the reaper's sweep retries", video_id, prefix, exc)
    if not Video.objects.filter(pk=video_id).exists():
        return
    PreviousHlsOutput.objects.update_or_create(
        video_id=video_id,
        master_key=prefix + "master.m3u8",
        defaults={"superseded_at": previous_output_grace_cutoff()},
    )


# --- Reaper, dispatch and work dirs -------------------------------------------------------


def transcode_dispatch_due(*, now: datetime | None = None) -> dict[str, int]:
    """Hand queued jobs to the transcode cluster when nothing else will.

    - A job that waited out a transient failure (``not_before`` passed, not dispatched yet).
    - A job whose task is stranded: dispatched more than ``TRANSCODE_DISPATCH_STALE_S`` ago
      and its broker row is gone or locked. A cluster locks the rows it fetches ahead of a free
      worker; a cluster killed then keeps them locked for its ``retry`` (hours). The row is
      deleted and a fresh task queued; should the cluster that holds it be alive after all,
      its copy finds the job taken and does nothing.

    Runs with the reaper schedule. Returns ``{"dispatched": n, "redispatched": m}``.
    """
    from django_q.models import OrmQ

    from transcoding.services.jobs import transcode_dispatch

    now = now or timezone.now()
    queued = TranscodeJob.objects.filter(status=TranscodeJob.Status.QUEUED).filter(
        Q(not_before__isnull=True) | Q(not_before__lte=now)
    )
    counts = {"dispatched": 0, "redispatched": 0}
    for job_id in queued.filter(Q(task_id="") | Q(dispatched_at__isnull=True)).values_list("id", flat=True):
        transcode_dispatch(job_id=job_id)
        counts["dispatched"] += 1

    stale = dict(
        queued.exclude(task_id="")
        .filter(dispatched_at__lt=now - timedelta(seconds=settings.TRANSCODE_DISPATCH_STALE_S))
        .values_list("task_id", "id")
    )
    if stale:
        rows = {row.task_id(): row for row in OrmQ.objects.filter(key=settings.TRANSCODE_CLUSTER)}
        for task_id, job_id in stale.items():
            row = rows.get(task_id)
            if row is not None and (row.lock is None or row.lock <= now):
                continue  # waiting in the queue for a free worker, as it should
            if row is not None:
                OrmQ.objects.filter(pk=row.pk).delete()
            logger.warning(
                "job_id=%s its task %s was %s; dispatched again",
                job_id,
                task_id,
                f"fetched by a cluster that never started it (locked until {row.lock:%Y-%m-%d %H:%M:%S %Z})"
                if row is not None and row.lock is not None
                else "no longer in the broker's queue",
            )
            transcode_dispatch(job_id=job_id)
            counts["redispatched"] += 1
    if any(counts.values()):
        logger.info(
            "dispatch: %(dispatched)d due jobs dispatched, %(redispatched)d stranded jobs dispatched again", counts
        )
    return counts


def transcode_reap_stale(*, now: datetime | None = None) -> dict[str, int]:
    """Requeue running jobs whose heartbeat is older than ``TRANSCODE_HEARTBEAT_STALE_S``.

    Their worker died (killed, OOM, machine gone). A job with attempts left goes back to
    the queue; one at ``TRANSCODE_MAX_ATTEMPTS`` fails with its video. The dead attempt's
    output folder is deleted. Returns ``{"requeued": n, "failed": m}``.
    """
    now = now or timezone.now()
    cutoff = now - timedelta(seconds=settings.TRANSCODE_HEARTBEAT_STALE_S)
    stale = (
        TranscodeJob.objects.filter(status=TranscodeJob.Status.RUNNING)
        .filter(Q(heartbeat_at__lt=cutoff) | Q(heartbeat_at__isnull=True, started_at__lt=cutoff))
        .exclude(Exists(_live_chunks()))
    )
    counts = {"requeued": 0, "failed": 0}
    for job_id in list(stale.values_list("id", flat=True)):
        outcome = _reap_one(job_id=job_id, cutoff=cutoff)
        if outcome:
            counts[outcome] += 1
    if any(counts.values()):
        logger.warning("reaper: %(requeued)d stale jobs requeued, %(failed)d failed", counts)
    return counts


def _live_chunks() -> QuerySet[TranscodeChunk]:
    """Chunks of a job's running attempt still to be encoded: the chunk reaper watches those, and a
    chunked job waiting for free workers has no heartbeat of its own meanwhile."""
    return TranscodeChunk.objects.filter(
        job=OuterRef("pk"),
        job_attempt=OuterRef("attempts"),
        status__in=[TranscodeChunk.Status.QUEUED, TranscodeChunk.Status.RUNNING],
    )


@transaction.atomic
def _reap_one(*, job_id: uuid.UUID, cutoff: datetime) -> str | None:
    job, video = transcode_lock(job_id=job_id)
    if job is None or video is None or job.status != TranscodeJob.Status.RUNNING:
        return None
    if TranscodeChunk.objects.filter(
        job=job, job_attempt=job.attempts, status__in=[TranscodeChunk.Status.QUEUED, TranscodeChunk.Status.RUNNING]
    ).exists():
        return None
    beat = job.heartbeat_at or job.started_at
    if beat is not None and beat >= cutoff:
        return None
    message = f"the worker stopped reporting (last heartbeat {beat:%Y-%m-%d %H:%M:%S %Z}); it was probably killed"
    job.error = message
    prefix = job.output_prefix
    if prefix and not video.hls_master_key.startswith(prefix):
        transaction.on_commit(lambda: attempt_output_delete(video_id=video.id, prefix=prefix))
    if job.counted_attempts < settings.TRANSCODE_MAX_ATTEMPTS:
        transcode_requeue(job=job, video=video, reason=f"attempt {job.attempts} stopped, retrying: {message}")
        return "requeued"
    error = f"gave up after {job.counted_attempts} attempts (TRANSCODE_MAX_ATTEMPTS): {message}"
    failure = failure_for("worker_lost")
    transcode_job_finish(job=job, status=TranscodeJob.Status.FAILED, error=error, error_code=failure.code)
    video_job_ended(video=video, failure=failure)
    logger.warning("job_id=%s video_id=%s failed by the reaper: %s", job.id, video.id, job.error)
    return "failed"


def transcode_work_dirs_sweep(*, now: float | None = None) -> int:
    """Remove this deployment's transcode work dirs whose attempt is over; returns how many.

    A worker killed hard never reaches its ``finally``, and its dir holds a copy of the
    original. A dir is named after its job and attempt: it goes as soon as that attempt is
    no longer the job's running one (requeued by the reaper, failed, cancelled, deleted).
    Any dir older than ``TRANSCODE_TIMEOUT_S`` goes too (no live attempt runs that long).
    Runs before every transcode on the worker's machine and with the reaper schedule. Only
    ``TRANSCODE_WORK_DIR`` is looked at: the jobs of another deployment on the host are not in
    this database, so its dirs would all look abandoned.
    """
    cutoff = (now or time.time()) - settings.TRANSCODE_TIMEOUT_S - WORK_DIR_GRACE_S
    candidates: dict[Path, tuple[str, int] | None] = {}
    for path in Path(settings.TRANSCODE_WORK_DIR).glob(f"{WORK_DIR_PREFIX}*"):
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
