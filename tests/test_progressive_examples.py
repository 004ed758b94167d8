"""Every level of examples/progressive runs as written, and docs/progressive.md shows their
real diffs."""

from __future__ import annotations

import difflib
import itertools
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).parent.parent
EXAMPLES = REPO / "examples/progressive"
LEVELS = sorted(EXAMPLES.glob("level[0-4]_*.py"))
TIPI = Path(sys.executable).parent / "tipi"


def env() -> dict[str, str]:
    return {
        **os.environ,
        "EPOCHS": "1",
        "CI": "true",
        "WANDB_MODE": "offline",
        "WANDB_SILENT": "true",
    }


@pytest.mark.slow
@pytest.mark.parametrize("script", LEVELS, ids=[p.stem for p in LEVELS])
def test_each_script_level_runs_as_written(script, tmp_path):
    done = subprocess.run(
        [sys.executable, str(script)],
        cwd=tmp_path,
        env=env(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    if "progress" in script.stem or script.stem >= "level1":
        assert "[progress] epoch 0" in done.stderr


@pytest.mark.slow
def test_level5_is_a_cached_pipeline(tmp_path):
    project = tmp_path / "level5"
    shutil.copytree(EXAMPLES / "level5", project)

    def tipi(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [str(TIPI), *args], cwd=project, env=env(), capture_output=True, text=True, timeout=300
        )

    first = tipi("make")
    assert first.returncode == 0, first.stderr
    assert (project / "out/model.pt").exists()
    assert "[progress]   epoch 0" in first.stderr  # nested under the step's bar
    (written,) = (project / "logs").glob("**/metrics.jsonl")  # logs/[digits_script/]<run>/
    assert written.read_text().count('"loss"') == 3
    second = tipi("make")
    assert "up to date: 1 skipped" in second.stderr
    dry = tipi("make", "-n", "--set", "train.lr=0.02")
    assert "params changed: lr 0.01 → 0.02" in dry.stderr


def level_files() -> list[Path]:
    return [*LEVELS, EXAMPLES / "level5/pipelines/digits_script/train.py"]


def diffs() -> list[str]:
    files = level_files()
    out = []
    for before, after in itertools.pairwise(files):
        lines = difflib.unified_diff(
            before.read_text().splitlines(),
            after.read_text().splitlines(),
            str(before.relative_to(REPO)),
            str(after.relative_to(REPO)),
            lineterm="",
        )
        out.append("\n".join(lines))
    return out


def test_the_walkthrough_shows_the_current_diffs():
    doc = (REPO / "docs/progressive.md").read_text()
    for diff in diffs():
        assert diff in doc, "docs/progressive.md is stale: run python docs/make_progressive.py"
