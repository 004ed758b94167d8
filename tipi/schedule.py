"""The one scheduler: every make, sequential, parallel or dry, walks its steps here.

A step is considered (decided, reading only) once every predecessor has an outcome, lowest
position in the make's order first; a step that must run goes to the dispatcher
(dispatch.py), which runs it here, hands it to workers, or only says it would run. With the
one in-process slot every step ends inside `start`, so the walk is exactly the sequential
make: each step decided after the steps before it ended, in order.
"""

from __future__ import annotations

import heapq

from tipi.dispatch import NO_ROOM, Dispatch
from tipi.report import RunSummary, StepResult
from tipi.step_protocol import Pending, StepLifecycle


class Scheduler:
    """Runs one make's steps; `run()` returns when every step has an outcome."""

    def __init__(
        self, steps: StepLifecycle, order: list[str], summary: RunSummary, dispatch: Dispatch
    ) -> None:
        self.steps = steps
        self.summary = summary
        self.dispatch = dispatch
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
        self.waiting: list[tuple[str, Pending]] = []

    def run(self) -> None:
        interrupted = False
        try:
            while self.ready or self.waiting or self.dispatch.running:
                if self.ready:
                    self._consider(heapq.heappop(self.ready)[1])
                elif self.dispatch.running:
                    for result in self.dispatch.collect():
                        self._done(result)
                    self._start_waiting()
                else:  # stopped after a failure: nothing more will start
                    if not self.steps.stopped:  # cannot happen: resources are checked
                        waiting = ", ".join(name for name, _ in self.waiting)
                        raise RuntimeError(f"no slot of the executor can ever take {waiting}")
                    for name, _ in self.waiting:
                        self._done(self.steps.consider(name))
                    self.waiting.clear()
        except BaseException:
            interrupted = True
            raise
        finally:
            self.dispatch.close(interrupted)

    def _consider(self, name: str) -> None:
        considered = self.steps.consider(name)
        if isinstance(considered, Pending):
            started = self.dispatch.start(name, considered)
            if started is NO_ROOM:
                self.waiting.append((name, considered))
            elif isinstance(started, StepResult):
                self._done(started)
        else:
            self._done(considered)

    def _start_waiting(self) -> None:
        """When a slot frees: start what waits, in order; a step that needs more GPUs than
        are free now waits, and a smaller one after it may start."""
        if self.steps.stopped:
            return
        for item in list(self.waiting):
            if self.steps.stopped or not self.dispatch.room:
                return
            name, pending = item
            started = self.dispatch.start(name, pending)
            if started is NO_ROOM:
                continue
            self.waiting.remove(item)
            if isinstance(started, StepResult):
                self._done(started)

    def _done(self, result: StepResult) -> None:
        """A step has its outcome: keep it, and release the steps that waited for it."""
        self.summary.results.append(result)
        for successor in self.successors[result.name]:
            self.blocking[successor] -= 1
            if self.blocking[successor] == 0:
                heapq.heappush(self.ready, (self.index[successor], successor))
