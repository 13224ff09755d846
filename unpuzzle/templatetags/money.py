"""``{% load money %}``: ``{{ amount|usd }}`` renders an amount as ``unpuzzle.money.format_usd`` does."""

from __future__ import annotations

from decimal import Decimal, InvalidOperation

from django import template

from unpuzzle.money import format_usd

register = template.Library()


@register.filter
def usd(value) -> str:
    """ "$2.90" for 2.89835; empty for None or anything that is not a number."""
    if value is None or value == "":
        return ""
    try:
        return format_usd(Decimal(str(value)))
    except InvalidOperation:
        return ""
