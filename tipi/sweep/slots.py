"""What the variant makes of `tipi sweep -j N` share: N worker slots, the GPUs, the lock.

Each variant is an ordinary make (Build), run by one of N threads, but the threads take turns:
one holds `turn` whenever it runs tipi code (deciding, staging, committing, recording,
reporting) and lets it go only while it waits for its workers. So the trace log, the stat
cache, the failures file and the display are changed by one make at a time, as in a single
make; only the steps, in worker processes, run at once. The project lock is taken once for
all of them, when the first step of any variant is about to change a file.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Collection
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from tipi.dispatch import Workers
from tipi.report import Reporter, RunSummary, StepResult

if TYPE_CHECKING:
    from tipi.build import Build
    from tipi.execution.local import Handle, LocalPool
    from tipi.execution.resources import ResourcePool, Resources
    from tipi.execution.types import Task
    from tipi.state.layout import Layout
    from tipi.state.lock import ProjectLock
    from tipi.step import Steps
    from tipi.step_protocol import Pending

POLL_SECONDS = 0.2


class SharedSlots:
    """Slots, resources, stores and the project lock of the variants running side by side.

    Args:
        slots: how many steps may run at once, of all variants together (`-j N`).
        layout: the pipeline's layout (where its state lives).
        reporter: the sweep's reporter (notices and warnings about the lock and stores).
        rehash: as MakeOptions.rehash (the stat cache trusts no signature).
    """

    def __init__(
        self,
        slots: int,
        layout: Layout,
        reporter: Reporter,
        rehash: bool = False,
    ) -> None:
        from tipi.state.store import TraceStore, load_stat_cache

        # An RLock, not a Lock: Ctrl-C cannot leave the sweep's thread without it (`pause`).
        self.turn = threading.Condition(threading.RLock())
        self.slots = slots
        self.busy = 0  # steps started and not collected, of every variant
        self.stopping = False  # Ctrl-C, or a variant's error: every variant stops
        self.layout = layout
        self.reporter = reporter
        self.resources: ResourcePool | None = None  # the first variant's (SharedWorkers)
        self.pool = _SharedPool(self)
        self.real_pool: LocalPool | None = None
        self.lock: ProjectLock | None = None
        self.locked = False  # the lock's hold is its taker's thread's: this one's, not theirs
        self.lock_wanted = False
        self.lock_error: BaseException | None = None
        self.waited = False
        # One trace log for all: each make compacts the log it holds when it ends, which
        # would drop what another make appended since it read it.
        self.traces = TraceStore(layout.traces_file, reporter.warning)
        self.stat = load_stat_cache(layout.stat_file, reporter.warning, not rehash)
        self.builds: list[Build] = []
        self._prepared: set[int] = set()  # the makes whose lock duties are done (by id)

    def adopt(self, build: Build, label: str, index: int) -> None:
        """Make `build` (variant `label`) one of the variants sharing these slots."""
        from tipi.execution.staging import Staging

        state = build.state
        state._traces = self.traces
        state._stat = self.stat
        state._lock = _SharedLock(self)  # type: ignore[assignment]
        # Staging of its own: a make that ends tidies every slot folder of its staging root.
        staging = Staging(self.layout.cache, self.layout.pipeline)
        staging.staging_root = self.layout.variant_staging_dir(index)
        state._staging = staging
        build.dispatch_for = lambda steps, order: SharedWorkers(steps, order, self, label)
        self.builds.append(build)

    def take_lock(self, steps: Steps) -> bool:
        """In a variant's thread, before a step of `steps`' make changes a file: the project
        lock (taken once, for every variant, by the sweep's thread: see `serve`), and what a
        make does when it takes it. True if another make held it (decide again)."""
        from tipi.state.leftovers import remove_replaced_outputs
        from tipi.uptodate.clean import forget

        state, waited = steps.state, False
        if not self.locked:
            state.check_access()
            self.lock_wanted = True
            self.turn.notify_all()
            while not self.locked:
                self.check()
                if self.lock_error is not None:
                    raise self.lock_error
                self.turn.wait(POLL_SECONDS)
            waited = self.waited
        if id(steps) not in self._prepared:
            self._prepared.add(id(steps))
            state.check_access()
            outputs = steps.outputs_of
            remove_replaced_outputs(p for n in steps.plan.steps for p in outputs(n).values())
            forget(steps.layout.clean_file)
        return waited

    def serve(self) -> None:
        """In the sweep's thread (it holds the turn): take the project lock a variant asked
        for, waiting for another make that holds it; once taken, it is held until `close`."""
        if not self.lock_wanted or self.locked or self.lock_error is not None:
            return
        from tipi.errors import TipiError
        from tipi.execution.staging import Staging
        from tipi.state.lock import ProjectLock

        lock = ProjectLock(self.layout.cache, self.reporter.notice, self.reporter.warning)
        try:
            self.waited = lock.acquire()
        except TipiError as error:
            self.lock_error = error
            return
        finally:
            self.turn.notify_all()
        self.lock, self.locked = lock, True
        Staging(self.layout.cache, self.layout.pipeline).discard_all()  # killed makes' leftovers
        if self.waited:  # another make wrote traces and files meanwhile: read them again
            from tipi.state.store import TraceStore

            self.traces.close()
            self.traces = TraceStore(self.layout.traces_file, self.reporter.warning)
            for build in self.builds:
                build.state._traces = self.traces
                build.steps.facts.forget()

    def pause(self, timeout: float) -> None:
        """In the sweep's thread, holding the turn: let the variants take turns for up to
        `timeout`. With a plain Lock, Ctrl-C interrupted the acquire by which `wait` takes
        the turn back: this thread went on as if it held the turn, and released it under a
        variant. An RLock's is not interrupted, and it knows its owner: should Ctrl-C land
        where `wait` has let the turn go and not yet taken it back, it is taken back here."""
        try:
            self.turn.wait(timeout)
        except KeyboardInterrupt:
            while not self.turn._is_owned():  # type: ignore[attr-defined]
                with contextlib.suppress(KeyboardInterrupt):
                    self.turn.acquire()
            raise

    def started(self) -> None:
        self.busy += 1

    def freed(self, count: int) -> None:
        """`count` steps ended: their slots may take another variant's steps."""
        if count:
            self.busy -= count
            self.turn.notify_all()

    def check(self) -> None:
        """Stop this variant's make (as Ctrl-C would) once the sweep stops."""
        if self.stopping:
            raise KeyboardInterrupt

    def close(self, interrupted: bool) -> None:
        """After every variant ended: stop the workers, remove what they left staged, write
        the trace log compact, release the lock."""
        from tipi.execution.staging import Staging

        try:
            if self.real_pool is not None:
                self.real_pool.close(interrupted=interrupted)
            self.traces.close()
            if self.locked:
                Staging(self.layout.cache, self.layout.pipeline).tidy()
                self.traces.compact(force=False)
        except OSError as exc:
            self.reporter.warning(f"could not tidy up after the variants: {exc}")
        finally:
            if self.lock is not None and self.locked:
                self.lock.release()
                self.locked = False


class _SharedLock:
    """Stands for the project lock in each variant's state: held while the sweep holds it;
    released by the sweep, not by each make."""

    def __init__(self, shared: SharedSlots) -> None:
        self.shared = shared

    @property
    def held(self) -> bool:
        return self.shared.locked

    def release(self) -> None:
        pass


class _SharedPool:
    """The local worker pool of all variants: `wait` lets the other variants take their
    turn while this one waits for its workers."""

    name = "local"

    def __init__(self, shared: SharedSlots) -> None:
        self.shared = shared

    @property
    def slots(self) -> int:
        return self.shared.slots

    def submit(self, task: Task, need: Resources) -> Handle:
        assert self.shared.real_pool is not None
        return self.shared.real_pool.submit(task, need)

    def wait(self, handles: Collection[Handle], timeout: float) -> set[Handle]:
        turn = self.shared.turn
        if not handles or self.shared.real_pool is None:
            turn.wait(timeout)  # its steps wait for a slot: until another variant frees one
            return set()
        # Without the turn, LocalPool.wait touches only these handles' workers (its other
        # changes are single dict and list operations), so another variant may submit.
        turn.release()
        try:
            return self.shared.real_pool.wait(handles, timeout)
        finally:
            turn.acquire()

    def result(self, handle: Handle, task: Task) -> Any:
        assert self.shared.real_pool is not None
        return self.shared.real_pool.result(handle, task)


class SharedWorkers(Workers):
    """A variant's dispatcher: Workers whose slots are the sweep's, shared with the other
    variants (`room` counts every variant's running steps)."""

    def __init__(self, steps: Steps, order: list[str], shared: SharedSlots, label: str) -> None:
        super().__init__(steps, order)
        self.shared = shared
        self.label = label

    @property
    def running(self) -> int:
        # Steps waiting for a slot another variant holds keep the scheduler collecting.
        waiting = 0 if self.steps.stopped else len(self.claimed)
        return len(self.started) + waiting

    @property
    def room(self) -> bool:
        return self.shared.busy < self.shared.slots

    def start(self, name: str, pending: Pending) -> StepResult | bool:
        from tipi.step_protocol import Pending

        self.shared.check()
        if name not in self.claimed and self.shared.take_lock(self.steps):
            decided = self.steps.reconsider(name)  # another make changed files meanwhile
            if not isinstance(decided, Pending):
                return decided
            pending = decided
        return super().start(name, pending)

    def _open(self) -> None:
        """The first variant to run a step opens the pool and resources as any make does;
        the others share them."""
        if self.pool is not None:
            return
        shared = self.shared
        if shared.real_pool is None:
            super()._open()
            shared.real_pool, shared.resources = self.pool, self.resources
        else:
            from tipi.execution.resources import Resources

            assert shared.resources is not None
            steps = self.steps.plan.steps
            for name in self.index:
                if steps[name].resources:
                    shared.resources.check(name, Resources.of(steps[name].resources))
        self.pool, self.resources = shared.pool, shared.resources
        self.free_slots = list(range(shared.slots))[::-1]

    def _submit(self, name: str, pending: Pending, need: Resources, gpus: Any) -> None:
        super()._submit(name, pending, need, gpus)
        self.shared.started()

    def collect(self) -> list[StepResult]:
        self.shared.check()
        before = len(self.started)
        try:
            return super().collect()
        finally:
            self.shared.freed(before - len(self.started))

    def _shown_name(self, step: str) -> str:
        """The step under its variant's label, as the sweep's display knows it."""
        return labelled(step, self.label)

    def close(self, interrupted: bool) -> None:
        """Discard what started and did not end; the pool stays for the other variants."""
        for running in self.started.values():
            self.steps.discard(running.prepared)
            self._give_back(running.need, running.gpus)
        self.shared.freed(len(self.started))
        self.started.clear()


def labelled(step: str, variant: str) -> str:
    """How the display names a step of a variant running beside others: `train@lr=0.01`."""
    return f"{step}@{variant}"


class VariantReporter(Reporter):
    """One variant's events on the sweep's reporter, its steps named `step@variant`; the
    run's start and end are the sweep's (one display for every variant)."""

    def __init__(self, inner: Reporter, label: str) -> None:
        self.inner = inner
        self.label = label
        self.summary: RunSummary | None = None

    def step_started(self, name: str) -> None:
        self.inner.step_started(labelled(name, self.label))

    def step_finished(self, result: StepResult) -> None:
        self.inner.step_finished(replace(result, name=labelled(result.name, self.label)))

    def step_progress(self, name: str, line: str) -> None:
        self.inner.step_progress(labelled(name, self.label), line)

    def step_output(self, name: str, text: str) -> None:
        self.inner.step_output(labelled(name, self.label), text)

    def permanence_initializing(self, name: str) -> None:
        self.inner.permanence_initializing(name)

    def warning(self, message: str) -> None:
        self.inner.warning(message)

    def notice(self, message: str) -> None:
        self.inner.notice(message)

    def run_finished(self, summary: RunSummary) -> None:
        self.summary = summary
