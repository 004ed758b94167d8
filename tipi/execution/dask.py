"""`tipi make --executor dask`: ready steps go to a dask.distributed cluster.

Without `--scheduler ADDRESS` tipi starts a LocalCluster of single-threaded worker processes
for the make and closes it afterwards. The driver still decides, stages, commits and records
everything; workers only run steps (dask_worker.py), so artifacts, the staging folders and the
step logs under `.tipi_cache/` must be on a file system every worker sees at the same path.
A scheduler that cannot be reached, or is lost, is an error of the make (dask_connect.py).
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import time
from collections.abc import Callable, Collection
from dataclasses import replace
from pathlib import Path
from typing import Any

from tipi.config.planned import with_content
from tipi.errors import ConfigError, UsageError, WorkerFailure
from tipi.execution.dask_connect import (
    SchedulerLost,
    connect,
    preserved_environment,
    quiet_client_logs,
)
from tipi.execution.dask_worker import (
    NOT_SHARED_HINT,
    TOKEN_FILE,
    died,
    not_shared,
    retries_of,
    run_on_worker,
)
from tipi.execution.resources import Resources
from tipi.execution.types import Result, Task

__all__ = ["DaskPool", "SchedulerLost", "preserved_environment"]

# Declared resources → the names Dask workers are started with (`dask worker --resources`).
DASK_NAMES = {"gpu": "GPU", "cpu": "CPU", "mem_gb": "MEM_GB"}
# How long the cluster may have no worker at all, steps in flight, before the make says so:
# a worker restarting (a nanny's) is back within it; a lost node's is not.
NO_WORKERS_SECONDS = 5.0


class DaskPool:
    """Submits tasks to a Dask cluster; `slots` is how many may be in flight at once: one per
    worker process (dask_worker.py runs one step at a time in each), or `-j`."""

    name = "dask"

    def __init__(
        self,
        scheduler: str | None = None,
        slots: int | None = None,
        warn: Callable[[str], None] | None = None,
    ) -> None:
        self.token = secrets.token_hex(8)
        self.meetings: dict[Path, Path] = {}  # log folder → this make's meeting folder there
        self.in_flight: dict[str, str] = {}  # task key → step
        self._digests: dict[tuple[Any, ...], str] = {}
        self.client, self.cluster = connect(scheduler, slots)
        self.address = str(self.client.scheduler.address)
        self._quiet: Callable[[], None] | None = quiet_client_logs()
        try:
            workers = self.client.scheduler_info(n_workers=-1)["workers"]
        except Exception as exc:  # lost between connecting and asking
            self.close()
            raise SchedulerLost(self.address, [], exc) from None
        self.offered = [dict(w.get("resources") or {}) for w in workers.values()]
        self.slots = slots or max(len(workers), 1)
        self._warn = warn
        self._no_workers_since: float | None = None
        self._told_no_workers = False
        self._warn_threads(workers, warn)

    def _warn_threads(self, workers: dict[str, Any], warn: Callable[[str], None] | None) -> None:
        threaded = [w for w in workers.values() if int(w.get("nthreads", 1)) > 1]
        if threaded and warn is not None:
            warn(
                f"{len(threaded)} worker(s) of the Dask cluster at {self.address} run several "
                "threads: tipi runs one step at a time in each worker process (a step's "
                "output, environment and random seeds are its process's); start workers with "
                "`dask worker ADDRESS --nthreads 1 --nworkers N` to run N steps at once"
            )
        if not workers and warn is not None:
            warn(f"the Dask scheduler at {self.address} has no workers yet: steps wait for one")

    def check(self, step: str, need: Resources) -> None:
        """Refuse a step no worker can take: Dask would otherwise hold it forever."""
        wanted = self._resources(need)
        if wanted and not any(
            all(offer.get(k, 0) >= v for k, v in wanted.items()) for offer in self.offered
        ):
            listed = ", ".join(f"{k}={v:g}" for k, v in wanted.items())
            raise ConfigError(
                f"step '{step}' needs {listed} but no worker of the Dask cluster at "
                f"{self.address} offers it",
                hint=f'start workers with `dask worker ADDRESS --resources "{listed}"`',
            )

    def submit(self, task: Task, need: Resources) -> Any:
        if self.client.status != "running":
            raise SchedulerLost(self.address, list(self.in_flight.values()))
        meeting = self._meeting(task)
        key = f"tipi-{task.step}-{os.urandom(4).hex()}"
        # Another machine may show the project's files with other inode numbers and times:
        # the worker compares their bytes with the ones planned with (config/planned.py).
        task = replace(task, deps=with_content(task.deps, self._digests))
        future = self.client.submit(
            run_on_worker,
            task,
            str(meeting),
            self.token,
            key,
            pure=False,
            key=key,
            resources=self._resources(need) or None,
        )
        self.in_flight[key] = task.step
        return future

    def wait(self, futures: Collection[Any], timeout: float) -> set[Any]:
        from concurrent.futures import CancelledError

        from distributed import wait

        with contextlib.suppress(TimeoutError, CancelledError):
            wait(list(futures), timeout=timeout, return_when="FIRST_COMPLETED")
        # Every future is cancelled when the client loses the scheduler, finished ones too:
        # their results lived on the cluster, so nothing more comes back from this make.
        if any(f.cancelled() for f in futures) or self.client.status in ("closed", "failed"):
            raise SchedulerLost(self.address, [self.in_flight.get(f.key, f.key) for f in futures])
        done = {f for f in futures if f.done()}
        self._watch_workers(len(done) < len(futures))
        return done

    def _watch_workers(self, waiting: bool) -> None:
        """Say once when every worker is gone while steps wait (each died or its node was
        lost): Dask holds their tasks until a worker joins, which may be never, and the make
        would wait without a word."""
        if self.cluster is not None:  # tipi's own LocalCluster: its nannies restart workers
            return
        # The client's own copy of the scheduler's identity, refreshed every 2 s on its
        # thread: reading it never waits on the network, as asking the scheduler would.
        identity = getattr(self.client, "_scheduler_identity", None)
        count = identity.get("n_workers") if isinstance(identity, dict) else None
        if not isinstance(count, int):
            return
        if count > 0:  # a later loss of them all is told again
            self._no_workers_since, self._told_no_workers = None, False
            return
        if not waiting:
            self._no_workers_since = None
            return
        now = time.monotonic()
        if self._no_workers_since is None:
            self._no_workers_since = now
        if self._told_no_workers or now - self._no_workers_since < NO_WORKERS_SECONDS:
            return
        self._told_no_workers = True
        if self._warn is not None:
            steps = ", ".join(repr(s) for s in sorted(set(self.in_flight.values())))
            self._warn(
                f"the Dask cluster at {self.address} has no workers left: {steps} wait for "
                f"one (start one with `dask worker {self.address}`, or press Ctrl-C to stop)"
            )

    def result(self, future: Any, task: Task) -> Result:
        from concurrent.futures import CancelledError

        from distributed import KilledWorker

        self.in_flight.pop(future.key, None)
        try:
            return future.result()
        except KilledWorker as exc:  # Dask's own limit (allowed-failures) came first
            where = str(getattr(exc.last_worker, "address", exc.last_worker))
            allowed = exc.allowed_failures
            failure = died(task.step, where, allowed + 1, retries := retries_of(task))
            if retries > allowed:  # its hint would say retries ran out: they did not
                failure.hint = (
                    f"the worker's log says why; the scheduler stopped it after {allowed + 1} "
                    f"worker death(s) (its distributed.scheduler.allowed-failures = {allowed}), "
                    f"before its resources.retries = {retries}: start the scheduler with "
                    f"DASK_DISTRIBUTED__SCHEDULER__ALLOWED_FAILURES={retries}"
                )
            return Result(task.step, "failed", error=failure)
        except CancelledError as exc:
            raise SchedulerLost(self.address, [task.step], exc) from None
        except Exception as exc:  # the task could not be unpickled, or tipi failed there
            return Result(task.step, "failed", error=WorkerFailure.describe(task.step, exc))

    def close(self, interrupted: bool = False) -> None:
        """Close the client; a cluster started for this make stops with its running steps."""
        try:
            with preserved_environment(), contextlib.suppress(Exception):
                try:
                    self.client.close(timeout=5)
                finally:
                    if self.cluster is not None:
                        self.cluster.close()
        finally:
            for meeting in self.meetings.values():
                shutil.rmtree(meeting, ignore_errors=True)
            self.meetings.clear()
            if self._quiet is not None:
                self._quiet()
                self._quiet = None

    def _meeting(self, task: Task) -> Path:
        """This make's meeting folder beside the task's log, made (and the workers asked
        whether they see it) the first time."""
        logs = Path(task.log).parent if task.log else Path(task.root)
        meeting = self.meetings.get(logs)
        if meeting is None:
            meeting = logs / f".dask-{self.token}"
            meeting.mkdir(parents=True, exist_ok=True)
            (meeting / TOKEN_FILE).write_text(self.token)
            self.meetings[logs] = meeting
            self._check_workers_see(task.root, meeting)
        return meeting

    def _check_workers_see(self, root: str, meeting: Path) -> None:
        """Refuse a cluster whose workers do not see the project: every step would fail."""
        try:
            answers = self.client.run(not_shared, root, str(meeting), self.token)
        except Exception as exc:
            if self.client.status != "running":
                raise SchedulerLost(self.address, [], exc) from None
            raise UsageError(
                f"the workers of the Dask cluster at {self.address} cannot run tipi: "
                f"{type(exc).__name__}: {exc}",
                hint="install tipi and the project's requirements where the workers run",
            ) from None
        blind = {addr: why for addr, why in answers.items() if why}
        if blind:
            why = blind[sorted(blind)[0]]
            more = f" (nor do {len(blind) - 1} more of its workers)" if len(blind) > 1 else ""
            raise UsageError(why + more, hint=NOT_SHARED_HINT)

    def _resources(self, need: Resources) -> dict[str, float]:
        declared = {"gpu": need.gpu, "cpu": need.cpu, "mem_gb": need.mem_gb}
        offered_names = {name for offer in self.offered for name in offer}
        wanted = {}
        for key, amount in declared.items():
            name = DASK_NAMES[key]
            # GPUs must be offered; cores and memory count only on clusters that declare them.
            if amount and (key == "gpu" or name in offered_names):
                wanted[name] = float(amount)
        return wanted
