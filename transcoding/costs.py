"""Writes for costs: the ledger, the budget, the kill switch, alerts and quotas.

Every ledger line is written by the code that causes the cost, inside its transaction.
Amounts follow ``transcoding.pricing``: GB = 10**9 bytes, USD quantized to 6 places
(ROUND_HALF_UP), computed from exact quantities and prices.
"""
from __future__ import annotations

import logging
from datetime import date, timedelta
from decimal import Decimal

from django.conf import settings
from django.core.mail import mail_admins, send_mail
from django.db import transaction
from django.db.models import Sum
from django.utils import timezone

from media_library.models import MediaFile, Rendition, Video
from transcoding import pricing
from transcoding.models import BudgetPolicy, CostAlert, CostLogEntry, DeliveryTally, TranscodeJob
from transcoding.selectors import (
    budget_forecast_usd,
    budget_limit_reason,
    cost_total_usd,
    month_to_date_usd,
    user_month_usage,
)
from unpuzzle.exceptions import Conflict, DomainError, PayloadTooLarge, TooManyRequests
from unpuzzle.permissions import user_sees_all_videos

logger = logging.getLogger(__name__)

Kind = CostLogEntry.Kind


class QuotaExceeded(DomainError):
    """A user's monthly upload (413) or transcode-minutes (429) quota is used up."""

    status_code = 429
    code = "quota_exceeded"


class UploadQuotaExceeded(QuotaExceeded, PayloadTooLarge):
    status_code = 413


class TranscodeQuotaExceeded(QuotaExceeded, TooManyRequests):
    status_code = 429


def _price(name: str) -> Decimal:
    return Decimal(getattr(settings, name))


def _line(*, day: date, kind: str, quantity: Decimal, unit: str, unit_price: Decimal, exact_amount: Decimal | None = None,
          **fields) -> CostLogEntry:
    """An unsaved ledger line; the amount is quantity × price unless an exact amount is given."""
    quantity = pricing.to_decimal(quantity)
    value = pricing.quantize_amount(exact_amount) if exact_amount is not None else pricing.amount(quantity=quantity, unit_price=unit_price)
    return CostLogEntry(
        date=day, kind=kind, quantity=pricing.quantize_quantity(quantity), unit=unit,
        unit_price=unit_price.quantize(Decimal("0.00000001")), amount=value, **fields,
    )


# --- Ledger ---------------------------------------------------------------------------

@transaction.atomic
def cost_record_transcode(*, job: TranscodeJob, output_minutes, cpu_seconds) -> list[CostLogEntry]:
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
    refs = {"video": video, "job": job, "owner": video.owner, "note": f"job {job.id}: {minutes} output min, {cpu} CPU s"}
    lines = [_line(day=day, kind=Kind.TRANSCODE, quantity=minutes, unit="minute", unit_price=_price("TRANSCODE_USD_PER_MINUTE"), **refs)]
    cpu_price = _price("TRANSCODE_USD_PER_CPU_HOUR")
    if cpu_price > 0:
        lines.append(_line(day=day, kind=Kind.TRANSCODE, quantity=cpu / 3600, unit="CPU-hour", unit_price=cpu_price, **refs))
    for line in lines:
        line.save()
    logger.info("job_id=%s video_id=%s transcode cost %s USD", job.id, video.id, sum(line.amount for line in lines))
    budget_check_and_alert(today=day)
    return lines


@transaction.atomic
def cost_snapshot_storage(*, day: date) -> list[CostLogEntry]:
    """Write ``day``'s storage cost: one line per video (its stored original and renditions).

    Prorated: GB × B2_STORAGE_USD_PER_GB_MONTH / days in the month. An original shared by
    several videos counts for the oldest one; stored originals with no video go on one
    line without a video. Re-running a day replaces that day's storage lines.
    """
    CostLogEntry.objects.filter(date=day, kind=Kind.STORAGE).delete()
    month_price = _price("B2_STORAGE_USD_PER_GB_MONTH")
    day_price = pricing.storage_day_price(price_per_gb_month=month_price, day=day)
    rendition_bytes = dict(
        Rendition.objects.values("video_id").annotate(total=Sum("bytes")).values_list("video_id", "total")
    )
    counted_media: set = set()
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
            lines.append(_storage_line(day=day, num_bytes=original + renditions, day_price=day_price, video_id=video_id,
                                       owner_id=owner_id, note=f"original {original} B + renditions {renditions} B"))
    unattached = MediaFile.objects.filter(status=MediaFile.Status.STORED, videos__isnull=True).exclude(id__in=counted_media)
    orphan_bytes = unattached.aggregate(total=Sum("size"))["total"] or 0
    if orphan_bytes:
        lines.append(_storage_line(day=day, num_bytes=orphan_bytes, day_price=day_price, note=f"originals without a video {orphan_bytes} B"))
    CostLogEntry.objects.bulk_create(lines)
    logger.info("storage snapshot %s: %d lines, %s USD", day, len(lines), sum((line.amount for line in lines), Decimal(0)))
    return lines


def _storage_line(*, day: date, num_bytes: int, day_price: Decimal, note: str, **refs) -> CostLogEntry:
    gb = pricing.bytes_to_gb(num_bytes)
    return _line(day=day, kind=Kind.STORAGE, quantity=gb, unit="GB-day", unit_price=day_price,
                 exact_amount=gb * day_price, note=note, **refs)


def _delivery_lines(*, video: Video, bytes_served: int, day: date, is_estimate: bool, via_cdn: bool, note: str) -> list[CostLogEntry]:
    gb = pricing.bytes_to_gb(bytes_served)
    refs = {"video": video, "owner_id": video.owner_id, "is_estimate": is_estimate}
    lines = []
    if via_cdn:
        lines.append(_line(day=day, kind=Kind.EGRESS, quantity=gb, unit="GB", unit_price=_price("CDN_USD_PER_GB"),
                           note=f"CDN delivery {bytes_served} B {note}".strip(), **refs))
    b2_price = _price("B2_DOWNLOAD_USD_PER_GB")
    if not via_cdn or b2_price > 0:
        # Behind the CDN only cache misses reach B2, so this line is an upper bound.
        lines.append(_line(day=day, kind=Kind.EGRESS, quantity=gb, unit="GB", unit_price=b2_price,
                           note=f"B2 download {bytes_served} B {note}".strip(), **refs))
    return lines


@transaction.atomic
def cost_record_delivery(*, video: Video, bytes_served: int, day: date, is_estimate: bool = False,
                         via_cdn: bool | None = None) -> list[CostLogEntry]:
    """Record bytes of ``video`` served on ``day``: a CDN line (when a CDN is configured) and a B2 download line.

    ``via_cdn`` defaults to whether ``CDN_URL`` is set. The B2 line is skipped behind the
    CDN when ``B2_DOWNLOAD_USD_PER_GB`` is 0 (egress to Bunny is free).
    """
    via_cdn = bool(settings.CDN_URL) if via_cdn is None else via_cdn
    lines = _delivery_lines(video=video, bytes_served=bytes_served, day=day, is_estimate=is_estimate, via_cdn=via_cdn, note="")
    CostLogEntry.objects.bulk_create(lines)
    budget_check_and_alert(today=timezone.localdate())
    return lines


def _request_lines(*, day: date, class_b: int, class_c: int, video: Video | None, is_estimate: bool, note: str) -> list[CostLogEntry]:
    refs = {"video": video, "owner_id": video.owner_id if video else None, "is_estimate": is_estimate, "note": note}
    lines = []
    if class_b:
        lines.append(_line(day=day, kind=Kind.REQUESTS, quantity=Decimal(class_b) / 10_000, unit="10k class B",
                           unit_price=_price("B2_CLASS_B_USD_PER_10K"), **refs))
    if class_c:
        lines.append(_line(day=day, kind=Kind.REQUESTS, quantity=Decimal(class_c) / 1_000, unit="1k class C",
                           unit_price=_price("B2_CLASS_C_USD_PER_1K"), **refs))
    return lines


@transaction.atomic
def cost_record_requests(*, day: date, class_b: int = 0, class_c: int = 0, video: Video | None = None,
                         is_estimate: bool = False, note: str = "") -> list[CostLogEntry]:
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
        .select_related("media_file").prefetch_related("renditions").distinct().order_by("created_at", "id")
    )
    seen: set = set()
    for video in videos:
        media = video.media_file
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
        CostLogEntry.objects.filter(date=day, video=video, is_estimate=True, kind__in=[Kind.EGRESS, Kind.REQUESTS]).delete()
        duration = video.duration or media.duration
        renditions = list(video.renditions.all())
        if plays <= 0 or not duration or not renditions:
            continue
        bitrate = sum(pricing.to_decimal(r.average_bandwidth or r.bandwidth) for r in renditions) / len(renditions)
        bytes_served = int(plays * bitrate / 8 * pricing.to_decimal(duration))
        note = f"estimate: {plays} plays x {bitrate.quantize(Decimal(1))} bit/s x {duration} s"
        lines += _delivery_lines(video=video, bytes_served=bytes_served, day=day, is_estimate=True, via_cdn=via_cdn, note=note)
        if not via_cdn:
            segments = sum(r.segment_count for r in renditions) / len(renditions)
            lines += _request_lines(day=day, class_b=int(plays * (segments + 2)), class_c=0, video=video, is_estimate=True, note=note)
    CostLogEntry.objects.bulk_create(lines)
    return lines


# --- Quotas ---------------------------------------------------------------------------

def quota_check_upload(*, user, size_bytes: int | None, pending_upload_bytes: int) -> None:
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


# --- Budget and kill switch ------------------------------------------------------------

def _policy_for_update() -> BudgetPolicy:
    BudgetPolicy.objects.get_or_create(
        id=BudgetPolicy.SINGLETON_ID, defaults={"monthly_budget_usd": Decimal(settings.MONTHLY_BUDGET_USD)}
    )
    return BudgetPolicy.objects.select_for_update().get(id=BudgetPolicy.SINGLETON_ID)


def _alert_once(*, kind: str, period: str, subject: str, message: str, actor=None) -> CostAlert | None:
    """Record the alert and mail it after commit, unless this kind was already sent for this period."""
    alert, created = CostAlert.objects.get_or_create(
        kind=kind, period=period, defaults={"subject": subject, "message": message, "actor": actor}
    )
    if not created:
        return None
    logger.warning("cost alert %s %s: %s", kind, period, subject)
    transaction.on_commit(lambda: _send_alert(subject=subject, message=message))
    return alert


def _send_alert(*, subject: str, message: str) -> None:
    mail_admins(subject, message, fail_silently=True)
    if settings.COST_ALERT_EMAILS:
        send_mail(f"{settings.EMAIL_SUBJECT_PREFIX}{subject}", message, settings.DEFAULT_FROM_EMAIL,
                  settings.COST_ALERT_EMAILS, fail_silently=True)


@transaction.atomic
def budget_engage_kill_switch(*, by, reason: str, automatic: bool = False) -> BudgetPolicy:
    """Stop all new transcodes: videos wait as ``blocked`` until release. No-op when already engaged.

    Staff must give a reason; the engagement (who, when, why) is kept on the policy and in
    the alert history, and mailed.
    """
    reason = (reason or "").strip()
    if not reason:
        raise DomainError("a reason is required to engage the kill switch", code="reason_required")
    policy = _policy_for_update()
    if policy.kill_switch_engaged:
        return policy
    now = timezone.now()
    policy.kill_switch_engaged = True
    policy.kill_switch_reason = reason
    policy.kill_switch_by = by
    policy.kill_switch_at = now
    policy.kill_switch_auto = automatic
    policy.save(update_fields=["kill_switch_engaged", "kill_switch_reason", "kill_switch_by", "kill_switch_at", "kill_switch_auto", "updated_at"])
    who = "the budget check" if automatic else (by.get_username() if by else "unknown")
    _alert_once(
        kind=CostAlert.Kind.KILL_SWITCH_ENGAGED, period=now.isoformat(), actor=by,
        subject=f"Kill switch engaged by {who}",
        message=f"Transcoding is stopped since {now:%Y-%m-%d %H:%M %Z}: {reason}\nNew videos wait as blocked until the switch is released.",
    )
    return policy


@transaction.atomic
def budget_release_kill_switch(*, by, reason: str = "", automatic: bool = False) -> BudgetPolicy:
    """Allow transcoding again and requeue every blocked video, oldest first, after commit.

    Refused (409) while the automatic budget rules would stop spending at once: raise the
    budget or turn off auto-engage first. No-op when not engaged.
    """
    policy = _policy_for_update()
    if not policy.kill_switch_engaged:
        return policy
    day = timezone.localdate()
    mtd = month_to_date_usd(day=day)
    limit = budget_limit_reason(policy=policy, month_to_date=mtd, forecast=budget_forecast_usd(day=day, month_to_date=mtd))
    if limit:
        raise Conflict(f"cannot release the kill switch: {limit}; raise the monthly budget or turn off auto-engage first",
                       code="budget_still_exceeded")
    now = timezone.now()
    previous = policy.kill_switch_reason
    policy.kill_switch_engaged = False
    policy.kill_switch_reason = ""
    policy.kill_switch_by = by
    policy.kill_switch_at = now
    policy.kill_switch_auto = automatic
    policy.save(update_fields=["kill_switch_engaged", "kill_switch_reason", "kill_switch_by", "kill_switch_at", "kill_switch_auto", "updated_at"])
    who = "the budget check" if automatic else (by.get_username() if by else "unknown")
    blocked = Video.objects.filter(status=Video.Status.BLOCKED).count()
    _alert_once(
        kind=CostAlert.Kind.KILL_SWITCH_RELEASED, period=now.isoformat(), actor=by,
        subject=f"Kill switch released by {who}",
        message=f"Transcoding resumed at {now:%Y-%m-%d %H:%M %Z}{': ' + reason if reason else ''}.\n"
                f"It was engaged for: {previous or 'no reason given'}.\n{blocked} blocked videos are requeued.",
    )
    transaction.on_commit(budget_requeue_blocked)
    return policy


def budget_requeue_blocked() -> int:
    """Hand every blocked video back to ``transcode_enqueue``, oldest first; returns how many were queued."""
    from transcoding.services import transcode_enqueue

    queued = 0
    for video in Video.objects.filter(status=Video.Status.BLOCKED).order_by("created_at", "id"):
        try:
            if transcode_enqueue(video=video) is not None:
                queued += 1
        except Exception:
            logger.exception("video_id=%s could not be requeued", video.id)
    logger.info("requeued %d blocked videos", queued)
    return queued


@transaction.atomic
def budget_update(*, by, monthly_budget_usd: Decimal | None = None, auto_engage: bool | None = None,
                  auto_engage_on_forecast: bool | None = None, spike_threshold_pct: int | None = None) -> BudgetPolicy:
    """Change the budget settings, then apply the automatic rules to the new values."""
    policy = _policy_for_update()
    changes = {
        "monthly_budget_usd": monthly_budget_usd, "auto_engage": auto_engage,
        "auto_engage_on_forecast": auto_engage_on_forecast, "spike_threshold_pct": spike_threshold_pct,
    }
    fields = [name for name, value in changes.items() if value is not None]
    if monthly_budget_usd is not None and Decimal(monthly_budget_usd) < 0:
        raise DomainError(f"monthly_budget_usd must be 0 or more, not {monthly_budget_usd}", code="invalid_budget")
    for name in fields:
        setattr(policy, name, changes[name])
    if fields:
        policy.save(update_fields=fields + ["updated_at"])
        logger.info("budget policy changed by %s: %s", by, {name: changes[name] for name in fields})
    budget_check_and_alert(today=timezone.localdate())
    policy.refresh_from_db()
    return policy


@transaction.atomic
def budget_check_and_alert(*, today: date) -> BudgetPolicy:
    """Apply the budget rules for ``today`` and send what is due, each alert once.

    Alerts at 80% and 100% of the month's budget (once per month), on a day-over-day
    spike of the last two complete days above ``spike_threshold_pct`` (once per day; a
    day after a zero day is not a spike), and when the forecast passes the budget.
    Engages the kill switch automatically when ``budget_limit_reason`` says so; releases
    a switch it engaged itself once the rules allow spending again (a new month, a
    higher budget).
    """
    policy = _policy_for_update()
    month = today.strftime("%Y-%m")
    mtd = month_to_date_usd(day=today)
    forecast = budget_forecast_usd(day=today, month_to_date=mtd)
    budget = policy.monthly_budget_usd
    if budget > 0:
        for pct, kind in ((100, CostAlert.Kind.BUDGET_100), (80, CostAlert.Kind.BUDGET_80)):
            if mtd * 100 >= budget * pct:
                _alert_once(kind=kind, period=month, subject=f"Costs at {pct}% of the {month} budget",
                            message=f"Month-to-date spend is ${mtd} of a ${budget} budget; forecast to month end ${forecast}.")
                break
        if forecast > budget:
            _alert_once(kind=CostAlert.Kind.FORECAST, period=month, subject=f"Forecast above the {month} budget",
                        message=f"At this month's rate spend reaches ${forecast} by month end; the budget is ${budget} (${mtd} so far).")
    _check_spike(policy=policy, today=today)

    reason = budget_limit_reason(policy=policy, month_to_date=mtd, forecast=forecast)
    if reason and not policy.kill_switch_engaged:
        policy = budget_engage_kill_switch(by=None, reason=reason, automatic=True)
    elif not reason and policy.kill_switch_engaged and policy.kill_switch_auto:
        policy = budget_release_kill_switch(by=None, reason="the budget allows spending again", automatic=True)
    return policy


def _check_spike(*, policy: BudgetPolicy, today: date) -> None:
    day = today - timedelta(days=1)
    before = day - timedelta(days=1)
    current = cost_total_usd(start=day, end=day)
    previous = cost_total_usd(start=before, end=before)
    if previous <= 0:
        return
    increase = (current - previous) * 100 / previous
    if increase > policy.spike_threshold_pct:
        _alert_once(
            kind=CostAlert.Kind.SPIKE, period=day.isoformat(),
            subject=f"Cost spike on {day}: +{increase.quantize(Decimal(1))}%",
            message=f"Spend on {day} was ${current} against ${previous} on {before} "
                    f"(threshold {policy.spike_threshold_pct}%).",
        )


@transaction.atomic
def cost_alerts_acknowledge(*, by, alert_ids: list[int] | None = None) -> int:
    """Hide alerts from the admin banner (all unacknowledged ones when no ids are given)."""
    qs = CostAlert.objects.filter(acknowledged_at__isnull=True)
    if alert_ids is not None:
        qs = qs.filter(id__in=alert_ids)
    return qs.update(acknowledged_at=timezone.now(), acknowledged_by=by)


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
