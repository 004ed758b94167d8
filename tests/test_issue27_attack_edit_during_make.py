"""A file edited while a make runs, after the make judged the steps that read it, must not be
vouched for by the clean record that make writes: the record proves a no-op by stat alone, so a
signature taken after the decision made the next makes (the fast path and the full one) call
the selection up to date with the edit never seen, until `--rehash`."""

from __future__ import annotations

import os
import time

import pytest

from tipi.engine import make

STEPS = """
import os
from pathlib import Path
from tipi import PipelineProcess


def backdate(path):
    past = os.stat(path).st_mtime - 2
    os.utime(path, (past, past))


class Copy(PipelineProcess):
    def execute(self) -> None:
        self.outputs["out"].write_text(self.inputs["src"].read_text())


class Slow(PipelineProcess):
    def execute(self) -> None:
        self.outputs["out"].write_text("b")
        if Path("edit-now").exists():
            # The user saves data/in.txt while this step runs, after `a` was judged up to
            # date; the step's output was written a while before the make ends (a teardown,
            # an upload): no file is racy when the record is written.
            Path("data/in.txt").write_text("edited while b ran")
            backdate("data/in.txt")
            backdate(self.outputs["out"])
"""

PIPELINE = """
[processes.a]
type = "Copy"
inputs = { src = "data/in.txt" }
outputs = { out = "out/a.txt" }

[processes.b]
type = "Slow"
outputs = { out = "out/b.txt" }
"""


@pytest.fixture(autouse=True)
def _without_run_cache(monkeypatch):
    """b runs again when its output is gone, not restored from the run cache."""
    monkeypatch.setenv("TIPI_RUN_CACHE", "0")


def age(root) -> None:
    past = time.time() - 60
    for path in root.rglob("*"):
        if ".tipi_cache" not in path.parts:
            os.utime(path, (past, past))


def test_an_input_edited_during_the_make_is_not_recorded_clean(project):
    project.pipeline("p", PIPELINE, steps=STEPS)
    (project.root / "data").mkdir()
    (project.root / "data/in.txt").write_text("hello")
    age(project.root)
    make("p")
    age(project.root)
    make("p")  # nothing to do, no file racy: the clean record is written
    record = project.root / ".tipi_cache/pipelines/p/clean.msgpack"
    assert record.exists()

    (project.root / "out/b.txt").unlink()
    (project.root / "edit-now").write_text("")
    ran = {r.name: r.outcome for r in make("p").results}
    assert ran == {"a": "skipped", "b": "ran"}  # a was judged before the edit
    (project.root / "edit-now").unlink()

    ran = {r.name: r.outcome for r in make("p").results}
    assert ran["a"] == "ran"
    assert project.read("out/a.txt") == "edited while b ran"
