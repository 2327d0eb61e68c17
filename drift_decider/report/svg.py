"""One metric over windows as inline SVG: MLflow shows .html artifacts in a sandboxed iframe, so the
chart cannot load a script, a font or an image; every string that goes in is escaped."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from html import escape
from typing import Sequence

ACTION_COLOURS = {"retrain": "#d62728", "recalibrate": "#ff7f0e", "refresh-index": "#1f77b4", "none": "#2ca02c"}
OTHER_COLOUR = "#7f7f7f"
WIDTH, HEIGHT = 760, 200
LEFT, RIGHT, TOP, BOTTOM = 64, 36, 14, 40
INSET = 16                       # keeps the first and last markers off the frame
MAX_TICKS = 8


@dataclass(frozen=True)
class Point:
    """One decided window of one metric: where it sits and what was decided there."""

    when: datetime
    value: float
    action: str
    window_id: str
    floor: float | None = None       # the noise floor recorded beside the value, in the metric's units
    held: str = ""                   # rules that matched but were held back, and why


@dataclass(frozen=True)
class Threshold:
    """A value the policy compares the metric with: one dashed line, however many rules use it."""

    value: float
    uses: tuple[str, ...]            # what compares with it, e.g. ``> in retrain-catalog-outgrown``, by precedence

    @property
    def label(self) -> str:
        more = len(self.uses) - 1
        return f"{self.value:g}: {self.uses[0]}" + (f" (+{more} more)" if more else "")


def chart(metric: str, points: Sequence[Point], thresholds: Sequence[Threshold]) -> str:
    """The metric's line over window end, a marker per decided window coloured by its action, a dashed
    line per threshold and a dotted line for the noise floor where one was recorded."""
    ys = [p.value for p in points] + [t.value for t in thresholds] + [p.floor for p in points if p.floor is not None]
    low, high = min(ys), max(ys)
    pad = (high - low) * 0.08 or abs(high) * 0.1 or 1.0
    low, high = low - pad, high + pad
    start, end = points[0].when.timestamp(), points[-1].when.timestamp()
    span = end - start or 1.0

    def x(p: Point) -> float:
        share = (p.when.timestamp() - start) / span if end > start else 0.5
        return LEFT + INSET + (WIDTH - LEFT - RIGHT - 2 * INSET) * share

    def y(v: float) -> float:
        return TOP + (HEIGHT - TOP - BOTTOM) * (1 - (v - low) / (high - low))

    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" data-metric="{escape(metric)}" '
             f'width="{WIDTH}" height="{HEIGHT}" viewBox="0 0 {WIDTH} {HEIGHT}" role="img">',
             f'<title>{escape(metric)} over window end</title>',
             f'<rect x="{LEFT}" y="{TOP}" width="{WIDTH - LEFT - RIGHT}" height="{HEIGHT - TOP - BOTTOM}" '
             f'fill="#fafafa" stroke="#ccc"/>']
    parts += _y_axis(low, high, y)
    parts += _x_axis(points, x)
    for t in thresholds:
        parts.append(f'<line class="threshold" x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{y(t.value):.1f}" '
                     f'y2="{y(t.value):.1f}" stroke="#d62728" stroke-dasharray="6 4"/>'
                     f'<text x="{WIDTH - RIGHT - 4}" y="{y(t.value) - 4:.1f}" text-anchor="end" font-size="10" '
                     f'fill="#d62728">{escape(t.label)}<title>{escape("; ".join(t.uses))}</title></text>')
    floors = [(x(p), y(p.floor)) for p in points if p.floor is not None]
    if floors:
        parts.append(f'<polyline class="noise-floor" fill="none" stroke="#555" stroke-dasharray="2 3" '
                     f'points="{_coords(floors)}"><title>noise floor</title></polyline>'
                     f'<text x="{LEFT + 4}" y="{floors[0][1] - 4:.1f}" font-size="10" fill="#555">noise floor</text>')
    parts.append(f'<polyline fill="none" stroke="#555" stroke-width="1.2" '
                 f'points="{_coords([(x(p), y(p.value)) for p in points])}"/>')
    for p in points:
        colour = ACTION_COLOURS.get(p.action, OTHER_COLOUR)
        label = f"{p.window_id} · {p.when:%Y-%m-%d %H:%M} · {p.value:.6g} · {p.action}"
        ring = 'stroke="#000" stroke-width="1.5"' if p.held else 'stroke="#fff"'
        parts.append(f'<circle class="marker" data-action="{escape(p.action)}" cx="{x(p):.1f}" cy="{y(p.value):.1f}" '
                     f'r="{5 if p.action != "none" or p.held else 3.5}" fill="{colour}" {ring}>'
                     f'<title>{escape(label + (f" · held: {p.held}" if p.held else ""))}</title></circle>')
    parts.append("</svg>")
    return "".join(parts)


def _coords(points: Sequence[tuple[float, float]]) -> str:
    return " ".join(f"{a:.1f},{b:.1f}" for a, b in points)


def _y_axis(low: float, high: float, y) -> list[str]:
    out = []
    for i in range(5):
        v = low + (high - low) * i / 4
        out.append(f'<line x1="{LEFT - 4}" x2="{WIDTH - RIGHT}" y1="{y(v):.1f}" y2="{y(v):.1f}" stroke="#eee"/>'
                   f'<text x="{LEFT - 6}" y="{y(v) + 3:.1f}" text-anchor="end" font-size="10">{v:.3g}</text>')
    return out


def _x_axis(points: Sequence[Point], x) -> list[str]:
    """Window-end dates under the chart, at most MAX_TICKS of them (evenly picked, the last always)."""
    step = max(1, -(-len(points) // MAX_TICKS))
    ticks = list(points[::step])
    if ticks[-1] is not points[-1]:
        ticks[-1] = points[-1]
    return [f'<text x="{x(p):.1f}" y="{HEIGHT - BOTTOM + 16}" text-anchor="middle" font-size="10">'
            f'{escape(f"{p.when:%Y-%m-%d}")}</text>' for p in ticks]
