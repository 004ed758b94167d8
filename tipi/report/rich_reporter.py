"""Renders a run's events to a terminal with Rich: a line per step that does something and a
summary table; up-to-date steps are counted, not listed (unless verbose)."""

from __future__ import annotations

from rich.console import Console
from rich.markup import escape

from tipi.report import lines
from tipi.report.events import Reporter, RunSummary, StepResult
from tipi.report.live import LiveProgress, interactive


class RichReporter(Reporter):
    """Prints each step that runs (or would run) and a summary when the run ends.

    Args:
        console: where to print (default: stderr).
        verbose: also list up-to-date steps and permanence initialization.
        explain: print every reason of a step, not only the first.
    """

    def __init__(
        self, console: Console | None = None, verbose: bool = False, explain: bool = False
    ) -> None:
        self.console = console or Console(stderr=True)
        self.verbose = verbose
        self.explain = explain
        self._live = False
        self._overall = None
        self._running: dict[str, object] = {}

    def run_started(self, pipeline: str, steps: list[str]) -> None:
        self.console.print(lines.run_header(pipeline, len(steps), _markup))
        if steps and interactive(self.console):
            # The overall bar and the processes' ProgressManager bars share one display.
            progress = LiveProgress.acquire(self.console)
            self._overall = progress.add_task(f"make {pipeline}", total=len(steps), status="")
            self._live = True

    def step_started(self, name: str) -> None:
        self.console.print(f"[blue]▶[/] {escape(name)}", highlight=False)

    def step_progress(self, name: str, line: str) -> None:
        progress = LiveProgress.current()
        if not self._live or progress is None:
            return
        if name not in self._running:
            self._running[name] = progress.add_task(f"▶ {name}", total=None, status="")
        progress.update(self._running[name], status=line)

    def step_output(self, name: str, text: str) -> None:
        for line in text.rstrip("\n").splitlines():
            self.console.print(f"[dim]{escape(name)} │[/] {escape(line)}", highlight=False)

    def permanence_initializing(self, name: str) -> None:
        if self.verbose:
            self.console.print(f"  [dim]initializing permanence {escape(name)}[/]")

    def step_finished(self, result: StepResult) -> None:
        progress = LiveProgress.current()
        if self._live and progress is not None:
            progress.update(self._overall, advance=1, status=result.name)
            if result.name in self._running:
                progress.remove_task(self._running.pop(result.name))
        if result.outcome == "skipped" and not (self.verbose or self.explain):
            return
        reasons = list(result.reasons) if result.outcome != "failed" else []
        shown = [] if self.explain else reasons  # --explain: each on a line of its own
        text = lines.step_line(result.name, result.outcome, result.seconds, shown, _markup)
        self.console.print(text, highlight=False)
        if self.explain:
            for reason in reasons:
                self.console.print(lines.reason_line(reason, _markup), highlight=False)

    def warning(self, message: str) -> None:
        self.console.print(f"[yellow]warning:[/] {escape(message)}", highlight=False)

    def notice(self, message: str) -> None:
        self.console.print(f"[cyan]note:[/] {escape(message)}", highlight=False)

    def run_finished(self, summary: RunSummary) -> None:
        if self._live:
            progress = LiveProgress.current()
            if progress is not None:
                progress.remove_task(self._overall)
            LiveProgress.release()
            self._live = False
        shown = [
            r for r in summary.results if r.outcome in ("ran", "restored", "failed", "not run")
        ]
        if shown:
            from rich.table import Table

            table = Table(show_header=True, header_style="bold", box=None, pad_edge=False)
            for column in ("step", "outcome", "time"):
                table.add_column(column)
            for result in shown:
                took = lines.seconds(result.seconds) if result.outcome in lines.TIMED else ""
                outcome = _markup(result.outcome, lines.STYLE[result.outcome])
                table.add_row(escape(result.name), outcome, took)
            self.console.print(table)
        counts = {k: len(summary.of(k)) for k in lines.ORDER}
        verdict = "done" if summary.ok else "failed"
        if summary.interrupted:
            verdict = "interrupted"
        elif summary.dry_run:
            verdict = "dry run"
        elif summary.ok and not summary.of("ran") and not summary.of("restored"):
            verdict = "up to date"
        self.console.print(lines.summary_line(verdict, counts, summary.seconds, _markup))


class WarningsReporter(Reporter):
    """Shows warnings only: for commands whose output is something else (`tipi status`)."""

    def __init__(self, console: Console | None = None) -> None:
        self.console = console or Console(stderr=True)

    def warning(self, message: str) -> None:
        self.console.print(f"[yellow]warning:[/] {escape(message)}", highlight=False)


def _markup(text: str, style: str) -> str:
    """A span of lines.py as Rich markup."""
    return f"[{style}]{escape(text)}[/]"
