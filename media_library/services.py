"""Writes for stored media: originals, the videos made from them, editing, deleting and counting playback grants."""
from __future__ import annotations

import logging
import os
import uuid

from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone

from media_library.filenames import safe_filename
from media_library.models import MediaFile, Video
from transcoding.ffmpeg import ProbeResult
from transcoding.models import TranscodeJob
from unpuzzle.exceptions import StorageUnavailable
from unpuzzle.storage import delete_key, delete_prefix, save_file

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


def original_key(*, media_file_id: uuid.UUID, filename: str) -> str:
    """Where an original lives: ``originals/<media_file_id>/<safe filename>``."""
    return f"originals/{media_file_id}/{safe_filename(filename)}"


def media_file_find_duplicate(*, owner, sha256: str) -> MediaFile | None:
    """The owner's stored original with these bytes, if any (one stored copy per owner and content)."""
    return MediaFile.objects.filter(owner=owner, sha256=sha256, status=MediaFile.Status.STORED).first()


def _probe_fields(probe: ProbeResult) -> dict:
    return {
        "duration": probe.duration,
        "width": probe.width,
        "height": probe.height,
        "video_codec": probe.video_codec or "",
        "video_bitrate": probe.video_bitrate,
        "bitrate": probe.bitrate,
        "frame_rate": probe.frame_rate,
        "audio_codec": probe.audio_codec or "",
        "has_audio": bool(probe.has_audio),
        "probe": probe.raw or {},
    }


def media_file_create_from_path(
    *,
    owner,
    path: str | os.PathLike,
    original_filename: str,
    size: int,
    sha256: str,
    mime_type: str,
    probe: ProbeResult,
    stored_key: str | None = None,
    media_file_id: uuid.UUID | None = None,
) -> tuple[MediaFile, bool]:
    """Store the original at ``path`` and create its MediaFile; returns ``(media_file, created)``.

    An owner's existing copy of the same bytes is returned instead of storing a second one.
    ``stored_key`` names an object already in storage (direct-to-bucket uploads): nothing is
    copied then, and ``media_file_id`` is the id that key was made for. Raises ``StorageUnavailable`` when the object store cannot take the file;
    no row is written in that case, so the caller can retry.
    """
    existing = media_file_find_duplicate(owner=owner, sha256=sha256)
    if existing is not None:
        return existing, False
    media_file_id = media_file_id or uuid.uuid4()
    key = stored_key or original_key(media_file_id=media_file_id, filename=original_filename)
    if stored_key is None:
        try:
            save_file(key, path)
        except Exception as exc:  # botocore, socket and filesystem errors all mean "try again later"
            logger.warning("media_file_id=%s could not store %s: %s", media_file_id, key, exc)
            raise StorageUnavailable(f"could not store the original at {key!r}: {exc}") from exc
    try:
        with transaction.atomic():
            media_file = MediaFile.objects.create(
                id=media_file_id,
                owner=owner,
                original_filename=original_filename[:255],
                storage_key=key,
                size=size,
                sha256=sha256,
                mime_type=mime_type[:100],
                **_probe_fields(probe),
            )
    except IntegrityError:
        # Another finalization stored the same bytes a moment ago: keep theirs, drop ours.
        existing = media_file_find_duplicate(owner=owner, sha256=sha256)
        if existing is None:
            raise
        if stored_key is None:
            delete_key(key)
        return existing, False
    logger.info("media_file_id=%s stored %s (%d bytes)", media_file.id, key, size)
    return media_file, True


@transaction.atomic
def video_create(*, owner, title: str, media_file: MediaFile, description: str = "") -> Video:
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
