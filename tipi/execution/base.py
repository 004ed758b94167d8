"""The executor protocol: run one job (a step with its staging paths), report how it went."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Literal, Protocol

if TYPE_CHECKING:
    from tipi.config.resolve import ResolvedStep


@dataclass(frozen=True)
class Job:
    """One step to execute.

    Attributes:
        step: the resolved step (class, params, final paths).
        outputs: output name → staging path the process writes to.
        scratch: the step's scratch folder (survives a crash, removed after success).
        forced: run even if the process's skip() says the work is done.
        binding: written into the scratch folder when the step creates it (cache/resume.py).
    """

    step: ResolvedStep
    outputs: Mapping[str, Path]
    scratch: Path
    forced: bool = False
    binding: bytes = b""

    @property
    def name(self) -> str:
        return self.step.name


@dataclass(frozen=True)
class JobResult:
    """How a job went: ran, was skipped by its skip(), or failed (error set)."""

    name: str
    outcome: Literal["ran", "skipped", "failed"]
    seconds: float = 0.0
    used: frozenset[str] = field(default_factory=frozenset)
    error: BaseException | None = None


class Executor(Protocol):
    """Runs jobs. Sequential runs in this process; others may use workers or a cluster."""

    def run(self, job: Job) -> JobResult:
        """Execute `job` and return its result; KeyboardInterrupt propagates."""
        ...
