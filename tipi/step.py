"""One step's lifecycle in a make: facts → decide → restore or run → commit → record.

`Steps` holds what every step of one make shares (the plan, the options, the state under
`.tipi_cache/`, the outcomes so far) and walks one step at a time through its lifecycle:
`consider` (decide, reading only), `claim` (lock, restore from the run cache), `prepare`
(staging and scratch), `conclude` (commit and record, or fail). The scheduler (schedule.py)
decides when a step is considered, a dispatcher (dispatch.py) what doing it means: run it here,
hand it to workers, or, in a dry run, only say so. The rebuilder
(uptodate/rebuilder.py) decides; nothing here imports the scheduler or the make session.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from tipi.errors import ProcessFailure, TipiError
from tipi.identity.trace import Trace
from tipi.planning import Plan, absolute
from tipi.redact import conceal, secret_values
from tipi.report import Reporter, StepResult
from tipi.state.layout import Layout
from tipi.state.stores import State
from tipi.step_cache import RunCache
from tipi.uptodate.clean import forget as forget_clean
from tipi.uptodate.reasons import Reason
from tipi.uptodate.rebuilder import Decision, StepFacts, decide

if TYPE_CHECKING:
    from tipi.config.resolve import ResolvedPipeline
    from tipi.execution.resources import Inventory
    from tipi.execution.types import Result, Task
    from tipi.runs.recorder import RunRecorder

RAN_OR_RESTORED = ("ran", "restored")


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


@dataclass(frozen=True)
class Pending:
    """A step that must run (or be restored): why, and the facts to record when it did."""

    decision: Decision
    facts: StepFacts


@dataclass
class Outcomes:
    """What happened so far in this make."""

    outcomes: dict[str, str] = field(default_factory=dict)
    failures: list[tuple[str, TipiError]] = field(default_factory=list)
    stopped: bool = False
    skip_method: bool = False
    failed_runs: list[tuple[str, str, float, float]] = field(default_factory=list)


class Steps:
    """The lifecycle of each step of one make."""

    def __init__(
        self, context: MakeContext, plan: Plan, options: BuildOptions, state: State
    ) -> None:
        self.context = context
        self.plan = plan
        self.options = options
        self.state = state
        self.layout = context.layout
        self.root = context.root
        self.reporter = context.reporter
        self.done = Outcomes()
        self.run_id = ""  # the make's run (tipi runs), set by the make session
        self.recorder: RunRecorder | None = None  # none in a dry run
        self._used_configs: dict[str, dict] = {}
        self.cache = RunCache(self)
        self._known: dict[str, str | None] = {}
        # Caches and records keep a digest of a secret, never its value (tipi.redact).
        self._secrets = secret_values()
        self._configs = {
            k: conceal(v, self._secrets) for k, v in plan.permanences.items() if v is not None
        }

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
        decision, facts = self._decide(name)
        if not decision.run:
            return self.finish(StepResult(name, "skipped", reasons=decision.explain()))
        return Pending(decision, facts)

    def claim(self, name: str, pending: Pending) -> StepResult | Pending:
        """Before `name` changes any file: hold the project lock (deciding again if another
        make held it), then restore an earlier run from the run cache if there is one. A
        finished result, or the step to run."""
        if not self.state.lock_held and self._take_lock():
            decision, facts = self._decide(name)  # another make changed files meanwhile
            if not decision.run:
                return self.finish(StepResult(name, "skipped", reasons=decision.explain()))
            pending = Pending(decision, facts)
        record = self.cache.lookup(name, pending.facts)
        if record is not None:
            if self.recorder is not None:
                self.recorder.step_started(name)
            restored = self.cache.restore(name, pending.decision, pending.facts, record)
            if restored is not None:
                return restored
        return pending

    def _decide(self, name: str) -> tuple[Decision, StepFacts]:
        facts = self._facts(name)
        return decide(facts, self.state.traces.get(self.layout.key(name))), facts

    def _facts(self, name: str) -> StepFacts:
        step = self.plan.steps[name]
        pending: dict[str, str] = {}
        remade: dict[str, str] = {}
        inputs = {}
        for path in step.inputs.values():
            producer = self.plan.producers.get(path)
            outcome = self.done.outcomes.get(producer) if producer is not None else None
            if outcome == "would run":
                pending[path] = producer  # type: ignore[assignment]
                inputs[path] = None
                continue
            if outcome in RAN_OR_RESTORED:
                remade[path] = producer  # type: ignore[assignment]
            inputs[path] = self._hash(path)
        forced = name in self.options.forced or step.force
        params, inert = step.params, {}
        if step.inert:  # they name loggers and the like: kept, but out of the fingerprint
            inert = {k: params[k] for k in step.inert if k in params}
            params = {k: v for k, v in params.items() if k not in inert}
        return StepFacts(
            name=name,
            type=step.type,
            code=step.code,
            params=conceal(params, self._secrets),
            inert=conceal(inert, self._secrets) if inert else inert,
            inputs=inputs,
            outputs={p: self._hash(p) for p in step.outputs.values()},
            permanences=self._configs,
            pending=pending,
            remade=remade,
            forced=forced,
            volatile=step.volatile,
            force_reason="force = true" if step.force and name not in self.options.forced else "",
            environment=self.plan.environments.get(step.env, {}),
            rerun_on_env=self.plan.rerun_on_env,
            codes=self.state.codes,
        )

    def _hash(self, path: str) -> str | None:
        """The content hash of a project path, once per make: in a chain, one step's output
        is the next one's input. `_rehash` refreshes it after a step rewrote the file."""
        try:
            return self._known[path]
        except KeyError:
            return self._rehash(path)

    def _rehash(self, path: str) -> str | None:
        digest = self._known[path] = self.state.stat.hash_path(absolute(path, self.root))
        return digest

    def _take_lock(self) -> bool:
        """Take the project lock; True if another make held it (its results are reread)."""
        from tipi.state.leftovers import remove_replaced_outputs

        waited = self.state.lock()
        remove_replaced_outputs(p for n in self.plan.steps for p in self.outputs_of(n).values())
        forget_clean(self.layout.clean_file)
        self.state.staging.discard_all()
        if waited:
            self._known.clear()
            self.state.reload_traces()
        return waited

    # Running ----------------------------------------------------------------------------

    def prepare(
        self, name: str, facts: StepFacts, slot: int = 0
    ) -> tuple[dict[str, Path], Path, bytes]:
        """Staging paths for a run of `name`, its scratch folder (a checkpoint left there by
        an interrupted run of another fingerprint is discarded first, saying why) and the
        binding the step writes when it creates that folder."""
        from tipi.uptodate import resume

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
        return staged, scratch, resume.binding(facts, self.plan.steps[name].inputs)

    def outputs_of(self, name: str) -> dict[str, Path]:
        """The step's outputs as absolute paths, from the plan (no import of its class)."""
        return {k: Path(absolute(p, self.root)) for k, p in self.plan.steps[name].outputs.items()}

    def task(
        self, name: str, staged: dict[str, Path], scratch: Path, forced: bool, binding: bytes
    ) -> Task:
        """`name` as a Task for a worker process, a Dask worker or torchrun."""
        from tipi.execution.types import Task

        planned = self.plan.steps[name]
        variant = self.layout.variant
        return Task(
            root=str(self.root),
            pipeline=self.layout.pipeline,
            file=str(self.context.file),
            overrides=tuple(self.context.overrides),
            step=name,
            outputs={k: str(v) for k, v in staged.items()},
            scratch=str(scratch),
            forced=forced,
            log=str(self.layout.log_of(name)),
            env={"TIPI_NO_LIVE": "1"},
            nproc=planned.nproc,
            launcher=planned.launcher,
            variant=variant.to_data() if variant else None,
            source=self.plan.source,
            deps=tuple(tuple(d) for d in self.plan.deps),
            binding=binding.hex(),
            run=self.run_id,
        )

    # Concluding -------------------------------------------------------------------------

    def conclude(
        self,
        name: str,
        pending: Pending,
        staged: dict[str, Path],
        result: Result,
    ) -> StepResult:
        """Commit a finished step's outputs and record it, or record its failure."""
        outcome, seconds, error = result.outcome, result.seconds, result.error
        moved = self._code_moved(name) if outcome in ("ran", "skipped") else None
        if moved is not None:
            outcome = "failed"
            error = ProcessFailure(
                name,
                RuntimeError(f"{moved} changed while the step ran; its result is not kept"),
                hint="it may have run the old or the new code: run the make again",
            )
        try:
            if outcome == "ran":
                self.state.staging.commit(name, staged, self.outputs_of(name))
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

    def _code_moved(self, name: str) -> str | None:
        """A code file of the step (or of a permanence) that changed since the plan: the
        step may have imported it while it ran, so its fingerprint may not describe it."""
        from tipi.config.planned import stat_dep

        files = set(self.plan.code_files.get(self.plan.steps[name].code, ()))
        for config in self._configs.values():
            files.update(self.plan.code_files.get(config.get("code", ""), ()))
        if not files:
            return None
        planned = {d[0]: list(d) for d in self.plan.deps}
        for path in sorted(files):
            if path in planned and stat_dep(path) != planned[path]:
                return path
        return None

    def record(
        self, name: str, facts: StepFacts, used: frozenset[str], seconds: float, keep: bool = True
    ) -> None:
        relevant = sorted(u for u in used if self.plan.permanences.get(u) is not None)
        outputs = {p: self._rehash(p) for p in self.plan.steps[name].outputs.values()}
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
            extra={"inert": dict(facts.inert)},
            environment=facts.environment,
        )
        self.state.traces.put(self.layout.key(name), trace)
        self._used_configs[name] = trace.permanences
        if keep and not facts.volatile and self.options.run_cache:
            self.cache.keep(name, facts, trace.permanences, seconds)

    def fail(
        self, name: str, error: BaseException | None, seconds: float, reasons: tuple[str, ...]
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
