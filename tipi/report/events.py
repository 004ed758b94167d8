"""The events a run emits, a summary of a finished run, and two plain reporters."""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from typing import Any, Literal

Outcome = Literal["ran", "restored", "skipped", "failed", "not run", "would run"]


@dataclass(frozen=True)
class StepResult:
    """What happened to one step in a run."""

    name: str
    outcome: Outcome
    seconds: float = 0.0
    reasons: tuple[str, ...] = ()
    error: str | None = None


@dataclass
class RunSummary:
    """Every step's result, in the order they were decided, and the wall time of the run."""

    pipeline: str
    results: list[StepResult] = field(default_factory=list)
    seconds: float = 0.0
    interrupted: bool = False
    dry_run: bool = False
    # Stopped by an error outside its steps (an executor that could not start or was lost):
    # the error says why, so the steps it never tried are not listed as "not run".
    stopped: bool = False

    def of(self, outcome: Outcome) -> list[StepResult]:
        return [r for r in self.results if r.outcome == outcome]

    @property
    def ok(self) -> bool:
        return not self.of("failed") and not self.interrupted and not self.stopped


class Reporter:
    """Receives a run's events. Every method is a no-op here; override what you show."""

    def run_started(self, pipeline: str, steps: list[str]) -> None:
        """The run begins; `steps` are the steps it will consider, in order."""

    def step_started(self, name: str) -> None:
        """A step's execute() is about to be called."""

    def step_finished(self, result: StepResult) -> None:
        """A step ran, was skipped, failed or was not run (see `result.outcome`)."""

    def step_progress(self, name: str, line: str) -> None:
        """The latest line a step running in a worker printed (for a live status)."""

    def step_output(self, name: str, text: str) -> None:
        """What a step running in another process printed: a worker's whole output when the
        step ends (so parallel steps do not interleave), or torchrun's lines as they come."""

    def permanence_initializing(self, name: str) -> None:
        """A permanence is being initialized on its first use."""

    def warning(self, message: str) -> None:
        """Something went wrong that does not stop the run (a cleanup failed, ...)."""

    def notice(self, message: str) -> None:
        """Something a person should know while waiting (another make holds the lock, ...)."""

    def run_finished(self, summary: RunSummary) -> None:
        """The run ended, successfully or not."""


class NullReporter(Reporter):
    """Shows nothing."""


class ListReporter(Reporter):
    """Records every event as a (name, payload) tuple: for tests and programmatic callers."""

    def __init__(self) -> None:
        self.events: list[tuple[str, Any]] = []

    def run_started(self, pipeline: str, steps: list[str]) -> None:
        self.events.append(("run_started", (pipeline, steps)))

    def step_started(self, name: str) -> None:
        self.events.append(("step_started", name))

    def step_finished(self, result: StepResult) -> None:
        self.events.append(("step_finished", result))

    def step_output(self, name: str, text: str) -> None:
        self.events.append(("step_output", (name, text)))

    def permanence_initializing(self, name: str) -> None:
        self.events.append(("permanence_initializing", name))

    def warning(self, message: str) -> None:
        self.events.append(("warning", message))

    def notice(self, message: str) -> None:
        self.events.append(("notice", message))

    def run_finished(self, summary: RunSummary) -> None:
        self.events.append(("run_finished", summary))


class PlainReporter(Reporter):
    """Warnings and notices as plain lines on stderr: for a step running in a worker, whose
    output the driver collects and shows when the step ends."""

    def __init__(self, step: str) -> None:
        self.step = step

    def warning(self, message: str) -> None:
        sys.stderr.write(f"warning: {message}\n")

    def notice(self, message: str) -> None:
        sys.stderr.write(f"note: {message}\n")
