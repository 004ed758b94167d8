"""Every command block of README.md and docs/*.md is run, so a doc cannot drift from the code.

A command block is a fenced block in bash/sh/console (its command lines), or any other fenced
block holding `$ tipi ...` lines (a session: commands with their output). How a block is run
is said by an HTML comment just above its fence, `<!-- docs-test: MODE -->`:

- no comment: each `tipi` command runs in-process in a scratch copy of the project (its
  pipelines, and two runs of `example` for `tipi runs`/`diff`/`show`), as a dry run where it
  would run steps (`make`, `run`, `sweep` get `-n`; a sweep without `--count` gets
  `--count 2`, a sweep's point being its variants, not their number); it must succeed (exit 1
  allowed with `--check`). A local `--remote` folder is replaced by a scratch one.
- `session`: the block is a real session, run in order in a new empty folder (`sed`, `rm`,
  `mkdir`, `cd` included); `session after CMD`: in a folder where CMD ran first. Each line
  of the transcript that says what ran (`→`, `✔`, `-`, `error:` and `done:`/`dry run:` lines
  with their times dropped) must be in what the command printed.
- `fails`: each command must fail with the `error:` lines the block shows.
- `placeholder DEST from SRC`: the block names a file of the reader's own (DEST); a copy of
  SRC stands in for it.
- `not-run: REASON`: not run (a GPU, a cluster, a bucket, W&B online, minutes of training);
  a script (`.sh`) it names must exist.
- `skip LINE-PART: REASON`: lines holding LINE-PART are not run, for that reason.

A command the default mode cannot run (not `tipi`) fails the test until the block is marked.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tipi.cli import app
from tipi.cli.examples import EXAMPLES
from tipi.engine import Engine

REPO = Path(__file__).parent.parent
DOCS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
FENCE = re.compile(r"^```(\w*)\n(.*?)^```", re.M | re.S)
MARKER = re.compile(r"<!--\s*docs-test:\s*(.*?)\s*-->", re.S)
SHELLS = ("bash", "sh", "shell", "console")
RUNS_STEPS = ("make", "run", "sweep")


@dataclass
class Block:
    """A command block: where it is, its commands, the transcript, how to run it."""

    where: str
    commands: list[str]
    outputs: list[list[str]] = field(default_factory=list)  # each command's transcript lines
    modes: list[str] = field(default_factory=list)

    def mode(self, word: str) -> str | None:
        """The rest of the (first) marker that starts with `word`, or None."""
        found = self.all(word)
        return found[0] if found else None

    def all(self, word: str) -> list[str]:
        """The rest of each marker that starts with `word`."""
        return [
            mode[len(word) :].lstrip(" :")
            for mode in self.modes
            if mode == word or mode.startswith((word + " ", word + ":"))
        ]

    def skipped(self, command: str) -> bool:
        """Whether a `skip PART: REASON` marker names a part of `command`."""
        return any(skip.split(":")[0] in command for skip in self.all("skip"))


def blocks() -> list[Block]:
    found = []
    for doc in DOCS:
        text = doc.read_text(encoding="utf-8")
        for match in FENCE.finditer(text):
            language, body = match.group(1), match.group(2)
            line = text.count("\n", 0, match.start()) + 1
            block = Block(f"{doc.relative_to(REPO)}:{line}", [])
            current: list[str] | None = None
            for raw in body.splitlines():
                if language in ("bash", "sh", "shell"):
                    command = raw.split("  #")[0].strip()
                    if command and not command.startswith("#"):
                        block.commands.append(command)
                elif raw.startswith("$ "):
                    block.commands.append(raw[2:].split("  #")[0].strip())
                    current = []
                    block.outputs.append(current)
                elif current is not None:
                    current.append(raw)
            is_session = bool(block.outputs) and any(c.startswith("tipi") for c in block.commands)
            if block.commands and (language in SHELLS or is_session):
                before = text[: match.start()].rstrip().rsplit("\n\n", 1)[-1]
                block.modes = [m.strip() for m in MARKER.findall(before)]
                found.append(block)
    return found


BLOCKS = blocks()


def words(command: str) -> list[str]:
    return shlex.split(command)


def dry(argv: list[str], scratch: Path) -> list[str]:
    """`argv` as the default mode runs it: steps are not run (see the module docstring)."""
    argv = list(argv)
    if argv and argv[0] in RUNS_STEPS and not {"-n", "--dry-run"} & set(argv):
        argv.insert(1, "-n")
    if argv and argv[0] == "sweep" and "--count" not in argv:
        argv += ["--count", "2"]
    for i, word in enumerate(argv[:-1]):
        if word == "--remote" and argv[i + 1].startswith("/"):
            argv[i + 1] = str(scratch / "remote")
    return argv


def tipi(argv: list[str]) -> tuple[int, str]:
    result = CliRunner().invoke(app, argv, catch_exceptions=False, prog_name="tipi")
    return result.exit_code, result.stdout + result.stderr


@pytest.fixture(scope="module")
def scratch(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the project's pipelines, with two runs of `example` made, and the plans of
    those the docs use saved once (then a dry run's plan reuses their code closures: 10x)."""
    root = tmp_path_factory.mktemp("docs") / "project"
    shutil.copytree(REPO / "pipelines", root / "pipelines")
    here = Path.cwd()
    os.chdir(root)
    try:
        for argv in (["make", "-p", "example", "-q"], ["make", "-p", "example", "-q",
                     "--set", "numbers.n=6"]):  # fmt: skip
            assert tipi(argv)[0] == 0
        for pipeline in ("digits", "analysis", "hypothesis"):
            Engine(pipeline).load(save=True)
    finally:
        os.chdir(here)
    return root


def shown(lines: list[str]) -> list[str]:
    """The transcript lines that say what happened, their times left out."""
    kept = []
    for line in lines:
        text = line.strip()
        if text.startswith(("→", "✔", "- ", "error:", "done:", "dry run:", "up to date:")):
            kept.append(re.sub(r" (in )?\d+(\.\d+)?m?s\b.*$", "", text))
    return kept


def run_session(block: Block, folder: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(folder)
    setup = block.mode("session") or ""
    commands = [setup.removeprefix("after").strip()] if setup.startswith("after") else []
    outputs = [[]] * len(commands) + (block.outputs or [[]] * len(block.commands))
    for line, transcript in zip(commands + block.commands, outputs, strict=True):
        for command in line.split(" && "):
            argv = words(command)
            if argv[0] == "cd":
                monkeypatch.chdir(Path.cwd() / argv[1])
            elif argv[0] == "tipi":
                code, output = tipi(argv[1:])
                assert code == 0, f"{block.where}: `{command}` exited {code}:\n{output}"
                flat = " ".join(output.split())
                for said in shown(transcript):
                    assert " ".join(said.split()) in flat, f"{block.where}: `{command}`: {said}"
            else:
                done = subprocess.run(argv, capture_output=True, text=True, timeout=30)
                assert done.returncode == 0, f"{block.where}: `{command}`: {done.stderr}"


def run_dry(block: Block, scratch: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(scratch)
    placeholder = block.mode("placeholder")
    if placeholder:
        dest, _, source = placeholder.partition(" from ")
        shutil.copy(scratch / source.strip(), scratch / dest.strip())
    outputs = block.outputs or [[]] * len(block.commands)
    for command, transcript in zip(block.commands, outputs, strict=True):
        if block.skipped(command):
            continue
        argv = words(command)
        assert argv[0] == "tipi", (
            f"{block.where}: cannot run `{command}` in a scratch project: mark the block "
            "(<!-- docs-test: not-run: WHY --> or session)"
        )
        code, output = tipi(dry(argv[1:], scratch))
        fails = block.mode("fails") is not None
        if fails:
            assert code != 0, f"{block.where}: `{command}` did not fail"
            flat = " ".join(output.split())
            for said in shown(transcript):
                assert " ".join(said.split()) in flat, f"{block.where}: `{command}`: {said}"
        else:
            ok = (0, 1) if "--check" in argv else (0,)
            assert code in ok, f"{block.where}: `{command}` exited {code}:\n{output}"


def _slow(block: Block) -> bool:
    return any(words(c)[:2] == ["tipi", "sweep"] for c in block.commands if c.startswith("tipi"))


@pytest.mark.parametrize(
    "block",
    [pytest.param(b, marks=[pytest.mark.slow] if _slow(b) else [], id=b.where) for b in BLOCKS],
)
def test_doc_block_runs(
    block: Block, scratch: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    reason = block.mode("not-run")
    if reason is not None:
        assert reason, f"{block.where}: say why it is not run"
        for command in block.commands:  # a script it names must exist
            for word in words(command):
                assert not word.endswith(".sh") or (REPO / word).is_file(), command
        return
    if block.mode("session") is not None:
        run_session(block, tmp_path, monkeypatch)
    else:
        run_dry(block, scratch, monkeypatch)


@pytest.mark.parametrize(
    "command",
    [pytest.param(c, marks=[pytest.mark.slow] if c == "sweep" else []) for c in sorted(EXAMPLES)],
)
def test_help_examples_run(command: str, scratch: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The examples that end `--help` (tipi/cli/examples.py), as the docs' blocks are run."""
    block = Block(f"tipi {command} --help", [line for line, _ in EXAMPLES[command]])
    run_dry(block, scratch, monkeypatch)


def test_every_block_is_found() -> None:
    """The extraction sees the blocks this suite was written against (a broken fence or a
    renamed language would silently drop them)."""
    where = {b.where.split(":")[0] for b in BLOCKS}
    assert {"README.md", "docs/scale-out.md", "docs/sweeps.md", "docs/run-cache.md"} <= where
    assert len(BLOCKS) >= 20


def test_an_unmarked_block_it_cannot_run_fails(
    scratch: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    block = Block("x.md:1", ["pip install torch"])
    with pytest.raises(AssertionError, match="mark the block"):
        run_dry(block, scratch, monkeypatch)
    wrong = Block("x.md:2", ["tipi make --executor dask"])  # docs/scale-out.md's, before
    with pytest.raises(AssertionError, match="which pipeline"):
        run_dry(wrong, scratch, monkeypatch)
