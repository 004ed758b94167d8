"""Renders a run's events to a terminal with Rich: a line per step and a summary table."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table

from tipi.report.events import Reporter, RunSummary, StepResult

_STYLE = {"ran": "green", "skipped": "dim", "failed": "bold red", "not run": "yellow"}
_MARK = {"ran": "✔", "skipped": "·", "failed": "✘", "not run": "-"}


class RichReporter(Reporter):
    """Prints each step as it ends and a ran/skipped/failed table when the run ends."""

    def __init__(self, console: Console | None = None, verbose: bool = False) -> None:
        self.console = console or Console(stderr=True)
        self.verbose = verbose

    def run_started(self, pipeline: str, steps: list[str]) -> None:
        self.console.print(f"[bold]tipi[/] pipeline [cyan]{pipeline}[/]: {len(steps)} step(s)")

    def step_started(self, name: str) -> None:
        self.console.print(f"[blue]▶[/] {name}", highlight=False)

    def permanence_initializing(self, name: str) -> None:
        if self.verbose:
            self.console.print(f"  [dim]initializing permanence {name}[/]")

    def step_finished(self, result: StepResult) -> None:
        style = _STYLE[result.outcome]
        text = f"[{style}]{_MARK[result.outcome]} {result.name}[/] [dim]{result.outcome}"
        if result.outcome in ("ran", "failed"):
            text += f" in {_seconds(result.seconds)}"
        if result.reasons:
            text += f": {result.reasons[0]}"
        self.console.print(text + "[/]", highlight=False)

    def warning(self, message: str) -> None:
        self.console.print(f"[yellow]warning:[/] {message}", highlight=False)

    def run_finished(self, summary: RunSummary) -> None:
        table = Table(title=None, show_header=True, header_style="bold", box=None, pad_edge=False)
        for column in ("step", "outcome", "time"):
            table.add_column(column)
        for result in summary.results:
            style = _STYLE[result.outcome]
            shown = _seconds(result.seconds) if result.outcome in ("ran", "failed") else ""
            table.add_row(result.name, f"[{style}]{result.outcome}[/]", shown)
        self.console.print(table)
        counts = ", ".join(
            f"{len(summary.of(kind))} {kind}"
            for kind in ("ran", "skipped", "failed", "not run")
            if summary.of(kind)
        )
        verdict = "[green]done[/]" if summary.ok else "[red]failed[/]"
        if summary.interrupted:
            verdict = "[yellow]interrupted[/]"
        self.console.print(f"{verdict}: {counts or 'nothing to do'} in {_seconds(summary.seconds)}")


def _seconds(value: float) -> str:
    return f"{value * 1000:.0f}ms" if value < 1 else f"{value:.2f}s"
