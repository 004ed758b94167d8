"""The bars in a real terminal: `tipi make` of a small pipeline (sequential and `-j 2`) and the
level-1 script run inside tmux, read back with `capture-pane` while they run and when they end.

tmux is installed here when missing and possible (root and apt-get); otherwise these tests
skip, saying so. Each test runs its own tmux server (a socket in its tmp folder), with CI and
TIPI_NO_LIVE unset so that the live display is on, as in a person's terminal.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).parent.parent
TIPI = Path(sys.executable).parent / "tipi"
DONE = "__tipi_test_done__"


def find_tmux() -> str | None:
    found = shutil.which("tmux")
    if found or os.geteuid() != 0 or not shutil.which("apt-get"):
        return found
    for command in (["apt-get", "update", "-qq"], ["apt-get", "install", "-y", "-qq", "tmux"]):
        try:
            subprocess.run(command, capture_output=True, timeout=300, check=False,
                           env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"})  # fmt: skip
        except (OSError, subprocess.SubprocessError):
            return None
    return shutil.which("tmux")


TMUX = find_tmux()
pytestmark = [
    pytest.mark.slow,  # a terminal (tmux) and the processes it runs
    pytest.mark.skipif(
        TMUX is None, reason="tmux is not installed and could not be (apt-get install tmux)"
    ),
]


class Terminal:
    """One tmux window running one command, 140 columns wide."""

    def __init__(self, folder: Path) -> None:
        self.socket = str(folder / "tmux.sock")

    def tmux(self, *args: str) -> str:
        done = subprocess.run(
            [TMUX, "-S", self.socket, *args], capture_output=True, text=True, timeout=30
        )
        return done.stdout

    def run(self, command: str, cwd: Path, env: dict[str, str] | None = None) -> None:
        exports = " ".join(f"{k}={shlex.quote(v)}" for k, v in (env or {}).items())
        script = f"cd {shlex.quote(str(cwd))} && env -u CI -u TIPI_NO_LIVE {exports} {command}"
        script += f"; echo {DONE} $?; sleep 600"
        self.tmux("new-session", "-d", "-s", "t", "-x", "140", "-y", "50", script)

    def screen(self) -> str:
        """Everything the window shows and scrolled past, without trailing blank lines."""
        return self.tmux("capture-pane", "-p", "-J", "-S", "-", "-t", "t").rstrip()

    def wait(self, ready: Callable[[str], bool], timeout: float = 120) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            text = self.screen()
            if ready(text):
                return text
            time.sleep(0.05)
        raise AssertionError(f"the terminal never showed what was awaited:\n{self.screen()}")

    def finished(self, timeout: float = 180) -> str:
        text = self.wait(lambda s: DONE in s, timeout)
        status = re.search(rf"{DONE} (\d+)", text)
        assert status and status[1] == "0", text
        return text[: text.index(DONE)]

    def close(self) -> None:
        self.tmux("kill-server")


@pytest.fixture
def terminal(tmp_path: Path) -> Iterator[Terminal]:
    term = Terminal(tmp_path)
    yield term
    term.close()


PIPELINE = """
[permanences.progress]
type = "ProgressManager"

[processes.first]
type = "fit"
params = { epochs = 3, batches = 25, delay = 0.04 }
outputs = { report = "out/first.txt" }

[processes.second]
type = "fit"
params = { epochs = 2, batches = 25, delay = 0.04, tag = 2 }
outputs = { report = "out/second.txt" }
"""

STEPS = """
import time
from pathlib import Path

from tipi.decorators import pipeline_process
from tipi.helpers import tqdm, trange


@pipeline_process(outputs={"report": "out/report.txt"})
def fit(epochs: int = 2, batches: int = 10, delay: float = 0.05, tag: int = 1,
        report: Path | None = None) -> None:
    for epoch in trange(epochs, desc="epochs"):
        bar = tqdm(range(batches), desc="batches", leave=False)
        for i in bar:
            time.sleep(delay)
            bar.set_postfix(loss=1.0 / (i + 1 + epoch))
    report.write_text(f"{epochs} {tag}")
"""


@pytest.fixture
def demo(tmp_path: Path) -> Path:
    folder = tmp_path / "project" / "pipelines" / "demo"
    folder.mkdir(parents=True)
    (folder / "pipeline.toml").write_text(PIPELINE)
    (folder / "steps.py").write_text(STEPS)
    return tmp_path / "project"


def rows(text: str, label: str) -> list[str]:
    """The lines of the screen that are a bar or row labelled `label`."""
    return [line for line in text.splitlines() if re.match(rf"\s*(▶ )?{re.escape(label)}\s", line)]


def test_a_make_shows_nested_bars_under_the_running_step(terminal, demo):
    terminal.run(f"{TIPI} make -p demo", demo)
    counting = re.compile(r"\d+/25 .*it/s .*loss=")
    mid = terminal.wait(lambda s: any(counting.search(line) for line in rows(s, "batches")))
    (overall,) = rows(mid, "make demo")
    assert overall.rstrip().endswith("▶ first")  # the step running now, not the last one done
    assert "eta " in overall
    epochs, batches = rows(mid, "epochs")[-1], rows(mid, "batches")[-1]
    indent = [len(line) - len(line.lstrip()) for line in (epochs, batches)]
    assert indent == [2, 4]  # nested: the step's row, its epochs, their batches
    assert counting.search(batches)  # count, rate and status
    end = terminal.finished()
    assert "[progress]" not in end  # a terminal gets bars, not plain lines
    after_first = end.split("✔ first ran")[1]
    assert re.search(r"^\s+epochs\s.*3/3", after_first, re.M)  # leave=True: kept, final count
    assert re.search(r"^\s+epochs\s.*2/2", end.split("✔ second ran")[1], re.M)
    assert "done: 2 ran" in end


@pytest.mark.parametrize("executor", ["local", "dask"])
def test_with_j2_the_workers_bars_show_under_their_steps(terminal, demo, executor):
    if executor == "dask":
        pytest.importorskip("distributed", reason="the dask extra is not installed")
    terminal.run(f"{TIPI} make -p demo -j 2 --executor {executor}", demo)
    mid = terminal.wait(
        lambda s: sum("loss=" in line for line in rows(s, "batches")) >= 2 and "make demo" in s
    )
    order = [line.strip().split()[0:2] for line in mid.splitlines() if line.strip()]
    steps = [
        i for i, words in enumerate(order) if words[0] == "▶" and words[1] in ("first", "second")
    ]
    assert len(steps) >= 2
    assert rows(mid, "make demo")[0].rstrip().endswith(("▶ first, second", "▶ second, first"))
    end = terminal.finished()
    for step, total in (("first", "3/3"), ("second", "2/2")):
        assert re.search(rf"^\s+epochs\s.*{total}", end.split(f"✔ {step} ran")[1], re.M)
    assert "first │ [progress]" not in end  # the log's plain lines were shown as bars


def test_the_level_1_script_draws_bars_and_keeps_each_finished_one(terminal, tmp_path):
    script = REPO / "examples/progressive/level1_progress.py"
    # Enough epochs that the screen is seen mid-run (a terminal draws them slower than a
    # pipe: 50 take about 3 s on a quiet 2-core machine, 150 took 38 s under a full -n 2 run).
    terminal.run(f"{sys.executable} {script}", tmp_path, {"EPOCHS": "50"})
    mid = terminal.wait(lambda s: "epoch 3: loss" in s)
    assert DONE not in mid and "epoch 49: loss" not in mid
    assert re.search(r"^epoch 0\s+━+ 29/29", mid, re.M)  # kept, with its final count
    end = terminal.finished()
    assert re.search(r"^epoch 49\s+━+ 29/29", end, re.M)
    assert "[progress]" not in end
