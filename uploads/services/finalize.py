"""Finalization: a complete upload becomes MediaFile + Video with transcoding queued.

sha256 and size, ffprobe validation, the owner's stored copy reused for a file uploaded again (a new
video sharing the existing output), the original moved into
storage (or already there, for direct uploads), MediaFile + Video created, transcoding
enqueued; and the scheduled retry of finalizations that did not happen, and ``manage.py ingest``.
"""

from __future__ import annotations

import hashlib
import logging
import mimetypes
import os
import time
import uuid
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, cast

from botocore.exceptions import ClientError  # type: ignore[import-untyped]
from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone
from django_q.tasks import async_task

from media_library.models import MediaFile
from media_library.services import video_create
from transcoding.costs.selectors import transcode_ceiling_reason
from transcoding.ffmpeg.probe import ProbeError, ProbeResult
from transcoding.services.jobs import transcode_enqueue
from transcoding.services.media_files import media_file_create_from_path, original_probe
from transcoding.services.videos import duplicate_video_create
from unpuzzle.exceptions import Gone, Locked, NotFound, StorageUnavailable
from unpuzzle.failures import Failure, failure_for
from unpuzzle.redact import redact_server_details
from unpuzzle.storage import delete_key, is_storage_outage, open_local_copy
from unpuzzle.webhooks.services import webhook_event_record
from uploads.bucket import MISSING_OBJECT_CODES, error_code
from uploads.formats import container_allowed
from uploads.models import UploadSession
from uploads.partfiles import BUFFER_BYTES, locked_part_file, remove_part_file
from uploads.serializers import UploadProgressSerializer
from uploads.services.admission import upload_admission_check

if TYPE_CHECKING:
    from django.contrib.auth.base_user import AbstractBaseUser
    from django.contrib.auth.models import User

logger = logging.getLogger(__name__)

FINALIZE_TASK = "uploads.tasks.finalize_upload"
# A completed upload still waiting this long was missed (worker down, storage outage): retry.
FINALIZE_RETRY_AFTER = timedelta(minutes=2)
# A direct-upload finalizer silent for this long is presumed dead and another may take over.
FINALIZE_CLAIM_TTL = timedelta(hours=1)

S = UploadSession.Status
# Probe reasons for a real video the settings do not accept (over a size, rate or duration limit).
_NOT_ACCEPTED_REASONS = frozenset({"too_large"})


def upload_finalize_enqueue(*, session_id: uuid.UUID) -> None:
    """Queue finalization of a complete upload on the short-task django-q2 cluster."""
    async_task(
        FINALIZE_TASK,
        str(session_id),
        task_name=f"finalize-upload-{session_id}",
        group="uploads",
        cluster=settings.SHORT_TASKS_CLUSTER,
    )


def _file_digest(path: str | os.PathLike[str]) -> tuple[str, int]:
    digest = hashlib.sha256()
    size = 0
    with open(path, "rb") as fh:
        while chunk := fh.read(BUFFER_BYTES):
            digest.update(chunk)
            size += len(chunk)
    return digest.hexdigest(), size


@transaction.atomic
def upload_session_fail(*, session_id: uuid.UUID, failure: Failure, detail: str) -> None:
    """Mark a complete upload failed and free its part file: the owner reads ``failure``'s
    plain reason and code, staff the raw ``detail`` (server paths taken out; the log keeps it whole)."""
    session = UploadSession.objects.select_for_update().get(pk=session_id)
    if session.status != S.COMPLETE:
        return
    session.transition(S.FAILED)
    session.error = failure.message
    session.error_code = failure.code
    session.error_detail = redact_server_details(detail)
    session.save(update_fields=["status", "error", "error_code", "error_detail", "updated_at"])
    webhook_event_record(type="upload.failed", data=UploadProgressSerializer(session).data)
    transaction.on_commit(lambda: remove_part_file(session.temp_path))
    logger.info("upload_id=%s failed (%s): %s", session.id, failure.code, detail)


def _mime_type(session: UploadSession) -> str:
    declared = (session.content_type or "").lower()
    if declared.startswith("video/"):
        return declared
    guessed, _ = mimetypes.guess_type(session.filename or "")
    return guessed or "application/octet-stream"


def upload_session_finalize(*, session_id: uuid.UUID | str) -> UploadSession:
    """Turn a complete upload into MediaFile + Video; idempotent, safe to retry.

    A tus upload's bytes come from the local part file, held under the same flock a writer
    takes so two finalizers never work on one upload; a direct upload's object is streamed
    from the bucket (``direct_upload_finalize``). See ``upload_finalize_from_path`` for the steps.
    """
    session = UploadSession.objects.get(pk=session_id)
    if session.status != S.COMPLETE or session.is_partial:
        return session
    if session.kind == UploadSession.Kind.DIRECT:
        return direct_upload_finalize(session=session)
    try:
        with locked_part_file(session.temp_path, upload_id=session.id) as fh:
            return upload_finalize_from_path(session=session, path=fh.name)
    except Locked:
        logger.info("upload_id=%s is being finalized by another worker", session_id)
        return session
    except Gone:
        upload_session_fail(
            session_id=session.id,
            failure=failure_for("bytes_missing"),
            detail="the uploaded bytes are missing on the upload server",
        )
        return UploadSession.objects.get(pk=session_id)


def direct_upload_finalize(*, session: UploadSession) -> UploadSession:
    """Finalize a complete direct upload from its object in the bucket (the finalize task runs this).

    The object is streamed to a temp file for sha256 and ffprobe, then finalized in place
    (``stored_key``). A duplicate of the owner's existing original, or a file that is not an
    accepted video, has its object deleted so nothing is left behind. When the bucket cannot be
    reached the upload stays complete with the error noted and the scheduled retry runs it again.
    """
    key = session.storage_key
    now = timezone.now()
    # One finalizer at a time: the object may be gigabytes, and the scheduled retry must not
    # start a second download while the first is still running.
    claimed = (
        UploadSession.objects.filter(pk=session.pk, status=S.COMPLETE)
        .filter(Q(finalize_started_at__isnull=True) | Q(finalize_started_at__lt=now - FINALIZE_CLAIM_TTL))
        .update(finalize_started_at=now)
    )
    if not claimed:
        logger.info("upload_id=%s is being finalized by another worker", session.id)
        return UploadSession.objects.get(pk=session.id)
    try:
        with open_local_copy(key) as path:
            session = upload_finalize_from_path(
                session=session,
                path=path,
                stored_key=key,
                media_file_id=uuid.UUID(session.metadata["media_file_id"]),
            )
    except ClientError as exc:
        if error_code(exc) not in MISSING_OBJECT_CODES:
            return _note_retry(session, exc)
        upload_session_fail(
            session_id=session.id,
            failure=failure_for("bytes_missing"),
            detail=f"the uploaded object {key!r} is missing from the bucket",
        )
        return UploadSession.objects.get(pk=session.id)
    except Exception as exc:
        if not is_storage_outage(exc):
            raise
        return _note_retry(session, exc)
    if session.status == S.FAILED:
        delete_key(key)
    elif session.status == S.FINALIZED and session.media_file is not None and session.media_file.storage_key != key:
        # The owner already had these bytes: the existing original is used, this copy goes.
        delete_key(key)
        logger.info("upload_id=%s duplicate of media_file_id=%s; deleted %s", session.id, session.media_file_id, key)
    return session


def _note_retry(session: UploadSession, exc: Exception) -> UploadSession:
    logger.warning("upload_id=%s could not read %s: %s", session.id, session.storage_key, exc)
    UploadSession.objects.filter(pk=session.id, status=S.COMPLETE).update(
        error=failure_for("storage_unavailable").message,
        error_code="storage_unavailable",
        error_detail=redact_server_details(f"could not read the uploaded object: {exc}; finalization will be retried"),
        finalize_started_at=None,
        updated_at=timezone.now(),
    )
    return UploadSession.objects.get(pk=session.id)


def upload_finalize_from_path(
    *,
    session: UploadSession,
    path: str | os.PathLike[str],
    stored_key: str | None = None,
    media_file_id: uuid.UUID | None = None,
) -> UploadSession:
    """The finalization steps for bytes available at a local ``path``.

    sha256 and size; ffprobe validation (not a decodable, allowed video within the source
    limits, or a transcode estimated over ``TRANSCODE_MAX_VIDEO_USD``: the upload fails with
    the reason, before anything is stored or queued); the owner's duplicate is reused, else
    the original goes to storage (or is already there under ``stored_key``, for the MediaFile ``media_file_id`` named in that key;
    else the MediaFile takes the upload's id, so its key is the same on every retry);
    MediaFile + Video are created and transcoding is
    enqueued. When storage is unreachable the upload stays complete with the error noted and
    the scheduled retry finalizes it later.
    """
    sha256, size = _file_digest(path)
    if session.length is not None and size != session.length:
        upload_session_fail(
            session_id=session.id,
            failure=failure_for("size_mismatch"),
            detail=f"stored {size} bytes but the upload declared {session.length}",
        )
        return UploadSession.objects.get(pk=session.id)
    try:
        probe: ProbeResult = original_probe(path=path)
    except ProbeError as exc:
        verdict = "video not accepted" if exc.reason in _NOT_ACCEPTED_REASONS else "not a playable video"
        upload_session_fail(
            session_id=session.id, failure=failure_for(exc.reason, detail=str(exc)), detail=f"{verdict}: {exc}"
        )
        return UploadSession.objects.get(pk=session.id)
    format_name = probe.format_name
    if format_name and not container_allowed(format_name, settings.ALLOWED_VIDEO_FORMATS):
        container = format_name.split(",")[0]
        accepted = ", ".join(settings.ALLOWED_VIDEO_FORMATS)
        upload_session_fail(
            session_id=session.id,
            failure=failure_for("format_not_accepted", detail=f"the file is {container}, accepted are {accepted}"),
            detail=f"the file is a {container} container, which is not accepted (accepted: {accepted})",
        )
        return UploadSession.objects.get(pk=session.id)
    over_ceiling = transcode_ceiling_reason(probe=probe)
    if over_ceiling:
        upload_session_fail(
            session_id=session.id,
            failure=failure_for("over_cost_ceiling", detail=over_ceiling),
            detail=f"video not accepted: {over_ceiling}",
        )
        return UploadSession.objects.get(pk=session.id)
    filename = session.filename or f"{session.id}.{_probe_extension(format_name)}"
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
            # One id per upload: a finalization killed mid-copy is retried into the same key,
            # overwriting its partial copy instead of leaving it behind.
            media_file_id=media_file_id or session.id,
        )
    except StorageUnavailable as exc:
        UploadSession.objects.filter(pk=session.id, status=S.COMPLETE).update(
            error=failure_for("storage_unavailable").message,
            error_code="storage_unavailable",
            error_detail=redact_server_details(f"{exc.message}; finalization will be retried"),
            updated_at=timezone.now(),
        )
        return UploadSession.objects.get(pk=session.id)
    return _link_video(session_id=session.id, media_file=media_file, media_created=created)


def _probe_extension(format_name: str) -> str:
    first = (format_name or "").split(",")[0]
    return {"mov": "mp4", "matroska": "mkv"}.get(first, first or "bin")


@transaction.atomic
def _link_video(*, session_id: uuid.UUID, media_file: MediaFile, media_created: bool) -> UploadSession:
    session = UploadSession.objects.select_for_update().get(pk=session_id)
    if session.status != S.COMPLETE:
        return session
    title = (session.metadata or {}).get("title") or Path(session.filename or "").stem or "Untitled video"
    if media_created:
        video = video_create(owner=session.owner, title=title, media_file=media_file)
        transcode_enqueue(video=video)
    else:
        # The same file uploaded again: a video of its own, sharing the stored original and its output.
        video = duplicate_video_create(owner=session.owner, title=title, media_file=media_file)
    session.transition(S.FINALIZED)
    session.media_file = media_file
    session.video = video
    session.error = ""
    session.finalized_at = timezone.now()
    session.save(update_fields=["status", "media_file", "video", "error", "finalized_at", "updated_at"])
    webhook_event_record(type="upload.completed", data=UploadProgressSerializer(session).data)
    transaction.on_commit(lambda: remove_part_file(session.temp_path))
    logger.info(
        "upload_id=%s finalized: media_file_id=%s (%s) video_id=%s",
        session.id,
        media_file.id,
        "new" if media_created else f"duplicate of video_id={video.duplicate_of_id}",
        video.id,
    )
    return session


def upload_session_ingest(*, owner: AbstractBaseUser, path: str | os.PathLike[str], title: str = "") -> UploadSession:
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
    with transaction.atomic():
        upload_admission_check(owner=owner, length=length, filename=source.name, filetype=content_type)
        now = timezone.now()
        session = UploadSession.objects.create(
            owner=cast("User", owner),
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
