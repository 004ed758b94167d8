"""`tipi make --executor dask`: a real dask.distributed cluster runs the steps; the driver
decides and records exactly as in a local make."""

from __future__ import annotations

import json
import logging
import os

import pytest

from tests.test_parallel import STEPS, max_concurrency, records, wide
from tipi.engine import Engine
from tipi.errors import ConfigError, WorkerFailure
from tipi.report import ListReporter

distributed = pytest.importorskip("distributed")


@pytest.fixture
def cluster(monkeypatch):
    """A LocalCluster of two single-threaded worker processes, one of which offers a GPU."""
    from distributed import LocalCluster

    from tipi.execution.dask import preserved_environment

    with (
        preserved_environment(),
        LocalCluster(
            n_workers=1,
            threads_per_worker=1,
            processes=True,
            dashboard_address=":0",
            silence_logs=logging.ERROR,
            resources={"GPU": 1},
        ) as local,
    ):
        yield local


@pytest.fixture
def events(project, monkeypatch):
    folder = project.root / "events"
    folder.mkdir()
    monkeypatch.setenv("EVENTS_DIR", str(folder))
    return folder


@pytest.mark.slow
def test_a_local_cluster_runs_the_steps_with_the_same_caching(project, events, cli):
    project.pipeline("wide", wide(["a", "b", "c"]), steps=STEPS)
    result = cli("make", "--executor", "dask", "-j", "2")
    assert result.exit_code == 0, result.stderr
    assert "on the dask executor (tcp://127.0.0.1:" in result.stderr
    assert "done: 4 ran" in result.stderr
    runs = records(project, ["a", "b", "c"])
    assert max_concurrency(list(runs.values())) == 2
    # Recorded by the driver: nothing to do for a local make, nor for Dask again.
    status = json.loads(cli("status", "--json").stdout)
    assert {row["status"] for row in status} == {"up-to-date"}
    again = cli("make", "--executor", "dask")
    assert again.exit_code == 0 and "up to date" in again.stderr
    # A changed param reruns that step and what depends on it, with the reason.
    changed = cli("make", "--executor", "dask", "--set", "b.seconds=0.1", "--explain")
    assert changed.exit_code == 0
    assert "params changed: seconds 0.4 → 0.1" in changed.stderr
    assert "done: 2 ran" in changed.stderr


@pytest.mark.slow
def test_a_failure_on_a_dask_worker_comes_back_with_its_traceback(project, events):
    extra = {"a": "params = { fail = true, seconds = 0.1 }"}
    project.pipeline("wide", wide(["a", "b"], extra), steps=STEPS)
    reporter = ListReporter()
    with pytest.raises(WorkerFailure) as caught:
        Engine("wide", reporter=reporter).make(executor="dask", jobs=2)
    assert "a broke on purpose" in str(caught.value)
    assert 'raise ValueError(f"{self.name} broke on purpose")' in caught.value.details
    outcomes = {e[1].name: e[1].outcome for e in reporter.events if e[0] == "step_finished"}
    assert outcomes["a"] == "failed" and outcomes["all"] == "not run"


@pytest.mark.slow
def test_a_scheduler_address_and_worker_resources(project, events, cluster):
    extra = {"g": "resources = { gpu = 1 }"}
    project.pipeline("gpu", wide(["g", "c"], extra, gather=False), steps=STEPS)
    reporter = ListReporter()
    summary = Engine("gpu", reporter=reporter).make(
        executor="dask", scheduler=cluster.scheduler_address
    )
    assert len(summary.of("ran")) == 2
    notices = [e[1] for e in reporter.events if e[0] == "notice"]
    assert any(cluster.scheduler_address in n for n in notices)
    assert cluster.status.name == "running"  # an outside cluster is left running

    project.pipeline("greedy", wide(["g"], {"g": "resources = { gpu = 2 }"}, gather=False))
    (project.root / "pipelines" / "greedy" / "steps.py").write_text(
        (project.root / "pipelines" / "gpu" / "steps.py").read_text()
    )
    with pytest.raises(ConfigError, match="needs GPU=2 but no worker of the Dask cluster"):
        Engine("greedy").make(executor="dask", scheduler=cluster.scheduler_address, force_all=True)


@pytest.mark.slow
def test_a_dask_make_leaves_the_environment_as_it_was(project, events):
    project.pipeline("wide", wide(["a"], gather=False), steps=STEPS)
    before = dict(os.environ)
    Engine("wide").make(executor="dask", jobs=1)
    assert dict(os.environ) == before


def test_an_unreachable_scheduler_is_a_usage_error(numbers_project, cli):
    result = cli("make", "--executor", "dask", "--scheduler", "tcp://127.0.0.1:9")
    assert result.exit_code == 2
    assert "cannot reach the Dask scheduler at tcp://127.0.0.1:9" in result.stderr
