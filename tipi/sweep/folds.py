"""Cross-validation as a sweep: one variant per fold of the component that takes `folds`
and `fold` (the Data permanence, or a step of one's own), and mean ± std across folds."""

from __future__ import annotations

import inspect
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from tipi.errors import UsageError
from tipi.sweep.spec import Parameter, SweepSpec

FOLD_PARAMS = ("folds", "fold")


def with_folds(spec: SweepSpec, resolved: Any) -> SweepSpec:
    """`spec` with its fold keys added: `NAME.fold` takes 0..K-1 (the last key of the grid,
    so the folds of one setting run together) and `NAME.folds` is K in every variant.

    Raises:
        UsageError: no component takes `folds` and `fold`, several do and `fold_of` does
            not choose, or `fold_of` names one that does not.
    """
    target = fold_target(spec.fold_of, resolved)
    folds = Parameter(f"{target}.folds", "constant", (spec.folds,))
    fold = Parameter(f"{target}.fold", "categorical", tuple(range(spec.folds)))
    parameters = {
        **{k: p for k, p in spec.parameters.items() if k not in (folds.key, fold.key)},
        folds.key: folds,
        fold.key: fold,
    }
    return replace(spec, method="folds", parameters=parameters, fold_of=target)


def fold_target(chosen: str, resolved: Any) -> str:
    """The name of the permanence or step whose `folds` and `fold` a folds sweep sets."""
    components = {**resolved.permanences, **resolved.steps}
    takes = sorted(name for name, c in components.items() if _takes_folds(c.cls))
    if chosen:
        if chosen not in components:
            raise UsageError(
                f"fold_of names '{chosen}', which the pipeline does not declare",
                hint=f"components that take folds: {', '.join(takes) or 'none'}",
            )
        if chosen not in takes:
            raise UsageError(f"'{chosen}' takes no `folds` and `fold` params")
        return chosen
    if len(takes) == 1:
        return takes[0]
    if not takes:
        raise UsageError(
            "nothing in the pipeline takes `folds` and `fold` params",
            hint='declare a Data permanence (type = "Data") and let Train read it, or give '
            "a step of your own `folds` and `fold` params",
        )
    raise UsageError(
        f"several components take `folds` and `fold`: {', '.join(takes)}",
        hint='choose one with fold_of = "NAME" in a sweep file (method = "folds")',
    )


def _takes_folds(cls: type) -> bool:
    try:
        names = inspect.signature(cls.__init__).parameters
    except (TypeError, ValueError):
        return False
    return all(name in names for name in FOLD_PARAMS)


@dataclass
class FoldGroup:
    """The folds of one setting of the other swept params, and their mean ± std."""

    name: str
    params: dict[str, Any]
    variants: list[str] = field(default_factory=list)
    metrics: dict[str, dict[str, float]] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "params": self.params,
            "variants": self.variants,
            "metrics": self.metrics,
        }


def fold_groups(variants: Sequence[Any], fold_key: str) -> list[FoldGroup]:
    """Variants grouped by every swept param but the fold; per group and metric the mean,
    the sample standard deviation (n - 1; 0 for one fold) and n, over the folds that
    measured it (failed folds count in none)."""
    folds_key = fold_key[: -len("fold")] + "folds"
    varying = _varying(variants, {fold_key, folds_key})
    groups: dict[str, FoldGroup] = {}
    for variant in variants:
        params = {k: variant.params[k] for k in varying if k in variant.params}
        name = ",".join(f"{k.rsplit('.', 1)[-1]}={v}" for k, v in params.items()) or "all folds"
        group = groups.setdefault(name, FoldGroup(name, params))
        group.variants.append(variant.name)
    for group in groups.values():
        members = [v for v in variants if v.name in group.variants and v.status != "failed"]
        names = dict.fromkeys(k for v in members for k in v.metrics)
        for metric in names:
            values = [v.metrics[metric] for v in members if metric in v.metrics]
            group.metrics[metric] = {
                "mean": statistics.fmean(values),
                "std": statistics.stdev(values) if len(values) > 1 else 0.0,
                "n": len(values),
            }
    return list(groups.values())


def _varying(variants: Sequence[Any], left_out: set[str]) -> list[str]:
    keys = dict.fromkeys(k for v in variants for k in v.params if k not in left_out)
    return [k for k in keys if len({repr(v.params.get(k)) for v in variants}) > 1]


def mean_std(summary: Mapping[str, float] | None) -> str:
    """`0.9712 ± 0.0061` for a table cell; `-` when nothing was measured."""
    if not summary:
        return "-"
    return f"{summary['mean']:.4g} ± {summary['std']:.2g}"
