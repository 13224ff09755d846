"""API representations of the budget and cost alerts, shared by the costs API and budget webhook events."""

from __future__ import annotations

from rest_framework import serializers

from transcoding.models import CostAlert


def money_field(*, read_only: bool = False, help_text: str | None = None) -> serializers.DecimalField:
    """A USD amount as the ledger stores it: up to 14 digits, 6 of them decimal places."""
    return serializers.DecimalField(max_digits=14, decimal_places=6, read_only=read_only, help_text=help_text)


class BudgetSerializer(serializers.Serializer):
    monthly_budget_usd = serializers.DecimalField(max_digits=12, decimal_places=2, min_value=0)
    month = serializers.CharField(read_only=True, help_text="YYYY-MM the figures cover")
    month_to_date_usd = money_field(read_only=True)
    forecast_usd = money_field(read_only=True, help_text="Month-end spend at this month's daily rate")
    used_pct = serializers.DecimalField(read_only=True, max_digits=10, decimal_places=1, allow_null=True)
    kill_switch_engaged = serializers.BooleanField()
    kill_switch_reason = serializers.CharField(allow_blank=True, required=False, help_text="Required to engage")
    kill_switch_by = serializers.CharField(read_only=True, allow_null=True)
    kill_switch_at = serializers.DateTimeField(read_only=True, allow_null=True)
    kill_switch_auto = serializers.BooleanField(read_only=True, help_text="Engaged by the budget check")
    auto_engage = serializers.BooleanField()
    auto_engage_on_forecast = serializers.BooleanField()
    spike_threshold_pct = serializers.IntegerField(min_value=0, max_value=10_000)


class CostAlertSerializer(serializers.ModelSerializer):
    """A cost alert (also the kill switch's history)."""

    actor = serializers.CharField(source="actor.get_username", read_only=True, allow_null=True, default=None)

    class Meta:
        model = CostAlert
        fields = ["id", "kind", "period", "subject", "message", "actor", "created_at"]
        read_only_fields = fields
