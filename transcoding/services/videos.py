"""Writes of videos that must first settle their transcode jobs."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from django.db import transaction

from media_library import services as media_services
from media_library.models import Video
from transcoding.models import TranscodeJob
from transcoding.services.jobs import transcode_job_finish

if TYPE_CHECKING:
    from django.contrib.auth.base_user import AbstractBaseUser
    from django.contrib.auth.models import AnonymousUser

logger = logging.getLogger(__name__)


@transaction.atomic
def video_delete(*, video: Video, deleted_by: AbstractBaseUser | AnonymousUser | None) -> None:
    """Cancel the video's active transcode jobs, then delete it as ``media_library.services.video_delete`` does.

    A worker checks its job before writing output, so a cancelled job leaves nothing
    behind; the cancellation and the deletion commit together.
    """
    video = Video.objects.select_for_update().get(pk=video.pk)
    for job in TranscodeJob.objects.select_for_update().filter(video=video, status__in=TranscodeJob.ACTIVE_STATUSES):
        transcode_job_finish(
            job=job, status=TranscodeJob.Status.CANCELLED, error=f"video deleted by {getattr(deleted_by, 'pk', None)}"
        )
        logger.info("video_id=%s job_id=%s cancelled: video deleted", video.id, job.id)
    media_services.video_delete(video=video, deleted_by=deleted_by)
