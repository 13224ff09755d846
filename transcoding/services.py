"""Writes for transcoding: queueing videos for the HLS pipeline."""
from __future__ import annotations

import logging

from django.db import transaction
from django_q.tasks import async_task

from media_library.models import Video
from transcoding.models import TranscodeJob
from transcoding.selectors import spending_allowed

logger = logging.getLogger(__name__)

TRANSCODE_TASK = "transcoding.tasks.transcode_video"


def _dispatch(job_id) -> None:
    task_id = async_task(TRANSCODE_TASK, str(job_id), task_name=f"transcode-{job_id}", group="transcode")
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
