"""A sweep table in W&B's sweep format, read from TOML or built from `--grid` options.

    method = "grid"                       # grid | random | folds (bayes only through --wandb)
    run_cap = 8                           # at most this many variants
    metric = { name = "evaluate.accuracy", goal = "maximize" }

    [parameters."train.lr"]               # STEP.PARAM, as in --set
    values = [0.001, 0.003, 0.01]

    [parameters."train.batch_size"]
    distribution = "int_uniform"
    min = 16
    max = 128

W&B's nested form (`[parameters.train.parameters.lr]`) is read too.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tipi.config.lines import key_lines
from tipi.config.toml import read_toml
from tipi.errors import ConfigError, Location, UsageError
from tipi.suggest import did_you_mean

METHODS = ("grid", "random", "bayes", "folds")
GOALS = ("minimize", "maximize")
SWEEP_KEYS = (
    "method",
    "metric",
    "parameters",
    "run_cap",
    "name",
    "description",
    "program",
    "command",
    "project",
    "entity",
    "early_terminate",
    "folds",
    "fold_of",
)
WANDB_EXTRA = ("program", "command", "project", "entity", "early_terminate", "description")
PARAMETER_KEYS = (
    "value",
    "values",
    "probabilities",
    "distribution",
    "min",
    "max",
    "mu",
    "sigma",
    "q",
)
DISTRIBUTIONS = (
    "constant",
    "categorical",
    "int_uniform",
    "uniform",
    "q_uniform",
    "log_uniform",
    "log_uniform_values",
    "q_log_uniform_values",
    "normal",
    "q_normal",
    "log_normal",
    "q_log_normal",
)


@dataclass(frozen=True)
class Parameter:
    """One swept key and how its values are chosen (W&B's parameter semantics)."""

    key: str
    distribution: str
    values: tuple[Any, ...] = ()
    probabilities: tuple[float, ...] = ()
    low: float = 0.0
    high: float = 0.0
    mu: float = 0.0
    sigma: float = 1.0
    q: float = 1.0

    @property
    def constant(self) -> bool:
        """A `value`: every variant gets it, it does not name them or keep steps apart (a
        list of one value does: the sweep may grow)."""
        return self.distribution == "constant"

    def to_wandb(self) -> dict[str, Any]:
        if self.distribution == "constant":
            return {"value": self.values[0]}
        if self.distribution == "categorical":
            table: dict[str, Any] = {"values": list(self.values)}
            if self.probabilities:
                table["probabilities"] = list(self.probabilities)
            return table
        table = {"distribution": self.distribution}
        if self.distribution.endswith("normal"):
            table |= {"mu": self.mu, "sigma": self.sigma}
        else:
            table |= {"min": self.low, "max": self.high}
        if self.distribution.startswith("q_"):
            table["q"] = self.q
        return table


@dataclass(frozen=True)
class SweepSpec:
    """What to sweep and how; `file` is None for `--grid`."""

    name: str
    method: str
    parameters: Mapping[str, Parameter]
    metric: str = ""
    goal: str = "minimize"
    run_cap: int | None = None
    file: Path | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)
    folds: int = 0  # method "folds": K, each variant one fold (its keys: tipi/sweep/folds.py)
    fold_of: str = ""  # the permanence or step whose `fold` is swept ("": the one that has it)

    @property
    def swept(self) -> list[str]:
        """The keys whose value changes from one variant to another."""
        return [k for k, p in self.parameters.items() if not p.constant]

    def to_wandb(self) -> dict[str, Any]:
        """The sweep config W&B's `wandb.sweep()` takes (parameter names kept dotted)."""
        config: dict[str, Any] = {
            **self.extra,
            "name": self.name,
            "method": "grid" if self.method == "folds" else self.method,
            "parameters": {k: p.to_wandb() for k, p in self.parameters.items()},
        }
        if self.metric:
            config["metric"] = {"name": self.metric, "goal": self.goal}
        if self.run_cap is not None:
            config["run_cap"] = self.run_cap
        return config


def load_sweep(file: Path, name: str | None = None) -> SweepSpec:
    """Read and check a sweep table.

    Raises:
        ConfigError: unreadable file, bad TOML, unknown keys or values (with file and line).
    """
    data, text = read_toml(file)
    return _Reader(file, key_lines(text)).sweep(data, name)


def hyperparameter_sweep(pipeline_file: Path, name: str | None = None) -> SweepSpec | None:
    """The sweep a `Hyperparameters` permanence describes in its `sweep` param, if any: its
    parameters name keys of its `values` (`lr` sweeps `hp.values.lr`)."""
    try:
        data, text = read_toml(pipeline_file)
    except ConfigError:
        return None  # the make reports it, with its line
    for permanence, table in (data.get("permanences") or {}).items():
        if not isinstance(table, dict) or not str(table.get("type", "")).endswith(
            "Hyperparameters"
        ):
            continue
        sweep = (table.get("params") or {}).get("sweep")
        if not isinstance(sweep, dict):
            continue
        sweep = dict(sweep)
        if isinstance(sweep.get("parameters"), dict):
            sweep["parameters"] = {
                f"{permanence}.values.{key}": value for key, value in sweep["parameters"].items()
            }
        reader = _Reader(
            pipeline_file, key_lines(text), ("permanences", permanence, "params", "sweep")
        )
        return reader.sweep(sweep, name or str(sweep.get("name") or permanence))
    return None


def grid_from_options(options: Sequence[str], name: str | None = None) -> SweepSpec:
    """`["train.lr=0.001,0.01", "train.batch_size=32,64"]` as a grid sweep.

    Values are TOML, separated by commas (`a=[1,2],[3,4]` gives two lists); text that is
    not TOML is taken as strings.
    """
    parameters: dict[str, Parameter] = {}
    for option in options:
        key, sep, raw = option.partition("=")
        key = key.strip()
        if not sep or "." not in key or not raw.strip():
            raise UsageError(
                f"bad --grid '{option}'",
                hint="write --grid STEP.PARAM=V1,V2,... e.g. --grid train.lr=0.001,0.01",
            )
        try:
            values = tomllib.loads(f"v = [{raw}]")["v"]
        except tomllib.TOMLDecodeError:
            values = [v.strip() for v in raw.split(",") if v.strip()]
        if key in parameters:
            raise UsageError(f"--grid names '{key}' twice")
        parameters[key] = Parameter(key, "categorical", tuple(values))
    return SweepSpec(name=name or "grid", method="grid", parameters=parameters)


@dataclass
class _Reader:
    file: Path
    lines: Mapping[tuple[str, ...], int]
    prefix: tuple[str, ...] = ()

    def error(self, message: str, *path: str, hint: str | None = None) -> ConfigError:
        path = (*self.prefix, *path)
        line = None
        for end in range(len(path), 0, -1):
            line = self.lines.get(path[:end])
            if line is not None:
                break
        key = ".".join(path) or None
        return ConfigError(message, hint=hint, location=Location(self.file, key, line))

    def sweep(self, data: Mapping[str, Any], name: str | None) -> SweepSpec:
        for key in data:
            if key not in SWEEP_KEYS:
                raise self.error(
                    f"unknown key '{key}' in a sweep file", key, hint=_close(key, SWEEP_KEYS)
                )
        method = data.get("method", "grid")
        if method not in METHODS:
            raise self.error(
                f"method must be one of {', '.join(METHODS)}, not {method!r}", "method"
            )
        metric, goal = self.metric(data.get("metric", {}))
        run_cap = data.get("run_cap")
        if run_cap is not None and (not isinstance(run_cap, int) or run_cap < 1):
            raise self.error("run_cap must be a positive integer", "run_cap")
        folds, fold_of = data.get("folds", 0), data.get("fold_of", "")
        if (method == "folds") != (type(folds) is int and folds >= 2) or type(fold_of) is not str:
            raise self.error(
                'folds = K (2 or more) and fold_of = "NAME" (optional) go with method = "folds"',
                "folds" if "folds" in data else "method",
            )
        tables = data.get("parameters", {} if method == "folds" else None)
        if not isinstance(tables, dict) or not (tables or method == "folds"):
            raise self.error(
                "a sweep needs a [parameters] table",
                "parameters",
                hint='e.g. [parameters."train.lr"] with values = [0.001, 0.01]',
            )
        parameters: dict[str, Parameter] = {}
        self.parameters(tables, ("parameters",), "", parameters)
        if method in ("grid", "folds"):
            for key, parameter in parameters.items():
                if parameter.distribution not in ("constant", "categorical"):
                    raise self.error(
                        f"a grid sweep needs a list of values for '{key}'",
                        "parameters",
                        key,
                        hint='write values = [...], or method = "random" to sample a range',
                    )
        extra = {k: v for k, v in data.items() if k in WANDB_EXTRA}
        return SweepSpec(
            name=name or str(data.get("name") or self.file.stem),
            method=method,
            parameters=parameters,
            metric=metric,
            goal=goal,
            run_cap=run_cap,
            file=self.file,
            extra=extra,
            folds=folds,
            fold_of=fold_of,
        )

    def metric(self, table: Any) -> tuple[str, str]:
        if not isinstance(table, dict):
            raise self.error("metric must be a table: { name = ..., goal = ... }", "metric")
        for key in table:
            if key not in ("name", "goal", "target"):
                raise self.error(
                    f"unknown key '{key}' in metric", "metric", key, hint="allowed: name, goal"
                )
        goal = table.get("goal", "minimize")
        if goal not in GOALS:
            raise self.error(f"goal must be minimize or maximize, not {goal!r}", "metric", "goal")
        return str(table.get("name", "")), goal

    def parameters(
        self,
        tables: Mapping[str, Any],
        path: tuple[str, ...],
        prefix: str,
        out: dict[str, Parameter],
    ) -> None:
        for name, table in tables.items():
            key = f"{prefix}{name}"
            where = (*path, name)
            if not isinstance(table, dict):
                raise self.error(
                    f"parameter '{key}' must be a table",
                    *where,
                    hint="e.g. values = [1, 2] or min = 0.0, max = 1.0",
                )
            if "parameters" in table:  # W&B's nested form
                self.parameters(table["parameters"], (*where, "parameters"), f"{key}.", out)
                continue
            if "." not in key:
                raise self.error(
                    f"parameter '{key}' must name a step and a param: STEP.PARAM",
                    *where,
                    hint=f'e.g. [parameters."train.{key}"]',
                )
            out[key] = self.parameter(key, table, where)

    def parameter(self, key: str, table: Mapping[str, Any], where: tuple[str, ...]) -> Parameter:
        for field_name in table:
            if field_name not in PARAMETER_KEYS:
                raise self.error(
                    f"unknown key '{field_name}' in parameter '{key}'",
                    *where,
                    field_name,
                    hint=_close(field_name, PARAMETER_KEYS),
                )
        distribution = table.get("distribution") or _inferred(table)
        if distribution not in DISTRIBUTIONS:
            raise self.error(
                f"unknown distribution {distribution!r} for '{key}'",
                *where,
                "distribution",
                hint=f"supported: {', '.join(DISTRIBUTIONS)}",
            )
        if distribution == "constant":
            if "value" not in table:
                raise self.error(f"'{key}' is constant but has no value", *where)
            return Parameter(key, distribution, (table["value"],))
        if distribution == "categorical":
            values = table.get("values")
            if not isinstance(values, list) or not values:
                raise self.error(f"'{key}' needs a non-empty list of values", *where, "values")
            probabilities = tuple(table.get("probabilities", ()))
            if probabilities and (
                len(probabilities) != len(values) or abs(sum(probabilities) - 1) > 1e-6
            ):
                raise self.error(
                    f"probabilities of '{key}' must be one per value and sum to 1",
                    *where,
                    "probabilities",
                )
            return Parameter(key, distribution, tuple(values), probabilities)
        numbers = {k: v for k, v in table.items() if k in ("min", "max", "mu", "sigma", "q")}
        for k, v in numbers.items():
            if not isinstance(v, int | float) or isinstance(v, bool):
                raise self.error(f"{k} of '{key}' must be a number", *where, k)
        if distribution.endswith("normal"):
            return Parameter(
                key,
                distribution,
                mu=float(numbers.get("mu", 0.0)),
                sigma=float(numbers.get("sigma", 1.0)),
                q=float(numbers.get("q", 1.0)),
            )
        if "min" not in numbers or "max" not in numbers:
            raise self.error(f"'{key}' ({distribution}) needs min and max", *where)
        low, high = numbers["min"], numbers["max"]
        if low > high:
            raise self.error(f"min of '{key}' is above its max", *where, "min")
        if distribution.endswith("log_uniform_values") and low <= 0:
            raise self.error(f"'{key}' ({distribution}) needs min > 0", *where, "min")
        return Parameter(key, distribution, low=low, high=high, q=float(numbers.get("q", 1.0)))


def _inferred(table: Mapping[str, Any]) -> str:
    """W&B's default when `distribution` is left out."""
    if "values" in table:
        return "categorical"
    if "value" in table:
        return "constant"
    if isinstance(table.get("min"), int) and isinstance(table.get("max"), int):
        return "int_uniform"
    if "mu" in table or "sigma" in table:
        return "normal"
    return "uniform"


def _close(word: str, choices: Sequence[str]) -> str:
    return did_you_mean(word, choices) or f"allowed: {', '.join(choices)}"


_SLUG = re.compile(r"[^A-Za-z0-9._=,+-]+")


def slug(text: str) -> str:
    """`text` made safe as a folder name."""
    return _SLUG.sub("-", text).strip("-.") or "sweep"
