"""Exact cost arithmetic and the SVG chart (pure helpers)."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest

from transcoding.costs import charts, pricing


def test_gigabyte_is_ten_to_the_ninth_bytes():
    assert pricing.bytes_to_gb(1_500_000_000) == Decimal("1.5")
    assert pricing.bytes_to_gb(1) == Decimal("1E-9")


def test_amounts_round_half_up_to_six_places():
    assert pricing.quantize_amount(Decimal("0.0000005")) == Decimal("0.000001")
    assert pricing.quantize_amount(Decimal("0.0000025")) == Decimal("0.000003")
    assert pricing.amount(quantity=Decimal("12.5"), unit_price=Decimal("0.005")) == Decimal("0.062500")


def test_floats_are_taken_by_their_shortest_repr():
    assert pricing.to_decimal(0.1) == Decimal("0.1")


def test_storage_day_price_prorates_by_days_in_month():
    assert pricing.storage_day_price(price_per_gb_month=Decimal("0.006"), day=date(2025, 6, 10)) == Decimal("0.0002")
    feb = pricing.storage_day_price(price_per_gb_month=Decimal("0.0058"), day=date(2024, 2, 1))
    assert feb == Decimal("0.0002")  # 29 days in a leap February


def test_linear_forecast():
    assert pricing.linear_forecast(month_to_date=Decimal("10"), day=date(2025, 6, 10)) == Decimal("30.000000")
    assert pricing.linear_forecast(month_to_date=Decimal("0"), day=date(2025, 6, 1)) == Decimal("0")


@pytest.mark.parametrize("text", ["2025-6", "2025-13", "June", "", "2025-00", "25-06", "2025-06-01"])
def test_parse_month_refuses_bad_input_with_the_expected_form(text):
    with pytest.raises(ValueError, match="YYYY-MM"):
        pricing.parse_month(text)


def test_parse_month():
    assert pricing.parse_month("2025-02") == date(2025, 2, 1)
    assert pricing.month_bounds(date(2024, 2, 14)) == (date(2024, 2, 1), date(2024, 2, 29))


def test_nice_ceiling():
    assert charts.nice_ceiling(Decimal("0")) == 1
    assert charts.nice_ceiling(Decimal("0.0031")) == Decimal("0.004")
    assert charts.nice_ceiling(Decimal("5.6")) == 6
    assert charts.nice_ceiling(Decimal("7")) == 8
    assert charts.nice_ceiling(Decimal("10")) == 10
    assert charts.nice_ceiling(Decimal("11")) == 20


def test_svg_has_stacked_segments_axes_and_legend():
    days = [
        (
            date(2025, 6, 1),
            {"storage": Decimal("1"), "transcode": Decimal("3"), "egress": Decimal(0), "requests": Decimal(0)},
        ),
        (
            date(2025, 6, 2),
            {"storage": Decimal("1"), "transcode": Decimal(0), "egress": Decimal("0.5"), "requests": Decimal(0)},
        ),
    ]
    svg = charts.stacked_daily_svg(days, kinds=["storage", "egress", "transcode", "requests"])
    assert svg.startswith("<svg") and svg.endswith("</svg>")
    assert svg.count("<rect") == 1 + 4 + 4  # background, four segments, four legend swatches
    assert "2025-06-01 transcode: $3" in svg
    assert "$4.00" in svg  # y axis top: nice ceiling of the largest day (4)
    assert "Jun 01" in svg and "Jun 02" in svg
    for kind in ("storage", "egress", "transcode", "requests"):
        assert f">{kind}</text>" in svg


def test_svg_without_costs_says_so():
    svg = charts.stacked_daily_svg([(date(2025, 6, 1), {})], kinds=["storage"])
    assert "No costs recorded" in svg
