"""Writes for tus uploads: creation, concatenation, appending bytes, termination.

Bytes go to the upload's part file (``uploads.partfiles``), one writer at a time under its
flock. The database offset is advanced with a compare-and-set (one conditional UPDATE while
an upload is uploading, a short locking transaction when its status changes), never while
bytes stream.
"""

from __future__ import annotations

import errno
import functools
import logging
import os
import shutil
import uuid
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO, NoReturn, Protocol, cast

from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from unpuzzle.exceptions import (
    ChecksumMismatch,
    Conflict,
    DomainError,
    Gone,
    InsufficientStorage,
    NotFound,
    PayloadTooLarge,
    PermissionDenied,
    UploadOffsetMismatch,
)
from uploads.body_rate import BodyTooSlow
from uploads.models import UploadSession
from uploads.partfiles import (
    BUFFER_BYTES,
    locked_part_file,
    part_files_dir,
    part_path,
    remove_part_file,
    write_all,
)
from uploads.services.admission import (
    max_upload_bytes,
    upload_admission_check,
    upload_disk_space_check,
    upload_expiry,
    upload_file_check,
    upload_length_check,
    upload_permission_check,
)
from uploads.services.finalize import upload_finalize_enqueue
from uploads.tus import Checksum

if TYPE_CHECKING:
    from django.contrib.auth.base_user import AbstractBaseUser
    from django.contrib.auth.models import User

logger = logging.getLogger(__name__)

# Without a checksum, stored progress is recorded this often so a crash loses little.
PROGRESS_RECORD_BYTES = 64 * 1024 * 1024
# A concatenation copies at disk speed; a claim this old belongs to a request that died.
CONCAT_CLAIM_TTL = timedelta(hours=1)

S = UploadSession.Status


class BodyStream(Protocol):
    """A request body: ``read(n)`` returns up to ``n`` bytes, empty at the end; a ``readinto``
    method, when the stream has one, is used instead to fill a reused buffer."""

    def read(self, size: int, /) -> bytes: ...


class BodyIncomplete(DomainError):
    """The request body ended before Content-Length bytes arrived; what came is kept."""

    status_code = 400
    code = "body_incomplete"


class BodyTooSlowError(DomainError):
    """The request body trickled below ``UPLOAD_MIN_BYTES_PER_S`` and was cut; what came is kept."""

    status_code = 408
    code = "body_too_slow"


def _metadata_filename(metadata: dict[str, str]) -> str:
    return metadata.get("filename") or metadata.get("name") or ""


def _metadata_filetype(metadata: dict[str, str]) -> str:
    return metadata.get("filetype") or metadata.get("type") or ""


# --- creation -------------------------------------------------------------------------


def _tus_session_new(
    *,
    upload_id: uuid.UUID,
    owner: AbstractBaseUser,
    metadata: dict[str, str],
    length: int | None,
    path: Path,
    **extra: bool | list[str],
) -> UploadSession:
    """The UploadSession row of a tus upload whose part file is ``path``."""
    return UploadSession.objects.create(
        id=upload_id,
        owner=cast("User", owner),
        kind=UploadSession.Kind.TUS,
        filename=_metadata_filename(metadata)[:255],
        content_type=_metadata_filetype(metadata)[:100],
        length=length,
        metadata=metadata,
        expires_at=upload_expiry(),
        temp_path=str(path),
        **extra,
    )


@transaction.atomic
def upload_session_create(
    *, owner: AbstractBaseUser, length: int | None, metadata: dict[str, str], partial: bool = False
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
        part_file=True,
    )
    upload_disk_space_check(length=length)
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


def upload_session_concat(
    *, owner: AbstractBaseUser, partial_ids: list[uuid.UUID], metadata: dict[str, str]
) -> UploadSession:
    """Create a final upload whose bytes are the partial uploads' bytes, in order.

    The parts must be the owner's own, complete partial uploads. They are claimed first, all
    or none (a concurrent concatenation of any of them gets 409), their bytes stream-copied
    into the final part file, the final upload is complete at once (and finalized), and the
    consumed parts are marked finalized and their files removed. A failed copy leaves no file
    and releases the claim, so the parts can be concatenated again.
    """
    upload_permission_check(owner)
    parts_by_id = {
        p.id: p
        for p in UploadSession.objects.filter(
            owner=cast("User", owner), id__in=partial_ids, kind=UploadSession.Kind.TUS
        )
    }
    parts = []
    for part_id in partial_ids:
        part = parts_by_id.get(part_id)
        if part is None:
            raise NotFound(f"partial upload {part_id} does not exist")
        if not part.is_partial:
            raise Conflict(f"upload {part_id} is not a partial upload (create it with 'Upload-Concat: partial')")
        _check_concatenable(part)
        parts.append(part)
    total = sum(p.length or 0 for p in parts)
    upload_file_check(
        owner=owner,
        length=total,
        filename=_metadata_filename(metadata),
        filetype=_metadata_filetype(metadata),
        replacing=[p.id for p in parts],
    )
    upload_disk_space_check(length=total)
    claimed_at = _claim_parts(parts)
    upload_id = uuid.uuid4()
    path = part_path(upload_id)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "wb") as out:
            for part in parts:
                with open(part.temp_path, "rb") as src:
                    shutil.copyfileobj(src, out, BUFFER_BYTES)
            out.flush()
            if out.tell() != total:
                raise Conflict(f"the partial uploads hold {out.tell()} bytes, not the {total} they declared")
        with transaction.atomic():
            session = _tus_session_new(
                upload_id=upload_id,
                owner=owner,
                metadata=metadata,
                length=total,
                path=path,
                concat_parts=[str(p.id) for p in parts],
            )
            now = timezone.now()
            for part in UploadSession.objects.select_for_update().filter(id__in=[p.id for p in parts]):
                if part.finalize_started_at != claimed_at:
                    raise Conflict(f"partial upload {part.id} was taken by another concatenation meanwhile")
                part.transition(S.FINALIZED)
                part.finalized_at = now
                part.save(update_fields=["status", "finalized_at", "updated_at"])
                transaction.on_commit(functools.partial(remove_part_file, part.temp_path))
            session = _advance(session_id=session.id, expected_offset=0, new_offset=total)
            transaction.on_commit(lambda: upload_finalize_enqueue(session_id=session.id))
    except BaseException:
        remove_part_file(str(path))
        UploadSession.objects.filter(
            id__in=[p.id for p in parts], status=S.COMPLETE, finalize_started_at=claimed_at
        ).update(finalize_started_at=None)
        raise
    logger.info("upload_id=%s concatenated from %d partial uploads (%d bytes)", session.id, len(parts), total)
    return session


def _check_concatenable(part: UploadSession) -> None:
    if part.status == S.FINALIZED:
        raise Conflict(f"partial upload {part.id} is already part of another upload")
    if part.status != S.COMPLETE:
        raise Conflict(
            f"partial upload {part.id} is {part.status} at offset {part.offset} of {part.length}; "
            "concatenate only complete partial uploads"
        )


class _PartsTaken(Exception):
    """Rolls back a claim that did not get every part."""


def _claim_parts(parts: list[UploadSession]) -> datetime:
    """Mark every part as being concatenated (``finalize_started_at``), or none: 409 when another
    concatenation holds one (a claim older than ``CONCAT_CLAIM_TTL`` is a dead request's)."""
    now = timezone.now()
    ids = {p.id for p in parts}
    free = Q(finalize_started_at__isnull=True) | Q(finalize_started_at__lt=now - CONCAT_CLAIM_TTL)
    try:
        with transaction.atomic():
            claimed = UploadSession.objects.filter(id__in=ids, status=S.COMPLETE).filter(free)
            if claimed.update(finalize_started_at=now) != len(ids):
                raise _PartsTaken
    except _PartsTaken:
        for part in UploadSession.objects.filter(id__in=ids):
            _check_concatenable(part)
        raise Conflict(
            "these partial uploads are already being concatenated into another upload; try again shortly"
        ) from None
    return now


# --- appending bytes ------------------------------------------------------------------


def _advance_uploading(*, session: UploadSession, expected_offset: int, new_offset: int) -> UploadSession | None:
    """The common PATCH (an uploading upload that does not finish yet) as one conditional UPDATE.

    No transaction and no row lock: the WHERE clause is the compare-and-set. None when the
    row was not at ``expected_offset`` while uploading; ``_advance`` then decides what to report.
    """
    if session.status != S.UPLOADING or (session.length is not None and new_offset >= session.length):
        return None
    now = timezone.now()
    expires_at = upload_expiry(now=now)
    moved = UploadSession.objects.filter(pk=session.pk, offset=expected_offset, status=S.UPLOADING).update(
        offset=new_offset, expires_at=expires_at, updated_at=now
    )
    if not moved:
        return None
    session.offset, session.expires_at, session.updated_at = new_offset, expires_at, now
    return session


@transaction.atomic
def _advance(
    *, session_id: uuid.UUID, expected_offset: int, new_offset: int, length: int | None = None
) -> UploadSession:
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
        session.expires_at = upload_expiry() if session.is_partial else None
        fields += ["status", "completed_at"]
    else:
        if session.status == S.CREATED:
            session.transition(S.UPLOADING)
            fields.append("status")
        # Activity keeps an unfinished upload alive for another UPLOAD_EXPIRY_HOURS.
        session.expires_at = upload_expiry()
    session.save(update_fields=fields)
    return session


def _check_writable(session: UploadSession) -> None:
    session.check_not_ended()
    if session.concat_parts:
        raise PermissionDenied(f"upload {session.id} is a concatenation of partial uploads and cannot be patched")


def _sync(fh: BinaryIO) -> None:
    """Make the bytes written so far durable before the offset that acknowledges them is recorded."""
    os.fdatasync(fh.fileno())


def _check_durable(*, session: UploadSession, fh: BinaryIO) -> None:
    """Refuse to append after a crash lost acknowledged bytes (part file shorter than the offset):
    the offset goes back to what the file holds, so the client resumes from there (409 says where)."""
    held = os.fstat(fh.fileno()).st_size
    if held >= session.offset:
        return
    acknowledged = session.offset
    UploadSession.objects.filter(pk=session.pk, offset=acknowledged).update(offset=held, updated_at=timezone.now())
    logger.error(
        "upload_id=%s part file holds %d bytes but %d were acknowledged: offset set back",
        session.id,
        held,
        acknowledged,
    )
    raise UploadOffsetMismatch(
        f"the upload server lost bytes of this upload after a crash: it holds {held} bytes, not the "
        f"{acknowledged} acknowledged; HEAD the upload and resume from Upload-Offset {held}"
    )


def _keep_what_fit(*, session: UploadSession, fh: BinaryIO, recorded: int, end: int, error: OSError) -> NoReturn:
    """The disk filled up mid-body: keep the bytes up to ``end``, record them, and answer 507."""
    fh.truncate(end)
    _sync(fh)
    if end > recorded:
        session = _advance(session_id=session.id, expected_offset=recorded, new_offset=end)
    logger.error(
        "upload_id=%s DISK FULL in %s (%s): kept %d bytes; uploads resume once space is freed",
        session.id,
        part_files_dir(),
        error.strerror,
        end,
    )
    raise InsufficientStorage(
        f"the upload server ran out of disk space: {end} bytes of this upload are stored; "
        f"resume from Upload-Offset {end} later"
    )


def upload_session_append(
    *,
    session: UploadSession,
    offset: int,
    stream: BodyStream,
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
    with locked_part_file(session.temp_path, upload_id=session.id) as fh:
        session = UploadSession.objects.get(pk=session.pk)
        _check_writable(session)
        _check_durable(session=session, fh=fh)
        length = session.length
        if upload_length is not None:
            if length is not None and upload_length != length:
                raise Conflict(f"Upload-Length is already {length}; it cannot change to {upload_length}")
            if upload_length < session.offset:
                raise Conflict(f"Upload-Length {upload_length} is smaller than the stored offset {session.offset}")
            upload_length_check(length=upload_length)
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
                chunk: bytes | memoryview
                if readinto is not None and buffer is not None:
                    # One reused buffer: no new 1 MiB object (and no page faults) per read.
                    chunk = buffer[: readinto(buffer[: min(BUFFER_BYTES, wanted - written)])]
                else:
                    chunk = stream.read(min(BUFFER_BYTES, wanted - written))
                if not chunk:
                    break
                try:
                    write_all(fh, chunk)
                except OSError as exc:
                    if exc.errno not in (errno.ENOSPC, errno.EDQUOT):
                        raise
                    # Every byte the kernel took is kept (the file position), unless Upload-Checksum
                    # makes the body all or nothing.
                    end = offset if checksum is not None else fh.tell()
                    _keep_what_fit(session=session, fh=fh, recorded=recorded, end=end, error=exc)
                if hasher is not None:
                    hasher.update(chunk)
                written += len(chunk)
                # Chunked bodies are only recorded at the end: they may still turn out too long.
                if (
                    hasher is None
                    and content_length is not None
                    and offset + written - recorded >= PROGRESS_RECORD_BYTES
                ):
                    _sync(fh)
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
        if checksum is not None and hasher is not None:
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
        _sync(fh)
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
    if not complete_body and isinstance(interrupted, BodyTooSlow):
        raise BodyTooSlowError(
            f"the body arrived too slowly ({interrupted}; UPLOAD_MIN_BYTES_PER_S) and was cut after {written} of "
            f"{content_length} bytes; {written} bytes were stored, resume at offset {session.offset}"
        )
    if not complete_body:
        raise BodyIncomplete(
            f"the body ended after {written} of {content_length} bytes; {written} bytes were stored, "
            f"resume at offset {session.offset}"
        )
    return session


# --- termination ----------------------------------------------------------------------


@transaction.atomic
def upload_session_terminate(*, session: UploadSession) -> UploadSession:
    """Cancel an upload and free its disk at once (tus termination).

    Finalized uploads have become videos: terminating them changes nothing (delete the video).
    """
    session = UploadSession.objects.select_for_update().get(pk=session.pk)
    if session.status in UploadSession.LIVE_STATUSES:
        session.transition(S.CANCELLED)
        session.expires_at = None
        session.save(update_fields=["status", "expires_at", "updated_at"])
        logger.info("upload_id=%s terminated by its owner", session.id)
    if session.status != S.FINALIZED:
        transaction.on_commit(lambda: remove_part_file(session.temp_path))
    return session
