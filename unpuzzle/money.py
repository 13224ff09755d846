"""How amounts of money read on pages, in alerts and in error messages (no Django).

One format everywhere: "$2.90", "$1,234.50"; below a cent every significant digit
("$0.000667"), so a per-GB price or a tiny ledger line does not read as "$0.00".
API values stay decimal strings; this is for people.
"""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal

CENT = Decimal("0.01")


def format_usd(value: Decimal | int | str) -> str:
    """``value`` US dollars as people read them: "$2.90", "-$1,200.00", "$0.000667"."""
    amount = value if isinstance(value, Decimal) else Decimal(str(value))
    sign = "-" if amount < 0 else ""
    amount = abs(amount)
    if amount == 0 or amount >= CENT:
        return f"{sign}${amount.quantize(CENT, rounding=ROUND_HALF_UP):,.2f}"
    return f"{sign}${amount.normalize():f}"
