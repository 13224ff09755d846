"""Reads for costs: the spending gate, month-to-date, forecast, summaries, per-video estimates and
ceilings, and who may see costs."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, TypedDict

from django.conf import settings
from django.db.models import DecimalField, F, QuerySet, Sum, Value
from django.db.models.functions import Coalesce
from django.utils import timezone

from media_library.models import MediaFile, Video
from transcoding.costs import pricing
from transcoding.costs.quotas import user_transcode_quota_reason
from transcoding.costs.serializers import BudgetSerializer, CostAlertSerializer
from transcoding.ffmpeg.ladder import parse_ladder, plan_renditions
from transcoding.ffmpeg.sanity import REEXPORT_ADVICE, human_duration
from transcoding.models import BudgetPolicy, CostAlert, CostLogEntry
from unpuzzle.money import format_usd

if TYPE_CHECKING:
    from django.contrib.auth.models import AnonymousUser, User

    from transcoding.ffmpeg.probe import ProbeResult

ZERO = Decimal("0")
KINDS = [kind for kind, _ in CostLogEntry.Kind.choices]


class TopVideoRow(TypedDict):
    video_id: uuid.UUID
    title: str
    owner_username: str
    total: Decimal


class TopUserRow(TypedDict):
    owner_id: int
    username: str
    total: Decimal


@dataclass(frozen=True)
class SpendingDecision:
    allowed: bool
    reason: str = ""


@dataclass(frozen=True)
class BudgetStatus:
    policy: BudgetPolicy
    day: date
    month_to_date_usd: Decimal
    forecast_usd: Decimal

    @property
    def used_pct(self) -> Decimal | None:
        """Month-to-date as a percentage of the budget (None for a zero budget)."""
        if not self.policy.monthly_budget_usd:
            return None
        return (self.month_to_date_usd * 100 / self.policy.monthly_budget_usd).quantize(Decimal("0.1"))


def budget_policy_get() -> BudgetPolicy:
    """The budget singleton, created with the configured budget on first use."""
    policy, _ = BudgetPolicy.objects.get_or_create(
        id=BudgetPolicy.SINGLETON_ID, defaults={"monthly_budget_usd": Decimal(settings.MONTHLY_BUDGET_USD)}
    )
    return policy


def _sum_amount(qs: QuerySet[CostLogEntry]) -> Decimal:
    total: Decimal = qs.aggregate(total=Coalesce(Sum("amount"), Value(ZERO), output_field=DecimalField()))["total"]
    return total


def cost_entries_between(*, start: date, end: date) -> QuerySet[CostLogEntry]:
    """Ledger lines dated ``start``..``end`` (both included)."""
    return CostLogEntry.objects.filter(date__gte=start, date__lte=end)


def cost_total_usd(*, start: date, end: date) -> Decimal:
    """Spend between two days (both included)."""
    return _sum_amount(cost_entries_between(start=start, end=end))


def month_to_date_usd(*, day: date | None = None) -> Decimal:
    """Spend from the first of ``day``'s month through ``day`` (today by default)."""
    day = day or timezone.localdate()
    return cost_total_usd(start=day.replace(day=1), end=day)


def budget_forecast_usd(*, day: date | None = None, month_to_date: Decimal | None = None) -> Decimal:
    """Month-end spend at this month's average daily rate (see ``pricing.linear_forecast``)."""
    day = day or timezone.localdate()
    mtd = month_to_date if month_to_date is not None else month_to_date_usd(day=day)
    return pricing.linear_forecast(month_to_date=mtd, day=day)


def budget_status(*, day: date | None = None) -> BudgetStatus:
    """Budget, month-to-date spend and forecast in one read (API and dashboard)."""
    day = day or timezone.localdate()
    mtd = month_to_date_usd(day=day)
    return BudgetStatus(
        policy=budget_policy_get(),
        day=day,
        month_to_date_usd=mtd,
        forecast_usd=budget_forecast_usd(day=day, month_to_date=mtd),
    )


def budget_limit_reason(*, policy: BudgetPolicy, month_to_date: Decimal, forecast: Decimal) -> str:
    """Why the automatic rules stop spending now, or "" when they do not.

    Month-to-date at or above the budget stops it when ``auto_engage`` is on; a forecast
    strictly above the budget stops it when ``auto_engage_on_forecast`` is on too.
    """
    budget = policy.monthly_budget_usd
    if policy.auto_engage and month_to_date >= budget:
        return f"monthly budget reached: {format_usd(month_to_date)} spent of {format_usd(budget)}"
    if policy.auto_engage and policy.auto_engage_on_forecast and forecast > budget:
        return f"forecast {format_usd(forecast)} is above the monthly budget of {format_usd(budget)}"
    return ""


def spending_allowed(*, owner: User | None = None) -> SpendingDecision:
    """The one question every transcode asks before it starts: may we spend now?

    No while the kill switch is engaged, while the automatic budget rules say stop (the
    daily check and every recorded cost also engage the switch then), or when ``owner``
    has used their monthly transcode minutes.
    """
    policy = budget_policy_get()
    if policy.kill_switch_engaged:
        return SpendingDecision(False, f"kill switch engaged: {policy.kill_switch_reason or 'no reason given'}")
    day = timezone.localdate()
    mtd = month_to_date_usd(day=day)
    reason = budget_limit_reason(
        policy=policy, month_to_date=mtd, forecast=budget_forecast_usd(day=day, month_to_date=mtd)
    )
    if reason:
        return SpendingDecision(False, reason)
    reason = user_transcode_quota_reason(user=owner)
    if reason:
        return SpendingDecision(False, reason)
    return SpendingDecision(True)


def cost_totals_by_kind(*, start: date, end: date) -> dict[str, Decimal]:
    """Spend per kind between two days; every kind present, zero when none."""
    totals = {kind: ZERO for kind in KINDS}
    for row in cost_entries_between(start=start, end=end).values("kind").annotate(total=Sum("amount")):
        totals[row["kind"]] = row["total"]
    return totals


def cost_daily_by_kind(*, start: date, end: date) -> list[tuple[date, dict[str, Decimal]]]:
    """One row per day from ``start`` to ``end`` (days without costs included) with spend per kind."""
    by_day: dict[date, dict[str, Decimal]] = {}
    for row in cost_entries_between(start=start, end=end).values("date", "kind").annotate(total=Sum("amount")):
        by_day.setdefault(row["date"], {})[row["kind"]] = row["total"]
    days = []
    current = start
    while current <= end:
        kinds = by_day.get(current, {})
        days.append((current, {kind: kinds.get(kind, ZERO) for kind in KINDS}))
        current += timedelta(days=1)
    return days


def cost_top_videos(*, start: date, end: date, limit: int = 10) -> list[TopVideoRow]:
    """Videos with the highest spend between two days: id, title, owner and total."""
    return list(
        cost_entries_between(start=start, end=end)
        .filter(video__isnull=False)
        .values("video_id", title=F("video__title"), owner_username=F("video__owner__username"))
        .annotate(total=Sum("amount"))
        .order_by("-total", "title")[:limit]
    )


def cost_top_users(*, start: date, end: date, limit: int = 10) -> list[TopUserRow]:
    """Users whose videos cost the most between two days."""
    return list(
        cost_entries_between(start=start, end=end)
        .filter(owner__isnull=False)
        .values("owner_id", username=F("owner__username"))
        .annotate(total=Sum("amount"))
        .order_by("-total", "username")[:limit]
    )


def video_stored_bytes(*, video: Video) -> int:
    """Bytes of the video's renditions plus its stored original (uses prefetched renditions)."""
    renditions = sum(rendition.bytes for rendition in video.renditions.all())
    original = 0
    media_file = video.media_file if video.media_file_id else None
    if media_file is not None and media_file.status == MediaFile.Status.STORED:
        original = media_file.size
    return int(renditions) + int(original)


def video_monthly_storage_estimate_usd(*, video: Video) -> Decimal | None:
    """What keeping this video (original + renditions) costs per month; None until renditions exist."""
    if not video.renditions.all():
        return None
    gb = pricing.bytes_to_gb(video_stored_bytes(video=video))
    return pricing.amount(quantity=gb, unit_price=Decimal(settings.B2_STORAGE_USD_PER_GB_MONTH))


def transcode_cost_estimate_usd(*, duration_s: float, renditions: int, cpu_seconds: float = 0.0) -> Decimal:
    """What the ledger charges for a transcode (as ``cost_record_transcode``): ``duration_s`` ×
    ``renditions`` output minutes at ``TRANSCODE_USD_PER_MINUTE``, plus ``cpu_seconds`` at
    ``TRANSCODE_USD_PER_CPU_HOUR`` when that is set."""
    minutes = pricing.to_decimal(duration_s) / 60 * renditions
    total = pricing.amount(quantity=minutes, unit_price=Decimal(settings.TRANSCODE_USD_PER_MINUTE))
    cpu_price = Decimal(settings.TRANSCODE_USD_PER_CPU_HOUR)
    if cpu_price > 0:
        total += pricing.amount(quantity=pricing.to_decimal(cpu_seconds) / 3600, unit_price=cpu_price)
    return total


def _ceiling() -> Decimal | None:
    ceiling = Decimal(settings.TRANSCODE_MAX_VIDEO_USD)
    return ceiling if ceiling > 0 else None


def transcode_ceiling_reason(*, probe: ProbeResult) -> str:
    """Why transcoding this source would cost more than ``TRANSCODE_MAX_VIDEO_USD``, or "".

    Estimated from the probe and the renditions ``HLS_LADDER`` plans for it; CPU-hours are
    not known before the run (the running check counts them).
    """
    ceiling = _ceiling()
    if ceiling is None:
        return ""
    renditions = len(plan_renditions(probe, parse_ladder(settings.HLS_LADDER)))
    estimate = transcode_cost_estimate_usd(duration_s=probe.duration, renditions=renditions)
    if estimate <= ceiling:
        return ""
    return (
        f"transcoding it would cost about {format_usd(estimate)} ({human_duration(probe.duration)} × {renditions} "
        f"rendition{'s' if renditions != 1 else ''} at {format_usd(Decimal(settings.TRANSCODE_USD_PER_MINUTE))} per output minute), "
        f"more than the TRANSCODE_MAX_VIDEO_USD={format_usd(ceiling)} allowed per video. Shorten it or split it into "
        f"parts, or ask an administrator to raise the ceiling"
    )


def transcode_running_ceiling_reason(
    *, declared_s: float, encoded_s: float, renditions: int, cpu_seconds: float
) -> str:
    """Why a running transcode must stop at ``TRANSCODE_MAX_VIDEO_USD``, or "".

    Its cost so far: the longer of the declared and the encoded duration, and the CPU used.
    """
    ceiling = _ceiling()
    if ceiling is None:
        return ""
    estimate = transcode_cost_estimate_usd(
        duration_s=max(declared_s, encoded_s), renditions=renditions, cpu_seconds=cpu_seconds
    )
    if estimate <= ceiling:
        return ""
    cpu = f" and {cpu_seconds:.1f} CPU seconds" if Decimal(settings.TRANSCODE_USD_PER_CPU_HOUR) > 0 else ""
    longer = f". The file plays longer than it declares. {REEXPORT_ADVICE}" if encoded_s > declared_s else ""
    return (
        f"stopped at the per-video cost ceiling: after {human_duration(encoded_s)} of output (the file declares "
        f"{human_duration(declared_s)}){cpu} it would cost about {format_usd(estimate)}, more than "
        f"TRANSCODE_MAX_VIDEO_USD={format_usd(ceiling)}{longer}"
    )


def cost_alerts_unacknowledged(*, limit: int = 5) -> list[CostAlert]:
    """Newest alerts nobody has acknowledged yet (the admin banner)."""
    return list(CostAlert.objects.filter(acknowledged_at__isnull=True).order_by("-created_at")[:limit])


def kill_switch_history(*, limit: int = 20) -> list[CostAlert]:
    """Engage/release events, newest first, with who and why."""
    kinds = [CostAlert.Kind.KILL_SWITCH_ENGAGED, CostAlert.Kind.KILL_SWITCH_RELEASED]
    return list(CostAlert.objects.filter(kind__in=kinds).select_related("actor").order_by("-created_at", "-id")[:limit])


def user_can_view_costs(*, user: User | AnonymousUser | None) -> bool:
    """Staff holding ``transcoding.view_costs`` (superusers hold every permission)."""
    return bool(
        user and user.is_authenticated and user.is_active and user.is_staff and user.has_perm("transcoding.view_costs")
    )


def user_can_manage_budget(*, user: User | AnonymousUser) -> bool:
    """Staff who may see costs and also hold ``transcoding.manage_budget``."""
    return user_can_view_costs(user=user) and bool(user.has_perm("transcoding.manage_budget"))


def budget_representation() -> dict:
    """The budget as ``GET /api/v1/costs/budget/`` shows it (what budget webhook events carry)."""
    current = budget_status()
    policy = current.policy
    return {
        "monthly_budget_usd": policy.monthly_budget_usd,
        "month": current.day.strftime("%Y-%m"),
        "month_to_date_usd": current.month_to_date_usd,
        "forecast_usd": current.forecast_usd,
        "used_pct": current.used_pct,
        "kill_switch_engaged": policy.kill_switch_engaged,
        "kill_switch_reason": policy.kill_switch_reason,
        "kill_switch_by": policy.kill_switch_by.get_username() if policy.kill_switch_by else None,
        "kill_switch_at": policy.kill_switch_at,
        "kill_switch_auto": policy.kill_switch_auto,
        "auto_engage": policy.auto_engage,
        "auto_engage_on_forecast": policy.auto_engage_on_forecast,
        "spike_threshold_pct": policy.spike_threshold_pct,
    }


def cost_alert_representation(*, alert: CostAlert) -> dict:
    """A cost alert and the budget at that moment, as the API shows them (what budget webhook events carry)."""
    return {
        "alert": dict(CostAlertSerializer(alert).data),
        "budget": dict(BudgetSerializer(budget_representation()).data),
    }
