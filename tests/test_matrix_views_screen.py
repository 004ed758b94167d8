"""What a person sees of a step matrix: `tipi status` and `tipi graph` in a real terminal
(tmux, read back with capture-pane) and the report in headless Chromium (its DOM and a
screenshot): one folded `train ×9` with its states counted, the instances when unfolded."""

from __future__ import annotations

import re
import shlex
import sys
from pathlib import Path

import pytest

from tests.browser import dump_dom, screenshot
from tests.test_matrix_views import PIPELINE, STEPS
from tests.test_progress_terminal import TMUX, Terminal

pytestmark = pytest.mark.slow  # a terminal, a browser
TIPI = Path(sys.executable).parent / "tipi"


@pytest.fixture
def made(project, cli):
    """Made once, then lr gets a third value: 6 instances of each matrix up to date, 3 new."""
    project.pipeline("demo", PIPELINE, steps=STEPS)
    assert cli("make", "-q").exit_code == 0
    toml = project.root / "pipelines/demo/pipeline.toml"
    toml.write_text(toml.read_text().replace("lr = [0.001, 0.003]", "lr = [0.001, 0.003, 0.01]"))
    return project.root


@pytest.mark.skipif(TMUX is None, reason="tmux is not installed")
def test_status_and_graph_in_a_terminal(made, tmp_path):
    terminal = Terminal(tmp_path)
    try:
        # tmux's shell exports COLUMNS=80, which Rich would obey: a person's does not
        views = f"{TIPI} status; {TIPI} status --expand train; {TIPI} graph"
        terminal.run(f"env -u COLUMNS -u LINES sh -c {shlex.quote(views)}", made)
        screen = terminal.finished(timeout=60)
    finally:
        terminal.close()
    lines = screen.splitlines()
    folded = lines[: lines.index(next(line for line in lines[1:] if line.startswith("step")))]
    # a row per step (a long reason wraps onto a line of its own, under "why")
    assert [line.split()[0] for line in folded[1:] if line[0] != " "] == [
        "train",
        "evaluate",
        "report",
    ]
    folded = [line for line in folded if line[0] != " "]
    assert re.search(r"^train ×9 +◐ 6 up-to-date, 3 never-run +\d{4}-", folded[1])
    assert (
        folded[1]
        .rstrip()
        .endswith("train[seed=0,lr=0.01]: new step: no record of an earlier run (+2 more)")
    )
    assert re.search(r"^report +→ will-run .* upstream 'evaluate ×3' will run first", folded[3])
    # --expand train: its nine instances under it, each with its own state
    instances = [line for line in lines if line.startswith("  train[")]
    assert len(instances) == 9
    assert all("✔ up-to-date" in line for line in instances if "lr=0.01]" not in line)
    assert sum("○ never-run" in line for line in instances) == 3
    assert "╙── ◐ train ×9 [6 up-to-date, 3 never-run]" in screen
    assert "    └─╼ ◐ evaluate ×9 [6 up-to-date, 3 never-run]" in screen


def test_the_report_in_a_browser(made, cli, monkeypatch, tmp_path):
    monkeypatch.chdir(made)
    assert cli("report", "-o", "report.html").exit_code == 0
    dom = dump_dom(made / "report.html")
    dag = dom[dom.index('id="dag"') : dom.index('id="instances"')]  # the folded graph
    assert dag.count('class="step group never-run mixed"') == 2
    assert dag.count('class="step will-run"') == 1  # the report
    every = dom[dom.index('id="instances"') : dom.index('id="steps"')]  # one click away
    assert (
        every.count('class="step never-run"') == 6 and every.count('class="step up-to-date"') == 12
    )
    assert dom.count('class="step-row instance-row"') == 18
    png = screenshot(made / "report.html", tmp_path / "report.png", size="1300,700")
    image = pytest.importorskip("PIL.Image").open(png).convert("RGB")
    # each folded box's count bar: a green run (6 of 9 up to date) then a grey one (3 new),
    # 5 pixels high, on the same row
    green, grey = (0x2E, 0x7D, 0x32), (0x75, 0x75, 0x75)
    bars = []
    for y in range(image.height):
        row = [image.getpixel((x, y)) for x in range(image.width)]
        runs = re.findall(
            r"g+|a+", "".join("g" if p == green else "a" if p == grey else "." for p in row)
        )
        if any(len(r) > 60 and r[0] == "g" for r in runs) and any(
            len(r) > 30 for r in runs if r[0] == "a"
        ):
            bars.append(y)
    assert len(bars) >= 5, "no count bar drawn"
