"""Reads for uploads: the owner's uploads, and a direct upload's parts as the bucket holds them."""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING, Any, cast

from botocore.exceptions import BotoCoreError, ClientError  # type: ignore[import-untyped]
from django.db.models import QuerySet

from unpuzzle.exceptions import Gone, NotFound
from unpuzzle.failures import failure_retryable
from uploads.bucket import MISSING_UPLOAD_CODES, error_code, multipart_bucket, object_key, storage_unavailable
from uploads.models import UploadSession
from uploads.multipart import StoredPart, part_count

if TYPE_CHECKING:
    from django.contrib.auth.base_user import AbstractBaseUser
    from django.contrib.auth.models import User


def upload_error_code(*, session: UploadSession) -> str:
    """Why the upload failed (or waits), as a ``unpuzzle.failures`` code; "" when it has no error."""
    return session.error_code if session.error else ""


def upload_retryable(*, session: UploadSession) -> bool:
    """True when the upload failed and sending the same file again can help."""
    return session.status == UploadSession.Status.FAILED and failure_retryable(upload_error_code(session=session))


def upload_sessions_for_owner(*, user: AbstractBaseUser) -> QuerySet[UploadSession]:
    """The user's own uploads, newest first."""
    return UploadSession.objects.filter(owner=cast("User", user)).order_by("-created_at")


def upload_session_get_for_owner(*, upload_id: str | uuid.UUID, user: AbstractBaseUser) -> UploadSession:
    """One of the user's uploads; someone else's upload is reported as missing (404)."""
    try:
        key = uuid.UUID(str(upload_id))
    except ValueError:
        raise NotFound(f"no upload {upload_id!r}: upload ids are UUIDs") from None
    session = UploadSession.objects.filter(pk=key, owner=cast("User", user)).first()
    if session is None:
        raise NotFound(f"no upload {key} for this user")
    return session


def direct_upload_get_for_owner(*, upload_id: str | uuid.UUID, user: AbstractBaseUser) -> UploadSession:
    """One of the user's direct uploads; tus uploads and other users' uploads are missing (404)."""
    session = upload_session_get_for_owner(upload_id=upload_id, user=user)
    if session.kind != UploadSession.Kind.DIRECT:
        raise NotFound(f"no direct upload {session.id} for this user (it is a tus upload: see /api/v1/uploads/)")
    return session


def direct_upload_part_count(*, session: UploadSession) -> int:
    """How many parts the session's file is cut into."""
    if session.part_size is None:
        raise ValueError(f"upload {session.id} has no part size: only direct uploads are cut into parts")
    return part_count(session.length or 0, session.part_size)


def direct_upload_stored_parts(*, session: UploadSession) -> list[StoredPart]:
    """The parts the bucket holds for an open upload (ListParts); none once it is closed."""
    if session.status not in UploadSession.ACTIVE_STATUSES:
        return []
    bucket, storage = multipart_bucket()
    try:
        return bucket.parts(object_key(storage, session.storage_key), session.multipart_upload_id)
    except ClientError as exc:
        if error_code(exc) in MISSING_UPLOAD_CODES:
            raise Gone(
                f"the bucket no longer has multipart upload {session.id} (aborted outside the app); start a new upload"
            ) from exc
        raise storage_unavailable("listing the stored parts", exc) from exc
    except BotoCoreError as exc:
        raise storage_unavailable("listing the stored parts", exc) from exc


def direct_upload_state(*, session: UploadSession) -> dict[str, Any]:
    """A direct upload's state for its owner: stored parts and bytes from the bucket while it is
    open (so a resumed client knows what is left), the recorded figures once it is closed."""
    stored = direct_upload_stored_parts(session=session)
    total = direct_upload_part_count(session=session)
    if session.status in UploadSession.ACTIVE_STATUSES:
        bytes_stored = sum(p.size for p in stored)
        have = {p.part_number for p in stored}
        missing = [n for n in range(1, total + 1) if n not in have]
    else:
        bytes_stored = session.offset
        missing = []
    length = session.length or 0
    return {
        "id": session.id,
        "status": session.status,
        "filename": session.filename,
        "file_size": length,
        "key": session.storage_key,
        "part_size": session.part_size,
        "part_count": total,
        "bytes_stored": bytes_stored,
        "progress": round(100.0 * min(bytes_stored, length) / length, 2) if length else 100.0,
        "parts": [{"part_number": p.part_number, "size": p.size, "etag": p.etag} for p in stored],
        "missing_parts": missing,
        "video_id": session.video_id,
        "duplicate_of": session.video.duplicate_of_id if session.video is not None else None,
        "media_file_id": session.media_file_id,
        "error": session.error,
        "error_code": upload_error_code(session=session),
        "retryable": upload_retryable(session=session),
        "expires_at": session.expires_at,
        "created_at": session.created_at,
        "completed_at": session.completed_at,
    }
