"""Step instances: the names of the steps a `matrix` process expands into, and targets over them.

A process with ``matrix = { seed = [0, 1, 2], lr = [0.001, 0.003] }`` becomes one ordinary
step per combination (config/matrix.py expands it right after the TOML is read, so the
planner, fingerprints, traces, the run cache and every view see ordinary steps). Each is
named ``train[seed=0,lr=0.001]``: the process's name, then its values in the matrix's
declaration order, written as TOML writes them (ints and floats as literals, booleans
``true``/``false``, strings as they are). A value is text safe in a name and a path
(`value_problem`): strings follow the step-name rule, so `[`, `]`, `,`, `=`, spaces and path
separators never occur inside a value and a name splits back unambiguously.

Where the values live, typed (for views and Compare):
    - ``ProcessSpec.base`` / ``ProcessSpec.values`` (config/schema.py), so
      ``ResolvedStep.spec.base`` / ``.spec.values``;
    - ``PlannedStep.base`` / ``PlannedStep.values`` (planning.py, in the cached plan).
    A plain step has ``base == ""`` and ``values == {}``; `split_instance` gives the same
    (as text) from a name alone, without a plan.

What a step sees of gathered inputs (config/matrix.py has the whole design): an input that
gathers a matrix key is one entry per value in `PlannedStep.inputs` and `self.inputs`, named
like an instance (`models[seed=0]`, `models[seed=1]`, in the values' declared order);
`self.input_lists["models"]` is their paths in that order and `self.input_values["models"]`
maps each value (typed back from its text; a tuple when several keys are gathered) to its
path (process.py). Targets: `tipi make train` makes every instance, `'train[seed=0]'` those
with seed 0 (graph/select.py `resolve_targets`).

This module is pure Python over names (no plan, no TOML): the no-op path may import it.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping

from tipi.paths import NAME, NAME_RULE

MAX_VALUE = 200  # characters of a string value (a name, and a folder of default outputs)


def glob_matches(pattern: str) -> list[str]:
    """The files `pattern` (absolute) matches, sorted: what a glob matrix's values are read
    from (config/matrix.py), and what a cached plan compares (uptodate/planfile.py)."""
    import glob
    import os

    return sorted(p for p in glob.glob(pattern, recursive=True) if os.path.isfile(p))


def format_value(value: object) -> str:
    """A matrix value as it appears in an instance's name (and in a default output path)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return repr(value)  # Python's repr of a float is a TOML float literal
    return str(value)


def value_problem(value: object) -> str | None:
    """Why `value` may not be a matrix value; None when it may.

    Numbers and booleans always may; a string must be a name (`tipi.paths.NAME_RULE`): it
    becomes part of a step name and of default output folders.
    """
    if isinstance(value, bool | int | float):
        return None
    if not isinstance(value, str):
        return f"a matrix value is a string, number or boolean, not a {type(value).__name__}"
    if len(value) > MAX_VALUE:
        return (
            f"{value[:40]!r}... is {len(value)} characters long: a value names an instance "
            f"and a folder, at most {MAX_VALUE} characters"
        )
    if NAME.match(value) is None:
        return f"{value!r} cannot name an instance: use {NAME_RULE}"
    return None


def instance_name(base: str, values: Mapping[str, object]) -> str:
    """`train[seed=0,lr=0.001]`: `base` with `values` (in their order); `base` when empty."""
    if not values:
        return base
    inner = ",".join(f"{key}={format_value(value)}" for key, value in values.items())
    return f"{base}[{inner}]"


def split_instance(name: str) -> tuple[str, dict[str, str]]:
    """(base, {key: value as text}) of an instance name; `(name, {})` for a plain step.

    Raises:
        ValueError: `name` has a `[` but is not `base[key=value,...]`.
    """
    base, bracket, rest = name.partition("[")
    if not bracket:
        return name, {}
    if not rest.endswith("]") or not base:
        raise ValueError(f"{name!r} is not STEP[KEY=VALUE,...]")
    values: dict[str, str] = {}
    for item in rest[:-1].split(","):
        key, eq, value = (part.strip() for part in item.partition("="))
        if not eq or not key or not value or key in values:
            raise ValueError(f"{name!r} is not STEP[KEY=VALUE,...]")
        values[key] = value
    return base, values


def same_value(a: str, b: str) -> bool:
    """Whether two values written as text are equal: as text, or as numbers (`1e-3` and
    `0.001`, `1` and `1.0`)."""
    if a == b:
        return True
    try:
        x, y = float(a), float(b)
    except ValueError:
        return False
    # 0.0 and -0.0 are equal floats but distinct values (two instances)
    return x == y and math.copysign(1.0, x) == math.copysign(1.0, y)


def matches(name: str, target: str) -> bool:
    """Whether step `name` is selected by `target`: the same step, or every instance of a
    matrix step (`train`), or those whose values include the target's (`train[seed=0]`).

    A target that is not a well-formed instance name matches nothing.
    """
    if name == target:
        return True
    try:
        base, values = split_instance(name)
        target_base, wanted = split_instance(target)
    except ValueError:
        return False
    if base != target_base or not values:
        return False
    return all(key in values and same_value(values[key], v) for key, v in wanted.items())


def group_instances(names: Iterable[str]) -> dict[str, list[str]]:
    """base → its step names, in the order given (the plan's); a plain step is its own group
    (`{"prepare": ["prepare"]}`). A name with a `[` is an instance (`split_instance`)."""
    groups: dict[str, list[str]] = {}
    for name in names:
        try:
            base = split_instance(name)[0]
        except ValueError:
            base = name
        groups.setdefault(base, []).append(name)
    return groups
