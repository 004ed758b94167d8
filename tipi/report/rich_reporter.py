"""Renders a run's events to a terminal with Rich: a line per step that does something and a
summary table; up-to-date steps are counted, not listed (unless verbose)."""

from __future__ import annotations

import time
from typing import Any

from rich.console import Console
from rich.markup import escape

from tipi.redact import hide_secrets, printable, shown_text
from tipi.report import channel, lines
from tipi.report.events import Reporter, RunSummary, StepResult
from tipi.report.groups import base_name, fold_reasons
from tipi.report.live import LiveProgress, interactive, silence, silenced


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
        self._view: MakeView | None = None

    def run_started(self, pipeline: str, steps: list[str]) -> None:
        self.console.print(lines.run_header(pipeline, len(steps), _markup))
        if steps and interactive(self.console) and not silenced():
            # The overall bar and the processes' ProgressManager bars share one display.
            self._view = MakeView(LiveProgress.acquire(self.console), pipeline, steps)

    def step_started(self, name: str) -> None:
        self.console.print(f"[blue]▶[/] {escape(name)}", highlight=False)
        if self._view is not None:
            self._view.started(name)

    def step_progress(self, name: str, line: str) -> None:
        if self._view is not None:
            self._view.said(name, shown_text(line))

    def step_output(self, name: str, text: str) -> None:
        # A step's output is its own text re-printed by tipi: it may hold a secret, and an
        # escape sequence in it would drive this terminal (tipi.redact).
        shown = [printable(line) for line in hide_secrets(text).rstrip("\n").splitlines()]
        if self._view is not None and channel.forwarded(name):
            shown = [line for line in shown if not line.startswith("[progress] ")]  # on the bars
        for line in shown:
            self.console.print(f"[dim]{escape(name)} │[/] {escape(line)}", highlight=False)

    def permanence_initializing(self, name: str) -> None:
        if self.verbose:
            self.console.print(f"  [dim]initializing permanence {escape(name)}[/]")

    def step_finished(self, result: StepResult) -> None:
        kept = self._view.finished(result) if self._view is not None else []
        if result.outcome == "skipped" and not (self.verbose or self.explain):
            return
        reasons = list(fold_reasons(result.reasons)) if result.outcome != "failed" else []
        shown = [] if self.explain else reasons  # --explain: each on a line of its own
        text = lines.step_line(result.name, result.outcome, result.seconds, shown, _markup)
        self.console.print(text, highlight=False)
        if self.explain:
            for reason in reasons:
                self.console.print(lines.reason_line(reason, _markup), highlight=False)
        if kept and self._view is not None:
            self._view.board.print_rows(kept)  # bars that stay (leave), under their step's line

    def warning(self, message: str) -> None:
        self.console.print(
            f"[yellow]warning:[/] {escape(shown_text(message, True))}", highlight=False
        )

    def notice(self, message: str) -> None:
        message = shown_text(message, True)  # notices and warnings may quote an exception
        self.console.print(f"[cyan]note:[/] {escape(message)}", highlight=False)
        if self._view is not None:
            self._view.said(None, f"note: {message}")

    def run_finished(self, summary: RunSummary) -> None:
        if self._view is not None:
            self._view.close()
            LiveProgress.release()
            self._view = None
        listed = ("ran", "restored", "failed") + (() if summary.stopped else ("not run",))
        shown = [r for r in summary.results if r.outcome in listed]
        if summary.stopped and not shown:
            return  # nothing happened: the error that follows is the whole story
        if shown:
            from rich.table import Table

            table = Table(show_header=True, header_style="bold", box=None, pad_edge=False)
            for column in ("step", "outcome", "time"):
                table.add_column(column)
            for name, outcome_of, seconds in summary_rows(shown):
                took = lines.seconds(seconds) if outcome_of in lines.TIMED else ""
                outcome = _markup(outcome_of, lines.STYLE[outcome_of])
                table.add_row(escape(name), outcome, took)
            self.console.print(table)
        counts = {
            k: len(summary.of(k)) for k in lines.ORDER if k != "not run" or not summary.stopped
        }
        verdict = "done" if summary.ok else "failed"
        if summary.interrupted:
            verdict = "interrupted"
        elif summary.dry_run:
            verdict = "dry run"
        elif summary.ok and not summary.of("ran") and not summary.of("restored"):
            verdict = "up to date"
        self.console.print(lines.summary_line(verdict, counts, summary.seconds, _markup))


def summary_rows(results: list[StepResult]) -> list[tuple[str, str, float]]:
    """(name, outcome, seconds) rows of the summary table: the instances of one step matrix
    that ended the same way are one row, `train ×6` with their time together, in the place
    of the first; a failed instance keeps its own row (its name is what to look at)."""
    same: dict[tuple[str, str], list[StepResult]] = {}
    for result in results:
        base = base_name(result.name)
        folds = base != result.name and result.outcome != "failed"
        same.setdefault((base, result.outcome) if folds else (result.name, ""), []).append(result)
    rows = []
    for (base, _), found in same.items():
        if len(found) == 1:
            rows.append((found[0].name, found[0].outcome, found[0].seconds))
        else:
            rows.append((f"{base} ×{len(found)}", found[0].outcome, sum(r.seconds for r in found)))
    return rows


class MakeView:
    """The make on the live display: an overall bar whose status names the steps running and
    whose ETA is by time, and a row per running step with its bars nested under it.

    The ETA adds what the running steps have left (from their first bar with a total, else
    the mean time of the steps that ran) to the steps still to decide, each counted at that
    mean times the share of decided steps that ran at all (the others were up to date)."""

    def __init__(self, board: Any, pipeline: str, steps: list[str]) -> None:
        self.board, self.steps = board, list(steps)
        self.running: dict[str, float] = {}
        self.resumed: set[str] = set()
        self.said_last: dict[str, str] = {}
        self.took: list[float] = []
        self.decided = 0
        self.row = board.add_row(f"make {pipeline}", total=len(steps), eta=self.eta, status="")

    def started(self, name: str) -> None:
        self.running[name] = time.monotonic()
        self.board.open_step(name, status=self._status(name))
        self._overall()

    def said(self, name: str | None, line: str) -> None:
        """A step's latest output line, or a notice (`name` None) that may say a step resumes."""
        if line.startswith("note: resuming "):
            for step in sorted(self.steps, key=len, reverse=True):
                if line.startswith(f"note: resuming {step} "):
                    self.resumed.add(step)
                    name = step
                    break
        elif name is not None:
            self.said_last[name] = line
        if name is not None and name in self.board.steps:
            self.board.set_row(self.board.steps[name], status=self._status(name))

    def finished(self, result: StepResult) -> list[Any]:
        """The step's rows leave the display; returns those to print (kept with `leave`)."""
        name = result.name
        channel.finish(name)
        kept = self.board.close_step(name)
        self.running.pop(name, None)
        self.decided += 1
        if result.outcome in lines.TIMED:
            self.took.append(result.seconds)
        self.board.set_row(self.row, advance=1)
        self._overall()
        return kept

    def close(self) -> None:
        for name in list(self.board.steps):
            self.board.close_step(name)
        self.board.drop(self.row)

    def eta(self) -> float | None:
        """Seconds the make has left, by time (see the class docstring); None: no idea yet."""
        now, running = time.monotonic(), dict(self.running)
        fractions = {name: self.board.fraction(name) for name in running}
        whole = [(now - running[n]) / f for n, f in fractions.items() if f]  # their full time
        typical = self.took + whole
        mean = sum(typical) / len(typical) if typical else None
        left = 0.0
        for name, since in running.items():
            elapsed, fraction = now - since, fractions[name]
            if fraction:
                left = max(left, elapsed / fraction - elapsed)
            elif mean is not None:
                left = max(left, mean - elapsed)
            else:
                return None
        waiting = len(self.steps) - self.decided - len(running)
        if waiting > 0:
            if mean is None:
                return None
            share = len(self.took) / self.decided if self.took else 1.0
            left += waiting * share * mean / max(1, len(running))
        return max(left, 0.0)

    def _status(self, name: str) -> str:
        said = self.said_last.get(name, "")
        return f"↻ resumed  {said}".strip() if name in self.resumed else said

    def _overall(self) -> None:
        names = list(self.running)
        status = ", ".join(names[:3]) + (f" +{len(names) - 3}" if len(names) > 3 else "")
        self.board.set_row(self.row, status=f"▶ {status}" if names else "")


class WarningsReporter(Reporter):
    """Shows warnings only: for commands whose output is something else (`tipi status`), and
    for `tipi make -q`, whose progress bars and lines it silences while the make runs."""

    def __init__(self, console: Console | None = None) -> None:
        self.console = console or Console(stderr=True)

    def run_started(self, pipeline: str, steps: list[str]) -> None:
        silence(True)

    def run_finished(self, summary: RunSummary) -> None:
        silence(False)

    def warning(self, message: str) -> None:
        self.console.print(
            f"[yellow]warning:[/] {escape(shown_text(message, True))}", highlight=False
        )


def _markup(text: str, style: str) -> str:
    """A span of lines.py as Rich markup (a reason may quote a path: escaped, not obeyed)."""
    return f"[{style}]{escape(printable(text))}[/]"
