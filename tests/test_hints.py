"""The hint after a failure or Ctrl-C names the command that continues *this* make: the
user's targets and options (`--set`, `-c`, `-j`, `-p`, ...), quoted for the shell; never the
`-f`/`-F` that would redo finished steps (tipi/cli/resume.py)."""

from __future__ import annotations

import os
import re
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import Project

STEPS = """
import time
from pathlib import Path
from tipi import PipelineProcess


class Numbers(PipelineProcess):
    def __init__(self, controller, force: bool = False, n: int = 3, label: str = "") -> None:
        super().__init__(controller, force)
        self.n, self.label = n, label

    def execute(self) -> None:
        self.outputs["numbers"].write_text("\\n".join(str(i) for i in range(self.n)))


class Total(PipelineProcess):
    def execute(self) -> None:
        if Path("broken").exists():
            raise RuntimeError("broken on purpose")
        if Path("block").exists():  # stays until interrupted: the test's Ctrl-C lands here
            Path("started").write_text("x")
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                time.sleep(0.05)
        total = sum(int(x) for x in self.inputs["numbers"].read_text().split())
        self.outputs["total"].write_text(str(total))
"""

PIPELINE = """
[processes.numbers]
type = "Numbers"
outputs = { numbers = "out/numbers.txt" }

[processes.total]
type = "Total"
inputs = { numbers = "out/numbers.txt" }
outputs = { total = "out/total.txt" }
"""


@pytest.fixture
def two(project: Project) -> Project:
    project.pipeline("two", PIPELINE, steps=STEPS)
    project.pipeline("other", PIPELINE.replace("out/", "out2/"), steps=STEPS)
    return project


def hinted(stderr: str) -> str:
    """The command of the hint's backquotes."""
    match = re.search(r"hint:.*?`([^`]+)`", stderr, re.S)
    assert match, stderr
    return " ".join(match.group(1).split())  # Rich may fold a long hint over lines


def test_failure_hint_keeps_options_and_continues_this_make(two: Project, cli) -> None:
    (two.root / "broken").write_text("x")
    args = ["make", "total", "-p", "two", "--set", "numbers.n=7", "--set", "numbers.label='a b'"]
    failed = cli(*args, "-j", "1", "-F")
    assert failed.exit_code == 1
    command = hinted(failed.stderr)
    # -F is dropped: numbers finished and must not run again.
    assert command == shlex.join(["tipi", *args, "-j", "1"]), command
    (two.root / "broken").unlink()
    words = shlex.split(command)
    assert words[0] == "tipi"
    again = cli(*words[1:])
    assert again.exit_code == 0, again.stderr
    assert two.read("out/total.txt") == str(sum(range(7)))  # the --set was kept
    assert "numbers" not in again.stderr.split("total")[0]  # numbers did not run again


@pytest.mark.slow
def test_ctrl_c_hint_keeps_options(two: Project) -> None:
    """A real make in a process, interrupted by SIGINT while a step runs."""
    (two.root / "block").write_text("x")
    env = {**os.environ, "TIPI_NO_LIVE": "1"}
    command = [
        sys.executable, "-c", "from tipi.cli import main; main()",
        "make", "-p", "two", "--set", "numbers.n=5", "-c", "pipeline.toml",
    ]  # fmt: skip
    process = subprocess.Popen(
        command, cwd=two.root, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    started = Path(two.root / "started")
    deadline = time.monotonic() + 60
    while not started.exists() and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)  # waits for the step to say it runs, not a fixed time
    assert started.exists(), process.communicate()
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 130, stderr
    assert hinted(stderr) == "tipi make -p two --set numbers.n=5 -c pipeline.toml", stderr


def test_force_without_a_step_names_force_all(two: Project, cli) -> None:
    for form in ("-f", "--force"):
        result = cli("make", "-p", "two", form)
        assert result.exit_code == 2
        said = " ".join(result.stderr.replace("│", " ").split())
        assert f"{form} needs the step (or output) to force" in said, said
        assert "-F (--force-all)" in said


def test_quiet_and_verbose_together_are_refused(two: Project, cli) -> None:
    result = cli("make", "-p", "two", "-q", "-v")
    assert result.exit_code == 2
    assert "-q (print only warnings and errors) and -v" in result.stderr
    assert not (two.root / "out").exists()


def test_check_alone_is_a_dry_run(two: Project, cli) -> None:
    assert cli("make", "-p", "two", "--check").exit_code == 1
    assert not (two.root / "out").exists()
    assert cli("make", "-p", "two").exit_code == 0
    assert cli("make", "-p", "two", "--check").exit_code == 0


def test_the_hint_keeps_flags_in_any_form(two: Project, cli) -> None:
    (two.root / "broken").write_text("x")
    failed = cli("make", "--no-run-cache", "-p", "two", "-kF", "--rehash", "-f", "numbers")
    assert failed.exit_code == 1
    # In tipi's order of the options, each in one form; -F and -f dropped.
    assert hinted(failed.stderr) == "tipi make -p two --no-run-cache --rehash -k"


def test_tipi_run_is_continued_by_tipi_run(two: Project, cli) -> None:
    (two.root / "broken").write_text("x")
    failed = cli("--debug", "run", "two", "--set", "numbers.n=2")
    assert failed.exit_code == 1
    assert hinted(failed.stderr) == "tipi --debug run two --set numbers.n=2"


def test_a_failed_sweep_hints_the_sweep_command_with_its_grid(two: Project, cli) -> None:
    (two.root / "broken").write_text("x")
    args = ["sweep", "-p", "two", "--grid", "numbers.n=2,3", "--set", "numbers.label=x"]
    failed = cli(*args)
    assert failed.exit_code == 1
    command = hinted(failed.stderr)
    assert command.startswith("tipi sweep ") and "--grid numbers.n=2,3" in command
    assert "--set numbers.label=x" in command and "-p two" in command
