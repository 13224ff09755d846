"""Writes for stored media: where originals live, the videos made from them, editing, deleting and counting playback grants."""

from __future__ import annotations

import dataclasses
import functools
import io
import logging
import posixpath
import uuid
from datetime import datetime
from typing import TYPE_CHECKING

from django.conf import settings
from django.db import transaction
from django.db.models import F, QuerySet
from django.utils import timezone

from media_library.filenames import safe_filename
from media_library.models import CaptionTrack, MediaFile, Rendition, Video
from media_library.playlists import resolve_playlist_uri
from media_library.selectors import caption_track_key, hls_folders_in_use, video_hls_prefix
from media_library.serializers import VideoSerializer
from media_library.webvtt import (
    FFMPEG_MPEGTS_START_PTS,
    CaptionsError,
    CaptionsTooLarge,
    captions_parse,
    is_language_tag,
    mpegts_first_pts,
    webvtt_render,
    webvtt_set_timestamp_map,
)
from unpuzzle.exceptions import DomainError, PayloadTooLarge
from unpuzzle.storage import delete_key, delete_prefix, get_storage, iter_objects, save_stream
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
    video.status_code = ""
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
            "status_code",
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
    # Caption files line up with the timestamps of the output they were made for; a failure
    # there is logged and leaves the switch done (a track's next file is timed afresh).
    transaction.on_commit(lambda: caption_tracks_realign(video_id=video.id), robust=True)


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


@dataclasses.dataclass(frozen=True)
class CaptionTrackSaved:
    """A caption track as stored, with what the file's check reported but did not refuse."""

    track: CaptionTrack
    warnings: tuple[str, ...] = ()


class InvalidCaptions(DomainError):
    """A caption file or track setting that cannot be used; nothing was stored."""

    code = "invalid_captions"


def caption_track_create(
    *,
    video: Video,
    data: bytes,
    language: str,
    label: str,
    kind: str = CaptionTrack.Kind.SUBTITLES,
    is_default: bool = False,
) -> CaptionTrackSaved:
    """Check a WebVTT or SRT file, store it as WebVTT under the video's prefix and add the track.

    Raises:
        InvalidCaptions: (400) bad file or settings; PayloadTooLarge (413) over ``CAPTIONS_MAX_BYTES``.
            Nothing is stored then.
    """
    _check_track_fields(language=language, label=label, kind=kind)
    body, mpegts, cue_count, warnings = _captions_webvtt(video=video, data=data)
    track = CaptionTrack(video=video, language=language, label=label, kind=kind, is_default=is_default, mpegts=mpegts)
    track.storage_key = caption_track_key(video_id=video.id, track_id=track.id, revision=track.revision)
    track.cue_count, track.bytes = cue_count, len(body)
    with transaction.atomic():
        # The video's lock orders concurrent saves that move the default flag.
        Video.objects.select_for_update().filter(pk=video.pk).first()
        if is_default:
            CaptionTrack.objects.filter(video=video, is_default=True).update(is_default=False)
        track.save()
        save_stream(track.storage_key, io.BytesIO(body))
    logger.info("video_id=%s caption track %s (%s) added: %d cues", video.id, track.id, language, cue_count)
    return CaptionTrackSaved(track=track, warnings=warnings)


def caption_track_update(
    *,
    track: CaptionTrack,
    data: bytes | None = None,
    language: str | None = None,
    label: str | None = None,
    kind: str | None = None,
    is_default: bool | None = None,
) -> CaptionTrackSaved:
    """Change a track's settings and/or replace its file (stored under a new key; the old one is deleted).

    Raises:
        InvalidCaptions, PayloadTooLarge: as ``caption_track_create``; the track is left as it was.
    """
    _check_track_fields(
        language=track.language if language is None else language,
        label=track.label if label is None else label,
        kind=track.kind if kind is None else kind,
    )
    warnings: tuple[str, ...] = ()
    body = None
    if data is not None:
        body, mpegts, cue_count, warnings = _captions_webvtt(video=track.video, data=data)
    with transaction.atomic():
        track = CaptionTrack.objects.select_for_update().get(pk=track.pk)
        fields = ["updated_at"]
        for name, value in (("language", language), ("label", label), ("kind", kind), ("is_default", is_default)):
            if value is not None:
                setattr(track, name, value)
                fields.append(name)
        if is_default:
            CaptionTrack.objects.filter(video_id=track.video_id, is_default=True).exclude(pk=track.pk).update(
                is_default=False
            )
        if body is not None:
            old_key = track.storage_key
            track.revision += 1
            track.storage_key = caption_track_key(video_id=track.video_id, track_id=track.id, revision=track.revision)
            track.cue_count, track.bytes, track.mpegts = cue_count, len(body), mpegts
            fields += ["revision", "storage_key", "cue_count", "bytes", "mpegts"]
            save_stream(track.storage_key, io.BytesIO(body))
            transaction.on_commit(lambda: delete_key(old_key))
        track.save(update_fields=fields)
    logger.info("caption track %s of video_id=%s updated: %s", track.id, track.video_id, ", ".join(fields))
    return CaptionTrackSaved(track=track, warnings=warnings)


def caption_tracks_realign(*, video_id: uuid.UUID) -> int:
    """Re-time the stored caption files of a video to its current HLS output; returns how many changed.

    A file's ``X-TIMESTAMP-MAP`` holds the first timestamp of the output it was made for (or
    ffmpeg's default before the first transcode); after a (re-)transcode each file whose value
    differs is written again under its next revision and the old object deleted.
    """
    video = Video.objects.filter(pk=video_id).prefetch_related("renditions").first()
    if video is None or not CaptionTrack.objects.filter(video=video).exists():
        return 0
    mpegts = video_first_pts(video=video)
    storage = get_storage()
    changed = 0
    for stale in CaptionTrack.objects.filter(video=video).exclude(mpegts=mpegts):
        with transaction.atomic():
            track = CaptionTrack.objects.select_for_update().filter(pk=stale.pk).first()
            if track is None or track.mpegts == mpegts:
                continue
            with storage.open(track.storage_key, "rb") as fh:
                body = webvtt_set_timestamp_map(fh.read().decode("utf-8"), mpegts=mpegts).encode("utf-8")
            old_key = track.storage_key
            track.revision += 1
            track.storage_key = caption_track_key(video_id=video.id, track_id=track.id, revision=track.revision)
            track.mpegts, track.bytes = mpegts, len(body)
            save_stream(track.storage_key, io.BytesIO(body))
            track.save(update_fields=["revision", "storage_key", "mpegts", "bytes", "updated_at"])
            transaction.on_commit(functools.partial(delete_key, old_key))
        changed += 1
    logger.info("video_id=%s: %d caption files re-timed to MPEGTS %d", video.id, changed, mpegts)
    return changed


@transaction.atomic
def caption_track_delete(*, track: CaptionTrack) -> None:
    """Remove a caption track and, after commit, its stored file."""
    key, video_id = track.storage_key, track.video_id
    track.delete()
    transaction.on_commit(lambda: delete_key(key))
    logger.info("caption track %s of video_id=%s deleted", key, video_id)


def caption_file_check(*, video: Video, data: bytes) -> tuple[str, ...]:
    """Check a caption file as ``caption_track_create`` would, storing nothing; returns its warnings.

    Raises:
        InvalidCaptions, PayloadTooLarge: as ``caption_track_create``.
    """
    return _captions_webvtt(video=video, data=data)[3]


def _check_track_fields(*, language: str, label: str, kind: str) -> None:
    if not is_language_tag(language):
        raise InvalidCaptions(f"language {language!r} is not a BCP 47 language tag; use e.g. 'en', 'pt-BR', 'ja'")
    if not label.strip() or len(label) > 100:
        raise InvalidCaptions("label must be 1 to 100 characters: the name the player's caption menu shows")
    if kind not in CaptionTrack.Kind.values:
        raise InvalidCaptions(f"kind {kind!r} is unknown; use one of {', '.join(CaptionTrack.Kind.values)}")


def _captions_webvtt(*, video: Video, data: bytes) -> tuple[bytes, int, int, tuple[str, ...]]:
    """The checked file as WebVTT bytes aligned with the video's segments, the MPEG-TS time it is
    aligned to, its cue count and warnings."""
    try:
        parsed = captions_parse(
            data,
            max_bytes=settings.CAPTIONS_MAX_BYTES,
            max_cues=settings.CAPTIONS_MAX_CUES,
            duration=video.duration,
        )
    except CaptionsTooLarge as exc:
        raise PayloadTooLarge(str(exc), code="captions_too_large") from None
    except CaptionsError as exc:
        raise InvalidCaptions(str(exc)) from None
    mpegts = video_first_pts(video=video)
    body = webvtt_render(parsed.cues, mpegts=mpegts).encode("utf-8")
    return body, mpegts, len(parsed.cues), parsed.warnings


def video_first_pts(*, video: Video) -> int:
    """The first presentation timestamp (90 kHz) of the video's first segment, what WebVTT's
    ``X-TIMESTAMP-MAP`` maps cue time 0 to; ffmpeg's default start when there is no output yet."""
    rendition = min(video.renditions.all(), key=lambda r: r.height, default=None)
    if rendition is None or not video.hls_master_key:
        return FFMPEG_MPEGTS_START_PTS
    storage = get_storage()
    try:
        with storage.open(rendition.playlist_key, "rb") as fh:
            lines = fh.read().decode("utf-8").splitlines()
        uri = next(line.strip() for line in lines if line.strip() and not line.startswith("#"))
        key = resolve_playlist_uri(
            playlist_key=rendition.playlist_key, uri=uri, hls_prefix=video_hls_prefix(video=video)
        )
        with storage.open(key, "rb") as fh:
            head = fh.read(512 * 1024)
    except (OSError, StopIteration, ValueError):
        logger.warning("video_id=%s: first segment unreadable, captions assume ffmpeg's start", video.id)
        return FFMPEG_MPEGTS_START_PTS
    return mpegts_first_pts(head) or FFMPEG_MPEGTS_START_PTS
