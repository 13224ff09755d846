"""Writes for media: editing and deleting videos, counting playback grants."""
from __future__ import annotations

import logging

from django.db import transaction
from django.db.models import F
from django.utils import timezone

from media_library.models import MediaFile, Video
from transcoding.models import TranscodeJob
from unpuzzle.storage import delete_key, delete_prefix

logger = logging.getLogger(__name__)


@transaction.atomic
def video_update(*, video: Video, title: str | None = None, description: str | None = None) -> Video:
    """Change the editable text of a video (title, description); other fields are the pipeline's."""
    fields = []
    if title is not None:
        video.title = title
        fields.append("title")
    if description is not None:
        video.description = description
        fields.append("description")
    if fields:
        video.save(update_fields=[*fields, "updated_at"])
    return video


@transaction.atomic
def video_delete(*, video: Video, deleted_by) -> None:
    """Delete a video with every object it stored, and its original when no other video uses it.

    Active transcode jobs are cancelled first (a worker checks its job before writing
    output). Rows go in this transaction; the stored objects (``videos/<id>/`` and, when
    the original is no longer used, ``originals/<media_file_id>/``) are removed after
    commit, so a rollback never leaves rows pointing at deleted objects.
    """
    video = Video.objects.select_for_update().get(pk=video.pk)
    for job in TranscodeJob.objects.select_for_update().filter(video=video, status__in=TranscodeJob.ACTIVE_STATUSES):
        job.transition(TranscodeJob.Status.CANCELLED)
        job.error = f"video deleted by {getattr(deleted_by, 'pk', None)}"
        job.finished_at = timezone.now()
        job.save(update_fields=["status", "error", "finished_at", "updated_at"])
        logger.info("video_id=%s job_id=%s cancelled: video deleted", video.id, job.id)

    video_id = video.id
    media_file = video.media_file
    video.delete()
    original_keys: list[str] = []
    if media_file is not None and not Video.objects.filter(media_file=media_file).exists():
        original_keys = [media_file.storage_key]
        media_file_id = media_file.id
        media_file.delete()
        logger.info("media_file_id=%s deleted with its last video video_id=%s", media_file_id, video_id)
    else:
        media_file_id = None
    logger.info("video_id=%s deleted by user_id=%s", video_id, getattr(deleted_by, "pk", None))
    transaction.on_commit(lambda: _delete_video_objects(video_id, media_file_id, original_keys))


def _delete_video_objects(video_id, media_file_id, original_keys: list[str]) -> None:
    """Remove the stored objects of a deleted video (runs after commit)."""
    removed = delete_prefix(f"videos/{video_id}/")
    if media_file_id is not None:
        removed += delete_prefix(f"originals/{media_file_id}/")
        for key in original_keys:
            # An original stored outside its own folder (older layouts) goes too.
            delete_key(key)
    logger.info("video_id=%s removed %d stored objects", video_id, removed)


def media_file_record_access(*, media_file_id) -> None:
    """Count one playback grant of a media file (atomic in the database, no read-modify-write)."""
    if media_file_id is None:
        return
    MediaFile.objects.filter(pk=media_file_id).update(
        access_count=F("access_count") + 1, last_accessed_at=timezone.now()
    )
