"""A real Dask cluster for tests: a `dask scheduler` process and `dask worker` processes (no
nanny: a worker that dies stays dead, as on a node that was lost), started and stopped by
the test, waited on through the scheduler file and the scheduler's own worker count."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

DASK = str(Path(sys.executable).with_name("dask"))
TIPI = str(Path(sys.executable).with_name("tipi"))


def wait_until(condition: Callable[[], object], timeout: float = 30.0, what: str = "") -> None:
    """Poll `condition` (a file appearing, a count reached) until it holds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out waiting for {what or condition}")
        time.sleep(0.02)


class DaskCluster:
    """`start()` a scheduler and workers; `stop()` ends every process it started."""

    def __init__(self, folder: Path, env: dict[str, str] | None = None) -> None:
        self.folder = folder
        self.env = {**os.environ, **(env or {})}
        self.scheduler: subprocess.Popen[bytes] | None = None
        self.workers: list[subprocess.Popen[bytes]] = []
        self.address = ""

    def start(self, workers: int = 2, nthreads: int = 1) -> DaskCluster:
        self.folder.mkdir(parents=True, exist_ok=True)
        info = self.folder / "scheduler.json"
        options = ["--port", "0", "--host", "127.0.0.1", "--no-dashboard"]
        self.scheduler = self._spawn(
            "scheduler", [DASK, "scheduler", "--scheduler-file", str(info), *options]
        )
        wait_until(lambda: _address(info), what="the scheduler file")
        self.address = _address(info)
        for _ in range(workers):
            self.add_worker(nthreads)
        if workers:
            self.wait_for_workers(workers)
        return self

    def add_worker(self, nthreads: int = 1, wrap: Sequence[str] = ()) -> subprocess.Popen[bytes]:
        """Start a worker (`wrap`: a command it runs under, e.g. in another mount namespace)."""
        command = [*wrap, DASK, "worker", self.address, "--nthreads", str(nthreads), "--no-nanny"]
        worker = self._spawn(f"worker{len(self.workers)}", command)
        self.workers.append(worker)
        return worker

    def worker_count(self) -> int:
        from distributed import Client

        with Client(self.address, timeout="10s") as client:
            return len(client.scheduler_info(n_workers=-1)["workers"])

    def wait_for_workers(self, n: int) -> None:
        from distributed import Client

        with Client(self.address, timeout="10s") as client:
            client.wait_for_workers(n, timeout=60)

    def kill_scheduler(self) -> None:
        assert self.scheduler is not None
        self.scheduler.kill()
        self.scheduler.wait()

    def stop(self) -> None:
        for process in [*self.workers, self.scheduler]:
            if process is not None and process.poll() is None:
                process.kill()
                process.wait()

    def log(self, name: str) -> str:
        return (self.folder / f"{name}.log").read_text(errors="replace")

    def _spawn(self, name: str, command: list[str]) -> subprocess.Popen[bytes]:
        with open(self.folder / f"{name}.log", "wb") as log:
            return subprocess.Popen(command, env=self.env, stdout=log, stderr=subprocess.STDOUT)


def _address(info: Path) -> str:
    try:
        return str(json.loads(info.read_text())["address"])
    except (OSError, ValueError, KeyError):
        return ""


def make(root: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    """`tipi make ARGS` in its own process (a test may kill the cluster under it)."""
    return subprocess.Popen(
        [TIPI, "make", *args],
        cwd=root,
        env={**os.environ, **(env or {})},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
