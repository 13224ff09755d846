"""Originals and what ffprobe finds in them: probing one against the settings' limits, storing a new
original, and storing a later probe."""

from __future__ import annotations

import logging
import os
import uuid
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from media_library.models import MediaFile
from media_library.services import media_file_find_duplicate, original_key
from transcoding.ffmpeg.probe import ProbeResult, probe_file
from transcoding.ffmpeg.sanity import SourceLimits
from unpuzzle.exceptions import StorageUnavailable
from unpuzzle.storage import delete_key, save_file

if TYPE_CHECKING:
    from django.contrib.auth.models import User

logger = logging.getLogger(__name__)


def source_limits() -> SourceLimits:
    """The ``MAX_SOURCE_*`` / ``MIN_SOURCE_BYTES_PER_S`` settings (0 leaves a limit unchecked)."""
    return SourceLimits(
        max_pixels=settings.MAX_SOURCE_PIXELS,
        max_pixel_rate=settings.MAX_SOURCE_PIXEL_RATE,
        max_duration_s=settings.MAX_SOURCE_DURATION_S,
        min_bytes_per_s=settings.MIN_SOURCE_BYTES_PER_S,
        max_gap_s=settings.MAX_SOURCE_TIMESTAMP_GAP_S,
    )


def original_probe(*, path: str | os.PathLike[str]) -> ProbeResult:
    """Probe an original as finalization and the transcode worker both do: ffprobe, the source
    limits, the stream-copy pass and the decode check. Raises ProbeError with the reason."""
    return probe_file(path, ffprobe_bin=settings.FFPROBE_BIN, ffmpeg_bin=settings.FFMPEG_BIN, limits=source_limits())


def media_file_probe_fields(*, probe: ProbeResult) -> dict[str, Any]:
    """The MediaFile fields a probe fills: display size, codecs, rates, audio and the raw ffprobe JSON."""
    return {
        "duration": probe.duration,
        "width": probe.width,
        "height": probe.height,
        "video_codec": probe.video_codec,
        "video_bitrate": probe.video_bitrate,
        "bitrate": probe.bitrate,
        "frame_rate": probe.frame_rate,
        "audio_codec": probe.audio_codec or "",
        "has_audio": probe.has_audio,
        "probe": probe.raw,
    }


def media_file_create_from_path(
    *,
    owner: User,
    path: str | os.PathLike[str],
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
                **media_file_probe_fields(probe=probe),
            )
    except IntegrityError:
        # Another finalization stored the same bytes a moment ago: keep theirs, drop ours.
        existing = media_file_find_duplicate(owner=owner, sha256=sha256)
        if existing is None:
            raise
        if stored_key is None and existing.storage_key != key:
            delete_key(key)
        return existing, False
    logger.info("media_file_id=%s stored %s (%d bytes)", media_file.id, key, size)
    return media_file, True


def media_file_probe_update(*, media_file_id: uuid.UUID, probe: ProbeResult) -> None:
    """Store a probe of an original that had none (one UPDATE; ``updated_at`` set too)."""
    MediaFile.objects.filter(pk=media_file_id).update(**media_file_probe_fields(probe=probe), updated_at=timezone.now())
