"""Money as people read it: one format for pages, alerts and messages."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.template import Context, Template

from unpuzzle.money import format_usd


@pytest.mark.parametrize(
    ("amount", "shown"),
    [
        ("2.89835000000000", "$2.90"),
        ("2.895", "$2.90"),
        ("0", "$0.00"),
        ("0.01", "$0.01"),
        ("1234.5", "$1,234.50"),
        ("-3", "-$3.00"),
        ("0.005", "$0.005"),
        ("0.000667", "$0.000667"),
        ("120.000000", "$120.00"),
    ],
)
def test_format_usd(amount, shown):
    assert format_usd(Decimal(amount)) == shown


def test_usd_filter_formats_numbers_and_leaves_blanks_blank():
    template = Template("{% load money %}[{{ a|usd }}][{{ b|usd }}][{{ c|usd }}][{{ d|usd }}]")
    assert template.render(Context({"a": Decimal("2.89835"), "b": None, "c": "n/a", "d": 7})) == "[$2.90][][][$7.00]"
