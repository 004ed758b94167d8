"""The command line: init → run in an empty folder, list, --version, --debug, failure output."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import tipi

TIPI = shutil.which("tipi", path=str(Path(sys.executable).parent)) or "tipi"


@pytest.mark.slow
def test_init_then_run_in_an_empty_folder(tmp_path):
    def tipi_cmd(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [TIPI, *args], cwd=tmp_path, capture_output=True, text=True, timeout=60
        )

    created = tipi_cmd("init", "demo")
    assert created.returncode == 0, created.stderr
    assert "pipelines/demo/pipeline.toml" in created.stdout
    ran = tipi_cmd("run", "demo")
    assert ran.returncode == 0, ran.stderr
    assert (tmp_path / "out/demo/numbers.txt").read_text() == "1\n2\n3\n4\n5\n"
    assert (tmp_path / "out/demo/total.txt").read_text() == "15\n"
    assert "2 ran" in ran.stderr
    again = tipi_cmd("init", "demo")
    assert again.returncode == 2
    assert "already exists" in again.stderr


def test_init_rejects_bad_names(project, cli):
    result = cli("init", "../evil")
    assert result.exit_code == 2
    assert "bad pipeline name" in result.stderr


def test_version(cli):
    result = cli("--version")
    assert result.exit_code == 0
    assert result.stdout.strip() == f"tipi {tipi.__version__}"


def test_no_arguments_shows_help(cli):
    result = cli()
    assert "Usage" in result.stdout + result.stderr
    for command in ("run", "list", "init"):
        assert command in result.stdout + result.stderr


def test_list_shows_pipelines_and_types_with_params(numbers_project, cli):
    result = cli("list")
    assert result.exit_code == 0, result.stderr
    out = result.stdout
    assert "numbers" in out
    for name in ("Counter", "WriteNumbers", "SumNumbers"):
        assert name in out
    assert "start: int = 0" in out
    assert "n: int = 3" in out


BOOM = """
[processes.boom]
type = "Boom"
"""
BOOM_PY = """
from tipi import PipelineProcess


def helper():
    raise ValueError("the user's bug")


class Boom(PipelineProcess):
    def execute(self):
        helper()
"""


def test_failing_process_shows_user_frames_only_and_exits_1(project, cli):
    project.pipeline("p", BOOM, steps=BOOM_PY)
    result = cli("run", "p")
    assert result.exit_code == 1
    err = result.stderr
    assert "tipi frame(s) hidden" in err
    assert 'steps.py", line 5, in helper' in err
    assert "tipi/engine.py" not in err
    assert "error: step 'boom' failed: ValueError: the user's bug" in err


def test_debug_shows_tipi_frames_too(project, cli):
    project.pipeline("p", BOOM, steps=BOOM_PY)
    result = cli("--debug", "run", "p")
    assert result.exit_code == 1
    assert "tipi/execution/sequential.py" in result.stderr


def test_unexpected_exception_is_reported_as_a_tipi_bug(monkeypatch, numbers_project, cli):
    import tipi.engine

    def broken(self, *args, **kwargs):
        raise RuntimeError("engine bug")

    monkeypatch.setattr(tipi.engine.Engine, "load", broken)
    result = cli("run", "numbers")
    assert result.exit_code == 3
    assert "internal error: RuntimeError: engine bug" in result.stderr
    assert "report it" in result.stderr


def test_the_example_pipeline_is_what_tipi_init_writes(tmp_path):
    from tipi.cli.scaffold import scaffold

    repo = Path(__file__).parent.parent
    scaffold(tmp_path, "example")
    made = tmp_path / "pipelines/example"
    shipped = repo / "pipelines/example"
    assert (made / "steps.py").read_text() == (shipped / "steps.py").read_text()
    strip = lambda text: [line for line in text.splitlines() if not line.startswith("description")]  # noqa: E731
    assert strip((made / "pipeline.toml").read_text()) == strip(
        (shipped / "pipeline.toml").read_text()
    )


def test_check_exits_1_when_something_would_run(numbers_project, cli):
    assert cli("status", "--check").exit_code == 1
    assert cli("make", "-n", "--check").exit_code == 1
    assert cli("make", "--check").exit_code == 1  # a question (implies -n): it ran nothing
    assert not (numbers_project.root / "out").exists()
    assert cli("make").exit_code == 0
    assert cli("status", "--check").exit_code == 0
    assert cli("status", "--check", "--json").exit_code == 0
    assert cli("make", "-n", "--check").exit_code == 0
    assert cli("status", "--check", "-f", "numbers").exit_code == 1


def test_run_takes_every_option_of_make_but_targets(numbers_project, cli):
    result = cli("run", "numbers", "--no-run-cache", "-f", "total", "--explain", "-v")
    assert result.exit_code == 0, result.stderr
    assert "forced" in result.stderr
    quiet = cli("run", "numbers", "-q", "-F", "--rehash", "-j", "1", "-k")
    assert quiet.exit_code == 0 and quiet.stderr == ""


def test_the_options_are_defined_once_for_every_command_that_makes_or_decides():
    from typer.main import get_command

    from tipi.cli import app

    group = get_command(app)
    decide = {"--force", "--force-all", "--remote", "--run-cache", "--rehash"}
    run = {"--dry-run", "--keep-going", "--jobs", "--executor", "--scheduler"}
    for name, wanted in [
        ("make", decide | run),
        ("run", decide | run),
        ("sweep", decide | run),
        ("status", decide),
        ("graph", decide),
        ("report", decide),
    ]:
        options = {o for p in group.commands[name].params for o in p.opts}
        assert wanted <= options, (name, wanted - options)


@pytest.mark.slow
def test_shell_completion_is_on():
    result = subprocess.run(
        [sys.executable, "-m", "tipi", "--show-completion", "bash"],
        capture_output=True,
        text=True,
        env={**os.environ, "SHELL": "/bin/bash"},
    )
    assert result.returncode == 0, result.stderr
    assert "complete" in result.stdout and "tipi" in result.stdout


def test_binary_graph_formats_refuse_a_terminal(numbers_project, tmp_path):
    """`--format png` without -o would spray bytes over the terminal: refused in a real pty."""
    import pty

    pid, fd = pty.fork()
    if pid == 0:  # the child: tipi with a terminal as stdout
        os.execv(sys.executable, [sys.executable, "-m", "tipi", "graph", "--format", "png"])
    output = b""
    while True:
        try:
            chunk = os.read(fd, 4096)
        except OSError:
            break
        if not chunk:
            break
        output += chunk
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 2, output
    assert b"is binary and would be written to the terminal" in output
