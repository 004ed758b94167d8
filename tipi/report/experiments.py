"""What the report shows of a pipeline's experiments, as data: the runs table (`tipi runs`)
and one view per run (its curves, figures, params and metrics), the view of the outputs in
place, and a view that overlays several runs.

The CLI fills it (tipi/cli/experiments.py reads the run records and the loggers' folders);
tipi/report/runs_html.py draws it. Nothing here reads a file.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

# How a logged metric names its data split: `train_loss`, `loss/val`, `val.accuracy`...
SPLITS = {
    "train": "train",
    "training": "train",
    "val": "val",
    "valid": "val",
    "validation": "val",
    "test": "test",
    "eval": "test",
}
SPLIT_ORDER = ("train", "val", "test", "")
IN_PLACE = "in-place"  # the id of the view of the outputs in place
COMPARE = "compare"  # the id of the view that overlays runs


@dataclass(frozen=True)
class Curve:
    """One scalar a step logged during a run, over its epochs (or global steps)."""

    metric: str
    step: str
    x_label: str
    points: tuple[tuple[float, float], ...]

    @property
    def family(self) -> str:
        return split_name(self.metric)[0]

    @property
    def split(self) -> str:
        return split_name(self.metric)[1]


@dataclass(frozen=True)
class Figure:
    """An image a step logged (the confusion matrix...): PNG bytes, as a data URI."""

    name: str
    step: str
    uri: str


@dataclass
class RunView:
    """What one choice of the run picker shows.

    Attributes:
        id: the run's id, or IN_PLACE / COMPARE.
        title: what the picker and the heading say.
        curves: by run id: the curves of the run (several runs in the COMPARE view).
        figures: images, newest of each name.
        confusion: a confusion matrix read from an output, drawn as a heat map when no
            figure shows one.
        params, metrics: flat (`step.param`, `step.metric`); in the COMPARE view, by run id.
        notes: where the curves come from when the run did not make them (a step restored
            from the run cache shows the curves of the run that ran it).
        runs: the runs it shows (rows of the runs table to mark).
    """

    id: str
    title: str
    runs: list[str] = field(default_factory=list)
    curves: dict[str, list[Curve]] = field(default_factory=dict)
    figures: list[Figure] = field(default_factory=list)
    confusion: list[list[float]] | None = None
    params: dict[str, dict[str, Any]] = field(default_factory=dict)
    metrics: dict[str, dict[str, float]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class RunRow:
    """A row of the runs table, as `tipi runs` shows it."""

    id: str
    when: str
    status: str
    commit: str
    ran: str
    changed: str
    metrics: str


@dataclass
class Experiments:
    """The runs table, the views in picker order, and which one shows first."""

    rows: list[RunRow] = field(default_factory=list)
    views: list[RunView] = field(default_factory=list)
    selected: str = ""
    notes: list[str] = field(default_factory=list)

    def view(self, view_id: str) -> RunView:
        return next(v for v in self.views if v.id == view_id)


def split_name(metric: str) -> tuple[str, str]:
    """(the metric, its split): `val_loss` → (loss, val), `loss/train` → (loss, train),
    `lr` → (lr, "")."""
    for sep in ("_", "/", "."):
        head, found, tail = metric.partition(sep)
        if found and tail and head.lower() in SPLITS:
            return tail, SPLITS[head.lower()]
        head, found, tail = metric.rpartition(sep)
        if found and head and tail.lower() in SPLITS:
            return head, SPLITS[tail.lower()]
    return metric, ""


def families(curves: list[Curve]) -> dict[str, list[Curve]]:
    """The curves by metric family, each family's splits in SPLIT_ORDER: what one chart
    overlays. Families keep the order their first curve came in."""
    found: dict[str, list[Curve]] = {}
    for curve in curves:
        found.setdefault(curve.family, []).append(curve)
    for group in found.values():
        group.sort(key=lambda c: SPLIT_ORDER.index(c.split))
    return found
