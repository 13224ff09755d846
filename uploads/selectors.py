"""Reads for uploads."""
from __future__ import annotations

import uuid

from django.db.models import QuerySet

from unpuzzle.exceptions import NotFound
from uploads.models import UploadSession


def upload_sessions_for_owner(*, user) -> QuerySet[UploadSession]:
    """The user's own uploads, newest first."""
    return UploadSession.objects.filter(owner=user).order_by("-created_at")


def upload_session_get_for_owner(*, upload_id: str | uuid.UUID, user) -> UploadSession:
    """One of the user's uploads; someone else's upload is reported as missing (404)."""
    try:
        key = uuid.UUID(str(upload_id))
    except ValueError:
        raise NotFound(f"no upload {upload_id!r}: upload ids are UUIDs") from None
    session = UploadSession.objects.filter(pk=key, owner=user).first()
    if session is None:
        raise NotFound(f"no upload {key} for this user")
    return session
