"""Compare: two or more models on one test split; per pair the metric difference with a paired
bootstrap 95% interval and McNemar's exact p-value (comparison.json, a table, a figure).
Arms of models gathered over a matrix key (seeds) are compared over the seeds: compare_seeds.py."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any, Literal

from rich.table import Table

from tipi.config.instances import format_value, split_instance
from tipi.process import PipelineProcess
from tipi.processes.checks import param_error
from tipi.processes.compare_seeds import compare_seeds, seeds_table, verdicts
from tipi.processes.data import load_splits
from tipi.processes.evaluation import _predict
from tipi.processes.stats import ALPHA, METRICS, compare
from tipi.report.live import console

Metric = Literal["accuracy", "precision_macro", "recall_macro", "f1_macro"]
_INDEXED = re.compile(r"^(?P<name>.+)\[(?P<index>\d+)\]$")


class Compare(PipelineProcess):
    """Is model B really better than model A? Scores every model on the same split.

    Inputs: `data` (splits) and the models, as a list (`models = ["a.pt", "b.pt"]`) or one
    named input each (`a = "a.pt"`, `b = "b.pt"`: the names label them). Output: `comparison`
    (JSON: each model's metrics and per-class accuracy; per pair `b - a` for accuracy and
    `metric`, its percentile bootstrap 95% interval over `n_boot` paired resamples drawn with
    `seed`, and McNemar's exact p-value). A per-class accuracy figure goes to `loggers`.

    Over seeds: inputs that gather a matrix key (`a = "out/p/a/{seed}/best.pt"` in a step
    without `seed`) are arms, paired by the gathered value; the report then holds each seed's
    comparison and, per pair of arms, the mean per-seed difference with a t-interval, the
    paired t-test, Wilcoxon's exact p and the pooled bootstrap (compare_seeds.py). `data`
    may be gathered too (one split per seed).
    """

    outputs = {"comparison": "out/{pipeline}/{name}/comparison.json"}
    metrics_outputs = ("comparison",)

    def __init__(
        self,
        controller: Any,
        force: bool = False,
        model: str | list[str] = "net",
        device: str = "device",
        loggers: str = "",
        part: str = "test",
        metric: Metric = "f1_macro",
        n_boot: int = 1000,
        seed: int = 0,
        names: list[str] | None = None,
        num_classes: int = 10,
    ) -> None:
        super().__init__(controller, force)
        self.model_name, self.device_name, self.loggers_name = model, device, loggers
        self.part, self.metric, self.n_boot, self.seed = part, metric, n_boot, seed
        self.names, self.num_classes = names, num_classes

    def execute(self) -> None:
        arms = self._arms()
        if arms is not None:
            self._over_seeds(*arms)
            return
        models = self._models()
        splits = load_splits(self.inputs["data"])
        if self.part not in splits:
            raise param_error(self.name, "part", f"no part {self.part!r} in {sorted(splits)}")
        predictions, labels = {}, None
        for (label, path), network in zip(models.items(), self._networks(len(models)), strict=True):
            predicted, labels = _predict(
                self.controller, network, self.device_name, path, splits[self.part]
            )
            predictions[label] = predicted.numpy()
        assert labels is not None
        report = compare(
            labels.numpy(), predictions, self.num_classes, self.metric, self.n_boot, self.seed
        )
        report = {"part": self.part, "samples": len(labels), **report}
        self.outputs["comparison"].write_text(json.dumps(report, indent=2))
        console().print(comparison_table(report))
        if self.loggers_name:
            loggers = self.controller.get_permanence(self.loggers_name)
            loggers.log_figure("per_class_accuracy", per_class_figure(report))

    def _arms(self) -> tuple[str, dict[str, dict[object, Path]]] | None:
        """(the gathered key, arm label → {value: weights}), or None when no model input is
        gathered. Refuses arms that cannot be paired, naming the values one arm lacks."""
        gathered = {k: v for k, v in self.input_values.items() if k != "data"}
        if not gathered:
            if "data" in self.input_values:
                raise param_error(
                    self.name,
                    "inputs",
                    "'data' is one split per matrix value, but no model input is: gather the "
                    'models too (a = "out/p/a/{seed}/best.pt") or give one data file',
                    section="inputs",
                )
            return None
        plain = [k for k in self.inputs if k != "data" and "[" not in k]
        listed = [k for k in self.input_lists if k not in gathered and k != "data"]
        if plain or listed:
            raise param_error(
                self.name,
                "inputs",
                f"{', '.join(plain + listed)} names one model, {', '.join(gathered)} a model "
                "per matrix value: over seeds every arm is a gathered input",
                section="inputs",
            )
        first = next(k for k in self.inputs if k.partition("[")[0] in gathered)
        key = ",".join(split_instance(first)[1])
        labels = list(gathered)
        if self.names is not None:
            if len(self.names) != len(labels) or len(set(self.names)) != len(self.names):
                raise param_error(
                    self.name, "names", f"needs {len(labels)} distinct names, one per arm"
                )
            labels = list(self.names)
        if len(labels) < 2:
            raise param_error(
                self.name, "inputs", "Compare over seeds needs two or more arms", section="inputs"
            )
        values = list(dict.fromkeys(v for arm in gathered.values() for v in arm))
        for name, arm in [*gathered.items(), *(("data", self.input_values.get("data")),)]:
            missing = [v for v in values if arm is not None and v not in arm]
            if missing:
                has = ", ".join(_text(key, v) for v in arm)  # type: ignore[union-attr]
                raise param_error(
                    self.name,
                    "inputs",
                    f"cannot pair the arms by {key}: '{name}' has no model for "
                    f"{', '.join(_text(key, v) for v in missing)} (it has {has})"
                    if name != "data"
                    else f"cannot pair the arms by {key}: 'data' has no split for "
                    f"{', '.join(_text(key, v) for v in missing)}",
                    section="inputs",
                )
        if self.n_boot < 1:
            raise param_error(self.name, "n_boot", f"must be at least 1, not {self.n_boot}")
        arms = {
            label: {v: arm[v] for v in values}
            for label, arm in zip(labels, gathered.values(), strict=True)
        }
        return key, arms

    def _over_seeds(self, key: str, arms: dict[str, dict[object, Path]]) -> None:
        values = list(next(iter(arms.values())))
        data = self.input_values.get("data") or dict.fromkeys(values, self.inputs["data"])
        splits_of: dict[Path, Any] = {}
        labels: dict[str, Any] = {}
        predictions: dict[str, dict[str, Any]] = {label: {} for label in arms}
        networks = self._networks(len(arms))
        for value in values:
            text = format_value(value) if "," not in key else _text(key, value)
            if data[value] not in splits_of:  # one split shared by every seed: read once
                splits_of[data[value]] = load_splits(data[value])
            splits = splits_of[data[value]]
            if self.part not in splits:
                raise param_error(self.name, "part", f"no part {self.part!r} in {sorted(splits)}")
            for (label, arm), network in zip(arms.items(), networks, strict=True):
                predicted, truth = _predict(
                    self.controller, network, self.device_name, arm[value], splits[self.part]
                )
                predictions[label][text] = predicted.numpy()
                labels[text] = truth.numpy()
        report = compare_seeds(
            labels, predictions, self.num_classes, self.metric, self.n_boot, self.seed
        )
        sizes = sorted({len(found) for found in labels.values()})
        report = {
            "part": self.part,
            "samples": sizes[0] if len(sizes) == 1 else sizes,
            "paired_by": key.split(","),
            **report,
        }
        self.outputs["comparison"].write_text(json.dumps(report, indent=2))
        console().print(seeds_table(report))
        for line in verdicts(report):
            console().print(f"{self.name}: {line}", highlight=False)

    def _models(self) -> dict[str, Path]:
        """label → weights, in the order the inputs declare them."""
        listed: list[tuple[str, int, Path]] = []
        named: dict[str, Path] = {}
        for key, path in self.inputs.items():
            match = _INDEXED.match(key)
            if match:
                listed.append((match["name"], int(match["index"]), path))
            elif key != "data":
                named[key] = path
        paths = [path for *_, path in sorted(listed)] + list(named.values())
        labels = [_label(path, paths) for *_, path in sorted(listed)] + list(named)
        if self.names is not None:
            if len(self.names) != len(paths) or len(set(self.names)) != len(self.names):
                raise param_error(
                    self.name, "names", f"needs {len(paths)} distinct names, one per model"
                )
            labels = list(self.names)
        if len(paths) < 2:
            raise param_error(
                self.name,
                "inputs",
                f"Compare needs two or more models, found {len(paths)}",
                section="inputs",
            )
        if len(set(labels)) != len(labels):
            labels = [f"{i}:{label}" for i, label in enumerate(labels)]
        if self.n_boot < 1:
            raise param_error(self.name, "n_boot", f"must be at least 1, not {self.n_boot}")
        return dict(zip(labels, paths, strict=True))

    def _networks(self, count: int) -> list[str]:
        if isinstance(self.model_name, str):
            return [self.model_name] * count
        if len(self.model_name) != count:
            raise param_error(
                self.name, "model", f"names {len(self.model_name)} networks for {count} models"
            )
        return list(self.model_name)


def comparison_table(report: dict[str, Any]) -> Table:
    """Each model's metrics, then each pair's difference, interval and p-value."""
    samples = report.get("samples", "")
    table = Table(title=f"comparison on {report.get('part', 'test')} ({samples} samples)")
    table.add_column("model", style="cyan", no_wrap=True)
    for name in METRICS:
        table.add_column(name, justify="right")
    for label, found in report["models"].items():
        table.add_row(label, *(f"{found[m]:.4f}" for m in METRICS))
    table.add_section()
    notes = [
        "95% CI: paired bootstrap, every metric; McNemar p: accuracy only (it tests "
        "right/wrong outcomes)"
    ]
    for pair in report["pairs"]:
        if pair.get("agree") is False:
            low, high = pair["ci95"]
            says = "excludes 0" if low > 0 or high < 0 else "includes 0"
            notes.append(
                f"! {pair['b']} vs {pair['a']}, {pair['metric']}: the CI {says} but p = "
                f"{pair['mcnemar_p']:.3g} is {'above' if pair['mcnemar_p'] >= ALPHA else 'below'}"
                f" {ALPHA}: the two disagree, so the difference is not shown yet"
            )
    pairs = Table(
        title="b - a: paired bootstrap 95% CI, McNemar's exact p",
        caption="\n".join(notes),
        caption_justify="left",
    )
    for column in ("b vs a", "metric", "difference", "95% CI", "McNemar p"):
        pairs.add_column(column, justify="left" if column in ("b vs a", "metric") else "right")
    for pair in report["pairs"]:
        low, high = pair["ci95"]
        p = pair.get("mcnemar_p")
        pairs.add_row(
            f"{pair['b']} vs {pair['a']}",
            pair["metric"],
            f"{pair['difference']:+.4f}",
            f"[{low:+.4f}, {high:+.4f}]",
            "-" if p is None else f"{p:.3g}" + ("" if pair.get("agree", True) else " !"),
        )
    outer = Table.grid()
    outer.add_row(table)
    outer.add_row(pairs)
    return outer


def per_class_figure(report: dict[str, Any]) -> Any:
    """Per-class accuracy of every model, side by side (a matplotlib figure)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    models = report["models"]
    classes = max(len(m["per_class_accuracy"]) for m in models.values())
    width = 0.8 / len(models)
    figure, axes = plt.subplots(figsize=(max(5, classes * 0.6), 3.5))
    for i, (label, found) in enumerate(models.items()):
        values = [np.nan if v is None else v for v in found["per_class_accuracy"]]
        axes.bar(np.arange(len(values)) + i * width, values, width, label=label)
    axes.set_xticks(
        np.arange(classes) + width * (len(models) - 1) / 2, [str(c) for c in range(classes)]
    )
    axes.set_xlabel("class")
    axes.set_ylabel("accuracy")
    axes.set_ylim(0, 1.05)
    axes.set_title(f"per-class accuracy on {report.get('part', 'test')}")
    axes.legend(loc="lower right", fontsize=8)
    figure.tight_layout()
    return figure


def _label(path: Path, paths: list[Path]) -> str:
    """A model's default name: its folder (`out/p/head/model.pt` → head), else its stem."""
    if sum(p.parent == path.parent for p in paths) == 1:
        return path.parent.name
    return f"{path.parent.name}/{path.stem}"


def _text(key: str, value: object) -> str:
    """`seed=0` (or `seed=0,fold=1` for a tuple of values over several keys)."""
    keys = key.split(",")
    values = value if isinstance(value, tuple) else (value,)
    return ",".join(f"{k}={format_value(v)}" for k, v in zip(keys, values, strict=True))
