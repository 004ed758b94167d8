"""Shell completion through the protocol the installed script speaks (`tipi
--install-completion` for bash: `_TIPI_COMPLETE=complete_bash`, `COMP_WORDS`, `COMP_CWORD`):
pipelines, steps, `--set` keys and values, as the README says."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tests.conftest import Project
from tipi.cli import app

README = Path(__file__).parent.parent / "README.md"

TOML = """
[processes.prepare]
type = "Prepare"
params = { seed = 0, name = "small", token = "hunter2" }
outputs = { data = "out/{pipeline}/data.txt" }

[processes.train]
type = "Train"
inputs = { data = "out/{pipeline}/data.txt" }
outputs = { model = "out/{pipeline}/model.txt" }

[processes.train.params]
lr = 0.003
optimizer = { name = "AdamW", weight_decay = 0.0001 }
"""


@pytest.fixture
def two(project: Project) -> Project:
    project.pipeline("digits", TOML)
    project.pipeline("digits_small", TOML)
    project.pipeline("other", TOML.replace("prepare", "fetch"))
    return project


def complete(line: str, env: dict[str, str] | None = None) -> list[str]:
    """What bash is offered for the word under the cursor at the end of `line`."""
    words = line.split() + ([""] if line.endswith(" ") else [])
    protocol = {
        "_TIPI_COMPLETE": "complete_bash",
        "COMP_WORDS": "\n".join(words),  # as the script joins them (IFS is a newline)
        "COMP_CWORD": str(len(words) - 1),
    }
    result = CliRunner().invoke(app, [], env={**protocol, **(env or {})}, prog_name="tipi")
    assert result.exit_code == 0, result.output
    return result.output.split()


def test_pipelines_complete_after_p_and_run(two: Project) -> None:
    assert complete("tipi make -p ") == ["digits", "digits_small", "other"]
    assert complete("tipi make -p digits_") == ["digits_small"]
    assert complete("tipi run d") == ["digits", "digits_small"]
    assert complete("tipi status --pipeline o") == ["other"]


def test_steps_complete_as_targets_of_the_chosen_pipeline(two: Project) -> None:
    assert complete("tipi make -p other ") == ["fetch", "train"]
    assert complete("tipi make -p digits t") == ["train"]
    assert complete("tipi make -p digits -f p") == ["prepare"]
    assert complete("tipi make ") == []  # three pipelines: which one's steps?
    (two.root / "pipelines/other/pipeline.toml").unlink()
    (two.root / "pipelines/digits_small/pipeline.toml").unlink()
    assert complete("tipi make ") == ["prepare", "train"]  # the only pipeline's


def test_set_keys_then_values_complete(two: Project) -> None:
    keys = complete("tipi make -p digits --set ")
    assert keys == [
        "prepare.seed=",
        "prepare.name=",
        "prepare.token=",
        "train.lr=",
        "train.optimizer.name=",
        "train.optimizer.weight_decay=",
    ]
    assert complete("tipi make -p digits --set train.o") == [
        "train.optimizer.name=",
        "train.optimizer.weight_decay=",
    ]
    assert complete("tipi make -p digits --set train.lr=") == ["train.lr=0.003"]
    assert complete("tipi make -p digits --set train.optimizer.name=") == [
        "train.optimizer.name=AdamW"
    ]
    assert complete("tipi make -p digits --set prepare.token=") == []  # a secret stays unsaid
    assert complete("tipi sweep -p digits --set prepare.s") == ["prepare.seed="]


def test_values_complete_as_bash_splits_words_at_equals(two: Project) -> None:
    """Bash gives `--set train.lr=` as the words `train.lr`, `=`, and inserts after the `=`."""
    split = "tipi make -p digits --set train.lr = "
    assert complete(split.replace(" = ", " =")) == ["0.003"]  # the cursor on the `=`
    assert complete("tipi make -p digits --set train.optimizer.name = Ad") == ["AdamW"]
    assert complete("tipi make -p digits --set train.optimizer.name = x") == []


def test_choices_and_a_broken_toml_complete_quietly(two: Project) -> None:
    assert complete("tipi graph --format m") == ["mermaid"]
    (two.root / "pipelines/digits/pipeline.toml").write_text("[processes\n")
    assert complete("tipi make -p digits ") == []
    assert complete("tipi make -p nowhere ") == []


def test_the_readme_says_what_completes() -> None:
    row = next(line for line in README.read_text().splitlines() if "--install-completion" in line)
    for said in ("`-p`", "`tipi run`", "the steps", "`--set`", "`train.lr=`", "`train.lr=0.003`"):
        assert said in row, said


TMUX = shutil.which("tmux")


@pytest.mark.slow
@pytest.mark.skipif(TMUX is None, reason="tmux is not installed")
def test_tab_in_a_real_bash_completes_pipeline_key_and_value(two: Project) -> None:
    """A person's bash, in tmux: the script `tipi --show-completion bash` prints, sourced,
    then TAB after `-p digits_`, after `--set train.l` (no space after the `=`) and after it."""
    tipi = Path(sys.executable).parent / "tipi"
    script = two.root / "complete.sh"
    shown = subprocess.run(
        [tipi, "--show-completion", "bash"], capture_output=True, text=True, timeout=60
    )
    script.write_text(shown.stdout)
    assert "compopt -o nospace" in shown.stdout
    socket = str(two.root / "tmux.sock")

    def tmux(*args: str) -> str:
        return subprocess.run(
            [TMUX, "-S", socket, *args], capture_output=True, text=True, timeout=30
        ).stdout

    def line_becomes(text: str) -> str:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            screen = tmux("capture-pane", "-p", "-t", "t")
            if text in screen:
                return screen
            time.sleep(0.05)
        raise AssertionError(f"never showed {text!r}:\n{screen}")

    path = f"{tipi.parent}:{os.environ['PATH']}"
    tmux("new-session", "-d", "-s", "t", "-x", "150", "-y", "20",
         f"cd {two.root} && env PATH={path} bash --norc --noprofile")  # fmt: skip
    try:
        tmux("send-keys", "-t", "t", f"source {script}; PS1='$ '; clear", "Enter")
        tmux("send-keys", "-t", "t", "-l", "--", "tipi make -p digits_")
        tmux("send-keys", "-t", "t", "Tab")
        line_becomes("tipi make -p digits_small")
        tmux("send-keys", "-t", "t", "-l", "--", "--set train.l")
        tmux("send-keys", "-t", "t", "Tab")
        line_becomes("tipi make -p digits_small --set train.lr=")  # a space after the name
        tmux("send-keys", "-t", "t", "Tab")
        line_becomes("tipi make -p digits_small --set train.lr=0.003")
    finally:
        tmux("kill-server")


@pytest.mark.slow
def test_the_real_executable_completes(two: Project) -> None:
    """The `tipi` console script, as a shell calls it (through the fast path's entry)."""
    tipi = shutil.which("tipi", path=str(Path(sys.executable).parent)) or "tipi"
    env = {**os.environ, "_TIPI_COMPLETE": "complete_bash"}
    for line, cword, want in [
        ("tipi make -p ", "3", "digits\ndigits_small\nother"),
        ("tipi make -p digits --set train.l", "5", "train.lr="),
    ]:
        done = subprocess.run(
            [tipi],
            env={**env, "COMP_WORDS": line, "COMP_CWORD": cword},
            cwd=two.root,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert (done.returncode, done.stdout.strip()) == (0, want), done.stderr
