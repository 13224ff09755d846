"""Expiry and clean-up: unfinished tus uploads expire, ended rows and orphan part files go,
abandoned direct-upload multipart uploads are aborted."""

from __future__ import annotations

import functools
import logging
from datetime import datetime, timedelta

from botocore.exceptions import BotoCoreError, ClientError  # type: ignore[import-untyped]
from django.conf import settings
from django.db import transaction
from django.utils import timezone

from unpuzzle.storage import get_storage, is_s3
from uploads.bucket import ORIGINALS_PREFIX, abort_quietly, multipart_bucket, object_key
from uploads.models import UploadSession
from uploads.multipart import stale_uploads
from uploads.partfiles import part_files_dir, remove_part_file

logger = logging.getLogger(__name__)

# Expired and cancelled rows stay (answering 410) this long before they are deleted.
ENDED_ROW_RETENTION = timedelta(days=7)

S = UploadSession.Status


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
            if session.status not in UploadSession.LIVE_STATUSES:
                continue
            session.transition(S.EXPIRED)
            session.save(update_fields=["status", "updated_at"])
            transaction.on_commit(functools.partial(remove_part_file, session.temp_path))
            count += 1
            logger.info("upload_id=%s expired at offset %s of %s", session.id, session.offset, session.length)
    return count


def upload_sessions_purge(*, now: datetime | None = None) -> int:
    """Delete rows of uploads that expired or were cancelled more than ENDED_ROW_RETENTION ago."""
    cutoff = (now or timezone.now()) - ENDED_ROW_RETENTION
    ended = UploadSession.objects.filter(status__in=UploadSession.ENDED_STATUSES, updated_at__lt=cutoff)
    for path in ended.values_list("temp_path", flat=True):
        remove_part_file(path)
    deleted, _ = ended.delete()
    return deleted


def upload_orphan_files_remove(*, now: datetime | None = None) -> int:
    """Delete part files in UPLOAD_TEMP_DIR that no live upload owns (left by crashes)."""
    root = part_files_dir()
    if not root.is_dir():
        return 0
    cutoff = ((now or timezone.now()) - timedelta(hours=settings.UPLOAD_EXPIRY_HOURS)).timestamp()
    live = {
        str(p)
        for p in UploadSession.objects.filter(status__in=UploadSession.LIVE_STATUSES).values_list(
            "temp_path", flat=True
        )
    }
    removed = 0
    for path in root.glob("*.part"):
        if str(path) not in live and path.stat().st_mtime < cutoff:
            remove_part_file(str(path))
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


def direct_uploads_cleanup(*, now: datetime | None = None) -> int:
    """Abort abandoned multipart uploads under ``originals/`` so their parts stop costing storage.

    Aborted: uploads of open direct sessions past ``expires_at`` (those sessions become
    expired), and uploads no open session owns that started more than ``UPLOAD_EXPIRY_HOURS``
    ago (failed commits, crashed transfers). Returns how many were aborted; 0 on local storage.
    """
    storage = get_storage()
    if not is_s3(storage):
        return 0
    bucket, storage = multipart_bucket()
    now = now or timezone.now()
    open_sessions = UploadSession.objects.filter(
        kind=UploadSession.Kind.DIRECT, status__in=UploadSession.ACTIVE_STATUSES
    )
    due = list(open_sessions.filter(expires_at__lt=now).values_list("id", "multipart_upload_id"))
    keep = set(open_sessions.exclude(expires_at__lt=now).values_list("multipart_upload_id", flat=True))
    cutoff = now - timedelta(hours=settings.UPLOAD_EXPIRY_HOURS)
    pending = list(bucket.pending(object_key(storage, ORIGINALS_PREFIX)))
    aborted = 0
    for upload in stale_uploads(pending, cutoff=cutoff, keep_ids=keep, abort_ids={u for _, u in due}):
        try:
            abort_quietly(bucket, upload.key, upload.upload_id)
        except (BotoCoreError, ClientError) as exc:
            logger.warning("could not abort multipart upload of %s: %s", upload.key, exc)
            continue
        aborted += 1
        logger.info("aborted abandoned multipart upload of %s", upload.key)
    for session_id, _ in due:
        with transaction.atomic():
            session = UploadSession.objects.select_for_update().get(pk=session_id)
            if session.status in UploadSession.ACTIVE_STATUSES and session.expires_at and session.expires_at < now:
                session.transition(S.EXPIRED)
                session.save(update_fields=["status", "updated_at"])
                logger.info("upload_id=%s direct upload expired; multipart upload aborted", session.id)
    return aborted
