"""What doing a decided step means, one dispatcher per kind of make (the scheduler's executors).

* `InProcess`: one slot, this process: the sequential make. Permanences are shared by its
  steps; a torch.distributed step runs its ranks under torchrun and is waited for.
* `Workers`: N slots of worker processes (`-j N`) or of a Dask cluster (`--executor dask`).
  The driver stages, commits and records; workers only run (see schedule.py).
* `DryRun`: unbounded slots that change nothing: each step *would run* (or be restored).

The scheduler hands each step that must run to `start`: a finished result comes back at once,
or the step has started and `collect` returns it later, or there is no room for it yet.
A dispatcher sees the steps only through `StepLifecycle` (step_protocol.py): it claims,
prepares, concludes; the lifecycle stages, commits and tells the reporter and the run record.
Executors (tipi/execution/) run steps; they never import this module or the lifecycle.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from tipi.errors import TipiError
from tipi.report import StepResult
from tipi.step_protocol import Pending, Prepared, StepLifecycle

if TYPE_CHECKING:
    from tipi.execution.resources import ResourcePool, Resources
    from tipi.execution.types import Result, Task
    from tipi.lifecycle import Controller

POLL_SECONDS = 0.2

STARTED = True  # `start`: the step runs now; `collect` returns its result
NO_ROOM = False  # `start`: every slot (or the GPUs it needs) is taken; try again later


class Dispatch(Protocol):
    """The scheduler's view of an executor."""

    @property
    def running(self) -> int:
        """How many steps have started and not been collected."""
        ...

    @property
    def room(self) -> bool:
        """True while a slot is free (the step's resources may still not fit)."""
        ...

    def start(self, name: str, pending: Pending) -> StepResult | bool:
        """Do `name`: its result when done at once, else `STARTED` or `NO_ROOM`."""
        ...

    def collect(self) -> list[StepResult]:
        """Wait briefly for started steps; the results of those that ended."""
        ...

    def close(self, interrupted: bool) -> None:
        """Stop: discard what started and did not end; release workers and permanences."""
        ...


def dispatch_for(steps: StepLifecycle, order: list[str]) -> Dispatch:
    """The dispatcher the make's options ask for; `order`: the steps of this make."""
    options = steps.options
    if options.dry_run:
        return DryRun(steps)
    if (options.jobs or 1) > 1 or options.executor != "local":
        return Workers(steps, order)
    return InProcess(steps)


class DryRun:
    """Says what would happen and does nothing: no lock, no staging, no copy from a cache."""

    running = 0
    room = True

    def __init__(self, steps: StepLifecycle) -> None:
        self.steps = steps

    def start(self, name: str, pending: Pending) -> StepResult:
        return self.steps.would_run(name, pending)

    def collect(self) -> list[StepResult]:
        return []

    def close(self, interrupted: bool) -> None:
        pass


class InProcess:
    """One slot in this process: a step runs to its end inside `start`."""

    running = 0
    room = True

    def __init__(self, steps: StepLifecycle) -> None:
        self.steps = steps
        self.controller: Controller | None = None

    def start(self, name: str, pending: Pending) -> StepResult:
        steps = self.steps
        claimed = steps.claim(name, pending)
        if not isinstance(claimed, Pending):
            return claimed
        planned = steps.plan.steps[name]
        prepared = steps.prepare(name, claimed)
        try:
            if planned.launcher != "none":  # torch.distributed: ranks in child processes
                from tipi.execution.distributed import launch

                task = steps.task(prepared)
                result: Result = launch(task, lambda line: steps.reporter.step_output(name, line))
            else:
                from tipi.execution import SequentialExecutor

                resolved = steps.resolve()
                if self.controller is None:
                    from tipi.lifecycle import Controller

                    self.controller = Controller(resolved.permanences, steps.reporter)
                result = SequentialExecutor(self.controller).run(prepared.job(resolved))
        except BaseException:
            steps.discard(prepared)
            raise
        return steps.conclude(prepared, result)

    def collect(self) -> list[StepResult]:
        return []

    def close(self, interrupted: bool) -> None:
        """Clean up the permanences the steps initialized (always, also after Ctrl-C)."""
        if self.controller is not None:
            self.controller.cleanup()


@dataclass
class _Running:
    prepared: Prepared
    need: Resources
    task: Task
    slot: int
    gpus: list[str]
    status: str = ""

    @property
    def name(self) -> str:
        return self.prepared.name


class Workers:
    """Slots of worker processes or of a Dask cluster, opened when the first step runs.

    The driver (this process) does everything but run steps: it stages a step's outputs in a
    slot of its own, hands a Task to the pool, and when the step ends, shows its output,
    commits and records it. So traces have one writer, and a worker's crash loses at most
    that step's staging folder.
    """

    def __init__(self, steps: StepLifecycle, order: list[str]) -> None:
        self.steps = steps
        self.index = {name: i for i, name in enumerate(order)}
        self.pool: Any = None
        self.resources: ResourcePool | None = None
        self.free_slots: list[int] = []
        self.started: dict[Any, _Running] = {}
        self.claimed: dict[str, Pending] = {}  # claimed, waiting for a slot

    @property
    def running(self) -> int:
        return len(self.started)

    @property
    def room(self) -> bool:
        return self.pool is None or len(self.started) < self.pool.slots

    def start(self, name: str, pending: Pending) -> StepResult | bool:
        """Claim the step at once (a restore from the run cache needs no slot), then run it
        when a slot and the GPUs it needs are free; until then it stays claimed here."""
        from tipi.execution.resources import Resources

        claimed = self.claimed.pop(name, None)
        if claimed is None:
            outcome = self.steps.claim(name, pending)
            if not isinstance(outcome, Pending):
                return outcome  # restored: no worker, no cluster needed
            claimed = outcome
        self._open()
        need = Resources.of(self.steps.plan.steps[name].resources)
        gpus: list[str] | None = []
        if not self.room:
            gpus = None
        elif self.resources is not None:
            gpus = self.resources.take(need)  # None: not enough free now
        if gpus is None:
            self.claimed[name] = claimed
            return NO_ROOM
        self._submit(name, claimed, need, gpus)
        return STARTED

    def _open(self) -> None:
        """Start the pool (first step to run) and refuse steps that could never fit."""
        if self.pool is not None:
            return
        from tipi.execution.resources import Inventory, ResourcePool, Resources

        options = self.steps.options
        planned = self.steps.plan.steps
        if options.executor == "dask":
            from tipi.execution.dask import DaskPool

            self.pool = DaskPool(options.scheduler, options.jobs, self.steps.reporter.warning)
            checker = self.pool.check
        else:
            from tipi.execution.local import LocalPool

            self.pool = LocalPool(options.jobs or 1)
            self.resources = ResourcePool(
                options.inventory or Inventory.detect(),
                gpu_steps=any(Resources.of(s.resources).gpu for s in planned.values()),
            )
            checker = self.resources.check
        for name in self.index:
            if planned[name].resources:
                checker(name, Resources.of(planned[name].resources))
        self.free_slots = list(range(self.pool.slots))[::-1]
        self.steps.reporter.notice(
            f"running up to {self.pool.slots} step(s) at once on the {self.pool.name} executor"
            + (f" ({self.pool.address})" if options.executor == "dask" else "")
        )

    def _submit(self, name: str, pending: Pending, need: Resources, gpus: list[str]) -> None:
        steps = self.steps
        slot = self.free_slots.pop()
        prepared = steps.prepare(name, pending, slot)
        task = steps.task(prepared)
        devices = self.resources.devices(gpus) if self.resources is not None else None
        if devices is not None:  # its GPUs, or none in a pipeline where other steps reserve some
            task = replace(task, env={**task.env, "CUDA_VISIBLE_DEVICES": devices})
        try:
            future = self.pool.submit(task, need)
        except BaseException:
            steps.discard(prepared)
            self.free_slots.append(slot)
            self._give_back(need, gpus)
            raise
        self.started[future] = _Running(prepared, need, task, slot, gpus)

    def _give_back(self, need: Resources, gpus: list[str]) -> None:
        if self.resources is not None:
            self.resources.give_back(need, gpus)

    def collect(self) -> list[StepResult]:
        done = self.pool.wait(list(self.started), POLL_SECONDS)
        if not done:
            self._show_status()
            return []
        finished = []
        for future in sorted(done, key=lambda f: self.index[self.started[f].name]):
            running = self.started.pop(future)
            result = self.pool.result(future, running.task)
            self.free_slots.append(running.slot)
            self._give_back(running.need, running.gpus)
            output = _hide_secrets_in(Path(running.task.log))
            if output.strip():
                self.steps.reporter.step_output(running.name, output)
            try:
                ended = self.steps.conclude(running.prepared, result)
            except TipiError as error:  # not the step's fault: its outputs could not be moved
                ended = self.steps.fail(running.name, error, result.seconds)
            finished.append(ended)
        return finished

    def _show_status(self) -> None:
        """Each running step's bars, forwarded by its worker (tipi/report/channel.py), and
        its latest output line onto the display; a resume notice at the start of its log
        marks its row."""
        from tipi.report import channel

        for running in self.started.values():
            path = Path(running.task.log)
            channel.show(self._shown_name(running.name), running.task.log, running.task.run)
            note = _resume_note(path, running.name)
            if note:
                self.steps.reporter.step_progress(running.name, note)
            line = _last_line(path)
            if line and line != running.status:
                running.status = line
                self.steps.reporter.step_progress(running.name, line)

    def _shown_name(self, step: str) -> str:
        """The name the display knows `step` by."""
        return step

    def close(self, interrupted: bool) -> None:
        for running in self.started.values():
            self.steps.discard(running.prepared)
        self.started.clear()
        if self.pool is not None:
            self.pool.close(interrupted=interrupted)


def _read(path: Path) -> str:
    try:
        return path.read_text(errors="replace")
    except OSError:
        return ""


def _hide_secrets_in(log: Path) -> str:
    """The step's log, rewritten with its secrets hidden when it holds one: tipi keeps it
    under .tipi_cache/logs/, and secrets stay out of what tipi keeps (tipi.redact)."""
    from tipi.redact import hide_secrets

    output = _read(log)
    hidden = hide_secrets(output)
    if hidden != output:
        import contextlib

        from tipi.atomic import atomic_write

        # Unwritable: what is shown still hides them; the log stays as the step wrote it.
        with contextlib.suppress(OSError):
            atomic_write(log, hidden.encode(), durable=False)
    return hidden


def _last_line(path: Path, size: int = 4096) -> str:
    try:
        with open(path, "rb") as file:
            file.seek(0, 2)
            start = max(0, file.tell() - size)
            file.seek(start)
            lines: Iterable[bytes] = file.read().splitlines()[1 if start else 0 :]  # whole lines
    except OSError:
        return ""
    for line in reversed(list(lines)):
        text = line.decode(errors="replace").strip()
        if text and not text.startswith("[progress] "):  # those are on the bars
            return text[-120:]
    return ""


def _resume_note(path: Path, step: str, size: int = 4096) -> str:
    """The notice a step resuming its checkpoint prints first (`note: resuming train ...`)."""
    try:
        with open(path, "rb") as file:
            head = file.read(size).decode(errors="replace")
    except OSError:
        return ""
    for line in head.splitlines():
        if line.startswith(f"note: resuming {step} "):
            return line.strip()[:120]
    return ""
