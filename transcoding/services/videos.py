"""Writes of videos that involve their transcode jobs: deleting one, and the video of a file uploaded again."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from django.db import transaction
from django.db.models import F

from media_library import services as media_services
from media_library.models import MediaFile, Video
from media_library.selectors import video_playable_hls
from media_library.services import video_create, video_duplicates_waiting, video_output_share
from transcoding.models import TranscodeJob
from transcoding.serializers import video_representation
from transcoding.services.jobs import transcode_enqueue, transcode_job_finish
from unpuzzle.webhooks.services import webhook_event_record

if TYPE_CHECKING:
    from django.contrib.auth.base_user import AbstractBaseUser
    from django.contrib.auth.models import AnonymousUser, User

logger = logging.getLogger(__name__)


@transaction.atomic
def video_delete(*, video: Video, deleted_by: AbstractBaseUser | AnonymousUser | None) -> None:
    """Cancel the video's active transcode jobs, then delete it as ``media_library.services.video_delete`` does.

    A worker checks its job before writing output, so a cancelled job leaves nothing
    behind; the cancellation and the deletion commit together.
    """
    video = Video.objects.select_for_update().get(pk=video.pk)
    waiting = list(video_duplicates_waiting(video=video).values_list("pk", flat=True))
    for job in TranscodeJob.objects.select_for_update().filter(video=video, status__in=TranscodeJob.ACTIVE_STATUSES):
        transcode_job_finish(
            job=job, status=TranscodeJob.Status.CANCELLED, error=f"video deleted by {getattr(deleted_by, 'pk', None)}"
        )
        logger.info("video_id=%s job_id=%s cancelled: video deleted", video.id, job.id)
    media_services.video_delete(video=video, deleted_by=deleted_by)
    # Duplicates that were waiting for this video's transcode get their own.
    for duplicate in Video.objects.filter(pk__in=waiting):
        transcode_enqueue(video=duplicate)
        logger.info("video_id=%s transcoded on its own: video_id=%s it waited for was deleted", duplicate.id, video.id)


@transaction.atomic
def duplicate_video_create(*, owner: User, title: str, media_file: MediaFile) -> Video:
    """A new video of an original the owner already has (the same file uploaded again), at no new transcode cost.

    It shares the current output of one of the owner's videos of that original (one that is
    not itself a duplicate first): ready at once, or, while that video's first transcode is
    queued, running or blocked by the budget, queued until it ends (ready or failed with it).
    When no video of the original has output or a transcode on the way (all failed), it is
    transcoded on its own.
    """
    others = list(
        Video.objects.select_for_update()
        .filter(owner=owner, media_file=media_file)
        .order_by(F("duplicate_of").asc(nulls_first=True), "created_at")
    )
    video = video_create(owner=owner, title=title, media_file=media_file)
    source = next((other for other in others if video_playable_hls(video=other)), None)
    if source is not None:
        video = video_output_share(video=video, source=source)
        webhook_event_record(type="video.ready", data=video_representation(video=video))
        return video
    source = next(
        (other for other in others if other.status in _TRANSCODE_ON_THE_WAY and other.duplicate_of_id is None), None
    )
    if source is None:
        transcode_enqueue(video=video)
        video.refresh_from_db()
        return video
    video.transition(Video.Status.QUEUED)
    video.duplicate_of = source
    video.status_reason = f"the same file as “{source.title}”: ready when its transcode finishes"
    video.save(update_fields=["status", "duplicate_of", "status_reason", "updated_at"])
    logger.info("video_id=%s waits for the transcode of video_id=%s (same original)", video.id, source.id)
    return video


# A video of the original whose first transcode will end on its own (blocked ones when the budget allows).
_TRANSCODE_ON_THE_WAY = frozenset({Video.Status.QUEUED, Video.Status.PROCESSING, Video.Status.BLOCKED})
