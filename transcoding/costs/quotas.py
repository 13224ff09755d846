"""Per-user monthly quotas: what a user stored and transcoded this month, and the upload check."""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, cast

from django.conf import settings
from django.db.models import FloatField, Sum
from django.db.models.functions import Coalesce
from django.utils import timezone

from media_library.models import MediaFile
from transcoding.costs import pricing
from transcoding.models import CostLogEntry
from unpuzzle.exceptions import DomainError, PayloadTooLarge, TooManyRequests
from unpuzzle.permissions import user_sees_all_videos

if TYPE_CHECKING:
    from django.contrib.auth.base_user import AbstractBaseUser
    from django.contrib.auth.models import User


class QuotaExceeded(DomainError):
    """A user's monthly upload (413) or transcode-minutes (429) quota is used up."""

    status_code = 429
    code = "quota_exceeded"


class UploadQuotaExceeded(QuotaExceeded, PayloadTooLarge):
    status_code = 413


class TranscodeQuotaExceeded(QuotaExceeded, TooManyRequests):
    status_code = 429


def user_month_usage(*, user: AbstractBaseUser, day: date | None = None) -> tuple[int, Decimal]:
    """Bytes of originals ``user`` stored and source minutes transcoded in ``day``'s month.

    Stored bytes count deleted originals too. Minutes: the source duration of every transcode
    recorded in the ledger this month (a re-transcode counts again). Uploads still in progress
    are the uploads app's to count (``quota_check_upload(pending_upload_bytes=…)``).
    """
    day = day or timezone.localdate()
    start, end = pricing.month_bounds(day)
    tz = timezone.get_current_timezone()
    start_dt = timezone.make_aware(datetime.combine(start, time.min), tz)
    end_dt = timezone.make_aware(datetime.combine(end + timedelta(days=1), time.min), tz)
    owner = cast("User", user)  # the AUTH_USER_MODEL, the only concrete user model
    stored = MediaFile.objects.filter(owner=owner, created_at__gte=start_dt, created_at__lt=end_dt).aggregate(
        total=Coalesce(Sum("size"), 0)
    )["total"]
    seconds = CostLogEntry.objects.filter(
        owner=owner, kind=CostLogEntry.Kind.TRANSCODE, unit="minute", date__gte=start, date__lte=end
    ).aggregate(total=Coalesce(Sum("video__duration"), 0.0, output_field=FloatField()))["total"]
    minutes = pricing.quantize_quantity(pricing.to_decimal(float(seconds)) / 60)
    return int(stored), minutes


def user_transcode_quota_reason(*, user: AbstractBaseUser | None, day: date | None = None) -> str:
    """Why ``user`` may not transcode more this month, or "" (quota 0 means unlimited)."""
    quota = Decimal(settings.USER_MONTHLY_TRANSCODE_MINUTES)
    if not quota or user is None:
        return ""
    _, minutes = user_month_usage(user=user, day=day)
    if minutes >= quota:
        return f"monthly transcode quota used: {minutes} of {quota} minutes (USER_MONTHLY_TRANSCODE_MINUTES)"
    return ""


def quota_check_upload(*, user: AbstractBaseUser, size_bytes: int | None, pending_upload_bytes: int) -> None:
    """Refuse a new upload of ``size_bytes`` when it would break ``user``'s monthly quotas.

    ``USER_MONTHLY_UPLOAD_GB`` (GB = 10**9 bytes): 413 when this month's stored originals, the
    ``pending_upload_bytes`` of the user's uploads still in progress, and this one exceed it. ``USER_MONTHLY_TRANSCODE_MINUTES``: 429 when the month's transcoded
    source minutes already reach it. 0 means unlimited; staff who manage all videos are not limited (instructors are).
    """
    if user_sees_all_videos(user):
        return
    used_bytes, used_minutes = user_month_usage(user=user)
    used_bytes += pending_upload_bytes
    gb_quota = Decimal(settings.USER_MONTHLY_UPLOAD_GB)
    if gb_quota:
        after = pricing.bytes_to_gb(used_bytes + int(size_bytes or 0))
        if after > gb_quota:
            raise UploadQuotaExceeded(
                f"monthly upload quota exceeded: {pricing.bytes_to_gb(used_bytes):.3f} GB uploaded this month + "
                f"{pricing.bytes_to_gb(size_bytes or 0):.3f} GB ({int(size_bytes or 0)} bytes) would exceed "
                f"the {gb_quota} GB quota (USER_MONTHLY_UPLOAD_GB)",
                code="upload_quota_exceeded",
            )
    minutes_quota = Decimal(settings.USER_MONTHLY_TRANSCODE_MINUTES)
    if minutes_quota and used_minutes >= minutes_quota:
        raise TranscodeQuotaExceeded(
            f"monthly transcode quota used: {used_minutes} of {minutes_quota} minutes this month "
            "(USER_MONTHLY_TRANSCODE_MINUTES); uploads resume next month",
            code="transcode_quota_exceeded",
        )
