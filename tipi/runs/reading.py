"""Reading a run file's data: the checks of its shape (each saying what is wrong, None when
nothing is), a one-pass reading of the steps of the plainest shape, and the values' helpers.

Split from record.py, which reads and writes RunRecord through these.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Mapping
from typing import Any, TypeVar

from tipi.state.statefile import (
    fields_problem,
    int_problem,
    map_problem,
    number_problem,
    text_problem,
    type_name,
)

T = TypeVar("T")
# How a run ended; "running" is also what a make that crashed or was killed leaves behind.
STATUSES = ("running", "ok", "failed", "interrupted")
# What a run did with a step; None (no outcome): in the make, but up to date.
OUTCOMES = ("running", "ran", "restored", "failed", "interrupted", "skipped", "not run")


def flat_params(prefix: str, params: Mapping[str, Any]) -> dict[str, Any]:
    """Params flat: `prefix.param` (nested tables: `prefix.a.b`); none when there are none."""
    if not params:
        return {}
    if not any(isinstance(value, dict) and value for value in params.values()):
        return {f"{prefix}.{key}": value for key, value in params.items()}  # flat already
    return dict(flat(params, prefix))


def flat(params: Any, prefix: str) -> Iterator[tuple[str, Any]]:
    """`prefix.key` → value for each leaf of nested maps; an empty map is a value itself."""
    if isinstance(params, dict) and params:
        for key, value in params.items():
            yield from flat(value, f"{prefix}.{key}")
    else:
        yield prefix, params


def plain(value: Any) -> Any:
    """`value` as JSON can hold it: maps with text keys, lists, text, finite numbers, bool,
    None; bytes as hex, a non-finite float and anything else as text."""
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if value is None or isinstance(value, str | int | bool):
        return value
    if isinstance(value, bytes):
        return value.hex()
    return str(value)


def is_number(value: Any) -> bool:
    """A finite int or float, not a bool: what a metric can be."""
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def numbers(data: Any) -> dict[str, float]:
    """The entries of a map of text keys whose values are numbers (others are left out)."""
    if not isinstance(data, dict):
        return {}
    return {str(k): v for k, v in data.items() if is_number(v)}


# Checks of a run file's data, each saying what is wrong, None when nothing is.


def _optional(check: Any) -> Any:
    return lambda value: None if value is None else check(value)


def _choice(choices: tuple[str, ...]) -> Any:
    def check(value: Any) -> str | None:
        return None if value in choices else f"is {value!r}, not one of {', '.join(choices)}"

    return check


def _bool_problem(value: Any) -> str | None:
    return None if isinstance(value, bool) else f"is {type_name(value)}, not a boolean"


def _texts_problem(value: Any) -> str | None:
    if not isinstance(value, list):
        return f"is {type_name(value)}, not a list"
    return next((f"[{i}] {p}" for i, x in enumerate(value) if (p := text_problem(x))), None)


def _step_problem(data: Any) -> str | None:
    return fields_problem(
        data,
        {
            "type": (False, text_problem),
            "params": (False, map_problem),
            "outcome": (False, _optional(_choice(OUTCOMES))),
            "seconds": (False, _optional(number_problem)),
            "permanences": (False, map_problem),
            "metrics": (False, map_problem),
            "logged": (False, map_problem),
            "error": (False, text_problem),
        },
    )


# The fields of a step's data (StepRun.to_data()).
_STEP_KEYS = frozenset(
    ("type", "params", "outcome", "seconds", "permanences", "metrics", "logged", "error")
)


def quick_steps(data: Any, make: Callable[..., T]) -> dict[str, T] | None:
    """The steps of a run's data, each made by `make` from StepRun's fields in order, when
    each is of the plainest shape the checks accept (exact types, as msgpack gives them), read
    without the general checks: a 20,000-step run is read in a fraction of the time. None when
    any step is not: the general checks then say what is wrong, or read it (a step these
    reject is never one `_step_problem` would reject less)."""
    steps = data.get("steps") if type(data) is dict else None
    if type(steps) is not dict:
        return None
    found: dict[str, T] = {}
    empty: dict[str, Any] = {}
    for name, step in steps.items():
        if type(name) is not str or type(step) is not dict or not step.keys() <= _STEP_KEYS:
            return None
        get = step.get
        kind, error, outcome, seconds = (
            get("type", ""),
            get("error", ""),
            get("outcome"),
            get("seconds"),
        )
        if not (
            type(kind) is str
            and type(error) is str
            and (outcome is None or (type(outcome) is str and outcome in OUTCOMES))
            and (seconds is None or (type(seconds) in (int, float) and _seconds_ok(seconds)))
        ):
            return None
        maps = []
        for key, read in _MAPS:
            value = get(key, empty)
            if value:  # the general checks' reading of a map with entries
                value = read(value) if type(value) is dict else None
                if value is None:
                    return None
            elif type(value) is not dict:
                return None
            else:
                value = {}
            maps.append(value)
        found[name] = make(kind, maps[0], outcome, seconds, maps[1], maps[2], maps[3], error)
    return found


def _seconds_ok(value: float) -> bool:
    return math.isfinite(value) and abs(value) < 1e12  # as number_problem


def _plain_map(data: dict[Any, Any]) -> dict[str, Any] | None:
    """`plain(data)` of a map of text keys (a copy when every value is plain already); None
    when a key is not text."""
    plain_already = True
    for key, value in data.items():
        if type(key) is not str:
            return None
        kind = type(value)
        if kind is float:
            plain_already = plain_already and math.isfinite(value)
        elif kind is not str and kind is not int and kind is not bool and value is not None:
            plain_already = False
    return dict(data) if plain_already else plain(data)


def _numbers_map(data: dict[Any, Any]) -> dict[str, float] | None:
    """`numbers(data)` of a map of text keys (a copy when every value is a number); None when
    a key is not text."""
    numbers_only = True
    for key, value in data.items():
        if type(key) is not str:
            return None
        kind = type(value)
        if not ((kind is float and math.isfinite(value)) or kind is int):
            numbers_only = False
    return dict(data) if numbers_only else numbers(data)


# A step's maps, in StepRun's order, and how each is read.
_MAPS = (
    ("params", _plain_map),
    ("permanences", _plain_map),
    ("metrics", _numbers_map),
    ("logged", _numbers_map),
)


def head_problem(data: Any) -> str | None:
    """What is wrong with a run's data but its steps (which `_quick_steps` checked)."""
    return record_problem({**data, "steps": {}})


def record_problem(data: Any) -> str | None:
    """What is wrong with `data` as a run record's data; None when nothing is."""
    return fields_problem(
        data,
        {
            "id": (True, text_problem),
            "pipeline": (True, text_problem),
            "started": (True, number_problem),
            "status": (True, _choice(STATUSES)),
            "ended": (False, _optional(number_problem)),
            "command": (False, _texts_problem),
            "commit": (False, _optional(text_problem)),
            "dirty": (False, _optional(_bool_problem)),
            "variant": (False, _optional(text_problem)),
            "host": (False, text_problem),
            "pid": (False, int_problem),
            "steps": (True, lambda steps: map_problem(steps, _step_problem)),
        },
    )
