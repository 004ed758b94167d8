"""What changed between two runs: the params and the metrics that differ, old → new.

Runs are compared step by step, over the steps both considered: a make of one target says
nothing about the steps it left out. A param or metric one of those steps has in one run only
(a param added to its class, a metric added to its file) is a change from or to None.
Permanences' params count as params, named `permanences.NAME.PARAM` (as `--set` names them).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from tipi.runs.record import RunRecord, flat_params, is_number


@dataclass(frozen=True)
class Change:
    """One param or metric whose value differs: `old` → `new` (None: not in that run)."""

    key: str
    old: Any
    new: Any

    @property
    def delta(self) -> float | None:
        """new - old, when both are numbers."""
        if is_number(self.old) and is_number(self.new):
            return self.new - self.old
        return None


@dataclass(frozen=True)
class RunDiff:
    """The changes from run `old` to run `new`."""

    old: RunRecord
    new: RunRecord
    params: list[Change]
    metrics: list[Change]

    def to_json(self) -> dict[str, Any]:
        """`{"params": {"train.lr": [old, new]}, "metrics": {"evaluate.accuracy": [...]}}`."""
        return {
            "params": {c.key: [c.old, c.new] for c in self.params},
            "metrics": {c.key: [c.old, c.new] for c in self.metrics},
        }


def diff_runs(old: RunRecord, new: RunRecord) -> RunDiff:
    """The params (permanences' included) and metrics that differ from `old` to `new`."""
    return RunDiff(old, new, param_changes(old, new), metric_changes(old, new))


def param_changes(old: RunRecord, new: RunRecord) -> list[Change]:
    """The params that differ, over the steps both runs considered, then the permanences'."""
    changes: list[Change] = []
    for name, step in new.steps.items():
        before = old.steps.get(name)
        if before is None or _flat_same(before.params, step.params):
            continue
        changes += _changes(flat_params(name, before.params), flat_params(name, step.params))
    return changes + _permanence_changes(old, new)


def _flat_same(old: dict[str, Any], new: dict[str, Any]) -> bool:
    """Params with no table whose values are equal and of one type each: no change, known
    without flattening them (most steps of two runs of a pipeline; a table: False)."""
    return old == new and all(
        type(value) is type(new[key]) and type(value) is not dict for key, value in old.items()
    )


def metric_changes(old: RunRecord, new: RunRecord) -> list[Change]:
    """The metrics that differ, over the steps that measured something in both runs."""
    shared = [
        name
        for name, step in new.steps.items()
        if step.metrics and name in old.steps and old.steps[name].metrics
    ]
    return [
        change
        for name in shared
        for change in _changes(
            {f"{name}.{k}": v for k, v in old.steps[name].metrics.items()},
            {f"{name}.{k}": v for k, v in new.steps[name].metrics.items()},
        )
    ]


def _permanence_changes(old: RunRecord, new: RunRecord) -> list[Change]:
    """Params of the permanences both runs' steps used."""
    before, after = old.permanences(), new.permanences()
    return [
        change
        for name in after
        if name in before
        for change in _changes(
            flat_params(f"permanences.{name}", before[name]),
            flat_params(f"permanences.{name}", after[name]),
        )
    ]


def _changes(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[Change]:
    keys = [*new, *(k for k in old if k not in new)]
    return [
        Change(key, old.get(key), new.get(key))
        for key in keys
        if not _same(old.get(key), new.get(key)) or (key in old) != (key in new)
    ]


def _same(a: Any, b: Any) -> bool:
    """Equal as values (1 and 1.0 are; True and 1 are not)."""
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    return bool(a == b)


def changed_since(previous: RunRecord | None, record: RunRecord) -> list[Change]:
    """The params `record` changed from `previous` (the run of its pipeline before it)."""
    return [] if previous is None else param_changes(previous, record)


def fold_changes(changes: list[Change]) -> list[Change]:
    """The same change of one param in several instances of a step matrix (`--set
    train.epochs=3` over 50 instances) as one, `train ×50.epochs`, in the place of the first:
    what `tipi diff` shows (`--json` keeps every key). Changes that differ stay apart."""
    from tipi.report.groups import instance_key

    found: dict[tuple[str, str | None], list[Change]] = {}
    for change in changes:
        found.setdefault(instance_key(change.key) or (change.key, None), []).append(change)
    out: list[Change] = []
    for (base, key), alike in found.items():
        first = alike[0]
        if key is not None and len(alike) > 1 and all(_same_change(first, c) for c in alike):
            out.append(Change(f"{base} ×{len(alike)}.{key}", first.old, first.new))
        else:
            out += alike
    return out


def _same_change(a: Change, b: Change) -> bool:
    return _same(a.old, b.old) and _same(a.new, b.new)
