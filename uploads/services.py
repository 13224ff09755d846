"""Writes for uploads: tus sessions, their bytes, finalization into MediaFile + Video, cleanup.

Bytes of a tus upload go to ``UPLOAD_TEMP_DIR/<id>.part``. One writer at a time per upload
is guaranteed by an exclusive ``flock`` on the part file, taken without waiting: the kernel
drops it when the writing request's file is closed or its process dies, so a dead connection
never leaves a stale lock, on SQLite and PostgreSQL alike. The database offset is then
advanced with a compare-and-set (one conditional UPDATE while an upload is uploading, a short
locking transaction when its status changes), never while bytes stream.
"""
from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import logging
import mimetypes
import os
import shutil
import time
import uuid
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import IO, BinaryIO

from django.conf import settings
from django.db import transaction
from django.db.models import Sum
from django.db.models.functions import Coalesce
from django.utils import timezone
from django_q.tasks import async_task

from media_library.filenames import file_extension
from media_library.models import MediaFile, Video
from media_library.services import media_file_create_from_path, video_create
from transcoding.costs import quota_check_upload
from transcoding.ffmpeg import ProbeError, ProbeResult, probe_file
from transcoding.services import transcode_enqueue
from unpuzzle.exceptions import (
    ChecksumMismatch,
    Conflict,
    DomainError,
    Gone,
    Locked,
    NotFound,
    PayloadTooLarge,
    PermissionDenied,
    StorageUnavailable,
    TooManyRequests,
    UnsupportedMediaType,
    UploadOffsetMismatch,
)
from uploads.formats import container_allowed
from uploads.models import UploadSession
from uploads.tus import Checksum

logger = logging.getLogger(__name__)

BUFFER_BYTES = 1024 * 1024
# Without a checksum, stored progress is recorded this often so a crash loses little.
PROGRESS_RECORD_BYTES = 64 * 1024 * 1024
# Partial uploads (tus concatenation) a user may have open, per allowed concurrent upload.
PARTIALS_PER_UPLOAD = 8
FINALIZE_TASK = "uploads.tasks.finalize_upload"
# A completed upload still waiting this long was missed (worker down, storage outage): retry.
FINALIZE_RETRY_AFTER = timedelta(minutes=2)
# Expired and cancelled rows stay (answering 410) this long before they are deleted.
ENDED_ROW_RETENTION = timedelta(days=7)

S = UploadSession.Status


class BodyIncomplete(DomainError):
    """The request body ended before Content-Length bytes arrived; what came is kept."""

    status_code = 400
    code = "body_incomplete"


# --- helpers --------------------------------------------------------------------------


def max_upload_bytes() -> int:
    return settings.MAX_VIDEO_SIZE_MB * 1024 * 1024


def part_path(upload_id: uuid.UUID) -> Path:
    return Path(settings.UPLOAD_TEMP_DIR) / f"{upload_id}.part"


def _expiry(now: datetime | None = None) -> datetime:
    return (now or timezone.now()) + timedelta(hours=settings.UPLOAD_EXPIRY_HOURS)


def _remove_part_file(path: str) -> None:
    if path:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)


@contextlib.contextmanager
def _locked_part_file(session: UploadSession) -> Iterator[BinaryIO]:
    """Open the part file with an exclusive, non-blocking flock; 423 if another request holds it."""
    try:
        # Unbuffered: each 1 MiB block goes straight to the kernel, no second copy in Python.
        fh = open(session.temp_path, "r+b", buffering=0)
    except FileNotFoundError:
        raise Gone(f"upload {session.id} has no stored bytes any more (it was terminated or expired)") from None
    try:
        try:
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                raise Locked(
                    f"upload {session.id} is being written by another request; wait for it to finish "
                    "(or for its connection to drop), then HEAD the upload and resume from its offset"
                ) from None
            raise
        yield fh
    finally:
        fh.close()  # closing the file releases the flock


def _write_all(fh: BinaryIO, data: bytes | memoryview) -> None:
    view = memoryview(data)
    while view:
        view = view[fh.write(view):]


def _check_format(*, filename: str, filetype: str) -> None:
    """Refuse, at creation, a file whose name or type says it is not an allowed video (415)."""
    allowed = settings.ALLOWED_VIDEO_FORMATS
    ext = file_extension(filename)
    if filename and not ext:
        raise UnsupportedMediaType(
            f"file name {filename!r} has no extension; upload a video file ({', '.join(allowed)})"
        )
    if ext and ext not in allowed:
        raise UnsupportedMediaType(f"'.{ext}' files are not accepted; upload one of: {', '.join(allowed)}")
    filetype = filetype.strip().lower()
    if filetype and not filetype.startswith("video/") and filetype != "application/octet-stream":
        raise UnsupportedMediaType(f"file type {filetype!r} is not a video; upload one of: {', '.join(allowed)}")


def _metadata_filename(metadata: dict[str, str]) -> str:
    return metadata.get("filename") or metadata.get("name") or ""


def _metadata_filetype(metadata: dict[str, str]) -> str:
    return metadata.get("filetype") or metadata.get("type") or ""


def _check_active_limit(*, owner, partial: bool) -> None:
    active = UploadSession.objects.filter(owner=owner, status__in=UploadSession.ACTIVE_STATUSES, is_partial=partial)
    limit = settings.MAX_CONCURRENT_UPLOADS * (PARTIALS_PER_UPLOAD if partial else 1)
    if active.count() >= limit:
        what = "partial uploads" if partial else "unfinished uploads"
        raise TooManyRequests(
            f"you already have {limit} {what} (the limit); finish or terminate one before starting another"
        )


def _check_length(length: int) -> None:
    if length > max_upload_bytes():
        raise PayloadTooLarge(
            f"Upload-Length {length} exceeds the maximum upload size of {max_upload_bytes()} bytes "
            f"({settings.MAX_VIDEO_SIZE_MB} MB)"
        )


def upload_admission_check(
    *, owner, length: int | None, filename: str, filetype: str, partial: bool = False
) -> None:
    """What every new upload (tus or direct) must pass before anything is stored.

    Size up to ``MAX_VIDEO_SIZE_MB`` (413); an allowed video name and type (415) and the
    owner's monthly quotas (413/429) for whole files; at most ``MAX_CONCURRENT_UPLOADS``
    unfinished uploads of either kind (429). Partial tus uploads are chunks: only size and count.
    """
    if length is not None:
        _check_length(length)
    if not partial:
        _check_format(filename=filename, filetype=filetype)
        quota_check_upload(user=owner, size_bytes=length, pending_upload_bytes=upload_sessions_pending_bytes(user=owner))
    _check_active_limit(owner=owner, partial=partial)


def upload_sessions_pending_bytes(*, user) -> int:
    """Declared length of ``user``'s uploads created this month that are not finalized yet
    (in progress or complete): they count against the monthly upload quota like stored originals."""
    start = timezone.localtime().replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    pending = UploadSession.objects.filter(
        owner=user,
        status__in=UploadSession.ACTIVE_STATUSES + (UploadSession.Status.COMPLETE,),
        length__isnull=False,
        created_at__gte=start,
    ).aggregate(total=Coalesce(Sum("length"), 0))["total"]
    return int(pending)


# --- creation -------------------------------------------------------------------------


def _tus_session_new(*, upload_id: uuid.UUID, owner, metadata: dict[str, str], length: int | None, path: Path, **extra) -> UploadSession:
    """The UploadSession row of a tus upload whose part file is ``path``."""
    return UploadSession.objects.create(
        id=upload_id,
        owner=owner,
        kind=UploadSession.Kind.TUS,
        filename=_metadata_filename(metadata)[:255],
        content_type=_metadata_filetype(metadata)[:100],
        length=length,
        metadata=metadata,
        expires_at=_expiry(),
        temp_path=str(path),
        **extra,
    )


@transaction.atomic
def upload_session_create(
    *, owner, length: int | None, metadata: dict[str, str], partial: bool = False
) -> UploadSession:
    """Create a tus upload (length known or deferred) and its empty part file.

    Refused unless ``upload_admission_check`` passes (size, format, quotas, concurrent uploads);
    partial uploads are chunks, their format is checked when they are concatenated.
    """
    upload_admission_check(
        owner=owner,
        length=length,
        filename=_metadata_filename(metadata),
        filetype=_metadata_filetype(metadata),
        partial=partial,
    )
    upload_id = uuid.uuid4()
    path = part_path(upload_id)
    session = _tus_session_new(
        upload_id=upload_id, owner=owner, metadata=metadata, length=length, path=path, is_partial=partial
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    path.touch(exist_ok=False)
    logger.info("upload_id=%s created (length=%s, partial=%s)", session.id, length, partial)
    if length == 0 and not partial:
        session = _advance(session_id=session.id, expected_offset=0, new_offset=0)
        transaction.on_commit(lambda: upload_finalize_enqueue(session_id=session.id))
    return session


def upload_session_concat(*, owner, partial_ids: list[uuid.UUID], metadata: dict[str, str]) -> UploadSession:
    """Create a final upload whose bytes are the partial uploads' bytes, in order.

    The parts must be the owner's own, complete partial uploads. Their bytes are stream-copied
    into the final part file, the final upload is complete at once (and finalized), and the
    consumed parts are marked finalized and their files removed.
    """
    parts_by_id = {
        p.id: p for p in UploadSession.objects.filter(owner=owner, id__in=partial_ids, kind=UploadSession.Kind.TUS)
    }
    parts = []
    for part_id in partial_ids:
        part = parts_by_id.get(part_id)
        if part is None:
            raise NotFound(f"partial upload {part_id} does not exist")
        if not part.is_partial:
            raise Conflict(f"upload {part_id} is not a partial upload (create it with 'Upload-Concat: partial')")
        if part.status != S.COMPLETE:
            raise Conflict(
                f"partial upload {part_id} is {part.status} at offset {part.offset} of {part.length}; "
                "concatenate only complete partial uploads"
            )
        parts.append(part)
    total = sum(p.length or 0 for p in parts)
    _check_length(total)
    _check_format(filename=_metadata_filename(metadata), filetype=_metadata_filetype(metadata))
    quota_check_upload(user=owner, size_bytes=total, pending_upload_bytes=upload_sessions_pending_bytes(user=owner))
    upload_id = uuid.uuid4()
    path = part_path(upload_id)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as out:
        for part in parts:
            with open(part.temp_path, "rb") as src:
                shutil.copyfileobj(src, out, BUFFER_BYTES)
        out.flush()
        if out.tell() != total:
            _remove_part_file(str(path))
            raise Conflict(f"the partial uploads hold {out.tell()} bytes, not the {total} they declared")
    with transaction.atomic():
        session = _tus_session_new(
            upload_id=upload_id, owner=owner, metadata=metadata, length=total, path=path,
            concat_parts=[str(p.id) for p in parts],
        )
        now = timezone.now()
        for part in UploadSession.objects.select_for_update().filter(id__in=[p.id for p in parts]):
            part.transition(S.FINALIZED)
            part.finalized_at = now
            part.save(update_fields=["status", "finalized_at", "updated_at"])
            transaction.on_commit(lambda p=part.temp_path: _remove_part_file(p))
        session = _advance(session_id=session.id, expected_offset=0, new_offset=total)
        transaction.on_commit(lambda: upload_finalize_enqueue(session_id=session.id))
    logger.info("upload_id=%s concatenated from %d partial uploads (%d bytes)", session.id, len(parts), total)
    return session


# --- appending bytes ------------------------------------------------------------------


def _advance_uploading(*, session: UploadSession, expected_offset: int, new_offset: int) -> UploadSession | None:
    """The common PATCH (an uploading upload that does not finish yet) as one conditional UPDATE.

    No transaction and no row lock: the WHERE clause is the compare-and-set. None when the
    row was not at ``expected_offset`` while uploading; ``_advance`` then decides what to report.
    """
    if session.status != S.UPLOADING or (session.length is not None and new_offset >= session.length):
        return None
    now = timezone.now()
    expires_at = _expiry(now)
    moved = UploadSession.objects.filter(pk=session.pk, offset=expected_offset, status=S.UPLOADING).update(
        offset=new_offset, expires_at=expires_at, updated_at=now
    )
    if not moved:
        return None
    session.offset, session.expires_at, session.updated_at = new_offset, expires_at, now
    return session


@transaction.atomic
def _advance(*, session_id: uuid.UUID, expected_offset: int, new_offset: int, length: int | None = None) -> UploadSession:
    """Compare-and-set the stored offset; completes the upload when the last byte is in."""
    session = UploadSession.objects.select_for_update().get(pk=session_id)
    if session.status not in UploadSession.ACTIVE_STATUSES:
        raise Gone(f"upload {session.id} was {session.status} while bytes were being written")
    if session.offset != expected_offset:
        raise UploadOffsetMismatch(
            f"upload {session.id} moved from offset {expected_offset} to {session.offset} during this request"
        )
    fields = ["offset", "updated_at", "expires_at"]
    if length is not None and session.length is None:
        session.length = length
        fields.append("length")
    session.offset = new_offset
    if session.length is not None and new_offset == session.length:
        session.transition(S.COMPLETE)
        session.completed_at = timezone.now()
        # Completed uploads never expire, except partial ones nobody concatenates.
        session.expires_at = _expiry() if session.is_partial else None
        fields += ["status", "completed_at"]
    else:
        if session.status == S.CREATED:
            session.transition(S.UPLOADING)
            fields.append("status")
        # Activity keeps an unfinished upload alive for another UPLOAD_EXPIRY_HOURS.
        session.expires_at = _expiry()
    session.save(update_fields=fields)
    return session


def _check_writable(session: UploadSession) -> None:
    if session.status in (S.EXPIRED, S.CANCELLED):
        raise Gone(f"upload {session.id} was {session.status}; start a new upload")
    if session.concat_parts:
        raise PermissionDenied(f"upload {session.id} is a concatenation of partial uploads and cannot be patched")


def upload_session_append(
    *,
    session: UploadSession,
    offset: int,
    stream: IO[bytes],
    content_length: int | None,
    checksum: Checksum | None = None,
    upload_length: int | None = None,
) -> UploadSession:
    """Write a PATCH body at ``offset`` into the part file, streaming in 1 MiB buffers.

    ``content_length`` None means "read until the stream ends" (chunked requests).
    A body cut off mid-transfer keeps the bytes that arrived (the offset reports them)
    unless ``checksum`` is given: then the body must arrive whole and match, or nothing
    is stored (460 on mismatch). ``upload_length`` sets a deferred length once.
    Not one transaction on purpose: the offset is recorded in short transactions so no
    database lock is held while bytes stream.
    """
    _check_writable(session)
    with _locked_part_file(session) as fh:
        session = UploadSession.objects.get(pk=session.pk)
        _check_writable(session)
        length = session.length
        if upload_length is not None:
            if length is not None and upload_length != length:
                raise Conflict(f"Upload-Length is already {length}; it cannot change to {upload_length}")
            if upload_length < session.offset:
                raise Conflict(f"Upload-Length {upload_length} is smaller than the stored offset {session.offset}")
            _check_length(upload_length)
            length = upload_length
        if offset != session.offset:
            raise UploadOffsetMismatch(
                f"Upload-Offset {offset} does not match the server's offset {session.offset}; "
                "HEAD the upload and resume from its Upload-Offset"
            )
        limit = (length if length is not None else max_upload_bytes()) - offset
        if content_length is not None and content_length > limit:
            raise PayloadTooLarge(
                f"this {content_length}-byte body would pass the upload's "
                f"{'length' if length is not None else 'maximum size'} of {offset + limit} bytes "
                f"(offset {offset}); send at most {limit} bytes"
            )
        if session.status == S.COMPLETE:
            return session
        # Bytes past the recorded offset were never acknowledged (a crashed writer): drop them.
        fh.truncate(offset)
        fh.seek(offset)
        hasher = checksum.new_hasher() if checksum else None
        wanted = content_length if content_length is not None else limit + 1
        recorded = offset
        written = 0
        interrupted: Exception | None = None
        readinto = getattr(stream, "readinto", None)
        buffer = memoryview(bytearray(BUFFER_BYTES)) if readinto is not None else None
        try:
            while written < wanted:
                if buffer is not None:
                    # One reused buffer: no new 1 MiB object (and no page faults) per read.
                    chunk = buffer[: readinto(buffer[: min(BUFFER_BYTES, wanted - written)])]
                else:
                    chunk = stream.read(min(BUFFER_BYTES, wanted - written))
                if not chunk:
                    break
                _write_all(fh, chunk)
                if hasher is not None:
                    hasher.update(chunk)
                written += len(chunk)
                # Chunked bodies are only recorded at the end: they may still turn out too long.
                if hasher is None and content_length is not None and offset + written - recorded >= PROGRESS_RECORD_BYTES:
                    session = _advance_uploading(
                        session=session, expected_offset=recorded, new_offset=offset + written
                    ) or _advance(session_id=session.id, expected_offset=recorded, new_offset=offset + written)
                    recorded = session.offset
        # Socket errors, read timeouts and UnreadablePostError are OSErrors; a closed stream raises ValueError.
        except (OSError, ValueError) as exc:
            interrupted = exc
            logger.info("upload_id=%s body interrupted after %d bytes: %s", session.id, written, exc)
        if written > limit:
            fh.truncate(offset)
            raise PayloadTooLarge(f"the body passed the upload's limit of {offset + limit} bytes; nothing was stored")
        complete_body = content_length is None or written == content_length
        if hasher is not None:
            if not complete_body or interrupted is not None:
                fh.truncate(offset)
                raise BodyIncomplete(
                    f"the body ended after {written} of {content_length} bytes; with Upload-Checksum nothing "
                    f"is stored, resume at offset {offset}"
                )
            if hasher.digest() != checksum.digest:
                fh.truncate(offset)
                raise ChecksumMismatch(
                    f"the {checksum.algorithm} checksum of the {written}-byte body does not match Upload-Checksum; "
                    f"nothing was stored, resend from offset {offset}"
                )
        try:
            session = (
                upload_length is None
                and _advance_uploading(session=session, expected_offset=recorded, new_offset=offset + written)
            ) or _advance(
                session_id=session.id, expected_offset=recorded, new_offset=offset + written, length=upload_length
            )
        except (Gone, UploadOffsetMismatch):
            fh.truncate(recorded)
            raise
    # Queued only now: the finalizer takes the part file's lock, which this request just released.
    if session.status == S.COMPLETE and not session.is_partial:
        transaction.on_commit(lambda: upload_finalize_enqueue(session_id=session.id))
    if not complete_body:
        raise BodyIncomplete(
            f"the body ended after {written} of {content_length} bytes; {written} bytes were stored, "
            f"resume at offset {session.offset}"
        )
    return session


# --- termination and expiry -----------------------------------------------------------


@transaction.atomic
def upload_session_terminate(*, session: UploadSession) -> UploadSession:
    """Cancel an upload and free its disk at once (tus termination).

    Finalized uploads have become videos: terminating them changes nothing (delete the video).
    """
    session = UploadSession.objects.select_for_update().get(pk=session.pk)
    if session.status in (*UploadSession.ACTIVE_STATUSES, S.COMPLETE):
        session.transition(S.CANCELLED)
        session.expires_at = None
        session.save(update_fields=["status", "expires_at", "updated_at"])
        logger.info("upload_id=%s terminated by its owner", session.id)
    if session.status != S.FINALIZED:
        transaction.on_commit(lambda: _remove_part_file(session.temp_path))
    return session


def upload_sessions_expire(*, now: datetime | None = None) -> int:
    """Mark unfinished uploads past ``expires_at`` expired and delete their part files.

    Unconsumed partial uploads expire too, even when complete; other completed uploads never do.
    """
    now = now or timezone.now()
    due = UploadSession.objects.filter(expires_at__lt=now, kind=UploadSession.Kind.TUS).filter(
        status__in=UploadSession.ACTIVE_STATUSES
    ) | UploadSession.objects.filter(expires_at__lt=now, status=S.COMPLETE, is_partial=True)
    count = 0
    for session_id in list(due.values_list("id", flat=True)):
        with transaction.atomic():
            session = UploadSession.objects.select_for_update().get(pk=session_id)
            if session.expires_at is None or session.expires_at >= now:
                continue
            if session.status not in (*UploadSession.ACTIVE_STATUSES, S.COMPLETE):
                continue
            session.transition(S.EXPIRED)
            session.save(update_fields=["status", "updated_at"])
            transaction.on_commit(lambda p=session.temp_path: _remove_part_file(p))
            count += 1
            logger.info("upload_id=%s expired at offset %s of %s", session.id, session.offset, session.length)
    return count


def upload_sessions_purge(*, now: datetime | None = None) -> int:
    """Delete rows of uploads that expired or were cancelled more than ENDED_ROW_RETENTION ago."""
    cutoff = (now or timezone.now()) - ENDED_ROW_RETENTION
    ended = UploadSession.objects.filter(status__in=(S.EXPIRED, S.CANCELLED), updated_at__lt=cutoff)
    for path in ended.values_list("temp_path", flat=True):
        _remove_part_file(path)
    deleted, _ = ended.delete()
    return deleted


def upload_orphan_files_remove(*, now: datetime | None = None) -> int:
    """Delete part files in UPLOAD_TEMP_DIR that no live upload owns (left by crashes)."""
    root = Path(settings.UPLOAD_TEMP_DIR)
    if not root.is_dir():
        return 0
    cutoff = ((now or timezone.now()) - timedelta(hours=settings.UPLOAD_EXPIRY_HOURS)).timestamp()
    live = {
        str(p)
        for p in UploadSession.objects.filter(
            status__in=(*UploadSession.ACTIVE_STATUSES, S.COMPLETE)
        ).values_list("temp_path", flat=True)
    }
    removed = 0
    for path in root.glob("*.part"):
        if str(path) not in live and path.stat().st_mtime < cutoff:
            _remove_part_file(str(path))
            removed += 1
    return removed


def uploads_cleanup(*, now: datetime | None = None) -> dict[str, int]:
    """Everything the scheduled cleanup does: expire, purge old rows, remove orphan part files."""
    now = now or timezone.now()
    result = {
        "expired": upload_sessions_expire(now=now),
        "purged": upload_sessions_purge(now=now),
        "orphans": upload_orphan_files_remove(now=now),
    }
    logger.info("upload cleanup: %s", result)
    return result


# --- finalization ---------------------------------------------------------------------


def upload_finalize_enqueue(*, session_id: uuid.UUID) -> None:
    """Queue finalization of a complete upload on the short-task django-q2 cluster."""
    async_task(
        FINALIZE_TASK, str(session_id), task_name=f"finalize-upload-{session_id}", group="uploads",
        cluster=settings.SHORT_TASKS_CLUSTER,
    )


def _file_digest(path: str | os.PathLike) -> tuple[str, int]:
    digest = hashlib.sha256()
    size = 0
    with open(path, "rb") as fh:
        while chunk := fh.read(BUFFER_BYTES):
            digest.update(chunk)
            size += len(chunk)
    return digest.hexdigest(), size


@transaction.atomic
def upload_session_fail(*, session_id: uuid.UUID, reason: str) -> None:
    """Mark a complete upload failed with ``reason`` (people read it) and free its part file."""
    session = UploadSession.objects.select_for_update().get(pk=session_id)
    if session.status != S.COMPLETE:
        return
    session.transition(S.FAILED)
    session.error = reason
    session.save(update_fields=["status", "error", "updated_at"])
    transaction.on_commit(lambda: _remove_part_file(session.temp_path))
    logger.info("upload_id=%s failed: %s", session.id, reason)


def _mime_type(session: UploadSession) -> str:
    declared = (session.content_type or "").lower()
    if declared.startswith("video/"):
        return declared
    guessed, _ = mimetypes.guess_type(session.filename or "")
    return guessed or "application/octet-stream"


def upload_session_finalize(*, session_id: uuid.UUID) -> UploadSession:
    """Turn a complete upload into MediaFile + Video; idempotent, safe to retry.

    A tus upload's bytes come from the local part file, held under the same flock a writer
    takes so two finalizers never work on one upload; a direct upload's object is streamed
    from the bucket (``uploads.direct.direct_upload_finalize``). See
    ``upload_finalize_from_path`` for the steps.
    """
    session = UploadSession.objects.get(pk=session_id)
    if session.status != S.COMPLETE or session.is_partial:
        return session
    if session.kind == UploadSession.Kind.DIRECT:
        # Imported here: uploads.direct builds on this module.
        from uploads.direct import direct_upload_finalize

        return direct_upload_finalize(session=session)
    try:
        with _locked_part_file(session) as fh:
            return upload_finalize_from_path(session=session, path=fh.name)
    except Locked:
        logger.info("upload_id=%s is being finalized by another worker", session_id)
        return session
    except Gone:
        upload_session_fail(session_id=session.id, reason="the uploaded bytes are missing on the upload server")
        return UploadSession.objects.get(pk=session_id)


def upload_finalize_from_path(
    *,
    session: UploadSession,
    path: str | os.PathLike,
    stored_key: str | None = None,
    media_file_id: uuid.UUID | None = None,
) -> UploadSession:
    """The finalization steps for bytes available at a local ``path``.

    sha256 and size; ffprobe validation (not a decodable, allowed video: the upload fails with
    the reason); the owner's duplicate is reused, else the original goes to storage (or is
    already there under ``stored_key``, for the MediaFile ``media_file_id`` named in that key);
    MediaFile + Video are created and transcoding is
    enqueued. When storage is unreachable the upload stays complete with the error noted and
    the scheduled retry finalizes it later.
    """
    sha256, size = _file_digest(path)
    if session.length is not None and size != session.length:
        upload_session_fail(session_id=session.id, reason=f"stored {size} bytes but the upload declared {session.length}")
        return UploadSession.objects.get(pk=session.id)
    try:
        probe: ProbeResult = probe_file(path, ffprobe_bin=settings.FFPROBE_BIN, ffmpeg_bin=settings.FFMPEG_BIN)
    except ProbeError as exc:
        upload_session_fail(session_id=session.id, reason=f"not a playable video: {exc}")
        return UploadSession.objects.get(pk=session.id)
    format_name = probe.format_name
    if format_name and not container_allowed(format_name, settings.ALLOWED_VIDEO_FORMATS):
        upload_session_fail(
            session_id=session.id,
            reason=f"the file is a {format_name.split(',')[0]} container, which is not accepted "
            f"(accepted: {', '.join(settings.ALLOWED_VIDEO_FORMATS)})",
        )
        return UploadSession.objects.get(pk=session.id)
    filename = session.filename or f"{session.id}.{probe_extension(format_name)}"
    try:
        media_file, created = media_file_create_from_path(
            owner=session.owner,
            path=path,
            original_filename=filename,
            size=size,
            sha256=sha256,
            mime_type=_mime_type(session),
            probe=probe,
            stored_key=stored_key,
            media_file_id=media_file_id,
        )
    except StorageUnavailable as exc:
        UploadSession.objects.filter(pk=session.id, status=S.COMPLETE).update(
            error=f"{exc.message}; finalization will be retried", updated_at=timezone.now()
        )
        return UploadSession.objects.get(pk=session.id)
    return _link_video(session_id=session.id, media_file=media_file, media_created=created)


def probe_extension(format_name: str) -> str:
    first = (format_name or "").split(",")[0]
    return {"mov": "mp4", "matroska": "mkv"}.get(first, first or "bin")


@transaction.atomic
def _link_video(*, session_id: uuid.UUID, media_file: MediaFile, media_created: bool) -> UploadSession:
    session = UploadSession.objects.select_for_update().get(pk=session_id)
    if session.status != S.COMPLETE:
        return session
    # The same lecture uploaded twice: one stored original and its existing video, not a second transcode.
    video = None if media_created else media_file.videos.filter(owner=session.owner).order_by("-created_at").first()
    if video is None:
        title = (session.metadata or {}).get("title") or Path(session.filename or "").stem or "Untitled video"
        video = video_create(owner=session.owner, title=title, media_file=media_file)
    session.transition(S.FINALIZED)
    session.media_file = media_file
    session.video = video
    session.error = ""
    session.finalized_at = timezone.now()
    session.save(update_fields=["status", "media_file", "video", "error", "finalized_at", "updated_at"])
    transaction.on_commit(lambda: _remove_part_file(session.temp_path))
    if video.status in (Video.Status.UPLOADED, Video.Status.FAILED, Video.Status.BLOCKED):
        transcode_enqueue(video=video)
    logger.info(
        "upload_id=%s finalized: media_file_id=%s (%s) video_id=%s",
        session.id, media_file.id, "new" if media_created else "duplicate", video.id,
    )
    return session


def upload_session_ingest(*, owner, path: str | os.PathLike, title: str = "") -> UploadSession:
    """Take a file already on this machine through the upload path (``manage.py ingest``).

    The same size and format checks as an upload, then the same finalization: sha256,
    ffprobe, duplicate check, original stored, MediaFile + Video, transcoding enqueued. The
    source file is read, never moved or deleted.
    """
    source = Path(path)
    if not source.is_file():
        raise NotFound(f"{source} is not a file")
    metadata = {"filename": source.name}
    if title:
        metadata["title"] = title
    length = source.stat().st_size
    content_type = mimetypes.guess_type(source.name)[0] or ""
    upload_admission_check(owner=owner, length=length, filename=source.name, filetype=content_type)
    now = timezone.now()
    session = UploadSession.objects.create(
        owner=owner,
        kind=UploadSession.Kind.INGEST,
        filename=source.name[:255],
        content_type=content_type,
        length=length,
        offset=length,
        metadata=metadata,
        status=S.COMPLETE,
        completed_at=now,
    )
    logger.info("upload_id=%s ingesting %s (%d bytes)", session.id, source, length)
    return upload_finalize_from_path(session=session, path=source)


def upload_sessions_retry_finalization(*, now: datetime | None = None, time_budget_s: float | None = None) -> int:
    """Finalize complete uploads whose finalization did not happen (worker down, storage outage).

    Oldest first, one after another, and no new one once ``time_budget_s`` (default: half
    the short-task cluster's ``Q_TIMEOUT_S``) has passed: after an outage a backlog of large
    uploads is worked off over several scheduled runs instead of the task being killed mid-file.
    """
    cutoff = (now or timezone.now()) - FINALIZE_RETRY_AFTER
    budget = settings.Q_TIMEOUT_S / 2 if time_budget_s is None else time_budget_s
    pending = list(
        UploadSession.objects.filter(status=S.COMPLETE, is_partial=False, completed_at__lt=cutoff)
        .order_by("completed_at")
        .values_list("id", flat=True)
    )
    started = time.monotonic()
    done = 0
    for position, session_id in enumerate(pending):
        if position and time.monotonic() - started >= budget:
            logger.info("finalization retry: %d uploads left for the next run", len(pending) - position)
            break
        if upload_session_finalize(session_id=session_id).status != S.COMPLETE:
            done += 1
    return done
