"""Runs a step in a worker process or on a Dask worker (the Task and its Result: types.py).

The driver decides, stages, commits and records; a worker only runs the step. It rebuilds
the pipeline from its files (classes cannot be sent reliably: local modules live in synthetic
packages), builds only the permanences the step asks for, cleans them up, and sends back
plain data: exceptions do not all survive pickling, so a failure comes back as text.
"""

from __future__ import annotations

import os
import signal
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from tipi.config.variant import Variant
from tipi.errors import WorkerFailure
from tipi.execution.types import Result, Task, run_info
from tipi.report import channel

if TYPE_CHECKING:
    from tipi.config.resolve import ResolvedPipeline


_resolved: dict[tuple[object, ...], ResolvedPipeline] = {}
_busy = False


def resolve(task: Task) -> ResolvedPipeline:
    """The task's pipeline with its classes imported, once per worker process: from the
    text the driver planned with, and only while the files it planned from are unchanged."""
    from tipi.config.planned import check_unchanged, load_resolved

    variant = Variant.from_data(task.variant)
    key = (task.root, task.pipeline, task.file, task.overrides, variant, task.source, task.deps)
    if key not in _resolved:
        root = Path(task.root)
        _resolved[key] = load_resolved(
            root,
            task.pipeline,
            Path(task.file),
            task.overrides,
            variant,
            source=task.source or None,
        )
        check_unchanged(task.deps, task.file)
    return _resolved[key]


def execute(task: Task) -> Result:
    """Run `task` here (a worker process or a Dask worker), its output going to its log."""
    global _busy
    _busy = True
    try:
        progress = channel.worker_env(task.log, task.run)  # the driver shows our bars
        with environment({**task.env, **progress}), captured(task.log):
            if task.launcher != "none":
                from tipi.execution.distributed import launch

                return launch(task, sys.stdout.write)
            return run_here(task, outputs=task.outputs, scratch=task.scratch)
    finally:
        _busy = False


def run_here(task: Task, outputs: Mapping[str, str], scratch: str) -> Result:
    """Run the step in this process with a controller of its own, always cleaned up."""
    from tipi.execution.base import Job
    from tipi.execution.sequential import SequentialExecutor
    from tipi.lifecycle import Controller
    from tipi.report.events import PlainReporter

    started = time.perf_counter()
    try:
        resolved = resolve(task)
        step = resolved.steps[task.step]
        job = Job(
            step,
            {k: Path(v) for k, v in outputs.items()},
            Path(scratch),
            task.forced,
            bytes.fromhex(task.binding),
            run_info(task.run, task.pipeline, step, resolved.permanences, resolved.steps),
        )
        with Controller(resolved.permanences, PlainReporter(task.step)) as controller:
            result = SequentialExecutor(controller).run(job)
    except KeyboardInterrupt:
        return Result(task.step, "interrupted", time.perf_counter() - started)
    except Exception as exc:  # the pipeline no longer loads here, or a permanence failed
        failure = WorkerFailure.describe(task.step, exc)
        return Result(task.step, "failed", time.perf_counter() - started, error=failure)
    failure = None
    if result.error is not None:
        failure = WorkerFailure.describe(task.step, result.error)
    return Result(
        task.step, result.outcome, result.seconds, result.used, failure, dict(result.logged)
    )


@contextmanager
def environment(env: Mapping[str, str]) -> Iterator[None]:
    """Set `env` for the block and put back what was there."""
    saved = {key: os.environ.get(key) for key in env}
    os.environ.update(env)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


@contextmanager
def captured(log: str) -> Iterator[None]:
    """Send this process's stdout and stderr (file descriptors 1 and 2, so child processes
    and C libraries too) to `log` for the block."""
    if not log:
        yield
        return
    Path(log).parent.mkdir(parents=True, exist_ok=True)
    sys.stdout.flush()
    sys.stderr.flush()
    target = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_APPEND, 0o644)
    saved = os.dup(1), os.dup(2)
    os.dup2(target, 1)
    os.dup2(target, 2)
    try:
        yield
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os.dup2(saved[0], 1)
        os.dup2(saved[1], 2)
        for fd in (*saved, target):
            os.close(fd)


def worker_initializer(env: Mapping[str, str] | None = None) -> None:
    """Set up a local worker process: plain progress lines (the driver owns the terminal),
    Ctrl-C left to the driver, SIGTERM from the driver interrupts the running step."""
    os.environ["TIPI_NO_LIVE"] = "1"
    os.environ.update(env or {})
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, _terminate)


def _terminate(signum: int, frame: object) -> None:
    if _busy:
        raise KeyboardInterrupt  # the step's permanences are cleaned up on the way out
    os._exit(0)
