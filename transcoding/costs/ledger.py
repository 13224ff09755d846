"""Writes for the cost ledger: every line is written by the code that causes the cost, inside its transaction.

Amounts follow ``transcoding.costs.pricing``: GB = 10**9 bytes, USD quantized to 6 places
(ROUND_HALF_UP), computed from exact quantities and prices.
"""

from __future__ import annotations

import logging
import uuid
from datetime import date, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, TypedDict

from django.conf import settings
from django.db import transaction
from django.db.models import Sum
from django.utils import timezone

from media_library.models import MediaFile, Rendition, Video
from transcoding.costs import pricing
from transcoding.costs.budget import budget_check_and_alert, budget_requeue_blocked
from transcoding.models import CostLogEntry, DeliveryTally, TranscodeJob

if TYPE_CHECKING:
    from typing import Unpack

    from django.contrib.auth.models import User

logger = logging.getLogger(__name__)

Kind = CostLogEntry.Kind


class _Refs(TypedDict, total=False):
    """What a ledger line points at, and how it is marked."""

    video: Video | None
    video_id: uuid.UUID
    job: TranscodeJob
    owner: User
    owner_id: int | None
    is_estimate: bool


def _price(name: str) -> Decimal:
    return Decimal(getattr(settings, name))


def _line(
    *,
    day: date,
    kind: str,
    quantity: Decimal,
    unit: str,
    unit_price: Decimal,
    exact_amount: Decimal | None = None,
    note: str = "",
    **fields: Unpack[_Refs],
) -> CostLogEntry:
    """An unsaved ledger line; the amount is quantity × price unless an exact amount is given."""
    quantity = pricing.to_decimal(quantity)
    value = (
        pricing.quantize_amount(exact_amount)
        if exact_amount is not None
        else pricing.amount(quantity=quantity, unit_price=unit_price)
    )
    return CostLogEntry(
        date=day,
        kind=kind,
        quantity=pricing.quantize_quantity(quantity),
        unit=unit,
        unit_price=unit_price.quantize(Decimal("0.00000001")),
        amount=value,
        note=note,
        **fields,
    )


@transaction.atomic
def cost_record_transcode(
    *, job: TranscodeJob, output_minutes: Decimal | float | int, cpu_seconds: Decimal | float | int | None
) -> list[CostLogEntry]:
    """Record what a finished transcode cost; call it in the transaction that marks the job succeeded.

    ``output_minutes`` is what hosted transcoders bill: the video's duration in minutes
    times the number of renditions written. One line at ``TRANSCODE_USD_PER_MINUTE`` and,
    when ``TRANSCODE_USD_PER_CPU_HOUR`` is set (self-hosted workers), one at that price for
    ``cpu_seconds``. Idempotent per job: a second call returns the existing lines.
    """
    existing = list(CostLogEntry.objects.filter(job=job, kind=Kind.TRANSCODE).order_by("id"))
    if existing:
        return existing
    video = job.video
    day = timezone.localdate()
    minutes = pricing.to_decimal(output_minutes)
    cpu = pricing.to_decimal(cpu_seconds or 0)
    refs: _Refs = {
        "video": video,
        "job": job,
        "owner": video.owner,
    }
    note = f"job {job.id}: {minutes} output min, {cpu} CPU s"
    lines = [
        _line(
            day=day,
            kind=Kind.TRANSCODE,
            quantity=minutes,
            unit="minute",
            unit_price=_price("TRANSCODE_USD_PER_MINUTE"),
            note=note,
            **refs,
        )
    ]
    cpu_price = _price("TRANSCODE_USD_PER_CPU_HOUR")
    if cpu_price > 0:
        lines.append(
            _line(
                day=day,
                kind=Kind.TRANSCODE,
                quantity=cpu / 3600,
                unit="CPU-hour",
                unit_price=cpu_price,
                note=note,
                **refs,
            )
        )
    for line in lines:
        line.save()
    logger.info("job_id=%s video_id=%s transcode cost %s USD", job.id, video.id, sum(line.amount for line in lines))
    budget_check_and_alert(today=day)
    return lines


@transaction.atomic
def cost_snapshot_storage(*, day: date) -> list[CostLogEntry]:
    """Write ``day``'s storage cost: one line per video (its stored original and renditions).

    Prorated: GB × B2_STORAGE_USD_PER_GB_MONTH / days in the month. An original shared by
    several videos counts for the oldest one, and so does an HLS output duplicates share; stored originals with no video go on one
    line without a video. Re-running a day replaces that day's storage lines.
    """
    CostLogEntry.objects.filter(date=day, kind=Kind.STORAGE).delete()
    month_price = _price("B2_STORAGE_USD_PER_GB_MONTH")
    day_price = pricing.storage_day_price(price_per_gb_month=month_price, day=day)
    # A duplicate's renditions are the stored objects of the video it shares them with: counted once, for the oldest.
    rendition_bytes: dict[uuid.UUID, int] = {}
    counted_playlists: set[str] = set()
    rendition_rows = Rendition.objects.order_by("video__created_at", "video_id").values_list(
        "video_id", "playlist_key", "bytes"
    )
    for rendition_video_id, playlist_key, size in rendition_rows.iterator():
        if playlist_key not in counted_playlists:
            counted_playlists.add(playlist_key)
            rendition_bytes[rendition_video_id] = rendition_bytes.get(rendition_video_id, 0) + size
    counted_media: set[uuid.UUID] = set()
    lines = []
    videos = Video.objects.order_by("created_at", "id").values_list(
        "id", "owner_id", "media_file_id", "media_file__size", "media_file__status"
    )
    for video_id, owner_id, media_id, media_size, media_status in videos.iterator():
        original = 0
        if media_id and media_status == MediaFile.Status.STORED and media_id not in counted_media:
            counted_media.add(media_id)
            original = media_size
        renditions = int(rendition_bytes.get(video_id) or 0)
        if original + renditions:
            lines.append(
                _storage_line(
                    day=day,
                    num_bytes=original + renditions,
                    day_price=day_price,
                    video_id=video_id,
                    owner_id=owner_id,
                    note=f"original {original} B + renditions {renditions} B",
                )
            )
    unattached = MediaFile.objects.filter(status=MediaFile.Status.STORED, videos__isnull=True).exclude(
        id__in=counted_media
    )
    orphan_bytes = unattached.aggregate(total=Sum("size"))["total"] or 0
    if orphan_bytes:
        lines.append(
            _storage_line(
                day=day, num_bytes=orphan_bytes, day_price=day_price, note=f"originals without a video {orphan_bytes} B"
            )
        )
    CostLogEntry.objects.bulk_create(lines)
    logger.info(
        "storage snapshot %s: %d lines, %s USD", day, len(lines), sum((line.amount for line in lines), Decimal(0))
    )
    return lines


def _storage_line(*, day: date, num_bytes: int, day_price: Decimal, note: str, **refs: Unpack[_Refs]) -> CostLogEntry:
    gb = pricing.bytes_to_gb(num_bytes)
    return _line(
        day=day,
        kind=Kind.STORAGE,
        quantity=gb,
        unit="GB-day",
        unit_price=day_price,
        exact_amount=gb * day_price,
        note=note,
        **refs,
    )


def _delivery_lines(
    *, video: Video, bytes_served: int, day: date, is_estimate: bool, via_cdn: bool, note: str
) -> list[CostLogEntry]:
    gb = pricing.bytes_to_gb(bytes_served)
    refs: _Refs = {"video": video, "owner_id": video.owner_id, "is_estimate": is_estimate}
    lines = []
    if via_cdn:
        lines.append(
            _line(
                day=day,
                kind=Kind.EGRESS,
                quantity=gb,
                unit="GB",
                unit_price=_price("CDN_USD_PER_GB"),
                note=f"CDN delivery {bytes_served} B {note}".strip(),
                **refs,
            )
        )
    b2_price = _price("B2_DOWNLOAD_USD_PER_GB")
    if not via_cdn or b2_price > 0:
        # Behind the CDN only cache misses reach B2, so this line is an upper bound.
        lines.append(
            _line(
                day=day,
                kind=Kind.EGRESS,
                quantity=gb,
                unit="GB",
                unit_price=b2_price,
                note=f"B2 download {bytes_served} B {note}".strip(),
                **refs,
            )
        )
    return lines


@transaction.atomic
def cost_record_delivery(
    *, video: Video, bytes_served: int, day: date, is_estimate: bool = False, via_cdn: bool | None = None
) -> list[CostLogEntry]:
    """Record bytes of ``video`` served on ``day``: a CDN line (when a CDN is configured) and a B2 download line.

    ``via_cdn`` defaults to whether ``CDN_URL`` is set. The B2 line is skipped behind the
    CDN when ``B2_DOWNLOAD_USD_PER_GB`` is 0 (egress to Bunny is free).
    """
    via_cdn = bool(settings.CDN_URL) if via_cdn is None else via_cdn
    lines = _delivery_lines(
        video=video, bytes_served=bytes_served, day=day, is_estimate=is_estimate, via_cdn=via_cdn, note=""
    )
    CostLogEntry.objects.bulk_create(lines)
    budget_check_and_alert(today=timezone.localdate())
    return lines


def _request_lines(
    *, day: date, class_b: int, class_c: int, video: Video | None, is_estimate: bool, note: str
) -> list[CostLogEntry]:
    refs: _Refs = {"video": video, "owner_id": video.owner_id if video else None, "is_estimate": is_estimate}
    lines = []
    if class_b:
        lines.append(
            _line(
                day=day,
                kind=Kind.REQUESTS,
                quantity=Decimal(class_b) / 10_000,
                unit="10k class B",
                unit_price=_price("B2_CLASS_B_USD_PER_10K"),
                note=note,
                **refs,
            )
        )
    if class_c:
        lines.append(
            _line(
                day=day,
                kind=Kind.REQUESTS,
                quantity=Decimal(class_c) / 1_000,
                unit="1k class C",
                unit_price=_price("B2_CLASS_C_USD_PER_1K"),
                note=note,
                **refs,
            )
        )
    return lines


@transaction.atomic
def cost_record_requests(
    *,
    day: date,
    class_b: int = 0,
    class_c: int = 0,
    video: Video | None = None,
    is_estimate: bool = False,
    note: str = "",
) -> list[CostLogEntry]:
    """Record B2 class B (downloads, priced per 10k) and class C (listings, per 1k) transactions."""
    lines = _request_lines(day=day, class_b=class_b, class_c=class_c, video=video, is_estimate=is_estimate, note=note)
    CostLogEntry.objects.bulk_create(lines)
    return lines


@transaction.atomic
def cost_estimate_delivery(*, day: date) -> list[CostLogEntry]:
    """Estimate ``day``'s delivery from playback counters, marked ``is_estimate``.

    For each stored original whose ``access_count`` grew since the last run: plays ×
    mean rendition bitrate (average bandwidth, else peak) / 8 × duration bytes, charged
    as ``cost_record_delivery`` does, attributed to the oldest ready video of that file.
    Without a CDN each play also costs (mean segment count + 2 playlists) class B
    transactions. Re-running a day recomputes it from the same counter base.
    """
    via_cdn = bool(settings.CDN_URL)
    lines: list[CostLogEntry] = []
    tallies = {t.media_file_id: t for t in DeliveryTally.objects.select_for_update()}
    videos = (
        Video.objects.filter(status=Video.Status.READY, media_file__isnull=False, renditions__isnull=False)
        .select_related("media_file")
        .prefetch_related("renditions")
        .distinct()
        .order_by("created_at", "id")
    )
    seen: set[uuid.UUID] = set()
    for video in videos:
        media = video.media_file
        assert media is not None  # the query keeps videos with an original only
        if media.id in seen:
            continue
        seen.add(media.id)
        tally = tallies.get(media.id)
        if tally is not None and tally.day > day:
            continue
        base = 0 if tally is None else (tally.count_before if tally.day == day else tally.count_at)
        plays = media.access_count - base
        DeliveryTally.objects.update_or_create(
            media_file=media, defaults={"day": day, "count_before": base, "count_at": media.access_count}
        )
        CostLogEntry.objects.filter(
            date=day, video=video, is_estimate=True, kind__in=[Kind.EGRESS, Kind.REQUESTS]
        ).delete()
        duration = video.duration or media.duration
        renditions = list(video.renditions.all())
        if plays <= 0 or not duration or not renditions:
            continue
        bitrate = sum((pricing.to_decimal(r.average_bandwidth or r.bandwidth) for r in renditions), Decimal(0)) / len(
            renditions
        )
        bytes_served = int(plays * bitrate / 8 * pricing.to_decimal(duration))
        note = f"estimate: {plays} plays x {bitrate.quantize(Decimal(1))} bit/s x {duration} s"
        lines += _delivery_lines(
            video=video, bytes_served=bytes_served, day=day, is_estimate=True, via_cdn=via_cdn, note=note
        )
        if not via_cdn:
            segments = sum(r.segment_count for r in renditions) / len(renditions)
            lines += _request_lines(
                day=day, class_b=int(plays * (segments + 2)), class_c=0, video=video, is_estimate=True, note=note
            )
    CostLogEntry.objects.bulk_create(lines)
    return lines


def costs_daily(*, today: date | None = None) -> None:
    """The daily cost run: today's storage snapshot, yesterday's delivery estimate, budget check.

    With the switch released it also retries blocked videos, so those held by a user's
    monthly minutes quota start once a new month (or a higher quota) allows them.
    """
    today = today or timezone.localdate()
    cost_snapshot_storage(day=today)
    cost_estimate_delivery(day=today - timedelta(days=1))
    policy = budget_check_and_alert(today=today)
    if not policy.kill_switch_engaged:
        budget_requeue_blocked()
