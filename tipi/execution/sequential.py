"""Runs a step's process in this process, with the run's controller."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import NoReturn

from tipi.context import running
from tipi.definitions import check_constructed
from tipi.errors import ProcessFailure, TipiError
from tipi.execution.types import Job, Result
from tipi.lifecycle import Controller


class _Exit(SystemExit):
    """os._exit() called by a step, turned into an exception its make can report."""


@contextmanager
def exits_are_failures() -> Iterator[None]:
    """While a step runs: sys.exit() and os._exit() from its code fail the step instead of
    ending the make. Processes the step forks (DataLoader workers) keep the real os._exit."""
    real, owner = os._exit, os.getpid()

    def guarded_exit(code: int) -> NoReturn:
        if os.getpid() != owner:
            real(code)
        raise _Exit(f"os._exit({code})")

    os._exit = guarded_exit
    try:
        yield
    finally:
        os._exit = real


class SequentialExecutor:
    """Executes one job at a time in-process; permanences come from `controller`."""

    def __init__(self, controller: Controller) -> None:
        self.controller = controller

    def run(self, job: Job) -> Result:
        step = job.step
        started = time.perf_counter()
        logged: dict[str, float] = {}
        with self.controller.recording() as used:
            try:
                with exits_are_failures():
                    process = step.cls(self.controller, force=job.forced, **step.params)
                    check_constructed(process)
                    process.bind_paths(step.inputs, job.outputs, job.scratch, job.name, job.binding)
                    if not process.force and process.skip():
                        return Result(job.name, "skipped", time.perf_counter() - started)
                    with running(self.controller, job.name, job.run) as context:
                        logged = context.logged
                        process.execute()
                self.controller.checkpoint(used)
            except KeyboardInterrupt:
                raise
            except SystemExit as exc:
                how = exc.code if isinstance(exc, _Exit) else f"sys.exit({exc.code!r})"
                called = RuntimeError(f"the step called {how}")
                failure = ProcessFailure(
                    job.name,
                    called.with_traceback(exc.__traceback__),  # shows where it was called
                    hint="a step ends by returning from execute(); raise an exception to fail",
                )
                return Result(
                    job.name, "failed", _since(started), tuple(sorted(used)), failure, logged
                )
            except TipiError as error:
                return Result(
                    job.name, "failed", _since(started), tuple(sorted(used)), error, logged
                )
            except Exception as exc:
                failure = ProcessFailure(job.name, exc)
                failure.__cause__ = exc
                return Result(
                    job.name, "failed", _since(started), tuple(sorted(used)), failure, logged
                )
        return Result(job.name, "ran", _since(started), tuple(sorted(used)), None, dict(logged))


def _since(started: float) -> float:
    return time.perf_counter() - started
