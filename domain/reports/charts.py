"""A small bar chart as inline SVG (for the PDF). Coordinates are floats; the numbers printed stay Decimal."""

from __future__ import annotations

from decimal import Decimal
from xml.sax.saxutils import escape

from domain.reports.datasets import Chart

PALETTE = ("#2f6fb0", "#d0703c", "#4c9a5b", "#8d5fb3")
WIDTH, HEIGHT = 720.0, 240.0
LEFT, RIGHT, TOP, BOTTOM = 70.0, 10.0, 28.0, 46.0


def _axis_label(value: Decimal) -> str:
    if value >= 1_000_000:
        return f"{value / 1_000_000:.1f}M"
    if value >= 1_000:
        return f"{value / 1_000:.1f}k"
    return f"{value:.0f}"


def bar_chart_svg(chart: Chart) -> str:
    """Grouped vertical bars, one group per label and one bar per series, with a legend; then the charts it holds
    in `more`, each its own picture."""
    return "".join(_bars(one) for one in (chart, *chart.more))


def _bars(chart: Chart) -> str:
    labels = chart.labels
    series = chart.series
    peak = max((value for _name, values in series for value in values if value is not None), default=Decimal(0))
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH:.0f}" height="{HEIGHT:.0f}" '
        f'viewBox="0 0 {WIDTH:.0f} {HEIGHT:.0f}" font-family="sans-serif" font-size="9">',
        f'<text x="{LEFT}" y="12" font-size="11" font-weight="bold">{escape(chart.title)}</text>',
    ]
    plot_w = WIDTH - LEFT - RIGHT
    plot_h = HEIGHT - TOP - BOTTOM
    base_y = TOP + plot_h
    parts.append(f'<line x1="{LEFT}" y1="{base_y}" x2="{WIDTH - RIGHT}" y2="{base_y}" stroke="#555"/>')
    if not labels or peak <= 0:
        parts.append(f'<text x="{LEFT + 10}" y="{TOP + plot_h / 2}">No approved amounts in this period.</text>')
        parts.append("</svg>")
        return "".join(parts)
    for step in range(5):
        value = peak * step / 4
        y = base_y - plot_h * step / 4
        parts.append(f'<line x1="{LEFT}" y1="{y:.1f}" x2="{WIDTH - RIGHT}" y2="{y:.1f}" stroke="#ddd"/>')
        parts.append(f'<text x="{LEFT - 4}" y="{y + 3:.1f}" text-anchor="end">{_axis_label(value)}</text>')
    group_w = plot_w / len(labels)
    bar_w = max(group_w * 0.8 / max(len(series), 1), 0.5)
    every = max(1, len(labels) // 24)  # keep the axis readable on long periods
    for index, label in enumerate(labels):
        x0 = LEFT + index * group_w + group_w * 0.1
        for number, (_name, values) in enumerate(series):
            value = values[index] if index < len(values) and values[index] is not None else Decimal(0)
            height = float(value / peak) * plot_h if peak else 0.0
            parts.append(
                f'<rect x="{x0 + number * bar_w:.1f}" y="{base_y - height:.1f}" width="{bar_w:.1f}" '
                f'height="{height:.1f}" fill="{PALETTE[number % len(PALETTE)]}"/>'
            )
        if index % every == 0:
            cx = LEFT + index * group_w + group_w / 2
            parts.append(
                f'<text x="{cx:.1f}" y="{base_y + 12}" text-anchor="end" '
                f'transform="rotate(-30 {cx:.1f} {base_y + 12})">{escape(label[:18])}</text>'
            )
    legend_x = LEFT
    for number, (name, _values) in enumerate(series):
        parts.append(
            f'<rect x="{legend_x:.1f}" y="{HEIGHT - 10}" width="8" height="8" fill="{PALETTE[number % len(PALETTE)]}"/>'
        )
        parts.append(f'<text x="{legend_x + 11:.1f}" y="{HEIGHT - 3}">{escape(name)}</text>')
        legend_x += 14 + 6 * len(name) + 16
    parts.append("</svg>")
    return "".join(parts)
