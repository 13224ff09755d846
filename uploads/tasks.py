"""django-q2 entry points for uploads: load by id, call a service."""

from __future__ import annotations

import logging

from uploads.services.cleanup import direct_uploads_cleanup, uploads_cleanup
from uploads.services.finalize import upload_session_finalize, upload_sessions_retry_finalization

logger = logging.getLogger(__name__)


def finalize_upload(upload_id: str) -> None:
    """Finalize one complete upload into MediaFile + Video (queued when its last byte lands)."""
    session = upload_session_finalize(session_id=upload_id)
    logger.info("upload_id=%s finalization ended as %s", upload_id, session.status)


def retry_finalization() -> int:
    """Scheduled: finalize complete uploads whose finalization was missed or hit a storage outage."""
    return upload_sessions_retry_finalization()


def cleanup_uploads() -> dict[str, int]:
    """Scheduled: expire unfinished uploads, purge old rows, remove orphan part files."""
    return uploads_cleanup()


def abort_stale_direct_uploads() -> int:
    """Scheduled: abort abandoned multipart uploads under originals/ and expire their sessions."""
    return direct_uploads_cleanup()
