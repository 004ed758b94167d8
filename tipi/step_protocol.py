"""What the scheduler and a dispatcher may do with the steps of one make: `StepLifecycle`,
the narrow protocol step.py's `Steps` implements, and the values that pass through it.

The scheduler (schedule.py) asks `consider` for each step once its predecessors are done. A
dispatcher (dispatch.py) takes a step that must run (`Pending`) through `claim` (the project
lock, a restore from the run cache) → `prepare` (staging, scratch: a `Prepared` step) → it
runs it (a `task` for a worker or torchrun, or `Prepared.job` in this process) → `conclude`
(commit and record), or `discard` when it gave up; a dry run only asks `would_run`. Every
event of a step's start and end, to the reporter and to the run record (`tipi runs`), is
told by the lifecycle itself, never by its caller.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from tipi.config.resolve import ResolvedPipeline
    from tipi.execution.resources import Inventory
    from tipi.execution.types import Job, Result, Task
    from tipi.planning import Plan
    from tipi.report import Reporter, StepResult
    from tipi.uptodate.rebuilder import Decision, StepFacts


@dataclass(frozen=True)
class BuildOptions:
    """How to make, resolved for one plan (engine.MakeOptions is what users give)."""

    dry_run: bool = False
    forced: frozenset[str] = frozenset()
    keep_going: bool = False
    resume_command: str = "tipi make"
    jobs: int | None = None
    executor: str = "local"
    scheduler: str | None = None
    inventory: Inventory | None = None
    remote: str | None = None
    run_cache: bool = True
    rehash: bool = False


@dataclass(frozen=True)
class Pending:
    """A step that must run (or be restored): why, and the facts to record when it did."""

    decision: Decision
    facts: StepFacts


@dataclass(frozen=True)
class Prepared:
    """A claimed step ready to run: where it writes its outputs (`staged`), its scratch
    folder, the binding it writes there, and the run (`tipi runs`) it belongs to."""

    name: str
    pending: Pending
    staged: dict[str, Path]
    scratch: Path
    binding: bytes
    run: str  # the make's run id; "" in none (a dry run)
    pipeline: str

    @property
    def forced(self) -> bool:
        return self.pending.facts.forced

    def job(self, resolved: ResolvedPipeline) -> Job:
        """The step as a Job for this process, from the pipeline with its classes imported."""
        from tipi.execution.types import Job, run_info

        step = resolved.steps[self.name]
        run = run_info(self.run, self.pipeline, step, resolved.permanences, resolved.steps)
        return Job(step, self.staged, self.scratch, self.forced, self.binding, run)


class StepLifecycle(Protocol):
    """The steps of one make, as the scheduler and the dispatchers see them."""

    @property
    def plan(self) -> Plan:
        """The make's plan (read only)."""
        ...

    @property
    def options(self) -> BuildOptions: ...

    @property
    def reporter(self) -> Reporter:
        """Where a dispatcher tells what it does (notices, a running step's output)."""
        ...

    @property
    def stopped(self) -> bool:
        """True once a failure stopped the make (without --keep-going): nothing more starts."""
        ...

    def consider(self, name: str) -> StepResult | Pending:
        """Decide `name` (its predecessors are done), reading only: a finished result, or
        why it must run."""
        ...

    def reconsider(self, name: str) -> StepResult | Pending:
        """Decide `name` again: another make held the lock and may have changed files."""
        ...

    def claim(self, name: str, pending: Pending) -> StepResult | Pending:
        """Before `name` changes a file: the lock, then a restore if the run cache has one."""
        ...

    def would_run(self, name: str, pending: Pending) -> StepResult:
        """A dry run's result for `name`: it would run, or be restored."""
        ...

    def prepare(self, name: str, pending: Pending, slot: int = 0) -> Prepared:
        """Stage `name` to run in `slot` (the step has started from here on)."""
        ...

    def task(self, prepared: Prepared) -> Task:
        """The step as plain data for a worker process, a Dask worker or torchrun."""
        ...

    def resolve(self) -> ResolvedPipeline:
        """The pipeline with its classes imported, to run a step in this process."""
        ...

    def discard(self, prepared: Prepared) -> None:
        """Give up a prepared step that will not conclude (interrupted, never submitted)."""
        ...

    def conclude(self, prepared: Prepared, result: Result) -> StepResult:
        """Commit a finished step's outputs and record it, or record its failure."""
        ...

    def fail(self, name: str, error: BaseException | None, seconds: float) -> StepResult:
        """`name` failed for a reason outside it (its outputs could not be moved)."""
        ...
