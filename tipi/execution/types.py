"""What travels between the scheduler and the executors: a Job (a resolved step to run in
this process), a Task (a step as plain data for a worker, Dask or torchrun) and one Result."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from tipi.context import RunInfo

if TYPE_CHECKING:
    from tipi.config.resolve import ResolvedPermanence, ResolvedStep


@dataclass(frozen=True)
class Job:
    """One step to execute.

    Attributes:
        step: the resolved step (class, params, final paths).
        outputs: output name → staging path the process writes to.
        scratch: the step's scratch folder (survives a crash, removed after success).
        forced: run even if the process's skip() says the work is done.
        binding: written into the scratch folder when the step creates it (uptodate/resume.py).
        run: the make it belongs to, for its loggers (tipi.context).
    """

    step: ResolvedStep
    outputs: Mapping[str, Path]
    scratch: Path
    forced: bool = False
    binding: bytes = b""
    run: RunInfo | None = None

    @property
    def name(self) -> str:
        return self.step.name


@dataclass(frozen=True)
class Task:
    """Everything a worker needs to run one step: plain strings, picklable anywhere.

    Attributes:
        outputs: output name → staging path (rank 0 writes there under torch.distributed).
        log: the file the step's stdout and stderr go to (shown by the driver when it ends).
        env: variables set for the step (CUDA_VISIBLE_DEVICES when the scheduler chose GPUs).
        variant: the sweep variant (Variant.to_data()) whose outputs live apart, if any.
    """

    root: str
    pipeline: str
    file: str
    overrides: tuple[str, ...]
    step: str
    outputs: Mapping[str, str]
    scratch: str
    forced: bool = False
    log: str = ""
    env: Mapping[str, str] = field(default_factory=dict)
    nproc: int = 1
    launcher: str = "none"
    variant: Mapping[str, object] | None = None
    source: str = ""
    deps: tuple[tuple[object, ...], ...] = ()
    binding: str = ""  # hex of the scratch folder's binding (JSON carries no bytes)
    run: str = ""  # the id of the make (run) the step belongs to

    def to_data(self) -> dict[str, object]:
        return {
            **vars(self),
            "overrides": list(self.overrides),
            "outputs": dict(self.outputs),
            "deps": [list(d) for d in self.deps],
        }

    @classmethod
    def from_data(cls, data: Mapping[str, object]) -> Task:
        deps = tuple(tuple(d) for d in data.get("deps", ()))  # type: ignore[attr-defined]
        return cls(**{**data, "overrides": tuple(data["overrides"]), "deps": deps})  # type: ignore[arg-type]


@dataclass(frozen=True)
class Result:
    """How a step went, wherever it ran.

    Attributes:
        outcome: "ran", "skipped" (its skip() said so), "failed" or "interrupted".
        used: the permanences it asked for (their configs join its fingerprint).
        error: why it failed: the exception in this process; from a worker, a
            WorkerFailure (exceptions do not all survive pickling, so it carries text).
        logged: the last value of each scalar its loggers wrote (tipi.context.note_logged).
    """

    name: str
    outcome: Literal["ran", "skipped", "failed", "interrupted"]
    seconds: float = 0.0
    used: tuple[str, ...] = ()
    error: BaseException | None = None
    logged: Mapping[str, float] = field(default_factory=dict)


def run_info(
    run: str,
    pipeline: str,
    step: ResolvedStep,
    permanences: Mapping[str, ResolvedPermanence],
    steps: Mapping[str, ResolvedStep] | None = None,
) -> RunInfo | None:
    """What a step's loggers are told of the make it runs in; None outside one. `steps`:
    the pipeline's, to give the loggers the params of the steps upstream of this one."""
    if not run:
        return None
    return RunInfo(
        id=run,
        pipeline=pipeline,
        step=step.name,
        step_type=step.cls.__name__,
        params=dict(step.params),
        permanences={name: dict(p.params) for name, p in permanences.items()},
        upstream=Upstream(step, steps or {}),
    )


class Upstream(Mapping[str, Mapping[str, Any]]):
    """step → params of the steps whose outputs `step` reads, and theirs, nearest first (an
    output read at its path or inside its folder); worked out when a logger first asks, so
    that a make without loggers pays nothing."""

    def __init__(self, step: ResolvedStep, steps: Mapping[str, ResolvedStep]) -> None:
        self._step, self._steps = step, steps
        self._found: dict[str, Mapping[str, Any]] | None = None

    def _params(self) -> dict[str, Mapping[str, Any]]:
        if self._found is None:
            producers = {
                out: other for other in self._steps.values() for out in other.outputs.values()
            }
            found: dict[str, Mapping[str, Any]] = {}
            todo = [self._step]
            while todo:
                for into in todo.pop(0).inputs.values():
                    for path in (into, *into.parents):  # the output itself, or its folder
                        other = producers.get(path)
                        if other is not None and other is not self._step:
                            if other.name not in found:
                                found[other.name] = dict(other.params)
                                todo.append(other)
                            break
            self._found = found
        return self._found

    def __getitem__(self, name: str) -> Mapping[str, Any]:
        return self._params()[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._params())

    def __len__(self) -> int:
        return len(self._params())
