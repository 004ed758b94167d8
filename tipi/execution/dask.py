"""`tipi make --executor dask`: ready steps go to a dask.distributed cluster.

Without `--scheduler ADDRESS` tipi starts a LocalCluster of single-threaded worker processes
for the make and closes it afterwards. The driver still decides, stages, commits and records
everything; workers only run steps, so artifacts, the staging folders and the step logs under
`.tipi_cache/` must be on a file system every worker sees at the same path.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Collection, Iterator
from typing import Any

from tipi.errors import ConfigError, UsageError
from tipi.execution.resources import Resources
from tipi.execution.task import execute
from tipi.execution.types import Result, Task


@contextlib.contextmanager
def preserved_environment() -> Iterator[None]:
    """Put os.environ back as it was: distributed's Nanny writes its workers' settings
    (OMP_NUM_THREADS=1, PYTHONHASHSEED, ...) into the parent's environment, which would
    change how torch computes in anything this process starts afterwards."""
    saved = dict(os.environ)
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


# Declared resources → the names Dask workers are started with (`dask worker --resources`).
DASK_NAMES = {"gpu": "GPU", "cpu": "CPU", "mem_gb": "MEM_GB"}


class DaskPool:
    """Submits tasks to a Dask cluster; `slots` is how many may be in flight at once."""

    name = "dask"

    def __init__(self, scheduler: str | None = None, slots: int | None = None) -> None:
        try:
            from distributed import Client, LocalCluster
        except ImportError:
            raise UsageError(
                "--executor dask needs dask.distributed, which is not installed",
                hint="pip install 'tipi[dask]'",
            ) from None
        self.cluster: Any = None
        if scheduler:
            try:
                self.client = Client(scheduler, timeout="10s")
            except OSError as exc:
                raise UsageError(
                    f"cannot reach the Dask scheduler at {scheduler}: {exc}",
                    hint="start one with `dask scheduler`, or leave --scheduler out for a "
                    "local cluster",
                ) from None
        else:
            with preserved_environment():  # its nannies set OMP_NUM_THREADS=1 etc. in ours
                self.cluster = LocalCluster(
                    n_workers=slots or os.cpu_count() or 1,
                    threads_per_worker=1,
                    processes=True,
                    dashboard_address=":0",
                    silence_logs=logging.ERROR,
                    env={"TIPI_NO_LIVE": "1"},
                )
                self.client = Client(self.cluster)
        workers = self.client.scheduler_info(n_workers=-1)["workers"]
        self.offered = [dict(w.get("resources") or {}) for w in workers.values()]
        threads = sum(int(w.get("nthreads", 1)) for w in workers.values())
        self.slots = slots or max(threads, 1)
        self.address = self.client.scheduler.address

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
        return self.client.submit(
            execute,
            task,
            pure=False,
            key=f"tipi-{task.step}-{os.urandom(4).hex()}",
            resources=self._resources(need) or None,
        )

    def wait(self, futures: Collection[Any], timeout: float) -> set[Any]:
        from distributed import wait

        with contextlib.suppress(TimeoutError):
            wait(list(futures), timeout=timeout, return_when="FIRST_COMPLETED")
        return {f for f in futures if f.done()}

    def result(self, future: Any, task: Task) -> Result:
        from tipi.errors import WorkerFailure

        try:
            return future.result()
        except Exception as exc:  # the worker died, or the task could not be unpickled
            failure = WorkerFailure.describe(task.step, exc)
            return Result(task.step, "failed", error=failure)

    def close(self, interrupted: bool = False) -> None:
        """Close the client; a cluster started for this make stops with its running steps."""
        with preserved_environment():
            try:
                self.client.close()
            finally:
                if self.cluster is not None:
                    self.cluster.close()

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
