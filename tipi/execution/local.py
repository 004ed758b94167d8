"""Worker processes on this machine for `tipi make -j N`.

Each worker is a spawned process (spawn, not fork: a forked CUDA context or thread pool is
undefined behaviour) that runs one task at a time and is reused by the next. A worker that
dies (killed, out of memory, a crash in C) fails only the step it was running and is
replaced; concurrent.futures' pool would fail every running step with it. A step given GPUs
gets a fresh worker of its own, since CUDA_VISIBLE_DEVICES only takes effect before CUDA
starts in a process; steps given none (CUDA_VISIBLE_DEVICES="") share workers started so.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import signal
import time
from collections.abc import Collection, Mapping
from multiprocessing.connection import Connection, wait
from typing import Any

from tipi.errors import WorkerFailure
from tipi.execution.gpus import agree_with_nvml
from tipi.execution.orphans import die_with_parent
from tipi.execution.resources import Resources
from tipi.execution.task import execute, worker_initializer
from tipi.execution.types import Result, Task

GRACE_SECONDS = 30.0


class _Worker:
    """One worker process and the pipe the driver talks to it through."""

    def __init__(self, context: Any, env: Mapping[str, str]) -> None:
        self.conn, child = context.Pipe()
        args = (child, dict(env), os.getpid())
        self.process = context.Process(target=_serve, args=args, daemon=True)
        self.process.start()
        child.close()
        self.env = dict(env)
        self.single_use = bool(env.get("CUDA_VISIBLE_DEVICES"))  # GPUs of its own
        self.task: Task | None = None

    def stop(self) -> None:
        with contextlib.suppress(OSError):
            self.conn.send(None)
        self.conn.close()


class Handle:
    """A submitted task; `result` is set once it is done."""

    def __init__(self, task: Task, worker: _Worker) -> None:
        self.task = task
        self.worker = worker
        self.result: Result | None = None


class LocalPool:
    """Up to `slots` worker processes, started as steps need them."""

    name = "local"

    def __init__(self, slots: int) -> None:
        self.slots = slots
        self._context = multiprocessing.get_context("spawn")
        self._idle: list[_Worker] = []
        self._busy: dict[_Worker, Handle] = {}

    def submit(self, task: Task, need: Resources) -> Handle:
        env = {k: v for k, v in task.env.items() if k == "CUDA_VISIBLE_DEVICES"}
        gpus = env.get("CUDA_VISIBLE_DEVICES")
        worker = _Worker(self._context, env) if gpus else self._take_idle(env)
        worker.conn.send(task)
        handle = self._busy[worker] = Handle(task, worker)
        return handle

    def _take_idle(self, env: dict[str, str]) -> _Worker:
        """An idle worker started with `env` (a worker's CUDA devices are fixed at start)."""
        self._idle = [w for w in self._idle if w.process.is_alive()]
        for worker in reversed(self._idle):
            if worker.env == env:
                self._idle.remove(worker)
                return worker
        return _Worker(self._context, env)

    def wait(self, handles: Collection[Handle], timeout: float) -> set[Handle]:
        busy = {h.worker: h for h in handles}
        waitables: list[Any] = [w.conn for w in busy] + [w.process.sentinel for w in busy]
        ready = set(wait(waitables, timeout))
        done = set()
        for worker, handle in busy.items():
            if worker.conn in ready:
                try:
                    handle.result = worker.conn.recv()
                except (EOFError, OSError):
                    handle.result = _died(handle.task, worker)
            elif worker.process.sentinel in ready:
                handle.result = _died(handle.task, worker)
            else:
                continue
            done.add(handle)
            del self._busy[worker]
            if worker.single_use or handle.result.outcome == "interrupted":
                worker.stop()
                worker.process.join(GRACE_SECONDS)
            elif worker.process.is_alive():
                self._idle.append(worker)
        return done

    def result(self, handle: Handle, task: Task) -> Result:
        assert handle.result is not None
        return handle.result

    def close(self, interrupted: bool = False) -> None:
        """Stop the workers; running steps (only after an interrupt) get SIGTERM, so their
        permanences are cleaned up, and are killed after GRACE_SECONDS."""
        for worker in self._idle:
            worker.stop()
        running = list(self._busy)
        for worker in running:
            worker.process.terminate()
            worker.conn.close()  # its result is not wanted: the worker exits once it is sent
        deadline = time.monotonic() + GRACE_SECONDS
        for worker in running:
            worker.process.join(max(0.0, deadline - time.monotonic()))
            if worker.process.is_alive():
                worker.process.kill()
        for worker in [*self._idle, *running]:
            worker.process.join(GRACE_SECONDS)
        self._idle.clear()
        self._busy.clear()


def _died(task: Task, worker: _Worker) -> Result:
    worker.process.join(1.0)
    code = worker.process.exitcode
    how = f"killed by signal {-code}" if code is not None and code < 0 else f"exit code {code}"
    failure = WorkerFailure(
        task.step,
        f"step '{task.step}' failed: its worker process died ({how})",
        hint=f"see {task.log} for what it printed before it died",
    )
    return Result(task.step, "failed", error=failure)


def _serve(conn: Connection, env: dict[str, str], driver: int) -> None:
    """A worker's loop: run tasks until the driver sends None or goes away. If the driver
    dies (even by SIGKILL), the running step is interrupted (SIGTERM) and the worker ends:
    it never goes on writing into a staging folder that the next make may use."""
    worker_initializer(env)
    agree_with_nvml()  # before the step's code can start CUDA; a user's own order stays
    die_with_parent(signal.SIGTERM, driver)
    while True:
        try:
            task = conn.recv()
        except (EOFError, OSError):
            return
        if task is None:
            return
        result = execute(task)
        try:
            conn.send(result)
        except OSError:  # the driver stopped listening (interrupted)
            return
