"""Server-rendered SVG chart of daily spend (no Django imports, no JavaScript)."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from xml.sax.saxutils import escape

from unpuzzle.money import format_usd

# Text sizes in SVG units. Pages keep the chart at least MIN_WIDTH_PX wide (scrolling it sideways on a
# phone), so labels never render below 10 CSS pixels: 13 × MIN_WIDTH_PX / width.
FONT_SIZE = 13
TITLE_FONT_SIZE = 15
MIN_WIDTH_PX = 700

# Colour-blind-safe palette (Okabe-Ito), one colour per ledger kind.
KIND_COLOURS = {
    "storage": "#0072B2",
    "egress": "#E69F00",
    "transcode": "#009E73",
    "requests": "#CC79A7",
}


def nice_ceiling(value: Decimal) -> Decimal:
    """The smallest 1, 2, 3, 4, 5, 6 or 8 × 10^n at or above ``value`` (axis top); 1 for zero."""
    if value <= 0:
        return Decimal(1)
    exponent = value.adjusted()
    for step in (Decimal(1), Decimal(2), Decimal(3), Decimal(4), Decimal(5), Decimal(6), Decimal(8), Decimal(10)):
        candidate = step.scaleb(exponent)
        if candidate >= value:
            return candidate
    return Decimal(10).scaleb(exponent)


def stacked_daily_svg(
    days: list[tuple[date, dict[str, Decimal]]],
    *,
    kinds: list[str],
    width: int = 900,
    height: int = 320,
    title: str = "Daily spend by kind (USD)",
) -> str:
    """Stacked bars, one per day and one segment per kind, with a USD y axis, dated x axis and a legend."""
    left, right, top, bottom = 80, 16, 40, 48
    plot_w, plot_h = width - left - right, height - top - bottom
    totals = [sum((kinds_amounts.get(k, Decimal(0)) for k in kinds), Decimal(0)) for _, kinds_amounts in days]
    y_max = nice_ceiling(max(totals, default=Decimal(0)))
    n = max(len(days), 1)
    slot = plot_w / n
    bar_w = max(slot * 0.8, 1)

    def y_of(value: Decimal) -> float:
        return top + plot_h - float(value / y_max) * plot_h

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" width="100%" '
        f'role="img" aria-labelledby="cost-chart-title" font-family="sans-serif" font-size="{FONT_SIZE}" '
        f'style="min-width: {MIN_WIDTH_PX}px">',
        f'<title id="cost-chart-title">{escape(title)}</title>',
        f'<rect x="0" y="0" width="{width}" height="{height}" fill="#fff"/>',
        f'<text x="{left}" y="18" font-size="{TITLE_FONT_SIZE}" font-weight="bold" fill="#333">{escape(title)}</text>',
    ]
    for i in range(5):
        value = y_max * i / 4
        y = y_of(value)
        parts.append(f'<line x1="{left}" y1="{y:.1f}" x2="{width - right}" y2="{y:.1f}" stroke="#ddd"/>')
        parts.append(
            f'<text x="{left - 6}" y="{y + 4:.1f}" text-anchor="end" fill="#333">{escape(format_usd(value))}</text>'
        )
    for index, (day, amounts) in enumerate(days):
        x = left + index * slot + (slot - bar_w) / 2
        base = Decimal(0)
        for kind in kinds:
            value = amounts.get(kind, Decimal(0))
            if value <= 0:
                continue
            y_top, y_bottom = y_of(base + value), y_of(base)
            parts.append(
                f'<rect x="{x:.1f}" y="{y_top:.1f}" width="{bar_w:.1f}" height="{max(y_bottom - y_top, 0.5):.1f}" '
                f'fill="{KIND_COLOURS.get(kind, "#999")}"><title>{day.isoformat()} {escape(kind)}: {format_usd(value)}</title></rect>'
            )
            base += value
        # Label about eight days across the axis, and the last day when it has room.
        step = max(n // 8, 1)
        if index % step == 0 or (index == n - 1 and index % step >= step / 2):
            cx = left + index * slot + slot / 2
            parts.append(
                f'<line x1="{cx:.1f}" y1="{top + plot_h}" x2="{cx:.1f}" y2="{top + plot_h + 4}" stroke="#333"/>'
            )
            parts.append(
                f'<text x="{cx:.1f}" y="{top + plot_h + 18}" text-anchor="middle" fill="#333">{day:%b %d}</text>'
            )
    parts.append(f'<line x1="{left}" y1="{top}" x2="{left}" y2="{top + plot_h}" stroke="#333"/>')
    parts.append(f'<line x1="{left}" y1="{top + plot_h}" x2="{width - right}" y2="{top + plot_h}" stroke="#333"/>')
    legend_x = left
    for kind in kinds:
        parts.append(
            f'<rect x="{legend_x}" y="{height - 17}" width="11" height="11" fill="{KIND_COLOURS.get(kind, "#999")}"/>'
        )
        parts.append(f'<text x="{legend_x + 15}" y="{height - 7}" fill="#333">{escape(kind)}</text>')
        legend_x += 15 + 8 * len(kind) + 24
    if not any(totals):
        parts.append(
            f'<text x="{left + plot_w / 2}" y="{top + plot_h / 2}" text-anchor="middle" fill="#777">No costs recorded in this period</text>'
        )
    parts.append("</svg>")
    return "".join(parts)
