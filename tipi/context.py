"""Which step is running, so that script helpers (progress_bar, logger, device_manager) can
attach to the pipeline's permanences instead of making their own."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class RunInfo:
    """The make (a *run*, `tipi runs`) a step belongs to, for loggers to label what they write.

    Attributes:
        id: the run's id (sortable, short); every step of one make shares it.
        pipeline: the pipeline's name.
        step: the step's name.
        step_type: the step's process class name.
        params: the step's resolved params.
        permanences: name → params of the permanences the pipeline declares (their configs).
        upstream: step → params of the steps whose outputs this one reads, directly or not
            (an Evaluate's run carries `train.lr`).
    """

    id: str
    pipeline: str
    step: str
    step_type: str
    params: Mapping[str, Any] = field(default_factory=dict)
    permanences: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    upstream: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)


@dataclass(frozen=True)
class RunContext:
    """The running step and the controller that holds the pipeline's permanences."""

    controller: Any
    step: str
    run: RunInfo | None = None
    logged: dict[str, float] = field(default_factory=dict)

    def find(self, kind: type) -> Any | None:
        """The first declared permanence whose class is `kind` (initialized on first use)."""
        for name in self.controller.declared():
            if issubclass(self.controller.declared_class(name), kind):
                return self.controller.get_permanence(name)
        return None


_current: ContextVar[RunContext | None] = ContextVar("tipi_run_context", default=None)


def note_logged(metrics: Mapping[str, float]) -> None:
    """Keep the last value of each scalar a logger wrote during the running step: the make
    records them in its run (`tipi runs`). Outside a step this does nothing."""
    context = _current.get()
    if context is not None:
        context.logged.update(metrics)


def current() -> RunContext | None:
    """The step running in this thread, or None in a plain script."""
    return _current.get()


@contextmanager
def running(controller: Any, step: str, run: RunInfo | None = None) -> Iterator[RunContext]:
    """Mark `step` as running for the helpers, for the duration of the block."""
    context = RunContext(controller, step, run)
    token = _current.set(context)
    try:
        yield context
    finally:
        _current.reset(token)
