"""One run's record (`tipi runs`): what a make that ran or restored a step did, and its
msgpack form.

A file holds ``{"tipi": "run", "version": 1, "data": {...}}``, the data being
`RunRecord.to_data()`. Reading checks the envelope and every field's shape before anything is
used (msgpack only, never pickle): a damaged file raises BrokenState, which the store turns
into one warning and skips. Values of params are kept as msgpack gave them, turned into
plain JSON-able values (`plain`); metrics and logged scalars keep only finite numbers.
"""

from __future__ import annotations

import math
import os
import socket
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import msgpack

from tipi.state.statefile import (
    BrokenState,
    fields_problem,
    int_problem,
    map_problem,
    number_problem,
    text_problem,
    type_name,
)

RUN_KIND = "run"
RUN_VERSION = 1
# How a run ended; "running" is also what a make that crashed or was killed leaves behind.
STATUSES = ("running", "ok", "failed", "interrupted")
# What a run did with a step; None (no outcome): in the make, but up to date.
OUTCOMES = ("running", "ran", "restored", "failed", "interrupted", "skipped", "not run")


@dataclass
class StepRun:
    """One step of a run.

    Attributes:
        type: the step's process class, as the TOML names it.
        params: its resolved params (the plan's canonical form: paths project-relative).
        outcome: "ran", "restored", "failed", "interrupted", "skipped" (its `skip()` said
            the work was done), "not run" (after a failure), "running" (started, and the
            run never said how it ended), or None (in the make, up to date).
        seconds: how long it took, when it ran or was restored.
        permanences: name → config ({type, params, code}) of the permanences it used.
        metrics: what its declared metrics files held, flat (`a.b` for nested keys).
        logged: the last value of each scalar it logged.
        error: the failure, one line, when it failed.
    """

    type: str = ""
    params: dict[str, Any] = field(default_factory=dict)
    outcome: str | None = None
    seconds: float | None = None
    permanences: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, float] = field(default_factory=dict)
    logged: dict[str, float] = field(default_factory=dict)
    error: str = ""

    def to_data(self) -> dict[str, Any]:
        return {
            "type": self.type,
            "params": self.params,
            "outcome": self.outcome,
            "seconds": self.seconds,
            "permanences": self.permanences,
            "metrics": self.metrics,
            "logged": self.logged,
            "error": self.error,
        }

    @classmethod
    def from_data(cls, data: Mapping[str, Any]) -> StepRun:
        return cls(
            type=data.get("type", ""),
            params=plain(data.get("params", {})),
            outcome=data.get("outcome"),
            seconds=data.get("seconds"),
            permanences=plain(data.get("permanences", {})),
            metrics=numbers(data.get("metrics", {})),
            logged=numbers(data.get("logged", {})),
            error=data.get("error", ""),
        )


@dataclass
class RunRecord:
    """A make that ran or restored at least one step.

    Attributes:
        id: sortable and short (tipi.runid); also the file's name.
        pipeline: the pipeline's name.
        started, ended: seconds since the epoch; ended is None while running (or if the make
            crashed).
        status: one of STATUSES.
        command: the command line (sys.argv).
        commit, dirty: the project's git commit and whether tracked files differed from it;
            None outside a git repository (or without git).
        variant: `sweep/variant` for a make of a sweep variant, else None.
        host, pid: where the make ran, to tell a running make from one that died.
        steps: every step the make considered, by name, in plan order.
    """

    id: str
    pipeline: str
    started: float
    status: str = "running"
    ended: float | None = None
    command: list[str] = field(default_factory=list)
    commit: str | None = None
    dirty: bool | None = None
    variant: str | None = None
    host: str = ""
    pid: int = 0
    steps: dict[str, StepRun] = field(default_factory=dict)

    def with_outcome(self, *outcomes: str) -> list[str]:
        """The names of the steps that ended with one of `outcomes`, in plan order."""
        return [name for name, step in self.steps.items() if step.outcome in outcomes]

    @property
    def ran(self) -> list[str]:
        return self.with_outcome("ran")

    @property
    def restored(self) -> list[str]:
        return self.with_outcome("restored")

    @property
    def shown_status(self) -> str:
        """The status, with "unfinished" for a run left "running" by a make that is gone."""
        if self.status == "running" and not self.alive():
            return "unfinished"
        return self.status

    def alive(self) -> bool:
        """Whether the make that writes this run may still be running (on another machine,
        tipi cannot tell, and says it may)."""
        if self.host and self.host != socket.gethostname():
            return True
        if self.pid <= 0:
            return False
        try:
            os.kill(self.pid, 0)
        except (ProcessLookupError, OverflowError, ValueError):  # gone, or no pid at all
            return False
        except OSError:  # another user's process: alive
            return True
        return True

    def params(self) -> dict[str, Any]:
        """Every param of every step, flat: `step.param` (nested tables: `step.a.b`)."""
        return {
            k: v
            for name, step in self.steps.items()
            for k, v in flat_params(name, step.params).items()
        }

    def permanences(self) -> dict[str, dict[str, Any]]:
        """name → params of the permanences the run's steps used, by name."""
        found: dict[str, dict[str, Any]] = {}
        for step in self.steps.values():
            for name, config in step.permanences.items():
                if isinstance(config, dict) and isinstance(config.get("params"), dict):
                    found[name] = config["params"]
        return dict(sorted(found.items()))

    def permanence_params(self) -> dict[str, Any]:
        """The params of the permanences the run's steps used, flat: `name.param`."""
        return {k: v for name, params in self.permanences().items() for k, v in flat(params, name)}

    def metrics(self) -> dict[str, float]:
        """What the run's steps measured, flat: `step.key`."""
        return {
            f"{name}.{k}": v for name, step in self.steps.items() for k, v in step.metrics.items()
        }

    def logged(self) -> dict[str, float]:
        """The last value of each scalar the run's steps logged: `step.name`."""
        return {
            f"{name}.{k}": v for name, step in self.steps.items() for k, v in step.logged.items()
        }

    def to_data(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "pipeline": self.pipeline,
            "started": self.started,
            "status": self.status,
            "ended": self.ended,
            "command": list(self.command),
            "commit": self.commit,
            "dirty": self.dirty,
            "variant": self.variant,
            "host": self.host,
            "pid": self.pid,
            "steps": {name: step.to_data() for name, step in self.steps.items()},
        }

    @classmethod
    def from_data(cls, data: Mapping[str, Any]) -> RunRecord:
        """The record in `data`, which `record_problem` found nothing wrong with."""
        return cls(
            id=data["id"],
            pipeline=data["pipeline"],
            started=data["started"],
            status=data["status"],
            ended=data.get("ended"),
            command=list(data.get("command", [])),
            commit=data.get("commit"),
            dirty=data.get("dirty"),
            variant=data.get("variant"),
            host=data.get("host", ""),
            pid=data.get("pid", 0),
            steps={name: StepRun.from_data(s) for name, s in data["steps"].items()},
        )

    def encode(self) -> bytes:
        document = {"tipi": RUN_KIND, "version": RUN_VERSION, "data": self.to_data()}
        return msgpack.packb(document, use_bin_type=True)

    @classmethod
    def decode(cls, raw: bytes) -> RunRecord:
        """The record in the bytes of a run file.

        Raises:
            BrokenState: they are not one, or not of this version, or a field is wrong.
        """
        if not raw:
            raise BrokenState("is empty")
        try:
            document = msgpack.unpackb(raw, raw=False, strict_map_key=False)
        except Exception:
            raise BrokenState("is corrupt") from None
        if not isinstance(document, dict) or document.get("tipi") != RUN_KIND:
            raise BrokenState("is not a tipi run file")
        if document.get("version") != RUN_VERSION:
            raise BrokenState(
                f"has format version {document.get('version')!r}, this tipi reads {RUN_VERSION}"
            )
        data = document.get("data")
        quick = _quick_steps(data)  # most files: each step checked and read in one pass
        problem = record_problem(data) if quick is None else _head_problem(data)
        if problem:
            raise BrokenState(f"is malformed: {problem}")
        if quick is None:
            return cls.from_data(data)
        record = cls.from_data({**data, "steps": {}})
        record.steps = quick
        return record


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


_STEP_KEYS = frozenset(StepRun().to_data())


def _quick_steps(data: Any) -> dict[str, StepRun] | None:
    """The steps of a run's data when each is of the plainest shape the checks accept (exact
    types, as msgpack gives them), read without the general checks: a 20,000-step run is read
    in a fraction of the time. None when any step is not: the general checks then say what is
    wrong, or read it (a step these reject is never one `_step_problem` would reject less)."""
    steps = data.get("steps") if type(data) is dict else None
    if type(steps) is not dict:
        return None
    found: dict[str, StepRun] = {}
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
        found[name] = StepRun(kind, maps[0], outcome, seconds, maps[1], maps[2], maps[3], error)
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


def _head_problem(data: Any) -> str | None:
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
