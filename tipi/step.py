"""One step's lifecycle in a make: facts → decide → restore or run → commit → record.

`Steps` holds what every step of one make shares (the plan, the options, the state under
`.tipi_cache/`, the outcomes so far) and walks one step at a time through its lifecycle:
`consider` (decide, reading only), `claim` (lock, restore from the run cache), `prepare`
(staging and scratch), `conclude` (commit and record, or fail). The scheduler (schedule.py)
decides when a step is considered, a dispatcher (dispatch.py) what doing it means: run it here,
hand it to workers, or, in a dry run, only say so; both see `Steps` only through the narrow
`StepLifecycle` (step_protocol.py). The rebuilder (uptodate/rebuilder.py) decides on the
facts step_facts.py reads; nothing here imports the scheduler or the make session.

A step's start and end are told here, to the reporter and to the run record (`tipi runs`)
alike: started in `prepare` (or, for a restore, in `claim`), ended in `finish`.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from tipi.errors import ProcessFailure, TipiError
from tipi.execution.staging import misplaced_output
from tipi.identity.trace import Trace
from tipi.planning import Plan, absolute
from tipi.report import Reporter, StepResult
from tipi.state.layout import Layout
from tipi.state.stores import State
from tipi.step_cache import RunCache, restorable
from tipi.step_facts import RAN_OR_RESTORED, FactReader, declare_secrets_of
from tipi.step_protocol import BuildOptions, Pending, Prepared
from tipi.uptodate.clean import forget as forget_clean
from tipi.uptodate.reasons import Reason
from tipi.uptodate.rebuilder import NAMES, StepFacts

if TYPE_CHECKING:
    from tipi.config.resolve import ResolvedPipeline
    from tipi.execution.types import Result, Task
    from tipi.runcache.content import CachedRun
    from tipi.runs.recorder import RunRecorder

__all__ = ["RAN_OR_RESTORED", "BuildOptions", "MakeContext", "Pending", "Prepared", "Steps"]


@dataclass(frozen=True)
class MakeContext:
    """What a make needs of its engine: the project, the pipeline, and how to resolve it."""

    layout: Layout
    file: Path
    overrides: Sequence[str]
    reporter: Reporter
    resolve: Callable[[], ResolvedPipeline]
    plan_from_cache: bool
    code_units: Mapping[str, Mapping[str, str]]

    @property
    def root(self) -> Path:
        return self.layout.root


@dataclass
class Outcomes:
    """What happened so far in this make."""

    outcomes: dict[str, str] = field(default_factory=dict)
    failures: list[tuple[str, TipiError]] = field(default_factory=list)
    stopped: bool = False
    skip_method: bool = False
    failed_runs: list[tuple[str, str, float, float]] = field(default_factory=list)


class Steps:
    """The lifecycle of each step of one make (a `StepLifecycle`, step_protocol.py).

    Args:
        recorder: the make's run (`tipi runs`); None in a dry run. `run_id` is its id.
    """

    def __init__(
        self,
        context: MakeContext,
        plan: Plan,
        options: BuildOptions,
        state: State,
        recorder: RunRecorder | None = None,
    ) -> None:
        self.context = context
        self.plan = plan
        self.options = options
        self.state = state
        self.layout = context.layout
        self.root = context.root
        self.reporter = context.reporter
        self.done = Outcomes()
        self.recorder = recorder
        self.run_id = recorder.id if recorder is not None else ""  # its loggers are told
        self._used_configs: dict[str, dict] = {}
        self._outputs: dict[str, dict[str, Path]] = {}  # outputs_of, once a step
        self.facts = FactReader(plan, state, context.layout, options.forced, self.done.outcomes)
        self.cache = RunCache(
            plan,
            state,
            context.reporter,
            self.facts.decide,
            remote=options.remote,
            enabled=options.run_cache,
            dry_run=options.dry_run,
        )
        declare_secrets_of(plan, tuple(context.overrides))

    @property
    def stopped(self) -> bool:
        return self.done.stopped

    # Deciding ---------------------------------------------------------------------------

    def consider(self, name: str) -> StepResult | Pending:
        """Decide `name` (its predecessors are done): a finished result when it needs no
        run, else why it must run. Reads only: a dry run stops here (dispatch.py)."""
        blocker = next(
            (p for p in self.plan.predecessors[name] if self.done.outcomes.get(p) in _BLOCKING),
            None,
        )
        if self.done.stopped or blocker is not None:
            reasons = (str(Reason("failed-upstream", blocker)),) if blocker else ()
            return self.finish(StepResult(name, "not run", reasons=reasons))
        return self.reconsider(name)

    def reconsider(self, name: str) -> StepResult | Pending:
        """Decide `name` as things are now: skipped when up to date, else why it must run.
        Again after another make held the lock: it may have changed files meanwhile."""
        decision, facts = self.facts.decide(name)
        if not decision.run:
            return self.finish(StepResult(name, "skipped", reasons=decision.explain()))
        return Pending(decision, facts)

    def claim(self, name: str, pending: Pending) -> StepResult | Pending:
        """Before `name` changes any file: hold the project lock (deciding again if another
        make held it), then restore an earlier run from the run cache if there is one. A
        finished result, or the step to run."""
        if not self.state.lock_held and self._take_lock():
            decided = self.reconsider(name)  # another make changed files meanwhile
            if not isinstance(decided, Pending):
                return decided
            pending = decided
        record = self.cache.lookup(name, pending.facts)
        if record is not None:
            restored = self._restore(name, pending, record)
            if restored is not None:
                return restored
        return pending

    def would_run(self, name: str, pending: Pending) -> StepResult:
        """A dry run's result for `name`, which must run: it would, or would be restored
        (looked up, not downloaded: a dry run changes nothing)."""
        reasons = tuple(pending.decision.explain())
        record = self.cache.lookup(name, pending.facts, fetch=False)
        if record is not None:
            reasons = (f"{restorable(record)}: it would be restored", *reasons)
        return self.finish(StepResult(name, "would run", reasons=reasons))

    def _restore(self, name: str, pending: Pending, record: CachedRun) -> StepResult | None:
        """Put an earlier run's outputs in place instead of running `name`, and record it;
        None when that failed and the step must run after all."""
        if self.recorder is not None:
            self.recorder.step_started(name)
        started = time.perf_counter()
        if not self.cache.restore(name, record, self.outputs_of(name)):
            return None
        self.record(name, pending.facts, frozenset(record.permanences), record.seconds, keep=False)
        reasons = (restorable(record), *pending.decision.explain())
        return self.finish(StepResult(name, "restored", time.perf_counter() - started, reasons))

    def _take_lock(self) -> bool:
        """Take the project lock; True if another make held it (its results are reread)."""
        from tipi.state.leftovers import remove_replaced_outputs

        waited = self.state.lock()
        remove_replaced_outputs(p for n in self.plan.steps for p in self.outputs_of(n).values())
        forget_clean(self.layout.clean_file)
        self.state.staging.discard_all()
        if waited:
            self.facts.forget()
            self.state.reload_traces()
        return waited

    # Running ----------------------------------------------------------------------------

    def prepare(self, name: str, pending: Pending, slot: int = 0) -> Prepared:
        """Staging paths for a run of `name` in `slot`, its scratch folder (a checkpoint left
        there by an interrupted run of another fingerprint is discarded first, saying why)
        and the binding the step writes when it creates that folder. The step has started:
        the run record and the reporter are told (the one before staging, as a restore)."""
        from tipi.uptodate import resume

        facts = pending.facts
        if self.recorder is not None:
            self.recorder.step_started(name)
        slug = self.layout.slug(name)
        staged, scratch = self.state.staging.prepare(name, self.outputs_of(name), slot, slug)
        if scratch.is_dir():
            old = resume.read_binding(scratch)
            reasons = resume.mismatch(old, facts)
            if reasons:
                why = (
                    resume.describe(reasons)
                    if old is not None
                    else "it records no fingerprint to compare"
                )
                self.reporter.notice(f"discarding the resume checkpoint of {name}: {why}")
                self.state.staging.finish(slug)
            elif not self.plan.steps[name].announces_resume:
                when = resume.last_checkpoint(scratch)
                if when is not None:
                    at = time.strftime("%H:%M", time.localtime(when))
                    self.reporter.notice(f"resuming {name} from its checkpoint of {at}")
        binding = resume.binding(facts, self.plan.steps[name].inputs)
        self.reporter.step_started(name)
        return Prepared(name, pending, staged, scratch, binding, self.run_id, self.layout.pipeline)

    def discard(self, prepared: Prepared) -> None:
        """Remove what `prepared` staged: it will not conclude (interrupted, not submitted)."""
        self.state.staging.discard(prepared.staged)

    def outputs_of(self, name: str) -> dict[str, Path]:
        """The step's outputs as absolute paths, from the plan (no import of its class)."""
        known = self._outputs.get(name)
        if known is None:  # asked four times a step: the plan does not change in a make
            outputs = self.plan.steps[name].outputs.items()
            known = self._outputs[name] = {k: Path(absolute(p, self.root)) for k, p in outputs}
        return dict(known)

    def task(self, prepared: Prepared) -> Task:
        """The prepared step as a Task for a worker process, a Dask worker or torchrun."""
        from tipi.execution.types import Task

        name = prepared.name
        planned = self.plan.steps[name]
        variant = self.layout.variant
        return Task(
            root=str(self.root),
            pipeline=self.layout.pipeline,
            file=str(self.context.file),
            overrides=tuple(self.context.overrides),
            step=name,
            outputs={k: str(v) for k, v in prepared.staged.items()},
            scratch=str(prepared.scratch),
            forced=prepared.forced,
            log=str(self.layout.log_of(name)),
            env={"TIPI_NO_LIVE": "1"},
            nproc=planned.nproc,
            launcher=planned.launcher,
            variant=variant.to_data() if variant else None,
            source=self.plan.source,
            deps=tuple(tuple(d) for d in self.plan.deps),
            binding=prepared.binding.hex(),
            run=prepared.run,
        )

    def resolve(self) -> ResolvedPipeline:
        """The pipeline with its classes imported (once per make: the planner keeps it)."""
        return self.context.resolve()

    # Concluding -------------------------------------------------------------------------

    def conclude(self, prepared: Prepared, result: Result) -> StepResult:
        """Commit a finished step's outputs and record it, or record its failure."""
        name, pending, staged = prepared.name, prepared.pending, prepared.staged
        outcome, seconds, error = result.outcome, result.seconds, result.error
        moved = self.facts.code_moved(name) if outcome in ("ran", "skipped") else None
        if moved is not None:
            outcome = "failed"
            error = ProcessFailure(
                name,
                RuntimeError(f"{moved} changed while the step ran; its result is not kept"),
                hint="it may have run the old or the new code: run the make again",
            )
        try:
            if outcome == "ran":
                since = time.time() - seconds
                self.state.staging.commit(name, staged, self.outputs_of(name), since)
            elif outcome == "failed" and isinstance(error, TipiError):
                misplaced_output(error, self.outputs_of(name), self.root)
        except ProcessFailure as failure:
            outcome, error = "failed", failure
        finally:
            self.state.staging.discard(staged)
        reasons = tuple(pending.decision.explain())
        if outcome == "interrupted":
            raise KeyboardInterrupt
        if outcome == "skipped":
            self.done.skip_method = True
            return self.finish(StepResult(name, "skipped", seconds, (str(Reason("skip-method")),)))
        if self.recorder is not None and result.logged:
            self.recorder.logged(name, result.logged)
        if outcome == "failed":
            return self.fail(name, error, seconds, reasons)
        self.record(name, pending.facts, frozenset(result.used), seconds)
        self.state.staging.finish(self.layout.slug(name))
        return self.finish(StepResult(name, "ran", seconds, reasons))

    def record(
        self, name: str, facts: StepFacts, used: frozenset[str], seconds: float, keep: bool = True
    ) -> None:
        relevant = sorted(u for u in used if self.plan.permanences.get(u) is not None)
        outputs = {p: self.facts.rehash(p) for p in self.plan.steps[name].outputs.values()}
        trace = Trace(
            fingerprint=facts.fingerprint(relevant),
            type=facts.type,
            code=facts.code,
            params=facts.params,
            inputs=facts.inputs,
            permanences=facts.used_configs(relevant),
            outputs=outputs,
            finished=time.time(),
            seconds=seconds,
            extra={"inert": dict(facts.inert), NAMES: dict(facts.input_names)},
            environment=facts.environment,
        )
        self.state.traces.put(self.layout.key(name), trace)
        self._used_configs[name] = trace.permanences
        if keep and not facts.volatile and self.options.run_cache:
            self.cache.keep(name, facts, trace.permanences, seconds, self.outputs_of(name))

    def fail(
        self,
        name: str,
        error: BaseException | None,
        seconds: float,
        reasons: tuple[str, ...] = (),
    ) -> StepResult:
        failure = (
            error
            if isinstance(error, TipiError)
            else ProcessFailure(name, error or RuntimeError("the step failed"))
        )
        self.done.failures.append((name, failure))
        self.done.failed_runs.append((name, str(failure), time.time(), seconds))
        self.done.stopped = not self.options.keep_going
        return self.finish(StepResult(name, "failed", seconds, reasons, error=str(failure)))

    def finish(self, result: StepResult) -> StepResult:
        """`result` is the step's outcome: told to the run record and the reporter."""
        self.done.outcomes[result.name] = result.outcome
        recorder = self.recorder
        if recorder is not None and result.outcome in ("ran", "restored", "failed"):
            recorder.step_ended(
                result.name,
                result.outcome,
                seconds=result.seconds,
                permanences=self._used_configs.get(result.name),
                error=result.error or "",
            )
        elif recorder is not None and recorder.started(result.name):
            recorder.step_ended(result.name, result.outcome, seconds=result.seconds)  # skip()
        elif recorder is not None and recorder.written and result.outcome == "not run":
            recorder.step_ended(result.name, "not run")
        self.reporter.step_finished(result)
        return result


_BLOCKING = ("failed", "not run")
