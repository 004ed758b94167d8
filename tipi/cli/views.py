"""Renders a PipelineView for the `status` and `graph` commands."""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Collection, Sequence
from pathlib import Path

from rich.table import Table
from rich.text import Text

from tipi.errors import UsageError
from tipi.redact import printable
from tipi.report.graph import FORMATS, to_dot, to_json, to_mermaid, to_tree
from tipi.report.groups import MIXED_MARK, base_name, folded, rows
from tipi.report.html import to_html
from tipi.report.views import STATE_COLORS, STATE_MARKS, PipelineView, StepView


def status_table(
    view: PipelineView, explain: bool = False, expand: bool | Collection[str] = ()
) -> Table:
    """step, state, last run, duration, reasons (with `explain`, the notes of up-to-date
    steps too, such as an environment that changed).

    A step matrix's instances are one row, `train ×6`, with how many are in each state and
    which instance would run first and why; an unfolded group (`expand`: True for every one,
    else the names of those to unfold) lists its instances under it, and with `explain` a
    folded one lists those that would run."""
    table = Table(header_style="bold", box=None, pad_edge=False)
    for column in ("step", "state", "last run", "took", "why"):
        table.add_column(column)
    for row, unfold in rows(view, expand):
        if isinstance(row, StepView):
            table.add_row(*_cells(row, explain))
            continue
        _, stroke = STATE_COLORS[row.state]
        mark = MIXED_MARK if row.mixed else STATE_MARKS[row.state]
        why = "" if unfold or explain else row.first_reason
        table.add_row(
            Text(printable(row.label), style="bold"),
            Text(f"{mark} {row.summary}", style=stroke),
            _when(row.last_run),
            _took(row.duration),
            Text(printable(why)),
        )
        shown = row.instances if unfold else ()
        if explain and not unfold:
            shown = tuple(s for s in row.instances if s.state != "up-to-date" or s.reasons[1:])
        for step in shown:
            table.add_row(*_cells(step, explain, indent="  "))
    return table


def _cells(step: StepView, explain: bool, indent: str = "") -> tuple[Text, Text, str, str, Text]:
    _, stroke = STATE_COLORS[step.state]
    if step.state != "up-to-date":
        why = "; ".join(step.reasons)
    else:
        why = "; ".join(step.reasons[1:]) if explain else ""
    if step.error:
        why = f"{why}; last error: {step.error}" if why else f"last error: {step.error}"
    # Text, not markup: an error is a step's text ("[/]" in it is no markup, an escape
    # sequence in it must not drive the terminal).
    state = Text(f"{STATE_MARKS[step.state]} {step.state}", style=stroke)
    name = Text(indent + printable(step.name))
    return name, state, _when(step.last_run), _took(step.duration), Text(printable(why))


def _when(moment: float | None) -> str:
    return time.strftime("%Y-%m-%d %H:%M", time.localtime(moment)) if moment else "never"


def _took(seconds: float | None) -> str:
    return f"{seconds:.2f}s" if seconds is not None else ""


def unfolded(targets: Sequence[str], expand: bool) -> bool | set[str]:
    """The step matrices to list instance by instance: every one with `--expand`, else those
    the targets name (`tipi status train`, `tipi status 'train[seed=0]'`)."""
    return True if expand else {base_name(t) for t in targets}


def render_graph(
    view: PipelineView,
    fmt: str,
    files: bool,
    output: Path | None,
    root: Path,
    expand: bool | Collection[str] = (),
) -> str | bytes:
    """The graph in `fmt`; svg/png go through Graphviz's `dot`. A step matrix is one node
    (`train ×6`) unless `expand`ed; JSON, for scripts, has every instance."""
    if fmt not in FORMATS:
        raise UsageError(f"unknown format '{fmt}'", hint=f"formats: {', '.join(FORMATS)}")
    if fmt == "json":
        return to_json(view, files)
    if fmt == "html":
        base = output.resolve().parent if output is not None else Path.cwd()
        return to_html(view, base=base, root=root, expand=expand)
    view = folded(view, expand)
    if fmt == "tree":
        return to_tree(view, files)
    if fmt == "dot":
        return to_dot(view, files)
    if fmt == "mermaid":
        return to_mermaid(view, files)
    return _graphviz(to_dot(view, files), fmt)


def _graphviz(dot_text: str, fmt: str) -> bytes:
    dot = shutil.which("dot")
    if dot is None:
        raise UsageError(
            f"--format {fmt} needs Graphviz's `dot`, which is not installed",
            hint="install Graphviz (apt-get install graphviz, brew install graphviz), "
            "or use --format html, which needs nothing",
        )
    done = subprocess.run(
        [dot, f"-T{fmt}"], input=dot_text.encode(), capture_output=True, check=False
    )
    if done.returncode != 0:
        raise UsageError(f"dot failed: {done.stderr.decode(errors='replace').strip()}")
    return done.stdout
