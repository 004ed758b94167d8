"""Which step is running, so that script helpers (progress_bar, logger, device_manager) can
attach to the pipeline's permanences instead of making their own."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class RunContext:
    """The running step and the controller that holds the pipeline's permanences."""

    controller: Any
    step: str

    def find(self, kind: type) -> Any | None:
        """The first declared permanence whose class is `kind` (initialized on first use)."""
        for name in self.controller.declared():
            if issubclass(self.controller.declared_class(name), kind):
                return self.controller.get_permanence(name)
        return None


_current: ContextVar[RunContext | None] = ContextVar("tipi_run_context", default=None)


def current() -> RunContext | None:
    """The step running in this thread, or None in a plain script."""
    return _current.get()


@contextmanager
def running(controller: Any, step: str) -> Iterator[RunContext]:
    """Mark `step` as running for the helpers, for the duration of the block."""
    context = RunContext(controller, step)
    token = _current.set(context)
    try:
        yield context
    finally:
        _current.reset(token)
