"""Writes for stored media: originals and the videos made from them."""
from __future__ import annotations

import logging
import os
import uuid

from django.db import IntegrityError, transaction

from media_library.filenames import safe_filename
from media_library.models import MediaFile, Video
from transcoding.ffmpeg import ProbeResult
from unpuzzle.exceptions import StorageUnavailable
from unpuzzle.storage import delete_key, save_file

logger = logging.getLogger(__name__)


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
) -> tuple[MediaFile, bool]:
    """Store the original at ``path`` and create its MediaFile; returns ``(media_file, created)``.

    An owner's existing copy of the same bytes is returned instead of storing a second one.
    ``stored_key`` names an object already in storage (direct-to-bucket uploads): nothing is
    copied then. Raises ``StorageUnavailable`` when the object store cannot take the file;
    no row is written in that case, so the caller can retry.
    """
    existing = media_file_find_duplicate(owner=owner, sha256=sha256)
    if existing is not None:
        return existing, False
    media_file_id = uuid.uuid4()
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
