"""Charts drawn on the server as inline SVG: no JavaScript, nothing for the CSP to allow.

Only presentation attributes (``fill``, ``x``...) are used, never ``style``,
so the strict ``style-src 'self'`` policy holds.
"""

from __future__ import annotations

from datetime import date

from babel.dates import format_date
from markupsafe import Markup, escape

from donations.money import Money

WIDTH, HEIGHT = 640, 240
LEFT, RIGHT, TOP, BOTTOM = 72, 12, 16, 36


def _nice_step(value: int, intervals: int = 4) -> int:
    """A round gridline step so that ``intervals`` steps reach ``value``."""
    raw = max(-(-value // intervals), 1)
    magnitude = int(10 ** (len(str(raw)) - 1))
    for factor in (1, 2, 5, 10):
        if factor * magnitude >= raw:
            return factor * magnitude
    return 10 * magnitude  # pragma: no cover - the loop always returns


def revenue_chart(currency: str, points: list[tuple[date, int, int]], locale: str = "en") -> Markup:
    """Bars of gross per month with net drawn inside them, for one currency."""
    title_id = f"chart-{currency.lower()}-title"
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    step = _nice_step(max((gross for _, gross, _ in points), default=0))
    top = step * 4
    slot = plot_w / max(len(points), 1)
    bar_w = slot * 0.7
    parts = [
        f'<svg class="chart" data-currency="{escape(currency)}" viewBox="0 0 {WIDTH} {HEIGHT}" '
        f'width="100%" role="img" aria-labelledby="{title_id}" xmlns="http://www.w3.org/2000/svg">',
        f'<title id="{title_id}">Revenue per month in {escape(currency)}: '
        "gross (light) and net (dark)</title>",
    ]
    for i in range(5):
        value = step * i
        y = TOP + plot_h - plot_h * i / 4
        label = Money(value, currency).format_compact(locale)
        parts.append(
            f'<line x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{y:.1f}" y2="{y:.1f}" stroke="#d0d0d0"/>'
            f'<text x="{LEFT - 6}" y="{y + 4:.1f}" text-anchor="end" font-size="11" '
            f'fill="#444">{escape(label)}</text>'
        )
    for index, (month, gross, net) in enumerate(points):
        x = LEFT + slot * index + (slot - bar_w) / 2
        gross_h = plot_h * gross / top
        net_h = plot_h * max(net, 0) / top
        month_label = format_date(month, "LLL yyyy", locale=locale)
        tip = (
            f"{month_label}: gross {Money(gross, currency).format(locale)}, "
            f"net {Money(net, currency).format(locale)}"
        )
        parts.append(
            f"<g><title>{escape(tip)}</title>"
            f'<rect class="bar-gross" x="{x:.1f}" y="{TOP + plot_h - gross_h:.1f}" '
            f'width="{bar_w:.1f}" height="{gross_h:.1f}" fill="#9dbcf5"/>'
            f'<rect class="bar-net" x="{x + bar_w * 0.2:.1f}" y="{TOP + plot_h - net_h:.1f}" '
            f'width="{bar_w * 0.6:.1f}" height="{net_h:.1f}" fill="#0b5fff"/></g>'
            f'<text x="{x + bar_w / 2:.1f}" y="{HEIGHT - BOTTOM + 14}" text-anchor="middle" '
            f'font-size="11" fill="#444">{escape(format_date(month, "LLL", locale=locale))}'
            "</text>"
        )
        if index == 0 or month.month == 1:  # the year under the first month and each January
            parts.append(
                f'<text x="{x + bar_w / 2:.1f}" y="{HEIGHT - BOTTOM + 28}" '
                f'text-anchor="middle" font-size="11" fill="#444">{month.year}</text>'
            )
    parts.append("</svg>")
    return Markup("".join(parts))  # noqa: S704 - every interpolated value is escaped or a number
