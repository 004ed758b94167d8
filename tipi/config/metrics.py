"""A step's `metrics`: the JSON files of numbers it writes, which tipi records with each run.

    metrics = { scores = "out/{pipeline}/{name}/scores.json" }

A metrics file is an output of the step (as DVC has it): an entry whose path is one of the
step's `outputs` names that output; any other is added to its outputs under its name, which
(like `outputs`) replaces the path of an output of that name the class declares. A class marks
its own metrics outputs with `metrics_outputs = ("name", ...)` (Evaluate, Train).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from tipi.errors import ConfigError, Location


def declare_metrics(
    metrics: Mapping[str, str], outputs: Mapping[str, str], locate: Callable[[str], Location]
) -> tuple[dict[str, str], tuple[str, ...]]:
    """The step's outputs with its metrics files added, and the names of those outputs.

    Args:
        metrics: the step's `metrics` table (name → path template).
        outputs: its `outputs` table.
        locate: where a key of the `metrics` table was written.

    Raises:
        ConfigError: a metrics entry names an output of another path.
    """
    merged = dict(outputs)
    names: list[str] = []
    for name, path in metrics.items():
        same = next((n for n, p in outputs.items() if p == path), None)
        if name in outputs and outputs[name] != path:
            raise ConfigError(
                f"metrics '{name}' is {path!r} but output '{name}' is {outputs[name]!r}",
                hint="a metrics file is an output: give it the output's path, or another name",
                location=locate(name),
            )
        if same is None:
            merged[name] = path
        names.append(same or name)
    return merged, tuple(dict.fromkeys(names))


def metrics_of(cls: Any, declared: tuple[str, ...], outputs: Mapping[str, Any]) -> dict[str, Any]:
    """name → path of a step's metrics outputs: those its class marks (`metrics_outputs`),
    then those its TOML declares; names that are not outputs are left out."""
    names = (*getattr(cls, "metrics_outputs", ()), *declared)
    return {name: outputs[name] for name in dict.fromkeys(names) if name in outputs}
