"""Writes for the budget: the policy, the kill switch, the automatic rules and cost alerts."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import date, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING

from django.conf import settings
from django.core.mail import mail_admins, send_mail
from django.db import transaction
from django.utils import timezone

from media_library.models import Video
from transcoding.costs.selectors import (
    budget_forecast_usd,
    budget_limit_reason,
    cost_alert_representation,
    cost_total_usd,
    month_to_date_usd,
)
from transcoding.models import BudgetPolicy, CostAlert
from unpuzzle.exceptions import Conflict, DomainError
from unpuzzle.money import format_usd
from unpuzzle.webhooks.services import webhook_event_record

if TYPE_CHECKING:
    from django.contrib.auth.base_user import AbstractBaseUser
    from django.contrib.auth.models import AnonymousUser, User

logger = logging.getLogger(__name__)

# The webhook event each alert kind sends; every other kind is a budget.alert.
_ALERT_EVENT_TYPES: dict[str, str] = {
    CostAlert.Kind.KILL_SWITCH_ENGAGED: "budget.kill_switch.engaged",
    CostAlert.Kind.KILL_SWITCH_RELEASED: "budget.kill_switch.released",
}


def _policy_for_update() -> BudgetPolicy:
    BudgetPolicy.objects.get_or_create(
        id=BudgetPolicy.SINGLETON_ID, defaults={"monthly_budget_usd": Decimal(settings.MONTHLY_BUDGET_USD)}
    )
    return BudgetPolicy.objects.select_for_update().get(id=BudgetPolicy.SINGLETON_ID)


def _alert_once(*, kind: str, period: str, subject: str, message: str, actor: User | None = None) -> CostAlert | None:
    """Record the alert and mail it after commit, unless this kind was already sent for this period."""
    alert, created = CostAlert.objects.get_or_create(
        kind=kind, period=period, defaults={"subject": subject, "message": message, "actor": actor}
    )
    if not created:
        return None
    logger.warning("cost alert %s %s: %s", kind, period, subject)
    webhook_event_record(type=_ALERT_EVENT_TYPES.get(kind, "budget.alert"), data=cost_alert_representation(alert=alert))
    transaction.on_commit(lambda: _send_alert(subject=subject, message=message))
    return alert


def _send_alert(*, subject: str, message: str) -> None:
    mail_admins(subject, message, fail_silently=True)
    if settings.COST_ALERT_EMAILS:
        send_mail(
            f"{settings.EMAIL_SUBJECT_PREFIX}{subject}",
            message,
            settings.DEFAULT_FROM_EMAIL,
            settings.COST_ALERT_EMAILS,
            fail_silently=True,
        )


@transaction.atomic
def budget_engage_kill_switch(*, by: User | None, reason: str, automatic: bool = False) -> BudgetPolicy:
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
    policy.save(
        update_fields=[
            "kill_switch_engaged",
            "kill_switch_reason",
            "kill_switch_by",
            "kill_switch_at",
            "kill_switch_auto",
            "updated_at",
        ]
    )
    who = "the budget check" if automatic else (by.get_username() if by else "unknown")
    _alert_once(
        kind=CostAlert.Kind.KILL_SWITCH_ENGAGED,
        period=now.isoformat(),
        actor=by,
        subject=f"Kill switch engaged by {who}",
        message=f"Transcoding is stopped since {now:%Y-%m-%d %H:%M %Z}: {reason}\nNew videos wait as blocked until the switch is released.",
    )
    return policy


@transaction.atomic
def budget_release_kill_switch(*, by: User | None, reason: str = "", automatic: bool = False) -> BudgetPolicy:
    """Allow transcoding again and requeue every blocked video, oldest first, after commit.

    Refused (409) while the automatic budget rules would stop spending at once: raise the
    budget or turn off auto-engage first. No-op when not engaged.
    """
    policy = _policy_for_update()
    if not policy.kill_switch_engaged:
        return policy
    day = timezone.localdate()
    mtd = month_to_date_usd(day=day)
    limit = budget_limit_reason(
        policy=policy, month_to_date=mtd, forecast=budget_forecast_usd(day=day, month_to_date=mtd)
    )
    if limit:
        raise Conflict(
            f"cannot release the kill switch: {limit}; raise the monthly budget or turn off auto-engage first",
            code="budget_still_exceeded",
        )
    now = timezone.now()
    previous = policy.kill_switch_reason
    policy.kill_switch_engaged = False
    policy.kill_switch_reason = ""
    policy.kill_switch_by = by
    policy.kill_switch_at = now
    policy.kill_switch_auto = automatic
    policy.save(
        update_fields=[
            "kill_switch_engaged",
            "kill_switch_reason",
            "kill_switch_by",
            "kill_switch_at",
            "kill_switch_auto",
            "updated_at",
        ]
    )
    who = "the budget check" if automatic else (by.get_username() if by else "unknown")
    blocked = Video.objects.filter(status=Video.Status.BLOCKED).count()
    _alert_once(
        kind=CostAlert.Kind.KILL_SWITCH_RELEASED,
        period=now.isoformat(),
        actor=by,
        subject=f"Kill switch released by {who}",
        message=f"Transcoding resumed at {now:%Y-%m-%d %H:%M %Z}{': ' + reason if reason else ''}.\n"
        f"It was engaged for: {previous or 'no reason given'}.\n{blocked} blocked videos are requeued.",
    )
    transaction.on_commit(budget_requeue_blocked)
    return policy


# The jobs service sits above the costs package: it registers how blocked videos are queued
# again (``TranscodingConfig.ready``) instead of the budget importing it.
_blocked_video_requeues: list[Callable[[], int]] = []


def budget_requeue_register(*, requeue: Callable[[], int]) -> None:
    """Make ``requeue`` (returns how many videos it queued) what ``budget_requeue_blocked`` runs."""
    if requeue not in _blocked_video_requeues:
        _blocked_video_requeues.append(requeue)


def budget_requeue_blocked() -> int:
    """Hand every blocked video back to the registered requeue (``transcode_requeue_blocked``); returns how many were queued."""
    return sum(requeue() for requeue in _blocked_video_requeues)


@transaction.atomic
def budget_update(
    *,
    by: AbstractBaseUser | AnonymousUser | None,
    monthly_budget_usd: Decimal | None = None,
    auto_engage: bool | None = None,
    auto_engage_on_forecast: bool | None = None,
    spike_threshold_pct: int | None = None,
) -> BudgetPolicy:
    """Change the budget settings, then apply the automatic rules to the new values."""
    policy = _policy_for_update()
    changes = {
        "monthly_budget_usd": monthly_budget_usd,
        "auto_engage": auto_engage,
        "auto_engage_on_forecast": auto_engage_on_forecast,
        "spike_threshold_pct": spike_threshold_pct,
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
                _alert_once(
                    kind=kind,
                    period=month,
                    subject=f"Costs at {pct}% of the {month} budget",
                    message=f"Month-to-date spend is {format_usd(mtd)} of a {format_usd(budget)} budget; "
                    f"forecast to month end {format_usd(forecast)}.",
                )
                break
        if forecast > budget:
            _alert_once(
                kind=CostAlert.Kind.FORECAST,
                period=month,
                subject=f"Forecast above the {month} budget",
                message=f"At this month's rate spend reaches {format_usd(forecast)} by month end; "
                f"the budget is {format_usd(budget)} ({format_usd(mtd)} so far).",
            )
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
            kind=CostAlert.Kind.SPIKE,
            period=day.isoformat(),
            subject=f"Cost spike on {day}: +{increase.quantize(Decimal(1))}%",
            message=f"Spend on {day} was {format_usd(current)} against {format_usd(previous)} on {before} "
            f"(threshold {policy.spike_threshold_pct}%).",
        )


@transaction.atomic
def cost_alerts_acknowledge(*, by: User | None, alert_ids: list[int] | None = None) -> int:
    """Hide alerts from the admin banner (all unacknowledged ones when no ids are given)."""
    qs = CostAlert.objects.filter(acknowledged_at__isnull=True)
    if alert_ids is not None:
        qs = qs.filter(id__in=alert_ids)
    return qs.update(acknowledged_at=timezone.now(), acknowledged_by=by)
