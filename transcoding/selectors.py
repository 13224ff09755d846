"""Reads for transcoding and costs."""
from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from django.conf import settings

from transcoding.models import BudgetPolicy


@dataclass(frozen=True)
class SpendingDecision:
    allowed: bool
    reason: str = ""


def budget_policy_get() -> BudgetPolicy:
    """The budget singleton, created with the configured budget on first use."""
    policy, _ = BudgetPolicy.objects.get_or_create(
        id=BudgetPolicy.SINGLETON_ID, defaults={"monthly_budget_usd": Decimal(settings.MONTHLY_BUDGET_USD)}
    )
    return policy


def spending_allowed() -> SpendingDecision:
    """The one question every transcode asks before it starts: may we spend now?"""
    policy = budget_policy_get()
    if policy.kill_switch_engaged:
        return SpendingDecision(False, f"kill switch engaged: {policy.kill_switch_reason or 'no reason given'}")
    return SpendingDecision(True)
