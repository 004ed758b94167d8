"""One make: decides each needed step in order, runs what must run, records what succeeded."""

from __future__ import annotations

import functools
import time
from collections import ChainMap
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from tipi.cache.clean import forget as forget_clean
from tipi.cache.clean import is_clean, write_clean_record
from tipi.cache.failures import update_failures
from tipi.cache.hashing import StatCache
from tipi.cache.reasons import Reason
from tipi.cache.rebuilder import UP_TO_DATE, Decision, StepFacts, decide
from tipi.cache.store import TraceStore, read_document, write_document
from tipi.cache.trace import Trace
from tipi.errors import BuildFailed, PipelineInterrupted, ProcessFailure, TipiError
from tipi.planning import Plan, absolute
from tipi.report import RunSummary, StepResult

if TYPE_CHECKING:
    from tipi.cache.content import ContentStore, RunRecord
    from tipi.cache.lock import ProjectLock
    from tipi.cache.remote import RemoteStore
    from tipi.engine import Engine
    from tipi.execution.base import JobResult
    from tipi.execution.resources import Inventory
    from tipi.execution.staging import Staging
    from tipi.execution.task import Task, TaskResult
    from tipi.lifecycle import Controller

STAT_KIND = "stat-cache"
RESTORE_SLOT = 999  # the staging slot the driver restores cached runs through
RAN_OR_RESTORED = ("ran", "restored")
_UP = UP_TO_DATE.explain()


@dataclass(frozen=True)
class BuildOptions:
    """How to make: `jobs` > 1 or the dask executor runs steps in workers (schedule.py)."""

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

    @property
    def parallel(self) -> bool:
        return not self.dry_run and ((self.jobs or 1) > 1 or self.executor != "local")


@dataclass
class _State:
    outcomes: dict[str, str] = field(default_factory=dict)
    failures: list[tuple[str, TipiError]] = field(default_factory=list)
    stopped: bool = False
    skip_method: bool = False
    shortcut: bool = False
    completed: bool = False
    failed_runs: list[tuple[str, str, float, float]] = field(default_factory=list)
    kept: list[RunRecord] = field(default_factory=list)


class Build:
    """The state of one make; `run()` is the whole of it and always cleans up."""

    def __init__(
        self, engine: Engine, plan: Plan, order: Sequence[str], options: BuildOptions
    ) -> None:
        self.engine = engine
        self.plan = plan
        self.order = list(order)
        self.options = options
        self.reporter = engine.reporter
        self.root = engine.root
        self.state_dir = engine.cache_dir / "pipelines" / engine.name
        self.stat_file = engine.cache_dir / "stat.msgpack"
        self.clean_file = engine.state_dir / "clean.msgpack"
        # Loaded on first use: the clean-record shortcut needs neither.
        self._store: TraceStore | None = None
        self._stat: StatCache | None = None
        # Executing needs more machinery than deciding; a no-op make never loads it.
        self._staging: Staging | None = None
        self._run_cache: ContentStore | None = None
        self.remote: RemoteStore | None = None
        if options.remote:
            from tipi.cache.remote import RemoteStore

            self.remote = RemoteStore(options.remote, self.reporter.warning)
        self.lock = _Lock(engine.cache_dir, engine.reporter.notice)
        self.controller: Controller | None = None
        self.state = _State()
        self._known: dict[str, str | None] = {}
        self._configs = {k: v for k, v in plan.permanences.items() if v is not None}

    @property
    def store(self) -> TraceStore:
        if self._store is None:
            self._store = TraceStore(self.state_dir / "traces.log", self.reporter.warning)
        return self._store

    @store.setter
    def store(self, value: TraceStore) -> None:
        self._store = value

    @property
    def stat(self) -> StatCache:
        if self._stat is None:
            entries = read_document(self.stat_file, STAT_KIND, self.reporter.warning)
            self._stat = StatCache(
                entries if isinstance(entries, dict) else {}, trusted=not self.options.rehash
            )
        return self._stat

    @property
    def staging(self) -> Staging:
        if self._staging is None:
            from tipi.execution.staging import Staging

            self._staging = Staging(self.engine.cache_dir, self.engine.name)
        return self._staging

    def _hash(self, path: str) -> str | None:
        """The content hash of a project path, once per make: in a chain, one step's output
        is the next one's input. `_rehash` refreshes it after a step rewrote the file."""
        try:
            return self._known[path]
        except KeyError:
            return self._rehash(path)

    def _rehash(self, path: str) -> str | None:
        digest = self._known[path] = self.stat.hash_path(absolute(path, self.root))
        return digest

    def run(self) -> RunSummary:
        summary = RunSummary(self.plan.pipeline, dry_run=self.options.dry_run)
        started = time.perf_counter()
        self.reporter.run_started(self.plan.pipeline, self.order)
        try:
            if self._clean_shortcut():
                self.state.shortcut = True
                summary.results += [
                    self._finish(StepResult(n, "skipped", reasons=_UP)) for n in self.order
                ]
            elif self.options.parallel:
                from tipi.schedule import Scheduler

                Scheduler(self, summary).run()
            else:
                for name in self.order:
                    summary.results.append(self._step(name))
            self.state.completed = True
        except KeyboardInterrupt:
            summary.interrupted = True
            raise PipelineInterrupted(
                f"make of '{self.plan.pipeline}' interrupted; no partial output was kept and "
                "every initialized permanence was cleaned up",
                hint=f"run `{self.options.resume_command}` to continue where it stopped",
            ) from None
        finally:
            self._close()
            done = {r.name for r in summary.results}
            summary.results += [StepResult(n, "not run") for n in self.order if n not in done]
            summary.seconds = time.perf_counter() - started
            self.reporter.run_finished(summary)
        self._raise_failures()
        return summary

    def _clean_shortcut(self) -> bool:
        """True when the clean record proves every selected step up to date (see clean.py)."""
        if self.options.forced or self.options.rehash or not self.engine.planner.from_cache:
            return False
        steps = self.plan.steps
        if any(steps[n].volatile or steps[n].force for n in self.order):
            return False
        return is_clean(self.clean_file, self.order, self.reporter.warning)

    def _record_clean(self) -> None:
        """Write the clean record after a complete make with nothing failed, forced, volatile
        or left to `skip()`. Called while the lock is held, or taken without waiting: a make
        running beside this one must not change files while their signatures are recorded."""
        state = self.state
        if self.options.dry_run or state.shortcut or not state.completed:
            return
        if state.failures or state.skip_method or self.options.forced:
            return
        if any(self.plan.steps[n].volatile or self.plan.steps[n].force for n in self.order):
            return
        if not self.lock.held and not self.lock.try_acquire():
            return
        paths = {
            absolute(p, self.root)
            for n in self.order
            for p in (*self.plan.steps[n].inputs.values(), *self.plan.steps[n].outputs.values())
        }
        guards = [self.engine.planner.cache_file, self.state_dir / "traces.log"]
        write_clean_record(self.clean_file, self.order, paths, guards)

    def _step(self, name: str) -> StepResult:
        considered = self.consider(name)
        if isinstance(considered, StepResult):
            return considered
        return self._execute(name, *considered)

    def consider(self, name: str) -> StepResult | tuple[Decision, StepFacts]:
        """Decide `name` (its predecessors are done): a finished result when it needs no
        run, else the decision to run it and the facts to record when it succeeds."""
        blocker = next(
            (
                p
                for p in self.plan.predecessors[name]
                if self.state.outcomes.get(p) in ("failed", "not run")
            ),
            None,
        )
        if self.state.stopped or blocker is not None:
            reasons = (str(Reason("failed-upstream", blocker)),) if blocker else ()
            return self._finish(StepResult(name, "not run", reasons=reasons))
        decision, facts = self._decide(name)
        if decision.run and not self.options.dry_run and not self.lock.held and self._lock():
            decision, facts = self._decide(name)
        if not decision.run:
            return self._finish(StepResult(name, "skipped", reasons=tuple(decision.explain())))
        record = self._cached_run(name, facts)
        if self.options.dry_run:
            reasons = tuple(decision.explain())
            if record is not None:
                reasons = (f"{_restorable(record)}: it would be restored", *reasons)
            return self._finish(StepResult(name, "would run", reasons=reasons))
        if record is not None:
            return self._restore(name, decision, facts, record)
        return decision, facts

    @functools.cached_property
    def codes(self) -> Mapping[str, Mapping[str, str]]:
        """Closures by code fingerprint: this make's plan's, then the project's code table
        (read only if a code change must be explained)."""
        from tipi.cache.codetable import CodeTable

        table = CodeTable(self.engine.cache_dir / "code.msgpack", self.reporter.warning)
        return ChainMap(dict(self.engine.planner.code_units), table)

    @property
    def run_cache(self) -> ContentStore:
        if self._run_cache is None:
            from tipi.cache.content import ContentStore

            self._run_cache = ContentStore(self.engine.cache_dir, self.reporter.warning)
        return self._run_cache

    def _cached_run(self, name: str, facts: StepFacts) -> RunRecord | None:
        """An earlier successful run with this fingerprint, from the run cache (or the
        remote one); None for steps that must run (forced, volatile)."""
        if facts.forced or facts.volatile or not self.options.run_cache:
            return None
        key = self._run_key(facts)
        names = self.plan.steps[name].outputs
        record = self.run_cache.lookup(key, self.plan.permanences, names)
        if record is None and self.remote is not None:
            try:
                if self.options.dry_run:  # say what would be restored; copy nothing
                    record = self.remote.find(key, self.plan.permanences, names)
                else:
                    record = self.remote.fetch(key, self.plan.permanences, self.run_cache, names)
            except OSError as exc:
                self.reporter.warning(f"remote cache {self.remote.url}: {exc}")
        return record

    def _run_key(self, facts: StepFacts) -> str:
        """Inputs enter by name and content, not path: a sweep variant reads its inputs from
        its own folder, and a run with the same content elsewhere is the same run."""
        from tipi.cache.content import run_key

        step = self.plan.steps[facts.name]
        named = {k: facts.inputs.get(p) for k, p in step.inputs.items()}
        params = facts.params
        if facts.rerun_on_env:  # then a run of another environment is another result
            params = {**params, "(environment)": dict(facts.environment)}
        return run_key(facts.type, facts.code, params, named, step.outputs)

    def _restore(
        self, name: str, decision: Decision, facts: StepFacts, record: RunRecord
    ) -> StepResult | tuple[Decision, StepFacts]:
        """Put an earlier run's outputs in place instead of running the step (or, when that
        fails, say it must run after all)."""
        started = time.perf_counter()
        staged, _ = self.staging.prepare(name, self.outputs_of(name), slot=RESTORE_SLOT)
        try:
            self.run_cache.restore(record, staged)
            self.staging.commit(name, staged, self.outputs_of(name))
        except (OSError, ProcessFailure) as exc:
            self.reporter.warning(f"could not restore '{name}' from the run cache: {exc}")
            return decision, facts
        finally:
            self.staging.discard(staged)
        self._record(name, facts, frozenset(record.permanences), record.seconds, keep=False)
        reasons = (_restorable(record), *decision.explain())
        return self._finish(StepResult(name, "restored", time.perf_counter() - started, reasons))

    def _lock(self) -> bool:
        """Take the project lock; if another make held it, reread what it recorded."""
        waited = self.lock.acquire()
        forget_clean(self.clean_file)
        self.staging.discard_all()
        if waited:  # another make changed files and traces meanwhile: look again
            self._known.clear()
            self.store.close()
            self.store = TraceStore(self.store.path, self.reporter.warning)
        return waited

    def key(self, name: str) -> str:
        """The name `name`'s trace is kept under (its own per sweep variant, when swept)."""
        variant = self.engine.variant
        return name if variant is None else variant.key(name)

    def _facts(self, name: str) -> StepFacts:
        step = self.plan.steps[name]
        pending: dict[str, str] = {}
        remade: dict[str, str] = {}
        inputs = {}
        for path in step.inputs.values():
            producer = self.plan.producers.get(path)
            outcome = self.state.outcomes.get(producer) if producer is not None else None
            if outcome == "would run":
                pending[path] = producer  # type: ignore[assignment]
                inputs[path] = None
                continue
            if outcome in ("ran", "restored"):
                remade[path] = producer  # type: ignore[assignment]
            inputs[path] = self._hash(path)
        forced = name in self.options.forced or step.force
        return StepFacts(
            name=name,
            type=step.type,
            code=step.code,
            params=step.params,
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
            codes=self.codes,
        )

    def _decide(self, name: str) -> tuple[Decision, StepFacts]:
        facts = self._facts(name)
        return decide(facts, self.store.get(self.key(name))), facts

    def _execute(self, name: str, decision: Decision, facts: StepFacts) -> StepResult:
        """Run one step in this process (the sequential make)."""
        planned = self.plan.steps[name]
        staged, scratch, binding = self.prepare(name, facts)
        self.reporter.step_started(name)
        if planned.launcher != "none":  # torch.distributed: ranks in child processes
            from tipi.execution.distributed import launch

            task = self.task(name, staged, scratch, facts.forced, binding)
            try:
                outcome = launch(task, lambda line: self.reporter.step_output(name, line))
            except BaseException:
                self.staging.discard(staged)
                raise
            return self.conclude(name, decision, facts, staged, outcome)
        step = self.engine.planner.resolve().steps[name]
        from tipi.execution import Job, SequentialExecutor

        if self.controller is None:
            from tipi.lifecycle import Controller

            resolved = self.engine.planner.resolve()
            self.controller = Controller(resolved.permanences, self.reporter)
        try:
            result = SequentialExecutor(self.controller).run(
                Job(step, staged, scratch, facts.forced, binding)
            )
        except BaseException:
            self.staging.discard(staged)
            raise
        return self.conclude(name, decision, facts, staged, result)

    def prepare(
        self, name: str, facts: StepFacts, slot: int = 0
    ) -> tuple[dict[str, Path], Path, bytes]:
        """Staging paths for a run of `name`, its scratch folder (a checkpoint left there by
        an interrupted run of another fingerprint is discarded first, saying why) and the
        binding the step writes when it creates that folder."""
        from tipi.cache import resume

        staged, scratch = self.staging.prepare(name, self.outputs_of(name), slot, self._slug(name))
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
                self.staging.finish(self._slug(name))
            elif not self.plan.steps[name].announces_resume:
                when = resume.last_checkpoint(scratch)
                if when is not None:
                    at = time.strftime("%H:%M", time.localtime(when))
                    self.reporter.notice(f"resuming {name} from its checkpoint of {at}")
        return staged, scratch, resume.binding(facts)

    def _slug(self, name: str) -> str:
        """The file-name form of `name`'s trace key (a sweep variant's has slashes)."""
        return self.key(name).replace("/", "~")

    def outputs_of(self, name: str) -> dict[str, Path]:
        """The step's outputs as absolute paths, from the plan (no import of its class)."""
        return {k: Path(absolute(p, self.root)) for k, p in self.plan.steps[name].outputs.items()}

    def task(
        self, name: str, staged: dict[str, Path], scratch: Path, forced: bool, binding: bytes
    ) -> Task:
        """`name` as a Task for a worker process, a Dask worker or torchrun."""
        from tipi.execution.task import Task

        planned = self.plan.steps[name]
        return Task(
            root=str(self.root),
            pipeline=self.engine.name,
            file=str(self.engine.file),
            overrides=tuple(self.engine.overrides),
            step=name,
            outputs={k: str(v) for k, v in staged.items()},
            scratch=str(scratch),
            forced=forced,
            log=str(self.log_of(name)),
            env={"TIPI_NO_LIVE": "1"},
            nproc=planned.nproc,
            launcher=planned.launcher,
            variant=self.engine.variant.to_data() if self.engine.variant else None,
            source=self.plan.source,
            deps=tuple(tuple(d) for d in self.plan.deps),
            binding=binding.hex(),
        )

    def log_of(self, name: str) -> Path:
        """Where a step running in a worker writes its stdout and stderr."""
        logs = self.engine.cache_dir / "logs" / self.engine.name
        return logs / f"{self._slug(name)}.log"

    def conclude(
        self,
        name: str,
        decision: Decision,
        facts: StepFacts,
        staged: dict[str, Path],
        result: JobResult | TaskResult,
    ) -> StepResult:
        """Commit a finished step's outputs and record it, or record its failure."""
        outcome, seconds, error = result.outcome, result.seconds, _error_of(result)
        try:
            if outcome == "ran":
                self.staging.commit(name, staged, self.outputs_of(name))
        except ProcessFailure as failure:
            outcome, error = "failed", failure
        finally:
            self.staging.discard(staged)
        reasons = tuple(decision.explain())
        if outcome == "interrupted":
            raise KeyboardInterrupt
        if outcome == "skipped":
            self.state.skip_method = True
            return self._finish(StepResult(name, "skipped", seconds, (str(Reason("skip-method")),)))
        if outcome == "failed":
            return self._fail(name, error, seconds, reasons)
        self._record(name, facts, frozenset(result.used), seconds)
        self.staging.finish(self._slug(name))
        return self._finish(StepResult(name, "ran", seconds, reasons))

    def _record(
        self,
        name: str,
        facts: StepFacts,
        used: frozenset[str],
        seconds: float,
        keep: bool = True,
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
            environment=facts.environment,
        )
        self.store.put(self.key(name), trace)
        if keep and not facts.volatile and self.options.run_cache:
            self._keep(name, facts, trace.permanences, seconds)

    def _keep(self, name: str, facts: StepFacts, configs: dict, seconds: float) -> None:
        """Put a successful run's outputs in the run cache (a failure here is a warning)."""
        try:
            record = self.run_cache.save(
                self._run_key(facts),
                name,
                configs,
                self.outputs_of(name),
                lambda path: self.stat.hash_path(path),
                seconds,
            )
        except OSError as exc:
            self.reporter.warning(f"could not keep the outputs of '{name}' in the run cache: {exc}")
            return
        self.state.kept.append(record)

    def _fail(
        self, name: str, error: BaseException | None, seconds: float, reasons: tuple[str, ...]
    ) -> StepResult:
        failure = (
            error
            if isinstance(error, TipiError)
            else ProcessFailure(name, error or RuntimeError("the step failed"))
        )
        self.state.failures.append((name, failure))
        self.state.failed_runs.append((name, str(failure), time.time(), seconds))
        self.state.stopped = not self.options.keep_going
        return self._finish(StepResult(name, "failed", seconds, reasons, error=str(failure)))

    def _finish(self, result: StepResult) -> StepResult:
        self.state.outcomes[result.name] = result.outcome
        self.reporter.step_finished(result)
        return result

    def _close(self) -> None:
        try:
            if self.controller is not None:
                self.controller.cleanup()
        finally:
            if self._store is not None:
                self._store.close()
            if not self.options.dry_run:
                ran = [
                    n for n, outcome in self.state.outcomes.items() if outcome in RAN_OR_RESTORED
                ]
                if ran or self.state.failed_runs:
                    update_failures(
                        self.state_dir / "failures.msgpack",
                        self.state.failed_runs,
                        ran,
                        self.reporter.warning,
                    )
                if self.lock.held and self._store is not None:
                    self._store.compact(force=False)
                    if self._staging is not None:
                        self._staging.tidy()
                if self._stat is not None and self._stat.dirty:
                    write_document(self.stat_file, STAT_KIND, self._stat.entries)
                self._push()
            try:
                self._record_clean()  # last: compaction above rewrites one of its guards
            except OSError as exc:
                self.reporter.warning(f"could not write the clean record: {exc}")
            self.lock.release()

    def _push(self) -> None:
        """Send the runs this make kept to the remote cache (`--remote`)."""
        if self.remote is None or not self.state.kept:
            return
        try:
            sent = self.remote.push(self.run_cache, self.state.kept)
        except OSError as exc:
            self.reporter.warning(f"could not push to the remote cache {self.remote.url}: {exc}")
            return
        if sent.records:
            self.reporter.notice(
                f"pushed {sent.records} run(s), {sent.objects} file(s) to {self.remote.url}"
            )

    def _raise_failures(self) -> None:
        failures = self.state.failures
        hint = (
            f"fix it, then run `{self.options.resume_command}`: finished steps will not run again"
        )
        if len(failures) == 1:
            error = failures[0][1]
            error.hint = error.hint or hint
            raise error
        if failures:
            raise BuildFailed(failures, hint=hint.replace("fix it", "fix them"))


def _restorable(record: RunRecord) -> str:
    when = time.strftime("%Y-%m-%d %H:%M", time.localtime(record.finished))
    took = f"{record.seconds:.1f}s"
    return f"restored from the run cache: same fingerprint as a run of {when} ({took})"


def _error_of(result: JobResult | TaskResult) -> BaseException | None:
    return getattr(result, "error", None) or getattr(result, "failure", None)


class _Lock:
    """The project lock, imported and created only when a step is about to run."""

    def __init__(self, cache_dir: Path, on_wait: Callable[[str], None]) -> None:
        self.cache_dir = cache_dir
        self.on_wait = on_wait
        self._lock: ProjectLock | None = None

    @property
    def held(self) -> bool:
        return self._lock is not None and self._lock.held

    def acquire(self) -> bool:
        from tipi.cache.lock import ProjectLock

        self._lock = ProjectLock(self.cache_dir, self.on_wait)
        return self._lock.acquire()

    def try_acquire(self) -> bool:
        """Take the lock only if it is free right now."""
        from tipi.cache.lock import ProjectLock

        lock = ProjectLock(self.cache_dir, self.on_wait)
        lock.acquire(wait=False)
        if lock.held:
            self._lock = lock
        return lock.held

    def release(self) -> None:
        if self._lock is not None:
            self._lock.release()
