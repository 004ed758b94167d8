"""One make session: nothing to do (uptodate/question.py says so), or the scheduler over the
make's dispatcher; then what it learnt is written and the lock released, whatever happened
(step.py walks one step through its lifecycle, schedule.py orders the steps, dispatch.py runs
them)."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from tipi.dispatch import dispatch_for
from tipi.errors import BuildFailed, PipelineInterrupted, TipiError
from tipi.planning import Plan, absolute
from tipi.report import RunSummary, StepResult
from tipi.schedule import Scheduler
from tipi.state.failures import update_failures
from tipi.state.stores import State
from tipi.step import RAN_OR_RESTORED, BuildOptions, MakeContext, Steps
from tipi.uptodate.clean import forget as forget_clean
from tipi.uptodate.clean import write_clean_record
from tipi.uptodate.planfile import always_run, step_paths
from tipi.uptodate.question import (
    guards,
    is_up_to_date,
    record_paths,
    report_up_to_date,
    runs_every_time,
)

if TYPE_CHECKING:
    from tipi.runs.recorder import RunRecorder

__all__ = ["Build", "BuildOptions", "MakeContext"]


class Build:
    """The state of one make; `run()` is the whole of it and always cleans up."""

    def __init__(
        self, context: MakeContext, plan: Plan, order: Sequence[str], options: BuildOptions
    ) -> None:
        self.context = context
        self.plan = plan
        self.order = list(order)
        self.options = options
        self.reporter = context.reporter
        self.state = State(
            context.layout,
            self.reporter.warning,
            self.reporter.notice,
            rehash=options.rehash,
            code_units=context.code_units,
            outputs=[
                absolute(p, context.root) for n in order for p in plan.steps[n].outputs.values()
            ],
        )
        recorder = None if options.dry_run else self._recorder()
        self.steps = Steps(context, plan, options, self.state, recorder=recorder)
        self.dispatch_for = dispatch_for  # a sweep running variants side by side shares slots
        self.shortcut = False
        self.completed = False

    def _recorder(self) -> RunRecorder:
        """The make's run (`tipi runs`): written once a step runs or is restored."""
        from tipi.runs.recorder import RunRecorder

        variant = self.context.layout.variant
        recorder = RunRecorder(
            self.context.root,
            self.plan.pipeline,
            variant=f"{variant.sweep}/{variant.name}" if variant else None,
            warn=self.reporter.warning,
        )
        recorder.consider(self.plan.steps, self.order)
        return recorder

    def run(self) -> RunSummary:
        summary = RunSummary(self.plan.pipeline, dry_run=self.options.dry_run)
        started = time.perf_counter()
        # Asked before the make is announced, as the fast path asks it: a warning about the
        # clean record (the answer is then no) is told after the announcement, as before.
        said: list[str] = []
        self.shortcut = self._up_to_date(said.append)
        reported = False
        try:
            if self.shortcut:
                finish = self.steps.finish
                report_up_to_date(self.reporter, summary, self.order, started, StepResult, finish)
                reported = self.completed = True
                return summary
            self.reporter.run_started(self.plan.pipeline, self.order)
            for message in said:
                self.reporter.warning(message)
            dispatch = self.dispatch_for(self.steps, self.order)
            self.steps.cache.prefetch(self.order)  # remote lookups, several at once
            Scheduler(self.steps, self.order, summary, dispatch).run()
            self.completed = True
        except TipiError:  # not a step's failure (those are raised below): the make's own
            summary.stopped = True
            raise
        except KeyboardInterrupt:
            summary.interrupted = True
            raise PipelineInterrupted(
                f"make of '{self.plan.pipeline}' interrupted; no partial output was kept and "
                "every initialized permanence was cleaned up",
                hint=f"run `{self.options.resume_command}` to continue where it stopped",
            ) from None
        finally:
            self._close()
            if self.steps.recorder is not None:
                ended = None if self.completed else "failed"
                self.steps.recorder.close("interrupted" if summary.interrupted else ended)
            if not reported:
                done = {r.name for r in summary.results}
                summary.results += [StepResult(n, "not run") for n in self.order if n not in done]
                summary.seconds = time.perf_counter() - started
                self.reporter.run_finished(summary)
        self._raise_failures()
        return summary

    def _up_to_date(self, warn: Callable[[str], None]) -> bool:
        """Whether this make has nothing to do (uptodate/question.py, which the fast path asks
        too)."""
        steps = [self.plan.steps[name] for name in self.order]
        return is_up_to_date(
            self.context.layout,
            self.order,
            step_paths(steps),
            always_run(steps),
            warn,
            forced=bool(self.options.forced),
            rehash=self.options.rehash,
            from_cache=self.context.plan_from_cache,
        )

    def _record_clean(self) -> None:
        """Write the clean record after a complete make with nothing failed, forced, volatile
        or left to `skip()`, and no file changed since the make judged it. Called while the
        lock is held, or taken without waiting: a make running beside this one must not
        change files while their signatures are recorded."""
        done = self.steps.done
        if self.options.dry_run or self.shortcut or not self.completed:
            return
        if done.failures or done.skip_method or self.options.forced:
            return
        steps = [self.plan.steps[name] for name in self.order]
        if runs_every_time(always_run(steps), self.order):
            return
        if not self.state.lock_held and not self.state.try_lock():
            return
        layout = self.context.layout
        planned = step_paths(steps)
        if not self.steps.facts.unchanged(p for name in self.order for p in planned[name]):
            forget_clean(layout.clean_file)  # a file changed after it was judged
            return
        paths = record_paths(layout, planned, self.order)
        write_clean_record(layout.clean_file, self.order, paths, guards(layout))

    def _close(self) -> None:
        """Write what this make learnt (permanences were cleaned up by the dispatcher)."""
        write = not self.options.dry_run
        done = self.steps.done
        if write:
            ran = [n for n, outcome in done.outcomes.items() if outcome in RAN_OR_RESTORED]
            if ran or done.failed_runs:
                update_failures(
                    self.context.layout.failures_file, done.failed_runs, ran, self.reporter.warning
                )
        self.state.close(write=write)
        self.steps.cache.finish(push=write)  # waits for the uploads to the remote cache
        try:
            self._record_clean()  # last: compaction above rewrites one of its guards
        except OSError as exc:
            self.reporter.warning(f"could not write the clean record: {exc}")
        self.state.release()

    def _raise_failures(self) -> None:
        failures = self.steps.done.failures
        hint = (
            f"fix it, then run `{self.options.resume_command}`: finished steps will not run again"
        )
        if len(failures) == 1:
            error = failures[0][1]
            error.hint = error.hint or hint
            raise error
        if failures:
            raise BuildFailed(failures, hint=hint.replace("fix it", "fix them"))
