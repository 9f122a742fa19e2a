"""Incidents per day as an SVG bar chart drawn on the server (no script, no chart library).

Readable without colour: the three parts of a bar differ in fill pattern (solid, hatched, outline), the
legend names each pattern in words, every bar carries its count as text and a ``<title>`` with all of
its numbers, and the chart has a text description for screen readers.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

from markupsafe import Markup, escape
from opsloop.receiver.console.stats import Day

WIDTH, HEIGHT = 760, 240
LEFT, BOTTOM, TOP = 40, 40, 30


def _day(at: float) -> str:
    return datetime.fromtimestamp(at, UTC).strftime("%m-%d")


def incidents_per_day(days: Sequence[Day]) -> Markup:
    peak = max((d.incidents for d in days), default=0) or 1
    plot_w, plot_h = WIDTH - LEFT - 10, HEIGHT - BOTTOM - TOP
    slot = plot_w / max(1, len(days))
    bar = max(2.0, slot * 0.7)
    label_every = max(1, len(days) // 15)
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" '
        'aria-labelledby="chart-title chart-desc" class="chart">',
        '<title id="chart-title">Incidents per day</title>',
        f'<desc id="chart-desc">{len(days)} days, {sum(d.incidents for d in days)} incidents; '
        f"{sum(d.repaired for d in days)} repaired automatically, {sum(d.escalated for d in days)} escalated.</desc>",
        '<defs><pattern id="hatch" width="6" height="6" patternUnits="userSpaceOnUse" '
        'patternTransform="rotate(45)"><line x1="0" y1="0" x2="0" y2="6" class="hatch-line"/></pattern></defs>',
        f'<line x1="{LEFT}" y1="{TOP + plot_h}" x2="{WIDTH - 10}" y2="{TOP + plot_h}" class="axis"/>',
        f'<text x="{LEFT - 6}" y="{TOP + 4}" class="tick" text-anchor="end">{peak}</text>',
        f'<text x="{LEFT - 6}" y="{TOP + plot_h}" class="tick" text-anchor="end">0</text>',
    ]
    for i, d in enumerate(days):
        x = LEFT + i * slot + (slot - bar) / 2
        y = TOP + plot_h
        other = d.incidents - d.repaired - d.escalated
        label = (f"{_day(d.start)}: {d.incidents} incidents, {d.repaired} repaired automatically, "
                 f"{d.escalated} escalated, {other} other")  # fmt: skip
        parts.append(f"<g><title>{escape(label)}</title>")
        for count, css in ((d.repaired, "repaired"), (d.escalated, "escalated"), (other, "other")):
            if count <= 0:
                continue
            h = plot_h * count / peak
            y -= h
            parts.append(f'<rect x="{x:.1f}" y="{y:.1f}" width="{bar:.1f}" height="{h:.1f}" class="{css}"/>')
        if d.incidents:
            parts.append(f'<text x="{x + bar / 2:.1f}" y="{y - 4:.1f}" class="value" text-anchor="middle">'
                         f"{d.incidents}</text>")  # fmt: skip
        parts.append("</g>")
        if i % label_every == 0:
            parts.append(f'<text x="{x + bar / 2:.1f}" y="{TOP + plot_h + 16}" class="tick" '
                         f'text-anchor="middle">{_day(d.start)}</text>')  # fmt: skip
    legend_y = HEIGHT - 8
    for n, (css, words) in enumerate((("repaired", "repaired automatically (solid)"),
                                      ("escalated", "escalated (hatched)"), ("other", "other (outline)"))):  # fmt: skip
        x = LEFT + n * 240
        parts.append(f'<rect x="{x}" y="{legend_y - 10}" width="12" height="12" class="{css}"/>'
                     f'<text x="{x + 18}" y="{legend_y}" class="tick">{words}</text>')  # fmt: skip
    parts.append("</svg>")
    return Markup("".join(parts))
