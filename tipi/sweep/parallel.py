"""`tipi sweep -j N`: up to N variants at once, their steps sharing N worker slots.

First the steps the variants share (those the swept params do not reach) are made once,
through the first variant, as a sequential sweep makes them in its first variant. Then up to
N variant makes run side by side, each an ordinary make in one of N threads, taking turns
(slots.py): their steps run in N worker processes in all, GPUs reserved across variants. The
results are those of a sequential sweep, in the same order.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, Protocol

from tipi.errors import PipelineInterrupted
from tipi.report import NullReporter, Reporter, RunSummary, StepResult
from tipi.sweep.failures import SWEEP_AGAIN, VariantFailed
from tipi.sweep.sample import variant_name
from tipi.sweep.slots import POLL_SECONDS, SharedSlots, VariantReporter, labelled

if TYPE_CHECKING:
    from tipi.build import Build
    from tipi.engine import Engine, MakeOptions
    from tipi.runs.recorder import RunRecorder
    from tipi.sweep.results import VariantResult
    from tipi.sweep.spec import SweepSpec

Params = Mapping[str, Any]
# The first variant, its shared steps made: its engine, row, their results and their run.
Begun = tuple["Engine", "VariantResult", list[StepResult], "RunRecorder | None"]


class Sweep(Protocol):
    """What variants side by side use of runner.Sweep (which imports this module)."""

    base: Engine
    spec: SweepSpec
    name: str
    options: MakeOptions
    steps: frozenset[str]
    targets: list[str]
    reporter: Reporter | None

    def engine(self, params: Params, reporter: Reporter | None = None) -> Engine: ...

    def begin(self, engine: Engine, params: Params) -> VariantResult: ...

    def failed(self, result: VariantResult, error: BaseException) -> None: ...

    def conclude(
        self, engine: Engine, result: VariantResult, done: Sequence[StepResult]
    ) -> dict[str, float]: ...

    def run_each(self, chosen: Sequence[Params]) -> None: ...

    def _save(self) -> None: ...


@dataclass
class _Running:
    """One variant make running in its thread."""

    engine: Engine
    result: VariantResult
    build: Build
    reporter: VariantReporter
    started: float
    earlier: Sequence[StepResult] = ()  # steps made for it before (the shared ones)
    error: BaseException | None = None
    ended: bool = False


def run_side_by_side(sweep: Sweep, chosen: Sequence[Params]) -> None:
    """Make `chosen` variants of `sweep`, up to `-j` of them at once; their results go to
    `sweep.results` in the order of `chosen`.

    Raises:
        PipelineInterrupted: Ctrl-C; every variant stopped, finished ones are in the results.
        TipiError: a variant's make could not start (a config error, say); the others stopped.
    """
    first, rest = chosen[0], list(chosen[1:])
    selection = Selection.of(sweep, sweep.engine(first))
    if selection.alone:  # see Selection.alone: the first variant makes everything first
        sweep.run_each([first])
        _Side(sweep, rest, selection).run()
        return
    begun = _shared_first(sweep, first, selection)
    if begun is None:  # a shared step failed: each variant tries it again, as in sequence
        sweep.run_each(rest)
        return
    _Side(sweep, [first, *rest], selection, begun).run()


@dataclass(frozen=True)
class Selection:
    """What each variant's make considers (the same steps in every variant), and which of
    them are shared (not the variants' own)."""

    order: list[str]
    forced: list[str]
    shared: list[str]
    alone: bool  # no shared step to make first, but steps a swept permanence keeps apart

    @classmethod
    def of(cls, sweep: Sweep, engine: Engine) -> Selection:
        from tipi.graph.select import needed, resolve_targets

        plan = engine.load()

        def target(name: str) -> list[str]:
            return resolve_targets(name, list(plan.steps), plan.producers, engine.root)

        goal = [n for t in sweep.targets for n in target(t)] or list(plan.order)
        forced = [n for f in sweep.options.force for n in target(f)]
        selected = needed([*goal, *forced], plan.predecessors)
        order = [n for n in plan.order if n in selected]
        shared = [n for n in order if n not in sweep.steps]
        # A shared step that always runs would run in every variant, side by side.
        always = any(plan.steps[n].volatile or plan.steps[n].force for n in shared)
        # Sweeping a permanence keeps every step apart; the steps that do not use it are
        # restored from the run cache in later variants only once the first one ran them.
        keys = sweep.spec.swept or list(sweep.spec.parameters)
        permanence = any(key.split(".")[0] in plan.permanences for key in keys)
        return cls(order, forced, shared, always or (permanence and not shared))


def _shared_first(sweep: Sweep, first: Params, selection: Selection) -> Begun | None:
    """Make the shared steps once for all, as the first variant's (as a sequential sweep
    makes them in its first variant); None when one failed (the failure is its row)."""
    engine = sweep.engine(first)
    result = sweep.begin(engine, first)
    result.status = "running"
    started = time.perf_counter()
    if not selection.shared:
        return engine, result, [], None
    options = replace(sweep.options, force=[f for f in selection.forced if f not in sweep.steps])
    try:
        build = engine.build(selection.shared, options)
        summary = build.run()
    except BaseException as error:
        result.seconds = time.perf_counter() - started
        try:
            sweep.failed(result, error)
        except VariantFailed:
            return None
        finally:
            sweep._save()
        raise
    result.seconds = time.perf_counter() - started
    return engine, result, summary.results, build.steps.recorder


class _Side:
    """The variants made side by side: launched in order while fewer than N run."""

    def __init__(
        self,
        sweep: Sweep,
        chosen: Sequence[Params],
        selection: Selection,
        begun: Begun | None = None,
    ) -> None:
        self.sweep = sweep
        self.queue = list(chosen)
        self.selection = selection
        self.begun = begun
        self.jobs = sweep.options.jobs or 1
        self.reporter = sweep.reporter or NullReporter()
        self.shared: SharedSlots | None = None
        self.active: list[_Running] = []
        self.summary = RunSummary(sweep.base.name)
        self.error: BaseException | None = None
        self.interrupted: PipelineInterrupted | None = None
        self.runners: list[_Runner] = []
        self.finished = False

    def run(self) -> None:
        if not self.queue:
            return
        sweep, options = self.sweep, self.sweep.options
        self.shared = shared = SharedSlots(
            self.jobs, sweep.base.layout, self.reporter, options.rehash
        )
        started = time.perf_counter()
        names = [variant_name(params, sweep.spec.swept) for params in self.queue]
        self.reporter.run_started(
            sweep.base.name, [labelled(s, v) for v in names for s in self.selection.order]
        )
        with shared.turn:
            try:
                self._loop()
            except KeyboardInterrupt:
                self._stop()
                self.interrupted = self.interrupted or _interrupted(sweep)
            except BaseException:
                self._stop()
                raise
            finally:
                try:
                    shared.close(self.interrupted is not None)
                finally:
                    self.finished = True  # the runners end once the workers are stopped
                    shared.turn.notify_all()
                    self.summary.seconds = time.perf_counter() - started
                    self.summary.interrupted = self.interrupted is not None
                    self.reporter.run_finished(self.summary)
        for runner in self.runners:
            runner.join()
        if self.error is not None:
            raise self.error
        if self.interrupted is not None:
            raise self.interrupted

    def _loop(self) -> None:
        shared = self.shared
        assert shared is not None
        while self.queue or self.active:
            while self.queue and len(self.active) < self.jobs and not shared.stopping:
                self._launch(self.queue.pop(0))
            if shared.stopping and not self.active:
                return
            shared.pause(POLL_SECONDS)
            shared.serve()
            self._reap_ended()

    def _stop(self) -> None:
        """Every variant stops at its next turn (as Ctrl-C stops a make); wait for them."""
        assert self.shared is not None
        self.shared.stopping = True
        while self.active:
            try:
                self.shared.pause(POLL_SECONDS)
            except KeyboardInterrupt:
                continue  # again: they are stopping already
            self._reap_ended()

    def _reap_ended(self) -> None:
        for running in [r for r in self.active if r.ended]:
            self.active.remove(running)
            self._reap(running)

    def _launch(self, params: Params) -> None:
        """Start the next variant's make in a thread of its own (planned in this one)."""
        sweep, shared = self.sweep, self.shared
        assert shared is not None
        reporter = VariantReporter(self.reporter, variant_name(params, sweep.spec.swept))
        engine = sweep.engine(params, reporter)
        earlier: Sequence[StepResult] = ()
        run: RunRecorder | None = None
        if self.begun is not None:  # the first variant: its shared steps are made
            _, result, earlier, run = self.begun
            self.begun = None
        else:
            result = sweep.begin(engine, params)
        result.status = "running"
        started = time.perf_counter() - result.seconds
        try:
            build = engine.build(sweep.targets, self._options())
        except BaseException as error:
            self._failed(result, error, started)
            return
        if run is not None:
            _go_on_with(build, run)
        shared.adopt(build, reporter.label, len(shared.builds))
        running = _Running(engine, result, build, reporter, started, earlier)
        self.active.append(running)
        idle = [r for r in self.runners if r.job is None]
        if idle:
            idle[0].job = running
            shared.turn.notify_all()
        else:
            runner = _Runner(self, running, len(self.runners))
            self.runners.append(runner)
            runner.start()

    def _options(self) -> MakeOptions:
        """Each variant's make options: the shared steps are made already, and forcing them
        again in variants running at once would run them side by side."""
        options, owned = self.sweep.options, self.sweep.steps
        if options.force_all:
            force = [n for n in self.selection.order if n in owned]
            return replace(options, force_all=False, force=force)
        return replace(options, force=[f for f in self.selection.forced if f in owned])

    def _reap(self, running: _Running) -> None:
        """A variant's make ended: its row in the results, as a sequential sweep writes it."""
        result = running.result
        summary = running.reporter.summary  # the make's, whether it ended well or not
        done = summary.results if summary is not None else []
        self.summary.results += [replace(r, name=labelled(r.name, result.name)) for r in done]
        if running.error is not None:
            self._failed(result, running.error, running.started)
            return
        result.seconds = time.perf_counter() - running.started
        self.sweep.conclude(running.engine, result, [*running.earlier, *done])

    def _failed(self, result: VariantResult, error: BaseException, started: float) -> None:
        """As a sequential sweep records a failed variant; an error that would stop that
        sweep (Ctrl-C in a step, a config error) stops every variant here."""
        result.seconds = time.perf_counter() - started
        try:
            self.sweep.failed(result, error)
        except VariantFailed:
            return
        finally:
            self.sweep._save()
        assert self.shared is not None
        self.shared.stopping = True
        if isinstance(error, PipelineInterrupted):
            self.interrupted = self.interrupted or _interrupted(self.sweep)
        elif self.error is None:
            self.error = error


class _Runner(threading.Thread):
    """One of the N threads that make variants, one after another, taking turns (slots.py).
    It lives as long as the sweep: Linux ends a worker process when the thread that started
    it ends (die_with_parent), and a worker serves the steps of later variants too."""

    def __init__(self, side: _Side, job: _Running, index: int) -> None:
        super().__init__(name=f"tipi sweep runner {index}", daemon=True)
        self.side = side
        self.job: _Running | None = job

    def run(self) -> None:
        turn = self.side.shared.turn if self.side.shared is not None else None
        assert turn is not None
        with turn:
            while True:
                while self.job is None and not self.side.finished:
                    turn.wait()
                running = self.job
                if running is None:
                    return
                try:
                    running.build.run()
                except BaseException as error:  # the sweep's thread says what it means
                    running.error = error
                finally:
                    running.ended = True
                    self.job = None
                    turn.notify_all()


def _go_on_with(build: Build, earlier: RunRecorder) -> None:
    """The first variant's make records into the run of its shared steps: one run per
    variant in `tipi runs`, as one after another."""
    recorder = build.steps.recorder
    if recorder is None or not earlier.written:
        return
    record, before = recorder.record, earlier.record
    record.id, record.started = before.id, before.started
    record.commit, record.dirty = before.commit, before.dirty
    for name, step in before.steps.items():
        if step.outcome is not None:  # made (or failed) there; up to date here
            record.steps[name] = step
    recorder.written = True  # its file exists: the make's end rewrites it whole
    build.steps.run_id = record.id


def _interrupted(sweep: Sweep) -> PipelineInterrupted:
    return PipelineInterrupted(
        f"sweep {sweep.name} of '{sweep.base.name}' interrupted; no partial output was kept "
        "and every variant's make stopped",
        hint=SWEEP_AGAIN,
    )
