"""The parallel make: ready steps run in worker processes or on a Dask cluster.

The driver (this process) does everything but run steps: it decides each step once all its
predecessors are done, stages its outputs in a slot of its own, hands a Task to the pool,
and when the step ends, shows its output, commits and records it. So traces have one writer,
and a worker's crash loses at most that step's staging folder.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tipi.errors import TipiError
from tipi.step import Pending, Steps

if TYPE_CHECKING:
    from tipi.execution.resources import ResourcePool, Resources
    from tipi.execution.types import Task
    from tipi.report import RunSummary

POLL_SECONDS = 0.2
STATUS_SECONDS = 1.0


@dataclass
class _Ready:
    name: str
    pending: Pending
    need: Resources


@dataclass
class _Running:
    ready: _Ready
    task: Task
    staged: dict[str, Path]
    slot: int
    gpus: list[int]
    status: str = ""


class Scheduler:
    """Runs one make's steps concurrently; `run()` returns when every step has an outcome."""

    def __init__(self, steps: Steps, order: list[str], summary: RunSummary) -> None:
        self.steps = steps
        self.order = order
        self.summary = summary
        options = steps.options
        self.executor = options.executor
        self.jobs = options.jobs
        self.index = {name: i for i, name in enumerate(order)}
        selected = set(order)
        self.successors: dict[str, list[str]] = {name: [] for name in order}
        self.blocking: dict[str, int] = {}
        for name in order:
            predecessors = [p for p in steps.plan.predecessors[name] if p in selected]
            self.blocking[name] = len(predecessors)
            for p in predecessors:
                self.successors[p].append(name)
        self.ready: list[tuple[int, str]] = [
            (self.index[n], n) for n, count in self.blocking.items() if count == 0
        ]
        heapq.heapify(self.ready)
        self.waiting: list[_Ready] = []
        self.running: dict[Any, _Running] = {}
        self.pool: Any = None
        self.resources: ResourcePool | None = None
        self.free_slots: list[int] = []

    def run(self) -> None:
        interrupted = False
        try:
            while self.ready or self.waiting or self.running:
                self._decide_ready()
                self._start_waiting()
                if self.running:
                    self._collect()
                elif self.waiting:  # stopped after a failure: nothing more will start
                    for item in self.waiting:
                        self._done(self.steps.consider(item.name))
                    self.waiting.clear()
        except BaseException:
            interrupted = True
            raise
        finally:
            for running in self.running.values():
                self.steps.state.staging.discard(running.staged)
            if self.pool is not None:
                self.pool.close(interrupted=interrupted)

    def _decide_ready(self) -> None:
        while self.ready:
            _, name = heapq.heappop(self.ready)
            considered = self.steps.consider(name)
            if isinstance(considered, Pending):
                from tipi.execution.resources import Resources

                need = Resources.of(self.steps.plan.steps[name].resources)
                self.waiting.append(_Ready(name, considered, need))
            else:
                self._done(considered)

    def _done(self, result: Any) -> None:
        """A step has its outcome: record it, and release the steps that waited for it."""
        self.summary.results.append(result)
        for successor in self.successors[result.name]:
            self.blocking[successor] -= 1
            if self.blocking[successor] == 0:
                heapq.heappush(self.ready, (self.index[successor], successor))

    def _start_waiting(self) -> None:
        if self.steps.done.stopped or not self.waiting:
            return
        self._open()
        started = []
        for item in self.waiting:
            if len(self.running) >= self.pool.slots:
                break
            gpus: list[int] | None = []
            if self.resources is not None:
                gpus = self.resources.take(item.need)
                if gpus is None:
                    continue  # not enough free now; a smaller step further on may fit
            self._start(item, gpus)
            started.append(item)
        for item in started:
            self.waiting.remove(item)

    def _open(self) -> None:
        """Start the pool (first step to run) and refuse steps that could never fit."""
        if self.pool is not None:
            return
        from tipi.execution.resources import Inventory, ResourcePool, Resources

        options = self.steps.options
        steps = self.steps.plan.steps
        if self.executor == "dask":
            from tipi.execution.dask import DaskPool

            self.pool = DaskPool(options.scheduler, self.jobs)
            checker = self.pool.check
        else:
            from tipi.execution.local import LocalPool

            self.pool = LocalPool(self.jobs or 1)
            self.resources = ResourcePool(options.inventory or Inventory.detect())
            checker = self.resources.check
        for name in self.order:
            if steps[name].resources:
                checker(name, Resources.of(steps[name].resources))
        self.free_slots = list(range(self.pool.slots))[::-1]
        self.steps.reporter.notice(
            f"running up to {self.pool.slots} step(s) at once on the {self.pool.name} executor"
            + (f" ({self.pool.address})" if self.executor == "dask" else "")
        )

    def _start(self, item: _Ready, gpus: list[int]) -> None:
        steps = self.steps
        slot = self.free_slots.pop()
        facts = item.pending.facts
        staged, scratch, binding = steps.prepare(item.name, facts, slot)
        task = steps.task(item.name, staged, scratch, facts.forced, binding)
        if gpus:
            task = _with_env(task, {"CUDA_VISIBLE_DEVICES": ",".join(map(str, gpus))})
        steps.reporter.step_started(item.name)
        try:
            future = self.pool.submit(task, item.need)
        except BaseException:
            steps.state.staging.discard(staged)
            raise
        self.running[future] = _Running(item, task, staged, slot, gpus)

    def _collect(self) -> None:
        done = self.pool.wait(list(self.running), POLL_SECONDS)
        if not done:
            self._show_status()
            return
        for future in sorted(done, key=lambda f: self.index[self.running[f].ready.name]):
            running = self.running.pop(future)
            item = running.ready
            result = self.pool.result(future, running.task)
            self.free_slots.append(running.slot)
            if self.resources is not None:
                self.resources.give_back(item.need, running.gpus)
            output = _read(Path(running.task.log))
            if output.strip():
                self.steps.reporter.step_output(item.name, output)
            try:
                finished = self.steps.conclude(item.name, item.pending, running.staged, result)
            except TipiError as error:  # not the step's fault: its outputs could not be moved
                finished = self.steps.fail(item.name, error, result.seconds, ())
            self._done(finished)

    def _show_status(self) -> None:
        for running in self.running.values():
            line = _last_line(Path(running.task.log))
            if line and line != running.status:
                running.status = line
                self.steps.reporter.step_progress(running.ready.name, line)


def _with_env(task: Task, extra: dict[str, str]) -> Task:
    from dataclasses import replace

    return replace(task, env={**task.env, **extra})


def _read(path: Path) -> str:
    try:
        return path.read_text(errors="replace")
    except OSError:
        return ""


def _last_line(path: Path, size: int = 4096) -> str:
    try:
        with open(path, "rb") as file:
            file.seek(0, 2)
            file.seek(max(0, file.tell() - size))
            lines: Iterable[bytes] = file.read().splitlines()
    except OSError:
        return ""
    for line in reversed(list(lines)):
        text = line.decode(errors="replace").strip()
        if text:
            return text[-120:]
    return ""
