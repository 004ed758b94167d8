"""One run's record (`tipi runs`): what a make that ran or restored a step did, and its
msgpack form.

A file holds ``{"tipi": "run", "version": 1, "data": {...}}``, the data being
`RunRecord.to_data()`. Reading checks the envelope and every field's shape before anything is
used (msgpack only, never pickle): a damaged file raises BrokenState, which the store turns
into one warning and skips. Values of params are kept as msgpack gave them, turned into
plain JSON-able values (`plain`); metrics and logged scalars keep only finite numbers.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import msgpack

from tipi.runs.reading import OUTCOMES as OUTCOMES
from tipi.runs.reading import STATUSES as STATUSES
from tipi.runs.reading import flat as flat
from tipi.runs.reading import flat_params as flat_params
from tipi.runs.reading import head_problem, quick_steps, record_problem
from tipi.runs.reading import is_number as is_number
from tipi.runs.reading import numbers as numbers
from tipi.runs.reading import plain as plain
from tipi.state.statefile import BrokenState

RUN_KIND = "run"
RUN_VERSION = 1


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
        quick = quick_steps(data, StepRun)  # most files: each step checked and read in one pass
        problem = record_problem(data) if quick is None else head_problem(data)
        if problem:
            raise BrokenState(f"is malformed: {problem}")
        if quick is None:
            return cls.from_data(data)
        record = cls.from_data({**data, "steps": {}})
        record.steps = quick
        return record
