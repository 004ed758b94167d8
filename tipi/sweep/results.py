"""A sweep's results: each variant's params and metrics, as a Rich table, JSON and CSV.

Metrics are the numbers in the JSON outputs of the swept steps, named `step.key`
(`evaluate.accuracy`, `train.best_score`); nested tables give `step.a.b`, lists are left out.
"""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.table import Table

from tipi.atomic import atomic_path, atomic_write
from tipi.sweep.folds import FoldGroup, fold_groups, mean_std

MAX_COLUMNS = 3


@dataclass
class VariantResult:
    """One variant: what it was given, how its make went, what it measured."""

    name: str
    params: dict[str, Any]
    status: str = "pending"  # ran | restored | up to date | failed | interrupted | would run
    seconds: float = 0.0
    metrics: dict[str, float] = field(default_factory=dict)
    error: str = ""
    folder: str = ""
    test_metrics: list[str] = field(default_factory=list)  # measured on the test split

    def to_json(self) -> dict[str, Any]:
        return {
            "variant": self.name,
            "status": self.status,
            "seconds": round(self.seconds, 3),
            "params": self.params,
            "metrics": self.metrics,
            "test_metrics": self.test_metrics,
            "folder": self.folder,
            **({"error": self.error} if self.error else {}),
        }


def collect_metrics(
    outputs: Mapping[str, Iterable[Path]], test_split: set[str] | None = None
) -> dict[str, float]:
    """The numbers in each step's JSON outputs: step name → its output paths. The names of
    those from a document that says `"part": "test"` (Evaluate's) are added to `test_split`."""
    metrics: dict[str, float] = {}
    for step, paths in outputs.items():
        for path in paths:
            if path.suffix != ".json" or not path.is_file():
                continue
            try:
                data = json.loads(path.read_text())
            except (OSError, ValueError):
                continue
            found: dict[str, float] = {}
            _flatten(data, step, found)
            metrics.update(found)
            if test_split is not None and isinstance(data, dict) and data.get("part") == "test":
                test_split.update(found)
    return metrics


def _flatten(data: Any, prefix: str, into: dict[str, float]) -> None:
    if isinstance(data, dict):
        for key, value in data.items():
            _flatten(value, f"{prefix}.{key}", into)
    elif isinstance(data, int | float) and not isinstance(data, bool):
        into[prefix] = data


@dataclass
class SweepResults:
    """All variants of one sweep run, and which is best by the sweep's metric."""

    pipeline: str
    sweep: str
    method: str
    metric: str = ""
    goal: str = "minimize"
    variants: list[VariantResult] = field(default_factory=list)
    fold_key: str = ""  # a folds sweep: the swept `NAME.fold`; results add mean ± std

    def metric_key(self) -> str:
        """The sweep's metric as named in the results: exact, else the one metric that ends
        with `.NAME` (so W&B-style `accuracy` finds `evaluate.accuracy`)."""
        if not self.metric:
            return ""
        names = {k for v in self.variants for k in v.metrics}
        if self.metric in names:
            return self.metric
        matches = sorted(n for n in names if n.endswith(f".{self.metric}"))
        return matches[0] if len(matches) == 1 else self.metric

    def on_test_split(self, name: str) -> bool:
        """True when metric `name` was measured on the test split: choosing by it would let
        the test set pick the model, and its figure would no longer estimate new data."""
        return any(name in v.test_metrics for v in self.variants)

    def best(self) -> VariantResult | None:
        """The best variant by the metric; none in a folds sweep (see `best_group`)."""
        key = self.metric_key()
        if self.fold_key:
            return None
        scored = [v for v in self.variants if key and _finite(v.metrics.get(key))]
        if not scored:
            return None
        pick = max if self.goal == "maximize" else min
        return pick(scored, key=lambda v: v.metrics[key])

    def groups(self) -> list[FoldGroup]:
        """A folds sweep's settings with their mean ± std across folds ([] otherwise)."""
        return fold_groups(self.variants, self.fold_key) if self.fold_key else []

    def best_group(self, groups: Sequence[FoldGroup]) -> FoldGroup | None:
        """The setting with the best mean, when a folds sweep compares several."""
        key = self.metric_key()
        scored = [g for g in groups if key and _finite(g.metrics.get(key, {}).get("mean"))]
        if len(groups) < 2 or not scored:
            return None
        pick = max if self.goal == "maximize" else min
        return pick(scored, key=lambda g: g.metrics[key]["mean"])

    def columns(self, wanted: Sequence[str] = ()) -> list[str]:
        """Metric columns for the table: those asked for, else the sweep's metric and then
        the metrics that differ between variants (the others say nothing about the sweep)."""
        names = sorted({k for v in self.variants for k in v.metrics})
        if wanted:
            return [n for w in wanted for n in names if n == w or n.endswith(f".{w}")]
        varying = [
            n for n in names if len({v.metrics.get(n) for v in self.variants if v.metrics}) > 1
        ]
        key = self.metric_key()
        first = [key] if key in names else []
        return (first + [n for n in varying if n != key])[:MAX_COLUMNS]

    def table(self, wanted: Sequence[str] = ()) -> Table:
        """Variants (their names say their swept params), status, the main metrics and
        time; every param and metric is in the JSON and CSV files."""
        metrics = self.columns(wanted)
        best = self.best()
        title = f"sweep {self.sweep} of {self.pipeline}: {len(self.variants)} variant(s)"
        groups = self.groups()
        chosen = self.best_group(groups)
        if best is not None:
            title += f", best {best.name} ({self.metric_key()} {self.goal[:3]})"
        elif chosen is not None:
            title += f", best {chosen.name} ({self.metric_key()} mean, {self.goal[:3]})"
        table = Table(title=title, title_justify="left")
        table.add_column("variant", style="cyan", no_wrap=True)
        table.add_column("status", no_wrap=True)
        for name in metrics:
            label = f"{name} (test)" if self.on_test_split(name) else name
            table.add_column(label, justify="right", style="green")
        table.add_column("time", justify="right")
        for variant in self.variants:
            marker = " ★" if variant is best else ""
            table.add_row(
                variant.name + marker,
                variant.status,
                *(_cell(variant.metrics.get(m)) for m in metrics),
                f"{variant.seconds:.1f}s",
            )
        if groups:
            table.add_section()
        for group in groups:
            marker = " ★" if group is chosen else ""
            table.add_row(
                f"{group.name}: mean ± std{marker}",
                f"{len(group.variants)} folds",
                *(mean_std(group.metrics.get(m)) for m in metrics),
                "",
                style="bold",
            )
        return table

    def to_json(self) -> dict[str, Any]:
        best = self.best()
        return {
            "pipeline": self.pipeline,
            "sweep": self.sweep,
            "method": self.method,
            "metric": {"name": self.metric_key(), "goal": self.goal} if self.metric else None,
            "best": best.name if best is not None else None,
            "variants": [v.to_json() for v in self.variants],
            **({"folds": self._folds_json()} if self.fold_key else {}),
        }

    def _folds_json(self) -> dict[str, Any]:
        groups = self.groups()
        chosen = self.best_group(groups)
        return {
            "key": self.fold_key,
            "k": len(dict.fromkeys(v.params.get(self.fold_key) for v in self.variants)),
            "groups": [g.to_json() for g in groups],
            "best": chosen.name if chosen is not None else None,
        }

    def write(self, folder: Path) -> list[Path]:
        """`results.json` and `results.csv` in `folder`, each replaced whole (never half
        written, even when the sweep is interrupted)."""
        folder.mkdir(parents=True, exist_ok=True)
        json_file, csv_file = folder / "results.json", folder / "results.csv"
        atomic_write(json_file, json.dumps(self.to_json(), indent=2) + "\n")
        params = list(dict.fromkeys(k for v in self.variants for k in v.params))
        metrics = sorted({k for v in self.variants for k in v.metrics})
        rows = [["variant", "status", "seconds", *params, *metrics]]
        for v in self.variants:
            rows.append(
                [
                    v.name,
                    v.status,
                    f"{v.seconds:.3f}",
                    *(_csv(v.params.get(p)) for p in params),
                    *(_csv(v.metrics.get(m)) for m in metrics),
                ]
            )
        for group in self.groups():  # a folds sweep: a mean and a std row per setting
            for stat in ("mean", "std"):
                cells = [_csv(group.metrics.get(m, {}).get(stat)) for m in metrics]
                rows.append([f"{group.name} {stat}", stat, "", *([""] * len(params)), *cells])
        with atomic_path(csv_file) as tmp, tmp.open("w", newline="", encoding="utf-8") as handle:
            csv.writer(handle).writerows(rows)
        return [json_file, csv_file]


def _finite(value: float | None) -> bool:
    return value is not None and math.isfinite(value)


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def _csv(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, list | dict):
        return json.dumps(value)
    return str(value)
