"""The run cache's part in a step's lifecycle: find an earlier run with the same fingerprint
(here or in a remote cache), put its outputs in place, keep new runs, push them."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any, Protocol

from tipi.cache.rebuilder import Decision, StepFacts
from tipi.errors import ProcessFailure
from tipi.report import StepResult

if TYPE_CHECKING:
    from pathlib import Path

    from tipi.cache.content import RunRecord
    from tipi.cache.remote import RemoteStore
    from tipi.planning import Plan
    from tipi.report import Reporter
    from tipi.state import State


class Steps(Protocol):
    """What the run cache needs of the step lifecycle (step.py), which holds it."""

    plan: Plan
    state: State
    reporter: Reporter

    @property
    def options(self) -> Any: ...

    def outputs_of(self, name: str) -> dict[str, Path]: ...

    def record(
        self, name: str, facts: StepFacts, used: frozenset[str], seconds: float, keep: bool = True
    ) -> None: ...

    def finish(self, result: StepResult) -> StepResult: ...


RESTORE_SLOT = 999  # the staging slot the driver restores cached runs through


class RunCache:
    """Restores and keeps the runs of one make's steps."""

    def __init__(self, steps: Steps) -> None:
        self.steps = steps
        self.kept: list[RunRecord] = []
        self.remote: RemoteStore | None = None
        if steps.options.remote:
            from tipi.cache.remote import RemoteStore

            self.remote = RemoteStore(steps.options.remote, steps.reporter.warning)

    def lookup(self, name: str, facts: StepFacts, fetch: bool = True) -> RunRecord | None:
        """An earlier successful run with this fingerprint, from the run cache (or the
        remote one, copied here unless `fetch` is false: a dry run only says what it would
        restore); None for steps that must run (forced, volatile)."""
        if facts.forced or facts.volatile or not self.steps.options.run_cache:
            return None
        key = self.key(facts)
        names = self.steps.plan.steps[name].outputs
        record = self.steps.state.run_cache.lookup(key, self.steps.plan.permanences, names)
        if record is None and self.remote is not None:
            try:
                if not fetch:
                    record = self.remote.find(key, self.steps.plan.permanences, names)
                else:
                    record = self.remote.fetch(
                        key, self.steps.plan.permanences, self.steps.state.run_cache, names
                    )
            except OSError as exc:
                self.steps.reporter.warning(f"remote cache {self.remote.url}: {exc}")
        return record

    def key(self, facts: StepFacts) -> str:
        """Inputs enter by name and content, not path: a sweep variant reads its inputs from
        its own folder, and a run with the same content elsewhere is the same run."""
        from tipi.cache.content import run_key

        step = self.steps.plan.steps[facts.name]
        named = {k: facts.inputs.get(p) for k, p in step.inputs.items()}
        params = facts.params
        if facts.rerun_on_env:  # then a run of another environment is another result
            params = {**params, "(environment)": dict(facts.environment)}
        return run_key(facts.type, facts.code, params, named, step.outputs)

    def restore(
        self, name: str, decision: Decision, facts: StepFacts, record: RunRecord
    ) -> StepResult | None:
        """Put an earlier run's outputs in place instead of running the step; None when
        that failed and the step must run after all."""
        started = time.perf_counter()
        staging = self.steps.state.staging
        staged, _ = staging.prepare(name, self.steps.outputs_of(name), slot=RESTORE_SLOT)
        try:
            self.steps.state.run_cache.restore(record, staged)
            staging.commit(name, staged, self.steps.outputs_of(name))
        except (OSError, ProcessFailure) as exc:
            self.steps.reporter.warning(f"could not restore '{name}' from the run cache: {exc}")
            return None
        finally:
            staging.discard(staged)
        self.steps.record(name, facts, frozenset(record.permanences), record.seconds, keep=False)
        reasons = (restorable(record), *decision.explain())
        return self.steps.finish(
            StepResult(name, "restored", time.perf_counter() - started, reasons)
        )

    def keep(self, name: str, facts: StepFacts, configs: dict, seconds: float) -> None:
        """Put a successful run's outputs in the run cache (a failure here is a warning)."""
        try:
            record = self.steps.state.run_cache.save(
                self.key(facts),
                name,
                configs,
                self.steps.outputs_of(name),
                lambda path: self.steps.state.stat.hash_path(path),
                seconds,
            )
        except OSError as exc:
            self.steps.reporter.warning(
                f"could not keep the outputs of '{name}' in the run cache: {exc}"
            )
            return
        self.kept.append(record)

    def push(self) -> None:
        """Send the runs this make kept to the remote cache (`--remote`)."""
        remote = self.remote
        if remote is None or not self.kept:
            return
        try:
            sent = remote.push(self.steps.state.run_cache, self.kept)
        except OSError as exc:
            self.steps.reporter.warning(f"could not push to the remote cache {remote.url}: {exc}")
            return
        if sent.records:
            self.steps.reporter.notice(
                f"pushed {sent.records} run(s), {sent.objects} file(s) to {remote.url}"
            )


def restorable(record: RunRecord) -> str:
    """The reason a restored step shows."""
    when = time.strftime("%Y-%m-%d %H:%M", time.localtime(record.finished))
    took = f"{record.seconds:.1f}s"
    return f"restored from the run cache: same fingerprint as a run of {when} ({took})"
