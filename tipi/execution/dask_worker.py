"""What a Dask worker runs for tipi: a step, one at a time per worker process, only where the
driver's files are seen, and not again after its worker died unless the step allows it.

The driver makes a meeting folder for the make beside the step logs (on the file system every
worker must share) and writes a token into it; a worker that cannot read the token does not
see the project, whatever its files' names, times or contents. Each try of a task leaves a
mark there, so a try after a worker died is known for what it is.
"""

from __future__ import annotations

import hashlib
import os
import socket
import threading
from pathlib import Path
from typing import Any

from tipi.errors import WorkerFailure
from tipi.execution.task import execute
from tipi.execution.types import Result, Task

TOKEN_FILE = "token"
NOT_SHARED_HINT = (
    "mount the project at the same path on every worker (NFS, a cluster file system), "
    "or leave --scheduler out to run the steps on this machine"
)

# A step owns its process while it runs: its stdout and stderr (file descriptors 1 and 2,
# redirected to its log), os.environ (CUDA_VISIBLE_DEVICES), the working directory and the
# global random seeds. Threads share all of that, so on a worker started with `--nthreads 4`
# two steps at once would write into each other's logs; they take turns instead.
_one_at_a_time = threading.Lock()


def run_on_worker(task: Task, meeting: str, token: str, key: str) -> Result:
    """Run `task` here, on a Dask worker: the function the driver submits."""
    with _one_at_a_time:
        problem = not_shared(task.root, meeting, token)
        if problem is not None:
            failure = WorkerFailure(task.step, problem, hint=NOT_SHARED_HINT, exit_code=2)
            return Result(task.step, "failed", error=failure)
        tries = _mark_try(Path(meeting), key)
        if len(tries) > 1 and len(tries) > 1 + (retries := retries_of(task)):
            failure = died(task.step, tries[-2], len(tries) - 1, retries)
            return Result(task.step, "failed", error=failure)
        return execute(task)


def not_shared(root: str, meeting: str, token: str, dask_worker: Any = None) -> str | None:
    """Why this worker does not see the driver's project at `root`; None when it does.
    (`dask_worker`: the worker, when called by Client.run, which passes it by that name.)"""
    try:
        if (Path(meeting) / TOKEN_FILE).read_text() == token:
            return None
    except OSError:
        pass
    who = f"{dask_worker.address} on {socket.gethostname()}" if dask_worker else _this_worker()
    where = f"the Dask worker {who}"
    if not os.path.isdir(root):
        return (
            f"{where} does not see this project's files at {root}: Dask workers need the "
            "project on a shared file system"
        )
    return (
        f"{where} has a folder at {root}, but not the files of this make (another copy of "
        "the project?): Dask workers need the project on a shared file system"
    )


def died(step: str, where: str, times: int, retries: int = 0) -> WorkerFailure:
    """The failure of a step whose worker died while it ran (`where`: that worker; it was
    allowed `retries` more tries)."""
    count = "" if times == 1 else f" {times} times"
    hint = "the worker's log says why"
    if retries:
        hint += f"; its resources.retries = {retries} allows no more tries"
    else:
        hint += (
            "; a step that may lose its worker through no fault of its own (a preempted "
            f"node) may be run again: [processes.{step}] resources = {{ retries = 1 }}"
        )
    return WorkerFailure(
        step,
        f"the Dask worker running '{step}' died{count} ({where or 'which one is unknown'}): "
        "the step ended its process, ran out of memory, or the worker was stopped",
        hint=hint,
    )


def retries_of(task: Task) -> int:
    """How many times the step may run again after its worker died (`resources.retries`)."""
    from tipi.execution.task import resolve

    try:
        step = resolve(task).steps[task.step]
        return int(step.spec.resources.get("retries", 0))
    except Exception:  # it no longer loads: its run will say why; no second try for it
        return 0


def _mark_try(meeting: Path, key: str) -> list[str]:
    """Record a try of task `key` and return every try's worker, this one last. O_EXCL
    makes each mark once, also when two workers try at the same moment."""
    here = _this_worker()
    name = hashlib.sha256(key.encode()).hexdigest()[:24]  # a step's name may hold a slash
    number = 1
    while True:
        path = meeting / f"{name}.{number}"
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        except FileExistsError:
            number += 1
            continue
        with os.fdopen(fd, "w") as mark:
            mark.write(here)
        break
    tries = []
    for n in range(1, number + 1):
        try:
            tries.append((meeting / f"{name}.{n}").read_text())
        except OSError:
            tries.append("")
    return tries


def _this_worker() -> str:
    try:
        from distributed import get_worker

        address = get_worker().address
    except (ImportError, ValueError):  # not on a worker (a test calling this directly)
        address = f"pid {os.getpid()}"
    return f"{address} on {socket.gethostname()}"
