"""Writes for transcode jobs: queueing, cancelling, requeueing, and the state changes a job and its video go through."""

from __future__ import annotations

import logging
import uuid
from datetime import datetime
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone
from django_q.tasks import async_task

from media_library.models import Video
from media_library.services import video_duplicates_waiting, video_output_share
from transcoding.costs.selectors import spending_allowed
from transcoding.ffmpeg.sanity import human_duration
from transcoding.models import TranscodeChunk, TranscodeJob
from transcoding.serializers import video_representation
from unpuzzle.exceptions import Conflict, NotFound, PermissionDenied
from unpuzzle.failures import Failure, failure_for
from unpuzzle.permissions import user_sees_all_videos
from unpuzzle.webhooks.services import webhook_event_record

if TYPE_CHECKING:
    from django.contrib.auth.base_user import AbstractBaseUser
    from django.contrib.auth.models import AnonymousUser, User

logger = logging.getLogger(__name__)

TRANSCODE_TASK = "transcoding.tasks.transcode_video"
CHUNKS_TASK = "transcoding.tasks.transcode_chunks"


def transcode_dispatch(*, job_id: uuid.UUID) -> None:
    """Hand a queued job to the transcode cluster and remember the django-q2 task id and when.

    Handing a job out twice is safe: only a ``queued`` job starts, so a second task for it is
    a no-op. The reaper relies on that to re-dispatch jobs whose task is stranded.
    """
    # Its own cluster: hours-long transcodes never hold up the short tasks, and keep their long timeout.
    task_id = async_task(
        TRANSCODE_TASK,
        str(job_id),
        task_name=f"transcode-{job_id}",
        group="transcode",
        cluster=settings.TRANSCODE_CLUSTER,
    )
    TranscodeJob.objects.filter(pk=job_id).update(task_id=str(task_id or ""), dispatched_at=timezone.now())


@transaction.atomic
def transcode_enqueue(*, video: Video, requested_by: User | None = None) -> TranscodeJob | None:
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
    if not video.hls_master_key:
        # A duplicate that gets its own transcode no longer waits for the other video's.
        video.duplicate_of = None

    decision = spending_allowed(owner=video.owner)
    if not decision.allowed:
        newly_blocked = video.status != Video.Status.BLOCKED
        if newly_blocked:
            video.transition(Video.Status.BLOCKED)
        video.status_reason = decision.reason
        video.status_code = ""
        video.save(update_fields=["status", "status_reason", "status_code", "duplicate_of", "updated_at"])
        if newly_blocked:
            webhook_event_record(type="video.blocked", data=video_representation(video=video))
        logger.info("video_id=%s blocked: %s", video.id, decision.reason)
        return None

    # A duplicate waiting for another video's transcode is already queued, without a job of its own.
    if video.status != Video.Status.QUEUED:
        video.transition(Video.Status.QUEUED)
    video.status_reason = ""
    video.status_code = ""
    video.save(update_fields=["status", "status_reason", "status_code", "duplicate_of", "updated_at"])
    job = TranscodeJob.objects.create(video=video, requested_by=requested_by)
    transaction.on_commit(lambda: transcode_dispatch(job_id=job.id))
    logger.info("video_id=%s queued as job_id=%s", video.id, job.id)
    return job


def transcode_request(*, video: Video, by: AbstractBaseUser | AnonymousUser) -> TranscodeJob | None:
    """Queue a transcode a person asked for (the admin's buttons and actions, the API): one policy for every door.

    Staff who manage all videos may transcode any video again. An owner may retry their own
    video while it has nothing to play (failed, cancelled, blocked); re-transcoding a video
    that already plays spends budget for the same lecture, so only staff do that (403). The
    budget gate and the owner's monthly quotas apply to both, in ``transcode_enqueue``.
    """
    if not user_sees_all_videos(by):
        if video.owner_id != by.pk:
            raise NotFound(f"video {video.id} does not exist")
        if video.hls_master_key or video.status in (Video.Status.READY, Video.Status.QUEUED, Video.Status.PROCESSING):
            raise PermissionDenied(
                "this video already plays (or is being transcoded); transcoding it again spends budget for the same "
                "lecture, so only staff who manage all videos can do it. Ask an administrator"
            )
    if video.media_file_id is None:
        raise Conflict(f"video {video.id} has no original file to transcode (it only has a legacy URL)")
    return transcode_enqueue(video=video, requested_by=by if getattr(by, "pk", None) else None)  # type: ignore[arg-type]


def transcode_requeue_blocked() -> int:
    """Hand every blocked video back to ``transcode_enqueue``, oldest first; returns how many were queued.

    Registered with the budget (``budget_requeue_register``), which runs it when the kill
    switch is released and in the daily cost run.
    """
    queued = 0
    for video in Video.objects.filter(status=Video.Status.BLOCKED).order_by("created_at", "id"):
        try:
            if transcode_enqueue(video=video) is not None:
                queued += 1
        except Exception:
            logger.exception("video_id=%s could not be requeued", video.id)
    logger.info("requeued %d blocked videos", queued)
    return queued


def transcode_lock(*, job_id: uuid.UUID | str) -> tuple[TranscodeJob | None, Video | None]:
    """Lock the video, then its job (the order every writer uses, so no deadlock); None for what is gone."""
    video_id = TranscodeJob.objects.filter(pk=job_id).values_list("video_id", flat=True).first()
    if video_id is None:
        return None, None
    video = Video.objects.select_for_update().filter(pk=video_id).first()
    job = TranscodeJob.objects.select_for_update().filter(pk=job_id).first()
    return job, video


def transcode_job_finish(
    *, job: TranscodeJob, status: str, error: str, now: datetime | None = None, **fields: Any
) -> None:
    """End ``job`` in ``status`` with ``error`` ("" on success) and any other ``fields`` of a finished
    job (log tail, measurements), stamped ``finished_at`` (``now`` by default); saves only those fields.

    Raises InvalidTransition for a job that already ended (caller holds the job's lock).
    """
    job.transition(status)
    job.error = error
    job.finished_at = now or timezone.now()
    for name, value in fields.items():
        setattr(job, name, value)
    job.save(update_fields=["status", "error", "finished_at", *fields, "updated_at"])


def video_move_to(*, video: Video, status: str) -> None:
    """Move a video to ``status``, through ``queued`` when there is no direct edge (failed -> processing); not saved."""
    if video.status == status:
        return
    if (
        status not in Video.TRANSITIONS[Video.Status(video.status)]
        and Video.Status.QUEUED in Video.TRANSITIONS[Video.Status(video.status)]
    ):
        video.transition(Video.Status.QUEUED)
    video.transition(status)


def video_job_ended(*, video: Video, failure: Failure) -> None:
    """Leave a video whose job ended without output: back to its previous output if it has one, else failed.

    The owner reads ``failure``'s plain reason and code; the job keeps the raw error for staff.
    """
    if video.hls_master_key and video.status in (Video.Status.QUEUED, Video.Status.PROCESSING):
        video.transition(Video.Status.READY)
        video.status_reason = f"{failure.message} The previous version still plays."
    else:
        video_move_to(video=video, status=Video.Status.FAILED)
        video.status_reason = failure.message
    video.status_code = failure.code
    video.save(update_fields=["status", "status_reason", "status_code", "updated_at"])
    webhook_event_record(type=f"video.{video.status}", data=video_representation(video=video))
    video_duplicates_settle(video=video)


def video_duplicates_settle(*, video: Video) -> int:
    """Hand the duplicates waiting for ``video``'s first output its outcome; returns how many settled.

    Ready: they share its output (no transcode of their own). Failed: they fail with its
    reason, and their owner may transcode them again. Otherwise (still queued, processing or
    blocked by the budget) they keep waiting. The caller holds ``video``'s lock.
    """
    if video.status not in (Video.Status.READY, Video.Status.FAILED):
        return 0
    settled = 0
    for duplicate in video_duplicates_waiting(video=video):
        if video.status == Video.Status.READY:
            video_output_share(video=duplicate, source=video)
        else:
            duplicate.transition(Video.Status.FAILED)
            duplicate.duplicate_of = None
            duplicate.status_reason = (
                f"the same file uploaded as “{video.title}” could not be transcoded: {video.status_reason}"
            )
            duplicate.status_code = video.status_code
            duplicate.save(update_fields=["status", "status_reason", "status_code", "duplicate_of", "updated_at"])
        webhook_event_record(type=f"video.{duplicate.status}", data=video_representation(video=duplicate))
        settled += 1
        logger.info("video_id=%s %s with video_id=%s", duplicate.id, duplicate.status, video.id)
    return settled


def transcode_requeue(*, job: TranscodeJob, video: Video, reason: str, not_before: datetime | None = None) -> None:
    """Hand a running job back to the queue (caller holds the locks and set its error).

    ``reason`` (raw) goes to the log; the owner reads that processing retries on its own.

    Without ``not_before`` it is dispatched after commit; with it, it waits in ``queued`` and
    the reaper (``transcode_dispatch_due``) dispatches it once that time has passed.
    """
    job.transition(TranscodeJob.Status.QUEUED)
    job.progress = 0
    job.not_before = not_before
    job.task_id = ""
    job.dispatched_at = None
    job.save(
        update_fields=[
            "status",
            "error",
            "log_tail",
            "progress",
            "not_before",
            "task_id",
            "dispatched_at",
            "transient_failures",
            "updated_at",
        ]
    )
    video_move_to(video=video, status=Video.Status.QUEUED)
    wait = human_duration((not_before - timezone.now()).total_seconds()) if not_before else "a moment"
    failure = failure_for("retrying", detail=wait)
    video.status_reason = failure.message
    video.status_code = failure.code
    video.save(update_fields=["status", "status_reason", "status_code", "updated_at"])
    if not_before is None:
        transaction.on_commit(lambda: transcode_dispatch(job_id=job.id))
    logger.warning("job_id=%s video_id=%s requeued: %s", job.id, video.id, reason)


@transaction.atomic
def transcode_cancel(*, job: TranscodeJob, by: AbstractBaseUser | AnonymousUser | None) -> TranscodeJob:
    """Cancel a queued or running job; a running worker sees it within ~2 s and kills ffmpeg.

    The video goes back to its previous output (``ready``) when it has one, else to
    ``failed`` with "cancelled by <user>"; retrying queues it again. Raises
    InvalidTransition for a job that already ended.
    """
    locked, video = transcode_lock(job_id=job.pk)
    if locked is None or video is None:
        raise NotFound("the transcode job no longer exists (its video was deleted)")
    who = by.get_username() if by is not None else "the system"
    failure = failure_for("cancelled", detail=who)
    transcode_job_finish(
        job=locked, status=TranscodeJob.Status.CANCELLED, error=f"cancelled by {who}", error_code=failure.code
    )
    video_job_ended(video=video, failure=failure)
    logger.info("job_id=%s video_id=%s cancelled by %s", locked.id, video.id, who)
    return locked


def transcode_block_for_budget(*, job: TranscodeJob, video: Video, reason: str) -> None:
    """Cancel a job that may not start (or go on) because spending is stopped, and block its video
    with ``reason``; releasing the kill switch queues it again. The caller holds the locks."""
    transcode_job_finish(
        job=job, status=TranscodeJob.Status.CANCELLED, error=f"not started, spending is stopped: {reason}"
    )
    video_move_to(video=video, status=Video.Status.BLOCKED)
    video.status_reason = reason
    video.status_code = ""
    video.save(update_fields=["status", "status_reason", "status_code", "updated_at"])
    webhook_event_record(type="video.blocked", data=video_representation(video=video))
    logger.info("job_id=%s video_id=%s blocked: %s", job.id, video.id, reason)


# --- Chunks of a chunked attempt ------------------------------------------------------------


def transcode_chunks_dispatch(*, count: int) -> None:
    """Put ``count`` chunk tasks on the transcode cluster's queue.

    A chunk task is not tied to a chunk: it claims whichever queued chunk is next when a worker
    starts it, and goes on to the next one until none is left. So a task that a busy cluster
    fetched ahead of a free worker strands nothing: the workers that are free take the chunks.
    """
    for _ in range(count):
        async_task(
            CHUNKS_TASK, task_name="transcode-chunks", group="transcode-chunks", cluster=settings.TRANSCODE_CLUSTER
        )


def transcode_chunk_requeue(*, chunk: TranscodeChunk, reason: str, not_before: datetime | None = None) -> None:
    """Hand a chunk back to the queue on its own (caller holds the job's lock and set its counters);
    without ``not_before`` a chunk task is dispatched after commit, with it the reaper does once it passed."""
    chunk.status = TranscodeChunk.Status.QUEUED
    chunk.error = reason
    chunk.progress = 0
    chunk.not_before = not_before
    chunk.dispatched_at = None if not_before else timezone.now()
    chunk.save(
        update_fields=["status", "error", "progress", "not_before", "dispatched_at", "transient_failures", "attempts"]
    )
    if not_before is None:
        transaction.on_commit(lambda: transcode_chunks_dispatch(count=1))
    logger.warning("job_id=%s %s requeued: %s", chunk.job_id, chunk, reason)


def transcode_chunks_cancel(*, job: TranscodeJob) -> int:
    """Mark the unfinished chunks of ``job``'s attempts that are over as cancelled; returns how many.
    Their workers see the job end within seconds and stop on their own."""
    stale = TranscodeChunk.objects.filter(
        job=job, status__in=[TranscodeChunk.Status.QUEUED, TranscodeChunk.Status.RUNNING]
    )
    if job.status == TranscodeJob.Status.RUNNING:
        stale = stale.exclude(job_attempt=job.attempts)
    return stale.update(status=TranscodeChunk.Status.CANCELLED, finished_at=timezone.now())
