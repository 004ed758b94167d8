"""Attacks on the Dask executor's failure handling (issue 26 item 5), against a real
`dask scheduler` and real `dask worker` processes: every worker lost while steps are in
flight, and Dask's own limit on worker deaths coming before `resources.retries`."""

from __future__ import annotations

import subprocess
import threading

import pytest

from tests.dask_cluster import DaskCluster, make, wait_until
from tests.test_dask_failures import cluster, errors, events, pipeline, tries

pytest.importorskip("distributed")

# every test here starts processes (or takes seconds): not in the fast tier
pytestmark = pytest.mark.slow

FIXTURES = (cluster, events)  # pytest finds them by name in this module


def lines_of(run: subprocess.Popen[str]) -> tuple[list[str], threading.Thread]:
    """The lines of `run`'s stderr as they come (read on a thread: a test never blocks),
    and that thread, which ends with the output."""
    said: list[str] = []
    stream = run.stderr
    assert stream is not None
    reader = threading.Thread(target=lambda: said.extend(stream), daemon=True)
    reader.start()
    return said, reader


def test_every_worker_lost_mid_make_is_told_not_a_silent_wait(project, events, cluster):
    """The steps in flight wait for a worker that may never come: the make says so, once,
    instead of hanging without a word (found: `timeout 60 tipi make` killed with no output)."""
    pipeline(project, {"s0": "params = { hold = true }"})
    cluster.start(workers=1)
    run = make(project.root, "--executor", "dask", "--scheduler", cluster.address)
    said, reader = lines_of(run)
    try:
        wait_until(lambda: tries(events, "s0"), what="s0 to start")
        for worker in cluster.workers:
            worker.kill()
            worker.wait()
        wait_until(lambda: any("no workers left" in line for line in said), 30, "the notice")
        (notice,) = [line for line in said if "no workers left" in line]
        assert "'s0'" in notice and cluster.address in notice
        assert run.poll() is None  # still waiting: a worker may yet join
        # One joins: the step ran on the worker that died, so it fails as a worker death.
        cluster.add_worker()
        run.wait(timeout=60)
    finally:
        if run.poll() is None:
            run.kill()
            run.wait()
    reader.join(10)
    stderr = "".join(said)
    assert run.returncode == 1, stderr
    assert stderr.count("no workers left") == 1
    assert "error: the Dask worker running 's0' died" in stderr


def test_dasks_own_limit_on_worker_deaths_is_named_when_it_comes_before_retries(
    project, events, tmp_path_factory
):
    """A scheduler whose allowed-failures is below the step's resources.retries stops it
    first: the hint says so, not 'set resources = { retries = 1 }', which it has."""
    pipeline(project, {"s0": "params = { die = 1 }\n        resources = { retries = 2 }"})
    env = {"EVENTS_DIR": str(events), "DASK_DISTRIBUTED__SCHEDULER__ALLOWED_FAILURES": "0"}
    running = DaskCluster(tmp_path_factory.mktemp("dask"), env=env)
    try:
        running.start(workers=2)
        run = make(project.root, "--executor", "dask", "--scheduler", running.address)
        _, stderr = run.communicate(timeout=60)
    finally:
        running.stop()
    assert run.returncode == 1, stderr
    assert tries(events, "s0") == 1
    (line,) = errors(stderr)
    assert "the Dask worker running 's0' died" in line
    assert "retries = 1 }" not in stderr
    assert "allowed-failures" in stderr and "ALLOWED_FAILURES=2" in stderr
