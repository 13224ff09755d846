"""What a new upload (tus, direct or ingest) must pass before anything is stored."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import TYPE_CHECKING, cast

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import transaction
from django.db.models import Sum
from django.db.models.functions import Coalesce
from django.utils import timezone

from media_library.filenames import file_extension
from transcoding.costs.quotas import quota_check_upload
from unpuzzle.exceptions import InsufficientStorage, PayloadTooLarge, TooManyRequests, UnsupportedMediaType
from uploads.models import UploadSession
from uploads.partfiles import part_files_free_bytes

if TYPE_CHECKING:
    from django.contrib.auth.base_user import AbstractBaseUser
    from django.contrib.auth.models import User

# Partial uploads (tus concatenation) a user may have open, per allowed concurrent upload.
PARTIALS_PER_UPLOAD = 8


def max_upload_bytes() -> int:
    """The largest upload accepted, in bytes (``MAX_VIDEO_SIZE_MB``)."""
    megabytes: int = settings.MAX_VIDEO_SIZE_MB
    return megabytes * 1024 * 1024


def upload_expiry(*, now: datetime | None = None) -> datetime:
    """When an unfinished upload expires if nothing more arrives (``UPLOAD_EXPIRY_HOURS`` from now)."""
    return (now or timezone.now()) + timedelta(hours=settings.UPLOAD_EXPIRY_HOURS)


def upload_length_check(*, length: int) -> None:
    """Refuse a length past the maximum upload size (413)."""
    if length > max_upload_bytes():
        raise PayloadTooLarge(
            f"Upload-Length {length} exceeds the maximum upload size of {max_upload_bytes()} bytes "
            f"({settings.MAX_VIDEO_SIZE_MB} MB)"
        )


def upload_format_check(*, filename: str, filetype: str) -> None:
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


def upload_disk_space_check(*, length: int | None) -> None:
    """Refuse (507) a tus upload of ``length`` bytes that would leave less than ``DISK_MIN_FREE_MB``
    free where part files are written; a deferred length is checked as its bytes arrive."""
    if not length:
        return
    free = part_files_free_bytes()
    reserve = settings.DISK_MIN_FREE_MB * 1024 * 1024
    if length > free - reserve:
        raise InsufficientStorage(
            f"the upload server has no room for {length} more bytes now ({free // (1024 * 1024)} MiB free, "
            f"{settings.DISK_MIN_FREE_MB} MiB kept in reserve); try again later"
        )


def upload_sessions_pending_bytes(*, user: AbstractBaseUser) -> int:
    """Declared length of ``user``'s uploads created this month that are not finalized yet
    (in progress or complete): they count against the monthly upload quota like stored originals."""
    start = timezone.localtime().replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    pending = UploadSession.objects.filter(
        owner=cast("User", user),
        status__in=UploadSession.LIVE_STATUSES,
        length__isnull=False,
        created_at__gte=start,
    ).aggregate(total=Coalesce(Sum("length"), 0))["total"]
    return int(pending)


def upload_file_check(*, owner: AbstractBaseUser, length: int | None, filename: str, filetype: str) -> None:
    """A whole file's size (413), name and type (415) and the owner's monthly quotas (413/429)."""
    if length is not None:
        upload_length_check(length=length)
    upload_format_check(filename=filename, filetype=filetype)
    quota_check_upload(user=owner, size_bytes=length, pending_upload_bytes=upload_sessions_pending_bytes(user=owner))


def _check_active_limit(*, owner: AbstractBaseUser, partial: bool) -> None:
    active = UploadSession.objects.filter(
        owner=cast("User", owner), status__in=UploadSession.ACTIVE_STATUSES, is_partial=partial
    )
    limit = settings.MAX_CONCURRENT_UPLOADS * (PARTIALS_PER_UPLOAD if partial else 1)
    if active.count() >= limit:
        what = "partial uploads" if partial else "unfinished uploads"
        raise TooManyRequests(
            f"you already have {limit} {what} (the limit); finish or terminate one before starting another"
        )


def upload_admission_check(
    *, owner: AbstractBaseUser, length: int | None, filename: str, filetype: str, partial: bool = False
) -> None:
    """What every new upload (tus or direct) must pass before anything is stored.

    Size up to ``MAX_VIDEO_SIZE_MB`` (413); an allowed video name and type (415) and the
    owner's monthly quotas (413/429) for whole files; at most ``MAX_CONCURRENT_UPLOADS``
    unfinished uploads of either kind (429). Partial tus uploads are chunks: only size and count.
    """
    _lock_owner(owner)
    if partial:
        if length is not None:
            upload_length_check(length=length)
    else:
        upload_file_check(owner=owner, length=length, filename=filename, filetype=filetype)
    _check_active_limit(owner=owner, partial=partial)


def _lock_owner(owner: AbstractBaseUser) -> None:
    """Serialize one owner's upload creations until the caller's transaction ends, so counting their
    unfinished uploads and adding one is exact under parallel requests (PostgreSQL; SQLite
    serializes writers anyway). The caller must be in a transaction and create the upload in it."""
    if not transaction.get_connection().in_atomic_block:
        raise RuntimeError("upload_admission_check must run in the transaction that creates the upload")
    list(get_user_model().objects.select_for_update().filter(pk=owner.pk).values_list("pk", flat=True))
