"""What `status`, `graph` and `report` show: each step's state, reasons and last run, as data."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

STATES = ("up-to-date", "will-run", "failed", "never-run")
# One palette for every picture tipi draws: (fill, stroke) per state.
STATE_COLORS = {
    "up-to-date": ("#d7f0dd", "#2e7d32"),
    "will-run": ("#d6e6ff", "#1565c0"),
    "failed": ("#fbd9dc", "#c62828"),
    "never-run": ("#eeeeee", "#757575"),
}
STATE_MARKS = {"up-to-date": "✔", "will-run": "→", "failed": "✘", "never-run": "○"}


@dataclass(frozen=True)
class StepView:
    """One step as the user sees it."""

    name: str
    type: str
    state: str
    reasons: tuple[str, ...]
    inputs: tuple[str, ...] = ()
    outputs: tuple[str, ...] = ()
    last_run: float | None = None
    duration: float | None = None
    error: str | None = None

    @property
    def first_reason(self) -> str:
        return self.reasons[0] if self.reasons and self.state != "up-to-date" else ""


@dataclass(frozen=True)
class PipelineView:
    """The pipeline's steps in topological order and its edges (producer, consumer)."""

    pipeline: str
    steps: tuple[StepView, ...]
    edges: tuple[tuple[str, str], ...]
    metrics: dict[str, list[dict[str, Any]]] = field(default_factory=dict)

    def step(self, name: str) -> StepView:
        return next(s for s in self.steps if s.name == name)
