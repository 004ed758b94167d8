"""Runs a step's process in this process, with the run's controller."""

from __future__ import annotations

import time

from tipi.context import running
from tipi.errors import ProcessFailure, TipiError
from tipi.execution.base import Job, JobResult
from tipi.lifecycle import Controller


class SequentialExecutor:
    """Executes one job at a time in-process; permanences come from `controller`."""

    def __init__(self, controller: Controller) -> None:
        self.controller = controller

    def run(self, job: Job) -> JobResult:
        step = job.step
        started = time.perf_counter()
        with self.controller.recording() as used:
            try:
                process = step.cls(self.controller, force=job.forced, **step.params)
                process.bind_paths(step.inputs, job.outputs, job.scratch, job.name, job.binding)
                if not process.force and process.skip():
                    return JobResult(job.name, "skipped", time.perf_counter() - started)
                with running(self.controller, job.name):
                    process.execute()
                self.controller.checkpoint(used)
            except KeyboardInterrupt:
                raise
            except TipiError as error:
                return JobResult(
                    job.name, "failed", time.perf_counter() - started, frozenset(used), error
                )
            except Exception as exc:
                failure = ProcessFailure(job.name, exc)
                failure.__cause__ = exc
                return JobResult(
                    job.name, "failed", time.perf_counter() - started, frozenset(used), failure
                )
        return JobResult(job.name, "ran", time.perf_counter() - started, frozenset(used))
