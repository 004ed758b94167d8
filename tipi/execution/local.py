"""Worker processes on this machine for `tipi make -j N`.

Steps run in a pool of `N` spawned processes (spawn, not fork: a forked CUDA or a forked
thread pool is undefined behaviour). A step given GPUs gets a fresh process of its own, since
CUDA_VISIBLE_DEVICES only takes effect before CUDA starts in a process.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import signal
import time
from collections.abc import Collection
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait

from tipi.errors import WorkerFailure
from tipi.execution.resources import Resources
from tipi.execution.task import Task, TaskResult, execute, worker_initializer

GRACE_SECONDS = 30.0


class LocalPool:
    """`slots` worker processes; `submit` returns a future of the step's TaskResult."""

    name = "local"

    def __init__(self, slots: int) -> None:
        self.slots = slots
        self._context = multiprocessing.get_context("spawn")
        self._shared: ProcessPoolExecutor | None = None
        self._private: dict[Future[TaskResult], ProcessPoolExecutor] = {}

    def submit(self, task: Task, need: Resources) -> Future[TaskResult]:
        if "CUDA_VISIBLE_DEVICES" in task.env:
            pool = ProcessPoolExecutor(
                1, self._context, initializer=worker_initializer, initargs=(dict(task.env),)
            )
            future = pool.submit(execute, task)
            self._private[future] = pool
            return future
        if self._shared is None:
            self._shared = ProcessPoolExecutor(
                self.slots, self._context, initializer=worker_initializer
            )
        return self._shared.submit(execute, task)

    def wait(
        self, futures: Collection[Future[TaskResult]], timeout: float
    ) -> set[Future[TaskResult]]:
        done, _ = wait(futures, timeout=timeout, return_when=FIRST_COMPLETED)
        for future in done:
            pool = self._private.pop(future, None)
            if pool is not None:
                pool.shutdown(wait=False)
        return done

    def result(self, future: Future[TaskResult], task: Task) -> TaskResult:
        try:
            return future.result()
        except Exception as exc:  # the worker died (killed, out of memory, segfault)
            failure = WorkerFailure.describe(task.step, exc)
            failure.hint = f"see {task.log} for what it printed before it died"
            return TaskResult(task.step, "failed", failure=failure)

    def close(self, interrupted: bool = False) -> None:
        """Stop the workers; when interrupted, running steps get SIGTERM (their permanences
        are cleaned up) and are killed if they take longer than GRACE_SECONDS."""
        pools = [p for p in (self._shared, *self._private.values()) if p is not None]
        workers = multiprocessing.active_children() if interrupted else []
        for pool in pools:
            pool.shutdown(wait=not interrupted, cancel_futures=True)
        for worker in workers:
            if worker.pid is not None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(worker.pid, signal.SIGTERM)
        deadline = time.monotonic() + GRACE_SECONDS
        for worker in workers:
            worker.join(max(0.0, deadline - time.monotonic()))
            if worker.is_alive():
                worker.kill()
        self._shared = None
        self._private.clear()
