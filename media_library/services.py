"""Writes for stored media: where originals live, the videos made from them, editing, deleting and counting playback grants."""

from __future__ import annotations

import logging
import posixpath
import uuid
from datetime import datetime
from typing import TYPE_CHECKING

from django.db import transaction
from django.db.models import F, QuerySet
from django.utils import timezone

from media_library.filenames import safe_filename
from media_library.models import MediaFile, Rendition, Video
from media_library.selectors import hls_folders_in_use
from media_library.serializers import VideoSerializer
from unpuzzle.storage import delete_key, delete_prefix, iter_objects
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

    Rows go in this transaction; the stored objects are removed after commit, so a rollback
    never leaves rows pointing at deleted objects: ``videos/<id>/`` except HLS folders another
    video still plays (a duplicate shares the output of the video it was uploaded again from),
    the shared folders this video played from when it was the last one using them, and
    ``originals/<media_file_id>/`` when no other video uses the original. Duplicates still
    waiting for this video's transcode fail with a reason (``transcoding.services.videos.video_delete``
    gives them their own transcode instead). Its transcode jobs go with it; the transcoding
    layer's ``video_delete`` cancels the active ones first.
    """
    video = Video.objects.select_for_update().get(pk=video.pk)
    webhook_event_record(type="video.deleted", data=VideoSerializer(video).data)
    video_id = video.id
    media_file = video.media_file
    root = f"videos/{video_id}/"
    played = {
        posixpath.dirname(key) + "/"
        for key in [video.hls_master_key, *video.previous_outputs.values_list("master_key", flat=True)]
        if key
    }
    shared = sorted(folder for folder in played if not folder.startswith(root))
    waiting = list(video_duplicates_waiting(video=video))
    video.delete()
    for duplicate in waiting:
        duplicate.transition(Video.Status.FAILED)
        duplicate.status_reason = f"the video with the same file (“{video.title}”) was deleted before its transcode finished; transcode this one again"
        duplicate.save(update_fields=["status", "status_reason", "updated_at"])
    in_use = hls_folders_in_use(under=[root, *shared])
    original_keys: list[str] = []
    if media_file is not None and not Video.objects.filter(media_file=media_file).exists():
        original_keys = [media_file.storage_key]
        media_file_id = media_file.id
        media_file.delete()
        logger.info("media_file_id=%s deleted with its last video video_id=%s", media_file_id, video_id)
    else:
        media_file_id = None
    logger.info("video_id=%s deleted by user_id=%s", video_id, getattr(deleted_by, "pk", None))
    removable_shared = [folder for folder in shared if folder not in in_use]
    transaction.on_commit(
        lambda: _delete_video_objects(
            video_id, media_file_id, original_keys, keep=sorted(in_use), shared=removable_shared
        )
    )


def _delete_video_objects(
    video_id: uuid.UUID,
    media_file_id: uuid.UUID | None,
    original_keys: list[str],
    *,
    keep: list[str],
    shared: list[str],
) -> None:
    """Remove the stored objects of a deleted video (runs after commit).

    Its own folder goes except the HLS folders in ``keep`` (other videos play them); the
    ``shared`` folders of other videos it was the last to play go too.
    """
    root = f"videos/{video_id}/"
    kept = [folder for folder in keep if folder.startswith(root)]
    if kept:
        removed = 0
        for key, _ in list(iter_objects(root)):
            if not any(key.startswith(folder) for folder in kept):
                delete_key(key)
                removed += 1
        logger.info("video_id=%s kept %s: other videos play them", video_id, ", ".join(kept))
    else:
        removed = delete_prefix(root)
    for folder in shared:
        removed += delete_prefix(folder)
    if media_file_id is not None:
        removed += delete_prefix(f"originals/{media_file_id}/")
        for key in original_keys:
            # An original stored outside its own folder (older layouts) goes too.
            delete_key(key)
    logger.info("video_id=%s removed %d stored objects", video_id, removed)


def video_duplicates_waiting(*, video: Video) -> QuerySet[Video]:
    """Duplicates of ``video`` waiting for its first output (queued, nothing of their own to play), locked."""
    return Video.objects.select_for_update().filter(duplicate_of=video, status=Video.Status.QUEUED, hls_master_key="")


def video_output_switch(
    *,
    video: Video,
    master_key: str,
    poster_key: str,
    duration: float | None,
    renditions: list[Rendition],
    thumbnails_key: str = "",
    duplicate_of: Video | None = None,
    now: datetime | None = None,
) -> None:
    """Make an HLS output the video's and mark it ready (caller holds the video's lock).

    ``renditions`` (unsaved rows) replace the video's; ``max_quality`` is the one with the
    largest short side; ``thumbnails_key`` is the scrubbing previews' WebVTT track ("" for none).
    ``duplicate_of`` names the video whose output this is, None for its own.
    """
    Rendition.objects.filter(video=video).delete()
    for rendition in renditions:
        rendition.video = video
    Rendition.objects.bulk_create(renditions)
    if video.status == Video.Status.UPLOADED:
        video.transition(Video.Status.QUEUED)
    video.transition(Video.Status.READY)
    video.status_reason = ""
    video.hls_master_key = master_key
    video.poster_key = poster_key
    video.thumbnails_key = thumbnails_key
    video.duration = duration
    video.max_quality = max(renditions, key=lambda r: min(r.width, r.height)).name if renditions else ""
    video.ready_at = now or timezone.now()
    video.duplicate_of = duplicate_of
    video.save(
        update_fields=[
            "status",
            "status_reason",
            "hls_master_key",
            "poster_key",
            "thumbnails_key",
            "duration",
            "max_quality",
            "ready_at",
            "duplicate_of",
            "updated_at",
        ]
    )


@transaction.atomic
def video_output_share(*, video: Video, source: Video) -> Video:
    """Give ``video`` the current HLS output of ``source`` (the same original): ready at once, nothing transcoded.

    The renditions are copied as rows pointing at the same stored playlists; the objects
    stay where ``source`` wrote them and are deleted with the last video that plays them.
    """
    copies = list(source.renditions.all())
    for rendition in copies:
        rendition.pk = None
    video_output_switch(
        video=video,
        master_key=source.hls_master_key,
        poster_key=source.poster_key,
        thumbnails_key=source.thumbnails_key,
        duration=source.duration,
        renditions=copies,
        duplicate_of=source,
    )
    logger.info("video_id=%s shares the output %s of video_id=%s", video.id, video.hls_master_key, source.id)
    return video


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
