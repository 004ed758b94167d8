"""The one scheduler (schedule.py) and what doing a step means (dispatch.py): the sequential
make is the scheduler with one in-process slot, the dry run a dispatcher that changes nothing."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.make_helpers import PIPELINE, STEPS, edit, runs
from tipi.engine import Engine
from tipi.report import ListReporter


@pytest.fixture
def proj(project):
    project.pipeline("m", PIPELINE, steps=STEPS)
    return project


def walk(reporter: ListReporter) -> list[str]:
    return [
        f"{kind.removeprefix('step_')} {payload if isinstance(payload, str) else payload.name}"
        for kind, payload in reporter.events
        if kind in ("step_started", "step_finished")
    ]


def files(folder) -> list:
    """Every file, but the lock the other process holds."""
    return sorted(p for p in folder.rglob("*") if p.is_file() and not p.name.startswith("lock"))


def test_one_slot_decides_each_step_after_the_one_before_it_ended(proj, monkeypatch):
    monkeypatch.setenv("TIPI_RUN_CACHE", "0")
    Engine("m").make()
    runs(proj)
    edit(proj, 'params = { text = "abc" }', 'params = { text = "xyz" }')
    reporter = ListReporter()
    Engine("m", reporter=reporter).make()
    # a changed: a and what reads it run; b and conf are decided between them, in order
    assert walk(reporter) == [
        "started a",
        "finished a",
        "started up",
        "finished up",
        "finished b",
        "started cat",
        "finished cat",
        "finished conf",
    ]
    assert len(runs(proj)) == 3


@pytest.mark.slow
@pytest.mark.parametrize("jobs", [1, 2])
def test_a_twin_of_a_step_that_ran_in_this_make_is_restored_not_run(project, jobs):
    """Same type, code, params, inputs and output names: one run-cache key. The sequential
    and the parallel make agree (the twin waits for the first through `after`)."""
    project.pipeline(
        "twins",
        """
        [processes.first]
        type = "Write"
        params = { text = "same" }
        outputs = { out = "out/first.txt" }

        [processes.second]
        type = "Write"
        params = { text = "same" }
        outputs = { out = "out/second.txt" }
        after = ["first"]
        """,
        steps=STEPS,
    )
    summary = Engine("twins").make(jobs=jobs)
    outcomes = {r.name: r.outcome for r in summary.results}
    assert outcomes == {"first": "ran", "second": "restored"}
    assert project.read("out/second.txt") == project.read("out/first.txt")
    assert runs(project) == ["same"]  # the step logs its text: it ran once


@pytest.mark.slow
def test_a_dry_run_takes_no_lock_and_writes_nothing(proj):
    Engine("m").make()
    (proj.root / "out/cat.txt").unlink()
    state = files(proj.root / ".tipi_cache")
    mtimes = {p: p.stat().st_mtime_ns for p in state}
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time; from pathlib import Path; from tipi.state.lock import ProjectLock;"
            "lock = ProjectLock(Path(sys.argv[1])); lock.acquire(); print('held', flush=True);"
            "time.sleep(60)",
            str(proj.root / ".tipi_cache"),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        summary = Engine("m").make(dry_run=True)  # would block on the lock if it took it
    finally:
        holder.kill()
        holder.wait()
    would = {r.name: r.reasons for r in summary.results if r.outcome == "would run"}
    assert list(would) == ["cat"]
    assert "it would be restored" in would["cat"][0]  # the run cache has it; nothing copied
    assert not (proj.root / "out/cat.txt").exists()
    assert len(runs(proj)) == 5  # the first make's steps, nothing since
    after = files(proj.root / ".tipi_cache")
    assert after == state
    assert {p: p.stat().st_mtime_ns for p in after} == mtimes


def test_a_dry_run_of_a_chain_says_what_waits_on_what(proj, monkeypatch):
    monkeypatch.setenv("TIPI_RUN_CACHE", "0")
    Engine("m").make()
    edit(proj, 'params = { text = "abc" }', 'params = { text = "xyz" }')
    summary = Engine("m").make(dry_run=True)
    reasons = {r.name: r.reasons for r in summary.results if r.outcome == "would run"}
    assert set(reasons) == {"a", "up", "cat"}
    assert reasons["up"] == ("upstream 'a' will run first",)
    assert reasons["cat"] == ("upstream 'up' will run first",)


@pytest.mark.slow
def test_with_every_slot_busy_a_step_from_the_run_cache_is_restored_at_once(project, monkeypatch):
    from tests.test_parallel import STEPS as SLEEPS
    from tests.test_parallel import wide

    monkeypatch.setenv("EVENTS_DIR", str(project.root))
    extra = {"a": "params = { seconds = 1.0 }", "b": "params = { seconds = 1.0 }"}
    project.pipeline("w", wide(["a", "b", "c"], extra, gather=False), steps=SLEEPS)
    Engine("w").make(jobs=2)
    (project.root / "out/c.json").unlink()
    reporter = ListReporter()
    summary = Engine("w", reporter=reporter).make(jobs=2, force=["a", "b"])
    assert {r.name: r.outcome for r in summary.results} == {
        "a": "ran",
        "b": "ran",
        "c": "restored",
    }
    assert walk(reporter)[:3] == ["started a", "started b", "finished c"]  # no slot needed


def test_a_parallel_make_that_only_restores_opens_no_executor(project):
    """A step that needs a GPU this machine lacks is restored from the run cache by a -j
    make: no worker, no resource check, no cluster for what needs none."""
    project.pipeline(
        "g",
        """
        [processes.gpu]
        type = "Write"
        params = { text = "x" }
        outputs = { out = "out/gpu.txt" }
        resources = { gpu = 1 }
        """,
        steps=STEPS,
    )
    Engine("g").make()  # sequential: resources are not checked
    (project.root / "out/gpu.txt").unlink()
    reporter = ListReporter()
    summary = Engine("g", reporter=reporter).make(jobs=2)
    assert [r.outcome for r in summary.results] == ["restored"]
    assert not [m for kind, m in reporter.events if kind == "notice" and "at once" in m]
