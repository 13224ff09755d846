"""Exact cost arithmetic (no Django): byte and time units, prices, rounding.

Units: 1 GB = 10**9 bytes (how B2 and Bunny bill), amounts in USD quantized to 6 decimal
places with ROUND_HALF_UP. Every function takes and returns ``Decimal``; floats from ffmpeg
or the database are converted through ``str`` so 0.1 stays 0.1.
"""

from __future__ import annotations

import calendar
from datetime import date
from decimal import ROUND_HALF_UP, Decimal

BYTES_PER_GB = Decimal(10) ** 9
AMOUNT_PLACES = Decimal("0.000001")
QUANTITY_PLACES = Decimal("0.000001")


def to_decimal(value: Decimal | float | int | str) -> Decimal:
    """``value`` (int, str, float or Decimal) as an exact Decimal; floats go through ``str``."""
    if isinstance(value, Decimal):
        return value
    if isinstance(value, float):
        return Decimal(repr(value))
    return Decimal(value)


def quantize_amount(value: Decimal) -> Decimal:
    """USD rounded half-up to 6 decimal places, as stored in the ledger."""
    return to_decimal(value).quantize(AMOUNT_PLACES, rounding=ROUND_HALF_UP)


def quantize_quantity(value: Decimal) -> Decimal:
    return to_decimal(value).quantize(QUANTITY_PLACES, rounding=ROUND_HALF_UP)


def bytes_to_gb(num_bytes: int) -> Decimal:
    """Decimal gigabytes (10**9 bytes), exact."""
    return Decimal(int(num_bytes)) / BYTES_PER_GB


def days_in_month(day: date) -> int:
    return calendar.monthrange(day.year, day.month)[1]


def storage_day_price(*, price_per_gb_month: Decimal, day: date) -> Decimal:
    """Price of one GB kept for one day of ``day``'s month (unrounded)."""
    return to_decimal(price_per_gb_month) / days_in_month(day)


def amount(*, quantity: Decimal, unit_price: Decimal) -> Decimal:
    """quantity × unit price, rounded to the ledger's 6 places."""
    return quantize_amount(to_decimal(quantity) * to_decimal(unit_price))


def month_bounds(day: date) -> tuple[date, date]:
    """First and last day of ``day``'s month."""
    return day.replace(day=1), day.replace(day=days_in_month(day))


def linear_forecast(*, month_to_date: Decimal, day: date) -> Decimal:
    """Spend at month end if the month goes on at its average daily rate so far.

    ``month_to_date`` covers days 1..``day`` (``day`` included), so the rate is
    month_to_date / day.day and the forecast month_to_date × days_in_month / day.day.
    """
    return quantize_amount(to_decimal(month_to_date) * days_in_month(day) / day.day)


FIRST_LEDGER_YEAR = 2000
LAST_LEDGER_YEAR = 2999


def parse_month(text: str) -> date:
    """``YYYY-MM`` as the first day of that month; ValueError with the expected form otherwise."""
    parts = (text or "").split("-")
    if len(parts) != 2 or len(parts[0]) != 4 or len(parts[1]) != 2 or not all(p.isdigit() for p in parts):
        raise ValueError(f"month must look like 2025-06 (YYYY-MM), not {text!r}")
    year, month = int(parts[0]), int(parts[1])
    if not 1 <= month <= 12:
        raise ValueError(f"month must look like 2025-06 (YYYY-MM) with a month 01..12, not {text!r}")
    # A ledger month: the day after its last day must still be a date.
    if not FIRST_LEDGER_YEAR <= year <= LAST_LEDGER_YEAR:
        raise ValueError(
            f"month must be between {FIRST_LEDGER_YEAR}-01 and {LAST_LEDGER_YEAR}-12 (YYYY-MM), not {text!r}"
        )
    return date(year, month, 1)
