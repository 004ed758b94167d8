"""Train's nested params (optimizer groups, schedulers, the `until` rule, named components)
checked and normalized before anything is built: each mistake is one line naming the step and
the key (exit 2), never a traceback from deep inside torch."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from tipi.errors import ConfigError, Location
from tipi.suggest import did_you_mean

PRECISIONS = {
    "32": "32",
    "32-true": "32",
    "16": "16-mixed",
    "16-mixed": "16-mixed",
    "bf16": "bf16-mixed",
    "bf16-mixed": "bf16-mixed",
}
INTERVALS = ("epoch", "step")
UNTIL_MODES = ("stop", "gate")


def param_error(step: str, key: str, message: str, hint: str | None = None) -> ConfigError:
    """A ConfigError located at `processes.<step>.params.<key>` (the step and the key)."""
    return ConfigError(message, hint=hint, location=Location(key=f"processes.{step}.params.{key}"))


@dataclass(frozen=True)
class Named:
    """Something named in TOML: `"name"` or `{ name = "...", option = value, ... }`.

    Attributes:
        name: a built-in name or a `module:attr` path.
        options: the other keys (keyword arguments of what `name` names).
        key: where it was written (`loss`, `optimizers[1].scheduler`), for error messages.
    """

    name: str
    options: Mapping[str, Any] = field(default_factory=dict)
    key: str = ""


@dataclass(frozen=True)
class SchedulerSpec:
    """One optimizer's learning-rate scheduler: any `torch.optim.lr_scheduler` class."""

    named: Named
    interval: str = "epoch"  # "epoch": after each validation; "step": after each optimizer step
    monitor: str = "val_loss"  # what ReduceLROnPlateau watches


@dataclass(frozen=True)
class GroupSpec:
    """One optimizer over the parameters whose names match `patterns` (fnmatch)."""

    label: str
    patterns: tuple[str, ...]
    optimizer: Named  # options hold lr and the optimizer's other arguments
    scheduler: SchedulerSpec | None
    key: str


@dataclass(frozen=True)
class UntilRule:
    """The phase's threshold on `metric` (crossing `above` / `below`).

    `stop` ends the phase at the first crossing; `gate` trains the whole budget (`epochs`)
    and fails the phase (exit 1) if it never crossed; `stop` with `required` does both:
    it ends at the first crossing and fails when the budget comes first.
    """

    metric: str
    above: float | None
    below: float | None
    mode: str = "stop"
    required: bool = False

    @property
    def stops(self) -> bool:
        """Whether the first crossing ends the phase."""
        return self.mode == "stop"

    @property
    def must_cross(self) -> bool:
        """Whether a phase that never crosses fails."""
        return self.mode == "gate" or self.required

    def crossed(self, value: float) -> bool:
        if math.isnan(value):
            return False
        return value > self.above if self.above is not None else value < self.below  # type: ignore[operator]

    @property
    def side(self) -> str:
        return f"above {self.above}" if self.above is not None else f"below {self.below}"


def named(step: str, key: str, value: Any, default: str | None = None) -> Named:
    """`value` as a Named: a string, or a table with a `name` key."""
    if value is None and default is not None:
        return Named(default, {}, key)
    if isinstance(value, str) and value:
        return Named(value, {}, key)
    if isinstance(value, Mapping):
        options = dict(value)
        name = options.pop("name", default)
        if not isinstance(name, str) or not name:
            raise param_error(
                step, key, f"needs a `name` (found {dict(value)})", 'e.g. { name = "AdamW" }'
            )
        return Named(name, options, key)
    raise param_error(step, key, f"expected a name or a table with `name`, found {value!r}", None)


def _patterns(step: str, key: str, value: Any) -> tuple[str, ...]:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not value or not all(isinstance(p, str) and p for p in value):
        raise param_error(
            step,
            key,
            f"expected parameter name patterns (a list of strings), found {value!r}",
            'e.g. params = ["features.*"]',
        )
    return tuple(value)


def scheduler_spec(step: str, key: str, value: Any) -> SchedulerSpec | None:
    """The scheduler table of `key` (None when absent)."""
    if value is None or value == {}:
        return None
    spec = named(step, key, value)
    options = dict(spec.options)
    interval = options.pop("interval", "epoch")
    if interval not in INTERVALS:
        raise param_error(
            step, f"{key}.interval", f"expected 'epoch' or 'step', found {interval!r}"
        )
    monitor = options.pop("monitor", "val_loss")
    if not isinstance(monitor, str):
        raise param_error(step, f"{key}.monitor", f"expected a metric name, found {monitor!r}")
    return SchedulerSpec(Named(spec.name, options, key), interval, monitor)


def groups_of(
    step: str,
    optimizers: list[Any] | None,
    optimizer: Mapping[str, Any] | None,
    scheduler: Mapping[str, Any] | None,
    lr: float,
) -> tuple[GroupSpec, ...]:
    """The optimizer groups: one per `optimizers` entry, or the single `optimizer`/`lr`
    form as one group over every trainable parameter."""
    if optimizers is None:
        spec = named(step, "optimizer", optimizer or {}, default="Adam")
        options = {"lr": lr, **spec.options}
        return (
            GroupSpec(
                "all",
                ("*",),
                Named(spec.name, options, "optimizer"),
                scheduler_spec(step, "scheduler", scheduler),
                "optimizer",
            ),
        )
    if optimizer or scheduler:
        which = "optimizer" if optimizer else "scheduler"
        raise param_error(
            step,
            which,
            f"`{which}` and `optimizers` are two ways to say the same thing",
            "give each optimizers entry its own name and scheduler, and drop the other one",
        )
    if not optimizers:
        raise param_error(step, "optimizers", "is empty: nothing would be trained")
    groups = []
    for index, entry in enumerate(optimizers):
        key = f"optimizers[{index}]"
        if not isinstance(entry, Mapping):
            raise param_error(step, key, f"expected a table, found {entry!r}")
        options = dict(entry)
        if "params" not in options:
            raise param_error(
                step, key, "names no parameters", 'add params = ["pattern.*", ...] to it'
            )
        patterns = _patterns(step, f"{key}.params", options.pop("params"))
        label = options.pop("label", None) or patterns[0].split(".")[0].rstrip("*") or f"g{index}"
        sched = scheduler_spec(step, f"{key}.scheduler", options.pop("scheduler", None))
        name = options.pop("name", "Adam")
        if not isinstance(name, str):
            raise param_error(step, f"{key}.name", f"expected an optimizer name, found {name!r}")
        options.setdefault("lr", lr)
        groups.append(GroupSpec(str(label), patterns, Named(name, options, key), sched, key))
    labels = [g.label for g in groups]
    return tuple(
        GroupSpec(f"{g.label}{i}", g.patterns, g.optimizer, g.scheduler, g.key)
        if labels.count(g.label) > 1
        else g
        for i, g in enumerate(groups)
    )


def until_rule(step: str, value: Mapping[str, Any] | None) -> UntilRule | None:
    """The `until` table: `{ metric = "train_loss", below = 0.5, mode = "gate" }`."""
    if not value:
        return None
    allowed = ("metric", "above", "below", "mode", "required")
    for key in value:
        if key not in allowed:
            raise param_error(
                step,
                f"until.{key}",
                "is not a key of the transition rule",
                did_you_mean(key, allowed) or f"keys: {', '.join(allowed)}",
            )
    metric = value.get("metric")
    if not isinstance(metric, str) or not metric:
        raise param_error(step, "until.metric", "names no metric", 'e.g. metric = "val_loss"')
    above, below = value.get("above"), value.get("below")
    if (above is None) == (below is None):
        raise param_error(
            step, "until", "a transition rule needs exactly one of `above` or `below`"
        )
    for side, threshold in (("above", above), ("below", below)):
        if threshold is not None and (
            not isinstance(threshold, int | float) or isinstance(threshold, bool)
        ):
            raise param_error(step, f"until.{side}", f"expected a number, found {threshold!r}")
        if threshold is not None and not math.isfinite(threshold):  # nan never crosses
            raise param_error(step, f"until.{side}", f"expected a finite number, found {threshold}")
    mode = value.get("mode", "stop")
    if mode not in UNTIL_MODES:
        raise param_error(
            step,
            "until.mode",
            f"expected 'stop' or 'gate', found {mode!r}",
            "stop ends the phase at the first crossing; gate trains every epoch and fails "
            "the phase if it never crossed",
        )
    required = value.get("required", False)
    if not isinstance(required, bool):
        raise param_error(step, "until.required", f"expected true or false, found {required!r}")
    if mode == "gate" and "required" in value and not required:
        raise param_error(
            step,
            "until.required",
            "a gate is always required (it fails the phase that never crosses)",
            'for a threshold that only ends the phase, write mode = "stop"',
        )
    return UntilRule(
        metric,
        None if above is None else float(above),
        None if below is None else float(below),
        mode,
        required,
    )


def init_map_of(step: str, value: Any) -> dict[str, str]:
    """The `init_map` table (`{ "old.prefix." = "new.prefix." }`): key prefixes renamed
    before `init` is loaded."""
    if value is None:
        return {}
    if not isinstance(value, Mapping) or not all(
        isinstance(k, str) and k and isinstance(v, str) for k, v in value.items()
    ):
        raise param_error(
            step,
            "init_map",
            f"expected a table of key prefixes, found {value!r}",
            'e.g. init_map = { "backbone." = "features." }',
        )
    return dict(value)


def precision_of(step: str, precision: str | int | None) -> str | None:
    """'32', '16-mixed' or 'bf16-mixed' (None: the legacy `mixed_precision` switch decides)."""
    if precision is None:
        return None
    found = PRECISIONS.get(str(precision))
    if found is None:
        raise param_error(
            step,
            "precision",
            f"expected '32', '16-mixed' or 'bf16-mixed', found {precision!r}",
        )
    return found


def named_list(step: str, key: str, values: list[Any] | None) -> tuple[Named, ...]:
    """A list of names or `{ name = ... }` tables (metrics, callbacks)."""
    if not values:
        return ()
    return tuple(named(step, f"{key}[{i}]", v) for i, v in enumerate(values))


def check_numbers(step: str, values: Mapping[str, Any]) -> None:
    """Ranges of the scalar params (their types were checked by the plan)."""
    rules = {
        "epochs": (lambda v: v >= 1, "must be at least 1"),
        "accumulate": (lambda v: v >= 1, "must be at least 1 (batches per optimizer step)"),
        "save_top_k": (lambda v: v >= 1, "must be at least 1"),
        "batch_size": (lambda v: v is None or v >= 1, "must be at least 1"),
        "ema": (lambda v: v is None or 0.0 < v < 1.0, "must lie between 0 and 1 (e.g. 0.999)"),
        "grad_clip": (lambda v: v is None or v > 0, "must be positive"),
        "checkpoint_every": (lambda v: v >= 0, "must be 0 (off) or a number of batches"),
        "num_workers": (lambda v: v is None or v >= 0, "must be 0 or more"),
        "val_every_n_steps": (lambda v: v is None or v >= 1, "must be at least 1"),
        "log_every_n_steps": (lambda v: v is None or v >= 1, "must be at least 1"),
    }
    for key, (ok, message) in rules.items():
        if key in values and not ok(values[key]):
            raise param_error(step, key, f"{message}, not {values[key]!r}")
