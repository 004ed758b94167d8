"""One self-contained HTML page (no network needed to view it): the DAG, each step's state,
last run, duration and reasons, links to outputs, and the runs (runs_html.py): their curves,
figures, params and metrics."""

from __future__ import annotations

import os
import time
from collections.abc import Collection
from pathlib import Path
from typing import TYPE_CHECKING

from tipi.redact import printable_html as escape  # text is data: no control characters
from tipi.report.graph import to_svg
from tipi.report.groups import MIXED_MARK, StepGroup, folded, rows
from tipi.report.views import STATE_COLORS, STATE_MARKS, PipelineView, StepView

if TYPE_CHECKING:
    from tipi.report.experiments import Experiments

MAX_DRAWN = 300  # instances beyond which a graph of each is a grey wall, not a picture

STYLE = """
body { font-family: Helvetica, Arial, sans-serif; margin: 24px; color: #222; }
h1 { font-size: 20px; } h2 { font-size: 16px; margin-top: 28px; }
table { border-collapse: collapse; font-size: 13px; }
th, td { border-bottom: 1px solid #ddd; padding: 6px 10px; text-align: left; vertical-align: top; }
.state { font-weight: bold; padding: 2px 6px; border-radius: 4px; white-space: nowrap; }
.charts { display: flex; flex-wrap: wrap; gap: 16px; }
.chart { border: 1px solid #ddd; border-radius: 6px; padding: 8px; }
.muted { color: #777; font-size: 12px; }
#dag, #instances { overflow-x: auto; }
tr.group-row td { background: #f6f6f6; }
tr.instance-row td:first-child { padding-left: 26px; }
"""


def to_html(
    view: PipelineView,
    base: Path | None = None,
    root: Path | None = None,
    title: str = "",
    experiments: Experiments | None = None,
    expand: bool | Collection[str] = (),
) -> str:
    """The page. `base` is the folder the page is written to (links to outputs are relative to
    it) and `root` the project root; with `experiments`, the runs after the steps.

    A step matrix is one box of stacked cards (`train ×6`, its states counted and drawn as a
    bar) unless `expand`ed, and one row followed by its instances' rows; the graph of every
    instance is one click away (a <details>) when it is small enough to read."""
    title = title or f"tipi: {view.pipeline}"
    counts = ", ".join(
        f"{sum(s.state == st for s in view.steps)} {st}"
        for st in STATE_COLORS
        if any(s.state == st for s in view.steps)
    )
    matrices = [row.label for row, _ in rows(view) if isinstance(row, StepGroup)]
    # `12 steps (step matrices: train ×6, evaluate ×6): 12 up-to-date`
    steps = f"{len(view.steps)} steps"
    if matrices:
        steps += f" (step matrices: {', '.join(matrices)})"
    body = [
        f"<h1>{escape(title)}</h1>",
        f'<p class="muted">{escape(steps)}: {escape(counts)}. Made by tipi on '
        f"{time.strftime('%Y-%m-%d %H:%M:%S')}.</p>",
        '<h2>Graph</h2><div id="dag">',
        to_svg(folded(view, expand)),
        "</div>",
        *_every_instance(view, expand),
        '<h2>Steps</h2><table id="steps"><tr><th>step</th><th>type</th><th>state</th>'
        "<th>last run</th><th>duration</th><th>reasons</th><th>outputs</th></tr>",
        *(_rows(view, base, root)),
        "</table>",
    ]
    style = STYLE
    if experiments is not None:
        from tipi.report.runs_html import STYLE as RUNS_STYLE
        from tipi.report.runs_html import experiments_html

        body.append(experiments_html(experiments))
        style += RUNS_STYLE
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{escape(title)}</title><style>{style}</style></head><body>\n"
        + "\n".join(body)
        + "\n</body></html>\n"
    )


def _every_instance(view: PipelineView, expand: bool | Collection[str]) -> list[str]:
    """The graph with every instance, folded away under the grouped one."""
    groups = [row for row, unfold in rows(view, expand) if isinstance(row, StepGroup)]
    if not groups or all(unfold for _, unfold in rows(view, expand)):
        return []
    count = sum(len(g.instances) for g in groups)
    if len(view.steps) > MAX_DRAWN:
        return [f'<p class="muted">{count} instances: too many to draw one by one.</p>']
    return [
        f'<details id="instances"><summary>every instance ({count} in '
        f"{len(groups)} step matrices)</summary>",
        to_svg(view),
        "</details>",
    ]


def _rows(view: PipelineView, base: Path | None, root: Path | None) -> list[str]:
    """A row per step; a step matrix's row counts its instances' states, theirs follow."""
    out = []
    for row, _ in rows(view):
        if isinstance(row, StepView):
            out.append(_row(row, base, root))
            continue
        fill, stroke = STATE_COLORS[row.state]
        mark = MIXED_MARK if row.mixed else STATE_MARKS[row.state]
        took = f"{row.duration:.2f} s" if row.duration is not None else ""
        out.append(
            f'<tr class="group-row" data-group="{escape(row.name)}">'
            f"<td><b>{escape(row.label)}</b></td><td>{escape(row.type)}</td>"
            f'<td><span class="state" style="background:{fill};color:{stroke}">'
            f"{mark} {escape(row.summary)}</span></td><td>{_when(row.last_run)}</td>"
            f"<td>{took}</td><td>{escape(row.first_reason)}</td><td></td></tr>"
        )
        out += [_row(step, base, root, instance=True) for step in row.instances]
    return out


def _when(moment: float | None) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(moment)) if moment else "never"


def _row(step: StepView, base: Path | None, root: Path | None, instance: bool = False) -> str:
    fill, stroke = STATE_COLORS[step.state]
    when = _when(step.last_run)
    took = f"{step.duration:.2f} s" if step.duration is not None else ""
    reasons = "<br>".join(escape(r) for r in step.reasons)
    if step.error:
        reasons += f'<br><span style="color:{stroke}">{escape(step.error)}</span>'
    outputs = "<br>".join(_link(path, base, root) for path in step.outputs)
    kind = "step-row instance-row" if instance else "step-row"
    return (
        f'<tr class="{kind}" data-step="{escape(step.name)}"><td>{escape(step.name)}</td>'
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
