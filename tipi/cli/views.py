"""Renders a PipelineView for the `status` and `graph` commands."""

from __future__ import annotations

import shutil
import subprocess
import time
from pathlib import Path

from rich.table import Table
from rich.text import Text

from tipi.errors import UsageError
from tipi.redact import printable
from tipi.report.graph import FORMATS, to_dot, to_json, to_mermaid, to_tree
from tipi.report.html import to_html
from tipi.report.views import STATE_COLORS, STATE_MARKS, PipelineView


def status_table(view: PipelineView, explain: bool = False) -> Table:
    """step, state, last run, duration, reasons (with `explain`, the notes of up-to-date
    steps too, such as an environment that changed)."""
    table = Table(header_style="bold", box=None, pad_edge=False)
    for column in ("step", "state", "last run", "took", "why"):
        table.add_column(column)
    for step in view.steps:
        _, stroke = STATE_COLORS[step.state]
        when = (
            time.strftime("%Y-%m-%d %H:%M", time.localtime(step.last_run))
            if step.last_run
            else "never"
        )
        took = f"{step.duration:.2f}s" if step.duration is not None else ""
        if step.state != "up-to-date":
            why = "; ".join(step.reasons)
        else:
            why = "; ".join(step.reasons[1:]) if explain else ""
        if step.error:
            why = f"{why}; last error: {step.error}" if why else f"last error: {step.error}"
        # Text, not markup: an error is a step's text ("[/]" in it is no markup, an escape
        # sequence in it must not drive the terminal).
        state = Text(f"{STATE_MARKS[step.state]} {step.state}", style=stroke)
        table.add_row(Text(printable(step.name)), state, when, took, Text(printable(why)))
    return table


def render_graph(
    view: PipelineView, fmt: str, files: bool, output: Path | None, root: Path
) -> str | bytes:
    """The graph in `fmt`; svg/png go through Graphviz's `dot`."""
    if fmt not in FORMATS:
        raise UsageError(f"unknown format '{fmt}'", hint=f"formats: {', '.join(FORMATS)}")
    if fmt == "tree":
        return to_tree(view, files)
    if fmt == "dot":
        return to_dot(view, files)
    if fmt == "mermaid":
        return to_mermaid(view, files)
    if fmt == "json":
        return to_json(view, files)
    if fmt == "html":
        base = output.resolve().parent if output is not None else Path.cwd()
        return to_html(view, base=base, root=root)
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
