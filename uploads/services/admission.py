"""What a new upload (tus, direct or ingest) must pass before anything is stored."""

from __future__ import annotations

import uuid
from collections.abc import Iterable
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
from unpuzzle.exceptions import (
    InsufficientStorage,
    PayloadTooLarge,
    PermissionDenied,
    TooManyRequests,
    UnsupportedMediaType,
)
from uploads.models import UploadSession
from uploads.partfiles import part_files_free_bytes

if TYPE_CHECKING:
    from django.contrib.auth.base_user import AbstractBaseUser
    from django.contrib.auth.models import User

# Who may upload, whatever the door (tus, direct, ingest, the admin's upload page): the Instructors
# group has it; superusers have every permission.
UPLOAD_PERMISSION = "uploads.add_uploadsession"

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


def upload_sessions_pending_bytes(*, user: AbstractBaseUser, excluding: Iterable[uuid.UUID] = ()) -> int:
    """Declared length of ``user``'s uploads created this month that are not finalized yet (in
    progress or complete, partial ones included): they count against the monthly upload quota like
    stored originals. ``excluding``: uploads about to be consumed (the parts of a concatenation)."""
    start = timezone.localtime().replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    pending = (
        UploadSession.objects.filter(
            owner=cast("User", user),
            status__in=UploadSession.LIVE_STATUSES,
            length__isnull=False,
            created_at__gte=start,
        )
        .exclude(id__in=list(excluding))
        .aggregate(total=Coalesce(Sum("length"), 0))["total"]
    )
    return int(pending)


def upload_file_check(
    *,
    owner: AbstractBaseUser,
    length: int | None,
    filename: str,
    filetype: str,
    replacing: Iterable[uuid.UUID] = (),
) -> None:
    """A whole file's size (413), name and type (415) and the owner's monthly quotas (413/429);
    ``replacing``: partial uploads this file is made of, whose bytes are not counted twice."""
    if length is not None:
        upload_length_check(length=length)
    upload_format_check(filename=filename, filetype=filetype)
    pending = upload_sessions_pending_bytes(user=owner, excluding=replacing)
    quota_check_upload(user=owner, size_bytes=length, pending_upload_bytes=pending)


def upload_temp_bytes_limit() -> int:
    """Bytes one user's part files may hold on the upload server (``UPLOAD_TEMP_MAX_PER_USER_MB``;
    0 means as much as ``MAX_CONCURRENT_UPLOADS`` uploads of the maximum size)."""
    megabytes: int = settings.UPLOAD_TEMP_MAX_PER_USER_MB
    if megabytes <= 0:
        return int(settings.MAX_CONCURRENT_UPLOADS) * max_upload_bytes()
    return megabytes * 1024 * 1024


def _check_held_bytes(*, owner: AbstractBaseUser, length: int | None) -> None:
    """Refuse (413) a tus upload that would take the owner's part files past their share of the disk:
    unfinished uploads and partial uploads not concatenated yet count with their declared length."""
    if not length:
        return
    held = int(
        UploadSession.objects.filter(
            owner=cast("User", owner), kind=UploadSession.Kind.TUS, status__in=UploadSession.LIVE_STATUSES
        ).aggregate(total=Coalesce(Sum(Coalesce("length", "offset")), 0))["total"]
    )
    limit = upload_temp_bytes_limit()
    if held + length > limit:
        raise PayloadTooLarge(
            f"your unfinished and partial uploads already hold {held} bytes on the upload server; {length} more "
            f"would pass the {limit} bytes one user may hold (UPLOAD_TEMP_MAX_PER_USER_MB). Finish, concatenate "
            "or terminate some first"
        )


def _check_active_limit(*, owner: AbstractBaseUser, partial: bool) -> None:
    # Partial uploads hold their bytes until concatenated (or expired): complete ones count too.
    statuses = UploadSession.LIVE_STATUSES if partial else UploadSession.ACTIVE_STATUSES
    active = UploadSession.objects.filter(owner=cast("User", owner), status__in=statuses, is_partial=partial)
    limit = settings.MAX_CONCURRENT_UPLOADS * (PARTIALS_PER_UPLOAD if partial else 1)
    if active.count() >= limit:
        what = "partial uploads not concatenated yet" if partial else "unfinished uploads"
        raise TooManyRequests(
            f"you already have {limit} {what} (the limit); finish, concatenate or terminate one before starting another"
        )


def upload_admission_check(
    *,
    owner: AbstractBaseUser,
    length: int | None,
    filename: str,
    filetype: str,
    partial: bool = False,
    part_file: bool = False,
) -> None:
    """What every new upload (tus, direct or ingest) must pass before anything is stored.

    Size up to ``MAX_VIDEO_SIZE_MB`` (413); an allowed video name and type (415, whole files
    only: partial tus uploads are chunks); the owner's monthly quotas (413/429, chunks
    included); at most ``MAX_CONCURRENT_UPLOADS`` unfinished uploads of either kind, and
    ``PARTIALS_PER_UPLOAD`` times that many partial uploads not concatenated yet (429); for
    uploads written to a ``part_file`` on this server, at most ``UPLOAD_TEMP_MAX_PER_USER_MB``
    held by the owner's part files (413).
    """
    upload_permission_check(owner)
    _lock_owner(owner)
    if partial:
        if length is not None:
            upload_length_check(length=length)
        # A chunk's bytes count against the monthly quota like a whole file's.
        quota_check_upload(
            user=owner, size_bytes=length, pending_upload_bytes=upload_sessions_pending_bytes(user=owner)
        )
    else:
        upload_file_check(owner=owner, length=length, filename=filename, filetype=filetype)
    _check_active_limit(owner=owner, partial=partial)
    if part_file:
        _check_held_bytes(owner=owner, length=length)


def upload_permission_check(owner: AbstractBaseUser) -> None:
    """Refuse (403) an upload by an account without ``uploads.add_uploadsession``."""
    if not (owner.is_active and cast("User", owner).has_perm(UPLOAD_PERMISSION)):
        raise PermissionDenied(
            f"your account may not upload videos (it needs the {UPLOAD_PERMISSION} permission, which the "
            "Instructors group has); ask an administrator"
        )


def _lock_owner(owner: AbstractBaseUser) -> None:
    """Serialize one owner's upload creations until the caller's transaction ends, so counting their
    unfinished uploads and adding one is exact under parallel requests (PostgreSQL; SQLite
    serializes writers anyway). The caller must be in a transaction and create the upload in it."""
    if not transaction.get_connection().in_atomic_block:
        raise RuntimeError("upload_admission_check must run in the transaction that creates the upload")
    list(get_user_model().objects.select_for_update().filter(pk=owner.pk).values_list("pk", flat=True))
