"""Writes for direct-to-bucket uploads: presigned S3 multipart URLs, completion, abort.

The client PUTs the parts straight to the bucket; the app signs URLs and records the session.
The multipart upload is created at the original's final key, ``originals/<media_file_id>/<name>``
with a media file id chosen up front, so finalization (``uploads.services.finalize``) never
copies the object.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, cast

from botocore.exceptions import BotoCoreError, ClientError  # type: ignore[import-untyped]
from django.conf import settings
from django.db import transaction
from django.utils import timezone

from media_library.services import original_key
from unpuzzle.content_types import content_headers_for_key
from unpuzzle.exceptions import Conflict, DomainError, Gone
from unpuzzle.failures import Failure, failure_for
from unpuzzle.storage import delete_key
from unpuzzle.webhooks.services import webhook_event_record
from uploads.bucket import (
    MISSING_UPLOAD_CODES,
    abort_quietly,
    error_code,
    multipart_bucket,
    object_key,
    storage_unavailable,
)
from uploads.models import UploadSession
from uploads.multipart import MultipartBucket, StoredPart, choose_part_size, normalize_etag, part_count
from uploads.selectors import direct_upload_part_count, direct_upload_stored_parts
from uploads.serializers import UploadProgressSerializer
from uploads.services.admission import upload_admission_check, upload_expiry
from uploads.services.finalize import upload_finalize_enqueue

if TYPE_CHECKING:
    from django.contrib.auth.base_user import AbstractBaseUser
    from django.contrib.auth.models import User
    from storages.backends.s3 import S3Storage

logger = logging.getLogger(__name__)

S = UploadSession.Status
# Presigned part URLs returned with a new upload; the client asks /parts/ for the rest.
FIRST_PART_URLS = 20
# Most part URLs one /parts/ request may ask for.
MAX_PART_URLS_PER_REQUEST = 1000


class PartsRejected(DomainError):
    """The parts a client lists cannot be joined; the upload stays open so it can fix them."""

    status_code = 400
    code = "parts_rejected"


class SizeMismatch(DomainError):
    status_code = 400
    code = "size_mismatch"


@dataclass(frozen=True)
class PartUrl:
    part_number: int
    url: str


@dataclass(frozen=True)
class SignedParts:
    """Presigned UploadPart URLs and when they stop working."""

    parts: list[PartUrl]
    expires_at: datetime


def _content_type(key: str, declared: str) -> tuple[str, str]:
    content_type, cache_control = content_headers_for_key(key)
    declared = declared.strip().lower()
    # The key's extension decides when it knows the type (.mp4); a declared video type fills the gaps (.mkv).
    if content_type == "application/octet-stream" and declared.startswith("video/"):
        content_type = declared
    return content_type, cache_control


def _sign(bucket: MultipartBucket, storage: S3Storage, session: UploadSession, numbers: list[int]) -> SignedParts:
    lifetime = settings.STORAGE_URL_EXPIRE_S
    expires_at = timezone.now() + timedelta(seconds=lifetime)
    key = object_key(storage, session.storage_key)
    parts = [PartUrl(n, bucket.part_url(key, session.multipart_upload_id, n, expires_in=lifetime)) for n in numbers]
    return SignedParts(parts=parts, expires_at=expires_at)


def _check_open(session: UploadSession) -> None:
    session.check_not_ended()
    if session.status not in UploadSession.ACTIVE_STATUSES:
        raise Conflict(
            f"upload {session.id} is {session.status}; its parts can no longer change",
            extra={"status": session.status},
        )


# --- creation and part URLs -----------------------------------------------------------


@transaction.atomic
def direct_upload_create(
    *, owner: AbstractBaseUser, filename: str, file_size: int, content_type: str = "", title: str = ""
) -> tuple[UploadSession, SignedParts]:
    """Start a direct upload: the same admission checks as tus, an S3 multipart upload at the
    original's final key, and presigned URLs for the first ``FIRST_PART_URLS`` parts.

    The part size is ``CHUNK_SIZE_MB`` (at least 5 MiB), grown so the file needs at most
    10,000 parts. The session expires ``UPLOAD_EXPIRY_HOURS`` after creation; the scheduled
    cleanup then aborts the multipart upload. A multipart upload left behind by a failed
    commit has no session and is aborted by the same cleanup once that old.
    """
    bucket, storage = multipart_bucket()
    upload_admission_check(owner=owner, length=file_size, filename=filename, filetype=content_type)
    part_size = choose_part_size(file_size, preferred=settings.CHUNK_SIZE_MB * 1024 * 1024)
    media_file_id = uuid.uuid4()
    key = original_key(media_file_id=media_file_id, filename=filename)
    object_content_type, cache_control = _content_type(key, content_type)
    try:
        upload_id = bucket.create(
            object_key(storage, key), content_type=object_content_type, cache_control=cache_control
        )
    except (BotoCoreError, ClientError) as exc:
        raise storage_unavailable("starting the multipart upload", exc) from exc
    session = UploadSession.objects.create(
        owner=cast("User", owner),
        kind=UploadSession.Kind.DIRECT,
        filename=filename[:255],
        content_type=content_type[:100],
        length=file_size,
        metadata={"filename": filename, "title": title, "media_file_id": str(media_file_id)},
        expires_at=upload_expiry(),
        storage_key=key,
        multipart_upload_id=upload_id,
        part_size=part_size,
    )
    first = list(range(1, min(FIRST_PART_URLS, part_count(file_size, part_size)) + 1))
    logger.info(
        "upload_id=%s direct upload started at %s (%d bytes, part size %d)", session.id, key, file_size, part_size
    )
    return session, _sign(bucket, storage, session, first)


def direct_upload_part_urls(*, session: UploadSession, part_numbers: list[int]) -> SignedParts:
    """Fresh presigned URLs for the given parts (more parts, or ones whose URLs expired)."""
    bucket, storage = multipart_bucket()
    _check_open(session)
    total = direct_upload_part_count(session=session)
    if not part_numbers:
        raise DomainError("list the part numbers you need URLs for in 'part_numbers'")
    if len(part_numbers) > MAX_PART_URLS_PER_REQUEST:
        raise DomainError(f"ask for at most {MAX_PART_URLS_PER_REQUEST} part URLs per request")
    outside = sorted({n for n in part_numbers if not 1 <= n <= total})
    if outside:
        raise DomainError(
            f"part numbers {', '.join(map(str, outside))} are outside 1..{total}: this {session.length}-byte "
            f"upload has {total} parts of {session.part_size} bytes",
            code="invalid_part_number",
        )
    return _sign(bucket, storage, session, sorted(set(part_numbers)))


# --- completion -----------------------------------------------------------------------


def _check_listed_parts(session: UploadSession, parts: list[tuple[int, str]], stored: list[StoredPart]) -> None:
    """Refuse, naming the part, a list that cannot make the whole file."""
    total = direct_upload_part_count(session=session)
    numbers = [n for n, _ in parts]
    repeated = sorted({n for n in numbers if numbers.count(n) > 1})
    if repeated:
        raise PartsRejected(f"parts {', '.join(map(str, repeated))} are listed more than once; list each part once")
    outside = sorted(n for n in numbers if not 1 <= n <= total)
    if outside:
        raise PartsRejected(
            f"parts {', '.join(map(str, outside))} are outside 1..{total}: this {session.length}-byte upload "
            f"has {total} parts of {session.part_size} bytes"
        )
    unlisted = sorted(set(range(1, total + 1)) - set(numbers))
    if unlisted:
        raise PartsRejected(
            f"parts {', '.join(map(str, unlisted))} are missing from the list; list all {total} parts "
            "with the ETag each part's PUT returned",
            extra={"missing_parts": unlisted},
        )
    by_number = {p.part_number: p for p in stored}
    not_stored = [n for n in sorted(numbers) if n not in by_number]
    if not_stored:
        others = f" (nor are parts {', '.join(map(str, not_stored[1:]))})" if len(not_stored) > 1 else ""
        raise PartsRejected(
            f"part {not_stored[0]} is not stored in the bucket{others}; "
            "PUT it to a fresh URL from /parts/ and complete again",
            code="part_missing",
            extra={"missing_parts": not_stored},
        )
    for number, etag in sorted(parts):
        if normalize_etag(etag) != by_number[number].etag:
            raise PartsRejected(
                f"part {number}: ETag {normalize_etag(etag)} does not match the stored part's ETag "
                f"{by_number[number].etag}; send the ETag header that part {number}'s PUT returned "
                "(or PUT the part again)",
                code="etag_mismatch",
                extra={"part_number": number},
            )


@transaction.atomic
def _mark_complete(*, session_id: uuid.UUID) -> UploadSession:
    session = UploadSession.objects.select_for_update().get(pk=session_id)
    if session.status not in UploadSession.ACTIVE_STATUSES:
        return session
    session.transition(S.COMPLETE)
    session.offset = session.length or 0
    session.completed_at = timezone.now()
    session.expires_at = None
    session.error = ""
    session.save(update_fields=["status", "offset", "completed_at", "expires_at", "error", "updated_at"])
    transaction.on_commit(lambda: upload_finalize_enqueue(session_id=session.id))
    logger.info("upload_id=%s direct upload complete (%s bytes); finalization queued", session.id, session.length)
    return session


@transaction.atomic
def _mark_failed_open(*, session_id: uuid.UUID, failure: Failure, detail: str) -> None:
    session = UploadSession.objects.select_for_update().get(pk=session_id)
    if session.status in UploadSession.ACTIVE_STATUSES:
        session.transition(S.FAILED)
        session.error = failure.message
        session.error_code = failure.code
        session.error_detail = detail
        session.expires_at = None
        session.save(update_fields=["status", "error", "error_code", "error_detail", "expires_at", "updated_at"])
        webhook_event_record(type="upload.failed", data=UploadProgressSerializer(session).data)
        logger.info("upload_id=%s failed: %s", session.id, detail)


def direct_upload_complete(*, session: UploadSession, parts: list[tuple[int, str]]) -> UploadSession:
    """Join the uploaded parts into the object, check its size, and queue finalization.

    ``parts`` are ``(part_number, etag)`` pairs covering 1..N. A missing part or a wrong ETag
    is refused naming the part, and the upload stays open so the client can fix it. An object
    whose size differs from the declared ``file_size`` is deleted and the upload fails.
    Completing an upload that is already complete returns it unchanged. Not one transaction:
    no database lock is held during the bucket calls.
    """
    bucket, storage = multipart_bucket()
    if session.status in (S.COMPLETE, S.FINALIZED):
        return session
    _check_open(session)
    key = object_key(storage, session.storage_key)
    _check_listed_parts(session, parts, direct_upload_stored_parts(session=session))
    try:
        bucket.complete(key, session.multipart_upload_id, sorted(parts))
    except ClientError as exc:
        code = error_code(exc)
        if code in MISSING_UPLOAD_CODES:
            # Another request completed it a moment ago, or it was aborted.
            session.refresh_from_db()
            if session.status in (S.COMPLETE, S.FINALIZED):
                return session
            raise Gone(f"the bucket no longer has multipart upload {session.id}; start a new upload") from exc
        if code == "EntityTooSmall":
            raise PartsRejected(
                f"every part but the last must be at least 5 MiB ({session.part_size} bytes expected); "
                "PUT the short parts again with the whole part's bytes",
                code="part_too_small",
            ) from exc
        if code in ("InvalidPart", "InvalidPartOrder"):
            raise PartsRejected(f"the bucket refused the part list: {exc}") from exc
        raise storage_unavailable("joining the parts", exc) from exc
    except BotoCoreError as exc:
        raise storage_unavailable("joining the parts", exc) from exc
    try:
        size = bucket.object_size(key)
    except (BotoCoreError, ClientError) as exc:
        raise storage_unavailable("checking the joined object's size", exc) from exc
    if size != session.length:
        reason = (
            f"the joined parts hold {size} bytes but file_size was {session.length}; "
            "the object was deleted, start a new upload with the file's exact size"
        )
        delete_key(session.storage_key)
        _mark_failed_open(session_id=session.id, failure=failure_for("size_mismatch"), detail=reason)
        raise SizeMismatch(reason)
    return _mark_complete(session_id=session.id)


# --- abort ----------------------------------------------------------------------------


def direct_upload_abort(*, session: UploadSession) -> UploadSession:
    """Abort the multipart upload (the bucket frees its parts) and cancel the session."""
    bucket, storage = multipart_bucket()
    _check_open(session)
    try:
        abort_quietly(bucket, object_key(storage, session.storage_key), session.multipart_upload_id)
    except (BotoCoreError, ClientError) as exc:
        raise storage_unavailable("aborting the multipart upload", exc) from exc
    with transaction.atomic():
        session = UploadSession.objects.select_for_update().get(pk=session.pk)
        if session.status in UploadSession.ACTIVE_STATUSES:
            session.transition(S.CANCELLED)
            session.expires_at = None
            session.save(update_fields=["status", "expires_at", "updated_at"])
            logger.info("upload_id=%s direct upload aborted by its owner", session.id)
    return session
