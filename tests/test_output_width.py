"""Output width (issue 31, items 5 and 7): in a pipe a table is written whole (not cut at 80
columns), COLUMNS is honoured, and `tipi runs` shows a column per metric, as many as fit a
terminal without wrapping a cell, saying how many it left out; `--metrics` picks them."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import pytest

from tests.test_runs import record_run

A, B = "20260101-100000-aaaa", "20260102-100000-bbbb"
METRICS = {f"metric_number_{i:02d}": i / 7 for i in range(12)} | {"accuracy": 0.9, "loss": 0.3}


@pytest.fixture
def many_metrics(numbers_project):
    root = numbers_project.root
    record_run(root, A, {"lr": 0.1}, METRICS)
    record_run(root, B, {"lr": 0.01}, {**METRICS, "accuracy": 0.95})
    return numbers_project


def table_rows(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.strip()]


def test_in_a_pipe_runs_writes_every_metric_column_unwrapped(many_metrics, monkeypatch):
    monkeypatch.delenv("COLUMNS", raising=False)
    env = {k: v for k, v in os.environ.items() if k != "COLUMNS"}
    done = subprocess.run(
        [sys.executable, "-m", "tipi", "runs"],
        cwd=many_metrics.root,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    lines = table_rows(done.stdout)
    header = lines[0].split()
    assert header[-14:-12] == ["accuracy", "loss"]  # key metrics first, then the others
    assert {f"metric_number_{i:02d}" for i in range(12)} <= set(header)
    assert len(lines[0]) > 200  # the full line, not cut at 80
    row = next(line for line in lines if "bbbb" in line)
    assert row.split()[-14:-12] == ["0.95", "0.3"]
    assert "not shown" not in done.stdout and "more" not in done.stdout


def test_columns_narrows_the_table_to_the_metrics_that_fit(many_metrics, cli, monkeypatch):
    monkeypatch.setenv("COLUMNS", "120")
    out = cli("runs").stdout
    lines = table_rows(out)
    assert all(len(line) <= 120 for line in lines), out
    header = lines[0].split()
    assert header[:5] == ["id", "when", "status", "commit", "ran"]
    assert "accuracy" in header and "loss" in header
    shown = sum(name in header for name in METRICS)
    assert 2 <= shown < 14
    note = " ".join(lines[lines.index(next(x for x in lines if x.startswith("…"))) :])
    assert note.startswith(f"… not shown in 120 columns: {14 - shown} more metrics (--metrics")
    bbbb = [line for line in lines if "bbbb" in line]
    assert len(bbbb) == 1 and "0.95" in bbbb[0] and "…" not in bbbb[0]  # nothing cut


def test_metrics_option_picks_columns_by_name_or_pattern(many_metrics, cli, monkeypatch):
    monkeypatch.setenv("COLUMNS", "100")
    out = cli("runs", "--metrics", "loss,evaluate.metric_number_1*").stdout
    header = table_rows(out)[0].split()
    picked = [name for name in header if name in METRICS or name == "loss"]
    assert picked == ["loss", "metric_number_10", "metric_number_11"]
    assert "accuracy" not in header and "more metrics" not in out  # all it was asked for
    assert "not shown in 100 columns: when, commit, ran" in out  # to make room for them
    assert json.loads(cli("runs", "--json").stdout)[0]["metrics"]["evaluate.accuracy"] == 0.95


@pytest.mark.slow
def test_a_terminal_of_60_columns_shows_runs_without_wrapping(many_metrics, tmp_path):
    from tests.test_progress_terminal import DONE, TMUX, Terminal

    if TMUX is None:
        pytest.skip("tmux is not installed")
    term = Terminal(tmp_path)
    script = f"cd {many_metrics.root} && env -u CI -u COLUMNS {sys.executable} -m tipi runs"
    script += f"; echo {DONE} $?; sleep 600"
    try:
        term.tmux("new-session", "-d", "-s", "t", "-x", "60", "-y", "30", script)
        screen = term.finished()
    finally:
        term.close()
    lines = table_rows(screen)
    assert all(len(line) <= 60 for line in lines), screen
    assert lines[0].split()[:3] == ["id", "status", "params"], screen  # commit, ran, when went
    row = next(line for line in lines if "bbbb" in line)
    assert row.startswith("20260102-100000-bbbb") and "…" not in row  # the id whole, one line
    assert "accuracy" in lines[0]
    said = " ".join(line.strip() for line in lines)
    assert "not shown in 60 columns: 13 more metrics, when, commit, ran" in said


NESTED = """
import time
from tipi.helpers import tqdm, trange
for epoch in trange(2, desc="epochs"):
    bar = tqdm(range(60), desc="batches of the training set", leave=False)
    for i in bar:
        time.sleep(0.03)
        bar.set_postfix(loss=1.0 / (i + 1), accuracy=0.5)
"""


@pytest.mark.slow
def test_bars_in_a_narrow_terminal_fold_on_one_row_each(tmp_path):
    width = 60
    from tests.test_progress_terminal import DONE, TMUX, Terminal

    if TMUX is None:
        pytest.skip("tmux is not installed")
    (tmp_path / "nested.py").write_text(NESTED)
    term = Terminal(tmp_path)
    script = f"cd {tmp_path} && env -u CI -u COLUMNS {sys.executable} nested.py"
    script += f"; echo {DONE} $?; sleep 600"
    try:
        term.tmux("new-session", "-d", "-s", "t", "-x", str(width), "-y", "20", script)
        mid = term.wait(lambda s: re.search(r"batches.*\d+/60 .*eta \d", s) is not None)
        lines = [line for line in mid.splitlines() if line.strip()]
        # One row per bar: every line is a bar's, none is the end of a row wrapped over.
        assert len(lines) == 2, mid
        assert lines[0].startswith("epochs ") and lines[1].startswith("  batches"), mid
        assert all(len(line) <= width for line in lines), mid
        assert re.search(r"\d+/60 +eta \d\d:\d\d", lines[1]), mid  # count and eta are whole
    finally:
        term.close()
