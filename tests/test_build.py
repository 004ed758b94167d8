"""The make session (build.py): the clean record that proves a no-op by stat alone, what a
session writes when it ends (and when it is interrupted), and the lock around what it writes."""

from __future__ import annotations

import os
import time

import pytest

from tests.make_helpers import PIPELINE, STEPS, edit, make, runs
from tipi.errors import PipelineInterrupted


@pytest.fixture(autouse=True)
def _without_run_cache(monkeypatch):
    """What reruns is the rebuilder's decision here, not a restore from the run cache."""
    monkeypatch.setenv("TIPI_RUN_CACHE", "0")


@pytest.fixture
def proj(project):
    project.pipeline("m", PIPELINE, steps=STEPS)
    return project


def age_all(root) -> None:
    past = time.time() - 60
    for path in root.rglob("*"):
        if ".tipi_cache" not in path.parts:
            os.utime(path, (past, past))


def test_the_clean_record_proves_a_no_op_without_reading_traces(proj, monkeypatch):
    make()
    age_all(proj.root)
    make()  # all up to date, files old: the clean record is written
    assert (proj.root / ".tipi_cache/pipelines/m/clean.msgpack").exists()
    import tipi.state.store  # state.py opens the trace log from here, on first use

    opened: list[str] = []
    real = tipi.state.store.TraceStore
    monkeypatch.setattr(
        tipi.state.store, "TraceStore", lambda *a, **k: opened.append("x") or real(*a, **k)
    )
    summary = make()
    assert opened == []  # decided by stat alone
    assert {r.outcome for r in summary.results} == {"skipped"}
    assert summary.results[0].reasons == ("up to date",)
    (proj.root / "out/b.txt").write_text("tampered")
    summary = make()
    assert opened  # the record no longer matched: the normal path
    assert runs(proj)[-2:] == ["b", "concat"] or runs(proj) == []


def test_forced_volatile_and_skip_method_steps_bypass_the_clean_record(proj):
    make()
    age_all(proj.root)
    make()
    runs(proj)
    make(force=["b"])
    assert runs(proj) == ["b"]
    age_all(proj.root)
    make()
    edit(proj, '[processes.b]\ntype = "Write"', '[processes.b]\nvolatile = true\ntype = "Write"')
    make()
    runs(proj)
    age_all(proj.root)
    make()
    assert runs(proj) == ["b"]
    assert not (proj.root / ".tipi_cache/pipelines/m/clean.msgpack").exists()


def test_a_warning_about_the_clean_record_follows_the_makes_announcement(proj):
    """Build asks the question before it announces the make (as the fast path does); what
    the question warned about is told after the announcement, as it always was."""
    from tipi.engine import Engine
    from tipi.report import ListReporter

    make()
    age_all(proj.root)
    make()
    record = proj.root / ".tipi_cache/pipelines/m/clean.msgpack"
    record.write_bytes(b"junk")
    reporter = ListReporter()
    summary = Engine("m", reporter=reporter).make()
    names = [name for name, _ in reporter.events]
    assert names[0] == "run_started"
    assert names[1] == "warning" and "clean.msgpack" in reporter.events[1][1]
    assert {r.outcome for r in summary.results} == {"skipped"}
    assert not reporter.events[-1][1].dry_run


def test_a_dry_run_of_a_clean_project_is_its_no_op(proj):
    from tipi.engine import Engine
    from tipi.report import ListReporter

    make()
    age_all(proj.root)
    make()
    reporter = ListReporter()
    summary = Engine("m", reporter=reporter).make(dry_run=True)
    assert summary.dry_run and {r.outcome for r in summary.results} == {"skipped"}
    assert [name for name, _ in reporter.events if name != "step_finished"] == [
        "run_started",
        "run_finished",
    ]


def test_no_clean_record_while_files_are_fresh(proj):
    make()
    assert not (proj.root / ".tipi_cache/pipelines/m/clean.msgpack").exists()


@pytest.mark.slow
def test_the_clean_record_is_written_only_when_nobody_else_holds_the_lock(proj):
    import subprocess
    import sys

    make()
    age_all(proj.root)
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time; from pathlib import Path; from tipi.state.lock import ProjectLock;"
            "lock = ProjectLock(Path(sys.argv[1])); lock.acquire(); print('held', flush=True); time.sleep(60)",
            str(proj.root / ".tipi_cache"),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        assert {r.outcome for r in make().results} == {"skipped"}  # a no-op needs no lock
        assert not (proj.root / ".tipi_cache/pipelines/m/clean.msgpack").exists()
    finally:
        holder.kill()
        holder.wait()
    make()
    record = proj.root / ".tipi_cache/pipelines/m/clean.msgpack"
    assert record.exists()
    before = record.stat().st_mtime_ns
    make()  # proven by the record: not written again
    assert record.stat().st_mtime_ns == before


STOP = """
from pathlib import Path
from tipi import Permanence, PipelineProcess


class Marker(Permanence):
    def initialize(self) -> None:
        Path("marker.log").open("a").write("initialized\\n")

    def cleanup(self) -> None:
        Path("marker.log").open("a").write("cleaned up\\n")


class Stop(PipelineProcess):
    def execute(self) -> None:
        self.controller.get_permanence("marker")
        raise KeyboardInterrupt
"""


@pytest.mark.slow
def test_ctrl_c_in_a_step_keeps_what_finished_and_releases_everything(proj):
    import subprocess
    import sys

    (proj.root / "pipelines/m/stop.py").write_text(STOP)
    edit(proj, '[processes.conf]\ntype = "UseConfig"', '[processes.conf]\ntype = "Stop"')
    edit(
        proj,
        "[permanences.logger]",
        '[permanences.marker]\ntype = "Marker"\n\n[permanences.logger]',
    )
    with pytest.raises(PipelineInterrupted, match="interrupted") as caught:
        make()
    assert "tipi make" in caught.value.hint
    assert (proj.root / "marker.log").read_text().splitlines() == ["initialized", "cleaned up"]
    assert len(runs(proj)) == 4  # a, up, b, cat finished before conf was stopped
    assert not (proj.root / "out/conf.txt").exists()
    # the lock is free: another process takes it without waiting
    took = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys; from pathlib import Path; from tipi.state.lock import ProjectLock;"
            "lock = ProjectLock(Path(sys.argv[1])); lock.acquire(wait=False); print(lock.held)",
            str(proj.root / ".tipi_cache"),
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    assert took.stdout.strip() == "True"
    # the traces of what finished were written: the next make runs only the stopped step
    edit(proj, '[processes.conf]\ntype = "Stop"', '[processes.conf]\ntype = "UseConfig"')
    summary = make()
    assert {r.name for r in summary.results if r.outcome == "ran"} == {"conf"}
