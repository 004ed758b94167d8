"""An Engine (or PipelineRunner) that makes more than once, with the pipeline edited in between,
must see the edit: its planner, asked again, reads the pipeline again and does not say its new
plan came from the plan file. It once kept both from the earlier make, so the up-to-date
question trusted the clean record for a plan it had not read (the edited step was skipped),
and the plan it saved held the old params beside the new file's stat: every later `tipi make`
said up to date until `--rehash`."""

from __future__ import annotations

import os
import time

import pytest

from tests.conftest import PIPELINE, STEPS
from tipi.engine import Engine


@pytest.fixture(autouse=True)
def _without_run_cache(monkeypatch):
    """What reruns is the rebuilder's decision here, not a restore from the run cache."""
    monkeypatch.setenv("TIPI_RUN_CACHE", "0")


def age(root) -> None:
    """Every project file written a minute ago: no mtime is racy, so the plan file and the
    clean record are written."""
    past = time.time() - 60
    for path in root.rglob("*"):
        if ".tipi_cache" not in path.parts:
            os.utime(path, (past, past))


def outcomes(summary) -> dict[str, str]:
    return {r.name: r.outcome for r in summary.results}


@pytest.fixture
def engine(project):
    project.pipeline("numbers", PIPELINE, steps=STEPS)
    age(project.root)
    engine = Engine("numbers")
    engine.make()
    age(project.root)
    assert set(outcomes(engine.make()).values()) == {"skipped"}  # writes the clean record
    assert (project.root / ".tipi_cache/pipelines/numbers/clean.msgpack").exists()
    return engine


def edit_n(project, n: int) -> None:
    toml = project.root / "pipelines/numbers/pipeline.toml"
    toml.write_text(toml.read_text().replace("n = 4", f"n = {n}"))


def test_a_reused_engine_sees_a_param_edited_since_its_last_make(project, engine):
    edit_n(project, 6)  # racy: this plan is not saved, the clean record still matches
    assert outcomes(engine.make(dry_run=True)) == {"numbers": "would run", "total": "would run"}
    assert outcomes(engine.make()) == {"numbers": "ran", "total": "ran"}
    assert project.read("out/total.txt") == str(sum(range(1, 7)))


def test_a_reused_engine_saves_the_edited_plan_not_the_old_one(project, engine):
    edit_n(project, 5)
    age(project.root)  # not racy: the plan made now is saved
    assert outcomes(engine.make())["numbers"] == "ran"
    assert project.read("out/total.txt") == str(sum(range(1, 6)))
    fresh = Engine("numbers")  # a later make (another process) trusts that plan file
    assert fresh.load().steps["numbers"].params["n"] == 5
    assert set(outcomes(fresh.make()).values()) == {"skipped"}
