"""One self-contained HTML page (no network needed to view it): the DAG, each step's state,
last run, duration and reasons, logged metrics as plots, links to outputs."""

from __future__ import annotations

import os
import time
from html import escape
from pathlib import Path
from typing import Any

from tipi.report.graph import to_svg
from tipi.report.views import STATE_COLORS, STATE_MARKS, PipelineView, StepView

STYLE = """
body { font-family: Helvetica, Arial, sans-serif; margin: 24px; color: #222; }
h1 { font-size: 20px; } h2 { font-size: 16px; margin-top: 28px; }
table { border-collapse: collapse; font-size: 13px; }
th, td { border-bottom: 1px solid #ddd; padding: 6px 10px; text-align: left; vertical-align: top; }
.state { font-weight: bold; padding: 2px 6px; border-radius: 4px; }
.charts { display: flex; flex-wrap: wrap; gap: 16px; }
.chart { border: 1px solid #ddd; border-radius: 6px; padding: 8px; }
.muted { color: #777; font-size: 12px; }
"""


def to_html(
    view: PipelineView, base: Path | None = None, root: Path | None = None, title: str = ""
) -> str:
    """The page. `base` is the folder the page is written to (links to outputs are relative to
    it) and `root` the project root."""
    title = title or f"tipi: {view.pipeline}"
    counts = ", ".join(
        f"{sum(s.state == st for s in view.steps)} {st}"
        for st in STATE_COLORS
        if any(s.state == st for s in view.steps)
    )
    body = [
        f"<h1>{escape(title)}</h1>",
        f'<p class="muted">{len(view.steps)} steps: {escape(counts)}. Made by tipi on '
        f"{time.strftime('%Y-%m-%d %H:%M:%S')}.</p>",
        '<h2>Graph</h2><div id="dag">',
        to_svg(view),
        "</div>",
        '<h2>Steps</h2><table id="steps"><tr><th>step</th><th>type</th><th>state</th>'
        "<th>last run</th><th>duration</th><th>reasons</th><th>outputs</th></tr>",
        *(_row(step, base, root) for step in view.steps),
        "</table>",
    ]
    if view.metrics:
        body.append("<h2>Metrics</h2>")
        for logger, rows in view.metrics.items():
            body.append(f'<p class="muted">logged by {escape(logger)}</p><div class="charts">')
            body += [_chart(name, rows) for name in _metric_names(rows)]
            body.append("</div>")
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{escape(title)}</title><style>{STYLE}</style></head><body>\n"
        + "\n".join(body)
        + "\n</body></html>\n"
    )


def _row(step: StepView, base: Path | None, root: Path | None) -> str:
    fill, stroke = STATE_COLORS[step.state]
    when = (
        time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(step.last_run))
        if step.last_run
        else "never"
    )
    took = f"{step.duration:.2f} s" if step.duration is not None else ""
    reasons = "<br>".join(escape(r) for r in step.reasons)
    if step.error:
        reasons += f'<br><span style="color:{stroke}">{escape(step.error)}</span>'
    outputs = "<br>".join(_link(path, base, root) for path in step.outputs)
    return (
        f'<tr class="step-row" data-step="{escape(step.name)}"><td>{escape(step.name)}</td>'
        f"<td>{escape(step.type)}</td>"
        f'<td><span class="state" style="background:{fill};color:{stroke}">'
        f"{STATE_MARKS[step.state]} {step.state}</span></td><td>{when}</td><td>{took}</td>"
        f"<td>{reasons}</td><td>{outputs}</td></tr>"
    )


def _link(path: str, base: Path | None, root: Path | None) -> str:
    target = Path(path) if os.path.isabs(path) or root is None else root / path
    exists = target.exists()
    href = os.path.relpath(target, base) if base is not None else str(target)
    if not exists:
        return f'<span class="muted">{escape(path)} (missing)</span>'
    return f'<a href="{escape(Path(href).as_posix())}">{escape(path)}</a>'


def _metric_names(rows: list[dict[str, Any]]) -> list[str]:
    names: dict[str, None] = {}
    for row in rows:
        for key, value in row.items():
            if key not in ("step", "time", "epoch") and isinstance(value, int | float):
                names[key] = None
    return list(names)


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _latest_run(points: list[tuple[float, float]]) -> list[tuple[float, float]]:
    """The log appends run after run: keep the last stretch of increasing steps."""
    start = 0
    for i in range(1, len(points)):
        if points[i][0] <= points[i - 1][0]:
            start = i
    return points[start:]


def _chart(name: str, rows: list[dict[str, Any]], width: int = 320, height: int = 160) -> str:
    points = _latest_run(
        [(row.get("step", i), row[name]) for i, row in enumerate(rows) if _number(row.get(name))]
    )
    xs, ys = [p[0] for p in points], [p[1] for p in points]
    x0, x1 = min(xs), max(xs)
    y0, y1 = min(ys), max(ys)
    sx = (width - 60) / ((x1 - x0) or 1)
    sy = (height - 40) / ((y1 - y0) or 1)
    line = " ".join(
        f"{50 + (x - x0) * sx:.1f},{height - 20 - (y - y0) * sy:.1f}" for x, y in points
    )
    return (
        f'<div class="chart" data-metric="{escape(name)}"><svg xmlns="http://www.w3.org/2000/svg" '
        f'width="{width}" height="{height}" font-size="10" font-family="Helvetica, Arial">'
        f'<text x="50" y="12" font-weight="bold">{escape(name)}</text>'
        f'<line x1="50" y1="{height - 20}" x2="{width - 10}" y2="{height - 20}" stroke="#999"/>'
        f'<line x1="50" y1="20" x2="50" y2="{height - 20}" stroke="#999"/>'
        f'<text x="4" y="24">{y1:.4g}</text><text x="4" y="{height - 20}">{y0:.4g}</text>'
        f'<text x="50" y="{height - 6}">{x0:g}</text>'
        f'<text x="{width - 30}" y="{height - 6}">{x1:g}</text>'
        f'<polyline points="{line}" fill="none" stroke="#1565c0" stroke-width="1.5"/>'
        + "".join(_dot(point) for point in line.split())
        + "</svg></div>"
    )


def _dot(point: str) -> str:
    x, y = point.split(",")
    return f'<circle cx="{x}" cy="{y}" r="2" fill="#1565c0"/>'
