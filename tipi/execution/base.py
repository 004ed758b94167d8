"""The executor protocol: run one job (a step with its staging paths), report how it went."""

from __future__ import annotations

from typing import Protocol

from tipi.execution.types import Job, Result

__all__ = ["Executor", "Job", "Result"]


class Executor(Protocol):
    """Runs jobs. Sequential runs in this process; others may use workers or a cluster."""

    def run(self, job: Job) -> Result:
        """Execute `job` and return its result; KeyboardInterrupt propagates."""
        ...
