"""Inline SVG plots for the report, drawn here (no library, nothing to fetch): line charts
with labelled axes, tick values and a legend, and a heat map of a confusion matrix."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from tipi.redact import printable_html as escape  # text is data: no control characters

# One colour per run when several are overlaid; one per split when one run is shown.
RUN_COLORS = ("#1565c0", "#ef6c00", "#2e7d32", "#c62828", "#6a1b9a", "#00838f", "#5d4037")
SPLIT_COLORS = {"train": "#1565c0", "val": "#ef6c00", "test": "#2e7d32", "": "#6a1b9a"}
SPLIT_DASHES = {"train": "", "val": "6 3", "test": "2 3", "": ""}
FONT = 'font-family="Helvetica, Arial, sans-serif"'
MAX_LABELLED = 20  # a confusion matrix names every class up to this many


@dataclass(frozen=True)
class Series:
    """One line of a chart."""

    label: str
    points: tuple[tuple[float, float], ...]
    color: str = "#1565c0"
    dash: str = ""
    run: str = ""


def nice_ticks(low: float, high: float, count: int = 5, integer: bool = False) -> list[float]:
    """Round values from at most `low` to at least `high`, about `count` of them, 1-2-5
    steps apart (`0, 0.5, 1, 1.5, 2`); whole numbers only with `integer`."""
    if not (math.isfinite(low) and math.isfinite(high)):
        return [0.0, 1.0]
    low, high = min(low, high), max(low, high)
    if high == low:
        pad = 1.0 if integer else abs(low) * 0.1 or 1.0
        low, high = low - pad, high + pad
    raw = (high - low) / max(count - 1, 1)
    power = 10 ** math.floor(math.log10(raw))
    steps = (1, 2, 5, 10) if integer else (1, 2, 2.5, 5, 10)
    step = next(m * power for m in steps if m * power >= raw * 0.999)
    if integer:
        step = max(round(step), 1)
    first = math.floor(low / step + 1e-9) * step
    ticks = [round(first, 12)]
    while ticks[-1] < high - step * 1e-9:
        ticks.append(round(first + len(ticks) * step, 12))
    return ticks


def x_ticks(low: float, high: float, integer: bool) -> list[float]:
    """Round ticks inside the data's range [low, high] (at least two: its ends when no
    round value falls inside), up to about seven of them."""
    if not low < high:
        return nice_ticks(low, high, 6, integer=integer)
    inside = [t for t in nice_ticks(low, high, 7, integer=integer) if low <= t <= high]
    return inside if len(inside) >= 2 else [low, high]


def tick_text(value: float, ticks: Sequence[float]) -> str:
    """A tick's label with as many decimals as the step between ticks needs."""
    step = abs(ticks[1] - ticks[0]) if len(ticks) > 1 else 0.0
    if not step:
        return f"{value:.4g}"
    if abs(value) >= 1e6 or step < 1e-4:
        return f"{value:.3g}"
    digits = 0
    while digits < 6 and abs(round(step, digits) - step) > step * 1e-6:
        digits += 1
    return f"{value:.{digits}f}"


def line_chart(
    title: str,
    series: Sequence[Series],
    x_label: str,
    y_label: str,
    width: int = 440,
    height: int = 280,
) -> str:
    """An SVG line chart: every series over shared axes with tick values, the axes named,
    a legend under the plot."""
    points = [p for s in series for p in s.points]
    xs, ys = [p[0] for p in points], [p[1] for p in points]
    whole = all(float(x).is_integer() for x in xs)
    xt, yt = x_ticks(min(xs), max(xs), whole), nice_ticks(min(ys), max(ys))
    left, right, top = 62, 14, 26
    rows = math.ceil(len(series) / 3)
    bottom = 50 + rows * 16
    plot_w, plot_h = width - left - right, height - top - bottom
    # The x axis is the data's range (12 epochs end at 12, not at a round 15); y rounds out.
    x0, x1 = (min(xs), max(xs)) if min(xs) < max(xs) else (min(xt), max(xt))
    y0, y1 = min(yt), max(yt)

    def sx(x: float) -> float:
        return left + (x - x0) / ((x1 - x0) or 1) * plot_w

    def sy(y: float) -> float:
        return top + plot_h - (y - y0) / ((y1 - y0) or 1) * plot_h

    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="plot" width="{width}" '
        f'height="{height}" viewBox="0 0 {width} {height}" {FONT} font-size="11">',
        f'<text class="title" x="{left}" y="16" font-weight="bold" font-size="12">'
        f"{escape(title)}</text>",
        f'<rect x="{left}" y="{top}" width="{plot_w}" height="{plot_h}" fill="none" '
        'stroke="#bbb"/>',
    ]
    for tick in yt:
        y = sy(tick)
        out.append(
            f'<line x1="{left}" x2="{left + plot_w}" y1="{y:.1f}" y2="{y:.1f}" stroke="#eee"/>'
            f'<text class="tick y-tick" x="{left - 6}" y="{y + 4:.1f}" text-anchor="end">'
            f"{tick_text(tick, yt)}</text>"
        )
    for tick in xt:
        x = sx(tick)
        out.append(
            f'<line x1="{x:.1f}" x2="{x:.1f}" y1="{top + plot_h}" y2="{top + plot_h + 4}" '
            f'stroke="#999"/><text class="tick x-tick" x="{x:.1f}" y="{top + plot_h + 16}" '
            f'text-anchor="middle">{tick_text(tick, xt)}</text>'
        )
    out.append(
        f'<text class="axis-label x-label" x="{left + plot_w / 2:.1f}" '
        f'y="{top + plot_h + 32}" text-anchor="middle" fill="#444">{escape(x_label)}</text>'
        f'<text class="axis-label y-label" transform="translate(14 {top + plot_h / 2:.1f}) '
        f'rotate(-90)" text-anchor="middle" fill="#444">{escape(y_label)}</text>'
    )
    for s in series:
        line = " ".join(f"{sx(x):.1f},{sy(y):.1f}" for x, y in s.points)
        dash = f' stroke-dasharray="{s.dash}"' if s.dash else ""
        out.append(
            f'<g class="series" data-label="{escape(s.label)}" data-run="{escape(s.run)}">'
            f'<polyline points="{line}" fill="none" stroke="{s.color}" stroke-width="1.8"{dash}/>'
            + "".join(
                f'<circle cx="{sx(x):.1f}" cy="{sy(y):.1f}" r="2.2" fill="{s.color}">'
                f"<title>{escape(s.label)}: {x:g}, {y:.4g}</title></circle>"
                for x, y in s.points
            )
            + "</g>"
        )
    out.append(_legend(series, left, top + plot_h + 52, plot_w))
    out.append("</svg>")
    return "".join(out)


def _legend(series: Sequence[Series], x: float, y: float, width: float) -> str:
    column = width / 3
    out = ['<g class="legend">']
    for i, s in enumerate(series):
        lx, ly = x + (i % 3) * column, y + (i // 3) * 16
        dash = f' stroke-dasharray="{s.dash}"' if s.dash else ""
        room = max(int((column - 30) / 6), 6)
        label = s.label if len(s.label) <= room else s.label[: room - 1] + "…"
        out.append(
            f'<line x1="{lx:.1f}" x2="{lx + 22:.1f}" y1="{ly - 4:.1f}" y2="{ly - 4:.1f}" '
            f'stroke="{s.color}" stroke-width="2"{dash}/>'
            f'<text class="legend-label" x="{lx + 26:.1f}" y="{ly:.1f}">{escape(label)}'
            f"<title>{escape(s.label)}</title></text>"
        )
    out.append("</g>")
    return "".join(out)


def heat_map(matrix: Sequence[Sequence[float]], title: str = "confusion matrix") -> str:
    """A confusion matrix as an SVG heat map: rows are the true classes, columns the
    predicted ones, each cell its count."""
    n = len(matrix)
    cell = max(18, min(40, 360 // max(n, 1)))
    left, top = 46, 30
    size = n * cell
    high = max((v for row in matrix for v in row), default=0) or 1
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="heat-map" width="{left + size + 10}" '
        f'height="{top + size + 34}" {FONT} font-size="10">',
        f'<text x="{left}" y="14" font-weight="bold" font-size="12">{escape(title)}</text>',
    ]
    for i, row in enumerate(matrix):
        for j, value in enumerate(row):
            share = value / high
            shade = round(255 - share * 200)
            fill = f"rgb({shade},{round(255 - share * 120)},255)"
            ink = "#fff" if share > 0.6 else "#222"
            x, y = left + j * cell, top + i * cell
            out.append(
                f'<rect x="{x}" y="{y}" width="{cell}" height="{cell}" fill="{fill}" '
                f'stroke="#fff"/><text x="{x + cell / 2}" y="{y + cell / 2 + 3}" '
                f'text-anchor="middle" fill="{ink}">{value:g}</text>'
            )
    every = 1 if n <= MAX_LABELLED else math.ceil(n / MAX_LABELLED)  # every class up to 20
    for k in range(0, n, every):
        out.append(
            f'<text x="{left - 6}" y="{top + k * cell + cell / 2 + 3}" text-anchor="end">{k}</text>'
            f'<text x="{left + k * cell + cell / 2}" y="{top + size + 12}" '
            f'text-anchor="middle">{k}</text>'
        )
    out.append(
        f'<text class="axis-label" x="{left + size / 2}" y="{top + size + 28}" '
        'text-anchor="middle" fill="#444">predicted</text>'
        f'<text class="axis-label" transform="translate(12 {top + size / 2}) rotate(-90)" '
        'text-anchor="middle" fill="#444">true</text></svg>'
    )
    return "".join(out)
