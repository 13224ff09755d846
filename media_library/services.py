"""Writes for stored media: where originals live, the videos made from them, editing, deleting and counting playback grants."""

from __future__ import annotations

import logging
import uuid
from typing import TYPE_CHECKING

from django.db import transaction
from django.db.models import F
from django.utils import timezone

from media_library.filenames import safe_filename
from media_library.models import MediaFile, Video
from media_library.serializers import VideoSerializer
from unpuzzle.storage import delete_key, delete_prefix
from unpuzzle.webhooks.services import webhook_event_record

if TYPE_CHECKING:
    from django.contrib.auth.base_user import AbstractBaseUser
    from django.contrib.auth.models import AnonymousUser, User

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
def video_delete(*, video: Video, deleted_by: AbstractBaseUser | AnonymousUser | None) -> None:
    """Delete a video with every object it stored, and its original when no other video uses it.

    Rows go in this transaction; the stored objects (``videos/<id>/`` and, when the
    original is no longer used, ``originals/<media_file_id>/``) are removed after commit,
    so a rollback never leaves rows pointing at deleted objects. Its transcode jobs go with
    it; ``transcoding.services.videos.video_delete`` cancels the active ones first.
    """
    video = Video.objects.select_for_update().get(pk=video.pk)
    webhook_event_record(type="video.deleted", data=VideoSerializer(video).data)
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


def _delete_video_objects(video_id: uuid.UUID, media_file_id: uuid.UUID | None, original_keys: list[str]) -> None:
    """Remove the stored objects of a deleted video (runs after commit)."""
    removed = delete_prefix(f"videos/{video_id}/")
    if media_file_id is not None:
        removed += delete_prefix(f"originals/{media_file_id}/")
        for key in original_keys:
            # An original stored outside its own folder (older layouts) goes too.
            delete_key(key)
    logger.info("video_id=%s removed %d stored objects", video_id, removed)


def media_file_record_access(*, media_file_id: uuid.UUID | None) -> None:
    """Count one playback grant of a media file (atomic in the database, no read-modify-write)."""
    if media_file_id is None:
        return
    MediaFile.objects.filter(pk=media_file_id).update(
        access_count=F("access_count") + 1, last_accessed_at=timezone.now()
    )


def original_key(*, media_file_id: uuid.UUID, filename: str) -> str:
    """Where an original lives: ``originals/<media_file_id>/<safe filename>``."""
    return f"originals/{media_file_id}/{safe_filename(filename)}"


def media_file_find_duplicate(*, owner: User, sha256: str) -> MediaFile | None:
    """The owner's stored original with these bytes, if any (one stored copy per owner and content)."""
    return MediaFile.objects.filter(owner=owner, sha256=sha256, status=MediaFile.Status.STORED).first()


@transaction.atomic
def video_create(*, owner: User, title: str, media_file: MediaFile, description: str = "") -> Video:
    """Create the Video for an original, with the duration taken from its probe."""
    video = Video.objects.create(
        owner=owner,
        title=(title or media_file.original_filename)[:255],
        description=description,
        media_file=media_file,
        duration=media_file.duration,
    )
    logger.info("video_id=%s created from media_file_id=%s", video.id, media_file.id)
    return video
