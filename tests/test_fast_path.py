"""The executable's fast path (tipi/_fastpath.py): a no-op make and --version answered without
Typer, Rich or the engine, byte for byte as the full CLI answers them; everything else falls
through to the full CLI."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from tipi import __version__
from tipi._fastpath import Request, parse

STEPS = """
from tipi import PipelineProcess

from .helpers import SUFFIX


class Copy(PipelineProcess):
    def execute(self):
        self.outputs["out"].write_text(self.inputs["src"].read_text() + SUFFIX)


class Write(PipelineProcess):
    def __init__(self, controller, force: bool = False, text: str = "") -> None:
        super().__init__(controller, force)
        self.text = text

    def execute(self):
        self.outputs["out"].write_text(self.text)
"""

PIPELINE = """
[processes.first]
type = "Copy"
inputs = { src = "data/in.txt" }
outputs = { out = "out/first.txt" }

[processes.second]
type = "Copy"
inputs = { src = "out/first.txt" }
outputs = { out = "out/second.txt" }

[processes.other]
type = "Write"
params = { text = "x" }
outputs = { out = "out/other.txt" }
"""

# Modules a no-op answered by the fast path must not import.
HEAVY = ("typer", "click", "rich", "tipi.cli", "tipi.engine", "tipi.build", "networkx", "torch")
# Runs the console script's main() as `tipi ARGS`, then writes which of HEAVY it imported.
PROBE = f"""
import os, sys
sys.argv = ["tipi", *sys.argv[2:]]
from tipi._fastpath import main
try:
    main()
finally:
    with open(os.environ["PROBE_FILE"], "w") as f:
        f.write(" ".join(m for m in {HEAVY!r} if m in sys.modules))
"""


@dataclass
class Outcome:
    code: int
    stdout: str
    stderr: str
    heavy: list[str]

    @property
    def fast(self) -> bool:
        """Answered without the full CLI."""
        return not self.heavy

    def shown(self) -> tuple[int, str, str]:
        """What a person sees, with the make's duration made comparable."""
        return self.code, _normalized(self.stdout), _normalized(self.stderr)


def _normalized(text: str) -> str:
    """Durations (and the table padding they widen) made equal."""
    text = re.sub(r"\b\d+(\.\d+)?m?s\b", "T", text)
    return "\n".join(re.sub(" +", " ", line).rstrip() for line in text.split("\n"))


def tipi(root: Path, *args: str, fast: bool = True, **env: str) -> Outcome:
    """Run `tipi ARGS` (the console script's main) in `root`; full CLI when not `fast`."""
    probe = root.parent / f"probe-{os.getpid()}-{time.monotonic_ns()}"
    environ = {k: v for k, v in os.environ.items() if k not in ("FORCE_COLOR", "TTY_COMPATIBLE")}
    environ.update(PROBE_FILE=str(probe), TIPI_NO_FAST="" if fast else "1")
    environ.update(env)
    done = subprocess.run(
        [sys.executable, "-c", PROBE, "--", *args],
        cwd=root,
        capture_output=True,
        text=True,
        env=environ,
        timeout=120,
    )
    heavy = probe.read_text().split()
    probe.unlink()
    return Outcome(done.returncode, done.stdout, done.stderr, heavy)


def settled(root: Path, *targets: str) -> None:
    """Make TARGETS with the full CLI until the fast path answers the next make of them:
    neither the plan nor the clean record is written while a file is within its racy
    window."""
    for _ in range(25):
        done = tipi(root, "make", *targets, fast=False)
        assert done.code == 0, done.stderr
        if tipi(root, "make", "-q", *targets).fast:
            return
        time.sleep(0.2)
    raise AssertionError("the fast path never answered")


def build(root: Path) -> Path:
    """Pipeline `p` (first → second, and other) built in `root`, with its plan and clean
    record."""
    folder = root / "pipelines/p"
    folder.mkdir(parents=True)
    (folder / "pipeline.toml").write_text(PIPELINE)
    (folder / "steps.py").write_text(STEPS)
    (folder / "helpers.py").write_text('SUFFIX = "!"\n')
    (root / "data").mkdir()
    (root / "data/in.txt").write_text("in")
    past = time.time() - 60
    for path in folder.iterdir():
        os.utime(path, (past, past))
    settled(root)
    return root


@pytest.fixture
def built(tmp_path) -> Path:
    """A built project of its own, for a test that changes it."""
    return build(tmp_path / "project")


@pytest.fixture(scope="module")
def built_once(tmp_path_factory) -> Path:
    """A built project shared by tests that change nothing in it."""
    return build(tmp_path_factory.mktemp("shared") / "project")


@pytest.fixture(scope="module")
def built_for_others(tmp_path_factory) -> Path:
    """A built project shared by command lines the full CLI answers, each the same way
    however often it runs (twice in a row: through the fast path's main, then directly)."""
    return build(tmp_path_factory.mktemp("others") / "project")


def same_as_full(root: Path, *args: str, **env: str) -> Outcome:
    """Run ARGS through the fast path and through the full CLI: the same output and exit."""
    fast = tipi(root, *args, **env)
    full = tipi(root, *args, fast=False, **env)
    assert fast.shown() == full.shown()
    assert not full.fast  # the probe sees the full CLI's imports
    return fast


@pytest.mark.parametrize(
    "args",
    [
        ("make",),
        ("make", "-q"),
        ("make", "--quiet"),
        ("make", "-v"),
        ("make", "--verbose", "-q"),
        ("make", "-p", "p"),
        ("make", "--pipeline=p", "-v"),
        ("make", "second"),
        ("make", "out/first.txt", "-v"),
        ("make", "other", "first", "--pipeline", "p"),
        ("run", "p"),
        ("run", "-v", "p"),
    ],
)
def test_a_no_op_is_answered_fast_with_the_full_clis_output(built_once, args):
    fast = same_as_full(built_once, *args)
    assert fast.fast, f"fell through to the full CLI: {fast.heavy}"
    assert fast.code == 0
    quiet = "-q" in args or "--quiet" in args
    assert (fast.stderr == "") == quiet
    if not quiet:
        assert re.search(r"^up to date: \d skipped in \d+ms$", fast.stderr, re.M)
    if not quiet and ("-v" in args or "--verbose" in args):
        assert "· first skipped: up to date" in fast.stderr


def test_colours_on_a_terminal_are_the_full_clis(built_once):
    # FORCE_COLOR makes Rich colour a pipe: the fast path then renders through Rich too.
    for args in (("make",), ("make", "-v", "second")):
        fast = same_as_full(built_once, *args, FORCE_COLOR="1")
        assert "\x1b[" in fast.stderr
        assert "typer" not in fast.heavy and "tipi.engine" not in fast.heavy


def test_a_narrow_or_dumb_terminal_setting_changes_nothing(built_once):
    assert same_as_full(built_once, "make", "-v", COLUMNS="12").fast
    assert same_as_full(built_once, "make", TERM="dumb", NO_COLOR="1").fast


def test_the_fast_no_op_writes_nothing_and_takes_no_lock(built_once):
    cache = built_once / ".tipi_cache"

    def snapshot() -> dict[str, tuple[int, int, int]]:
        return {
            str(p): (s.st_size, s.st_mtime_ns, s.st_ino)
            for p in sorted(cache.rglob("*"))
            for s in [p.stat()]
        }

    before = snapshot()
    assert tipi(built_once, "make").fast
    assert snapshot() == before


def test_version_is_unchanged_and_cheap(tmp_path):
    fast = same_as_full(tmp_path, "--version")
    assert fast.fast
    assert fast.stdout == f"tipi {__version__}\n"
    assert "\x1b[" in same_as_full(tmp_path, "--version", FORCE_COLOR="1").stdout


def _edit(path: Path, text: str) -> None:
    path.write_text(text)


CHANGES = {
    "changed input": lambda root: _edit(root / "data/in.txt", "changed"),
    "changed pipeline.toml": lambda root: _edit(
        root / "pipelines/p/pipeline.toml", PIPELINE.replace('"x"', '"y"')
    ),
    "edited step class": lambda root: _edit(
        root / "pipelines/p/steps.py", STEPS.replace("(self.text)", "(self.text + '')")
    ),
    "edited helper module": lambda root: _edit(root / "pipelines/p/helpers.py", 'SUFFIX = "?"'),
    "unused edit of a module": lambda root: _edit(
        root / "pipelines/p/steps.py", STEPS + "\n\ndef unused():\n    return 1\n"
    ),
    "new module": lambda root: _edit(root / "pipelines/p/more.py", "X = 1\n"),
    "modified output": lambda root: _edit(root / "out/second.txt", "tampered"),
    "missing output": lambda root: (root / "out/other.txt").unlink(),
    "missing clean record": lambda root: (root / ".tipi_cache/pipelines/p/clean.msgpack").unlink(),
    "missing plan": lambda root: (root / ".tipi_cache/pipelines/p/plan.msgpack").unlink(),
    "corrupt plan": lambda root: _edit(root / ".tipi_cache/pipelines/p/plan.msgpack", "junk"),
    "corrupt clean record": lambda root: _edit(
        root / ".tipi_cache/pipelines/p/clean.msgpack", "junk"
    ),
}


@pytest.mark.parametrize("change", sorted(CHANGES))
def test_a_change_falls_through_to_the_full_cli(built, change):
    CHANGES[change](built)
    fast = tipi(built, "make")
    assert not fast.fast
    assert fast.code == 0, fast.stderr
    if change in ("missing clean record", "missing plan", "new module", "unused edit of a module"):
        assert "up to date: 3 skipped" in fast.stderr  # nothing to run, but no proof of it
    elif change.startswith("corrupt"):
        assert "warning:" in fast.stderr and "starting over" in fast.stderr
    else:
        assert re.search(r"^done: \d (ran|restored)", fast.stderr, re.M), fast.stderr
    settled(built)  # and once the full make has recorded its result, the fast path is back
    assert tipi(built, "make").fast


@pytest.mark.parametrize(
    "args",
    [
        ("make", "-n"),
        ("make", "--dry-run"),
        ("make", "-f", "first"),
        ("make", "-F"),
        ("make", "--force-all"),
        ("make", "--rehash"),
        ("make", "--set", "other.text=x"),
        ("make", "--explain", "-n"),
        ("make", "-j", "2"),
        ("make", "-qv"),
        ("make", "--", "first"),
        ("make", "-pp"),
        ("make", "-p", "p", "-p", "p"),
        ("make", "-c", "pipeline.toml"),
        ("--debug", "make"),
        ("make", "--no-run-cache"),
        ("run",),
        ("run", "p", "p"),
        ("run", "-p", "p"),
        ("status",),
        ("make", "nope"),
        ("make", "out/nothing.txt"),
        ("make", "-p", "q"),
        ("make", "-p", "../p"),
    ],
)
def test_other_command_lines_fall_through_to_the_full_cli(built_for_others, args):
    fast = same_as_full(built_for_others, *args)
    assert not fast.fast


def test_a_volatile_or_forced_step_falls_through(built):
    toml = built / "pipelines/p/pipeline.toml"
    for flag in ("volatile = true", "force = true"):
        toml.write_text(PIPELINE.replace('type = "Write"', f'type = "Write"\n{flag}'))
        for _ in range(2):
            outcome = tipi(built, "make")  # other is volatile or forced: it runs every time
            assert not outcome.fast and "✔ other ran" in outcome.stderr
        # targets that leave that step out are still answered, by both paths alike
        settled(built, "second")
        assert same_as_full(built, "make", "second").fast


def test_no_project_or_an_ambiguous_pipeline_falls_through(built, tmp_path_factory):
    elsewhere = tmp_path_factory.mktemp("elsewhere")
    outcome = same_as_full(elsewhere, "make")
    assert not outcome.fast and outcome.code == 2
    (built / "pipelines/q").mkdir()
    (built / "pipelines/q/pipeline.toml").write_text(PIPELINE)
    outcome = same_as_full(built, "make")
    assert not outcome.fast and "which pipeline?" in outcome.stderr
    assert same_as_full(built, "make", "-p", "p").fast


def test_tipi_no_fast_turns_it_off(built_once):
    assert not tipi(built_once, "make", TIPI_NO_FAST="1").fast
    assert tipi(built_once, "make", TIPI_NO_FAST="0").fast


def test_shell_completion_goes_to_the_full_cli(built_once):
    assert not tipi(built_once, "make", _TIPI_COMPLETE="bash_complete").fast


def test_parse_understands_exactly_its_command_lines():
    assert parse(["make"]) == Request(None, (), quiet=False, verbose=False)
    assert parse(["make", "a", "-q", "b", "-p", "x"]) == Request("x", ("a", "b"), True, False)
    assert parse(["make", "--pipeline=x", "--verbose"]) == Request("x", (), False, True)
    assert parse(["run", "x", "-q"]) == Request("x", (), True, False)
    for argv in (
        [],
        ["--version", "make"],
        ["make", "-p"],
        ["make", "-p", "-q"],
        ["make", "--pipeline="],
        ["make", ""],
        ["make", "-"],
        ["make", "--quiet=1"],
        ["run", "-q"],
        ["status"],
    ):
        assert parse(argv) is None, argv


def _rewrite_plan(root: Path, edit) -> None:
    """Edit the plan file's data and let the clean record vouch for the new file, as if a
    make of another tipi of this version had written both."""
    from tipi.planning import PLAN_KIND
    from tipi.state.store import read_document, write_document
    from tipi.uptodate.clean import KIND, signature

    state = root / ".tipi_cache/pipelines/p"
    data = read_document(state / "plan.msgpack", PLAN_KIND, print)
    edit(data)
    write_document(state / "plan.msgpack", PLAN_KIND, data)
    record = read_document(state / "clean.msgpack", KIND, print)
    record["files"][str(state / "plan.msgpack")] = signature(str(state / "plan.msgpack"))
    write_document(state / "clean.msgpack", KIND, record)


PLAN_EDITS = {
    "a plan field missing": lambda data: data["plan"].pop("source"),
    "a step field unknown": lambda data: data["plan"]["steps"][0].update(color="red"),
    "a step field missing": lambda data: data["plan"]["steps"][0].pop("code"),
}


@pytest.mark.parametrize("edit", sorted(PLAN_EDITS))
def test_a_plan_the_planner_would_not_load_falls_through(built, edit):
    _rewrite_plan(built, lambda data: None)
    assert tipi(built, "make").fast  # the rewrite alone changes nothing
    _rewrite_plan(built, PLAN_EDITS[edit])
    outcome = tipi(built, "make")
    assert not outcome.fast
    assert "is malformed; rebuilding the plan" in outcome.stderr


def test_the_planner_sees_every_entry_of_the_plan_data(built):
    """planfile.is_current (behind Planner.is_current) reads the data's entries (key, deps,
    absent, ...): the fast path hands it all of them, whatever they are."""
    from tipi._fastpath import read_plan

    _rewrite_plan(built, lambda data: data.update(extra={"a": [1]}))
    data = read_plan(built / ".tipi_cache/pipelines/p/plan.msgpack", edges=False)
    assert data is not None and data["extra"] == {"a": [1]}
    assert {"key", "deps"} <= data.keys()
    assert data["plan"]["order"] == ["first", "second", "other"]


# What the fast no-op must not import (on top of HEAVY): each costs it a few milliseconds, as
# much as its whole check: dataclasses (with inspect, and an exec per class), the planner and
# the stores of a make that define them, traceback, platform, hashing with xxhash, Rich's reporter.
COSTLY = (
    "dataclasses",
    "inspect",
    "traceback",
    "platform",
    "tipi.planning",
    "tipi.state.stores",
    "tipi.identity.hashing",
    "tipi.identity.trace",
    "xxhash",
    "tipi.report.events",
    "tipi.report.rich_reporter",
)
# Runs `tipi ARGS` through the console script's main, then prints every module imported.
MODULES = """
import sys
sys.argv = ["tipi", *sys.argv[2:]]
from tipi._fastpath import main
try:
    main()
except SystemExit:
    pass
print(" ".join(sorted(sys.modules)))
"""


@pytest.mark.parametrize("args", [("make",), ("make", "-q"), ("make", "second"), ("run", "p")])
def test_a_fast_no_op_imports_nothing_costly(built_once, args):
    # (-v imports the rebuilder, for the up-to-date reason each step line gives.)
    done = subprocess.run(
        [sys.executable, "-c", MODULES, "--", *args],
        cwd=built_once,
        capture_output=True,
        text=True,
        env={k: v for k, v in os.environ.items() if k not in ("FORCE_COLOR", "TTY_COMPATIBLE")},
        timeout=120,
    )
    imported = set(done.stdout.split())
    assert not imported & set(HEAVY), "not answered by the fast path"
    assert sorted(imported & set(COSTLY)) == []


def test_the_light_plan_file_module_knows_the_planners_fields():
    """uptodate/planfile.py names Plan's and PlannedStep's fields for the fast path, which
    checks a plan would load without importing them: a field added there must be named
    there too (else every no-op takes the full CLI)."""
    from dataclasses import MISSING, fields

    from tipi.planning import Plan, PlannedStep
    from tipi.uptodate.planfile import PLAN_FIELDS, STEP_FIELDS, STEP_REQUIRED

    assert {f.name for f in fields(Plan)} == PLAN_FIELDS
    assert {f.name for f in fields(PlannedStep)} == STEP_FIELDS
    required = {
        f.name for f in fields(PlannedStep) if f.default is MISSING and f.default_factory is MISSING
    }
    assert required == STEP_REQUIRED


def test_the_fast_paths_state_files_are_the_layouts(tmp_path):
    from tipi._fastpath import state_files
    from tipi.state.layout import Layout

    layout = Layout(tmp_path, "p")
    expected = (layout.plan_file, layout.clean_file, layout.traces_file)
    assert state_files(tmp_path, "p") == expected


def test_the_plan_key_names_python_as_platform_does(tmp_path):
    import platform

    from tipi.planning import Planner
    from tipi.uptodate.planfile import plan_key, python_version

    assert python_version() == platform.python_version()
    planner = Planner(tmp_path, "p", tmp_path / "p.toml", ("a=1",), tmp_path / "x", print)
    assert planner.key() == plan_key(tmp_path / "p.toml", ["a=1"], tmp_path, None)
    assert planner.key()[-1] == platform.python_version()


def test_flagged_finds_exactly_the_volatile_or_forced_patterns():
    """_flagged searches for the few true bytes instead of each whole pattern: the same
    answer as searching for the patterns, on any bytes and bounds."""
    import random

    from tipi._fastpath import _flagged

    patterns = (b"\xa8volatile\xc3", b"\xa5force\xc3")
    pieces = [b"\xa8volatile", b"\xa5force", b"\xc3", b"\xc2", b"volatile", b"\xa5", b"x"]
    rng = random.Random(4)
    for _ in range(3000):
        raw = b"".join(rng.choice(pieces) for _ in range(rng.randint(0, 10)))
        start = rng.randint(0, len(raw))
        end = rng.randint(start, len(raw))
        expected = any(raw.find(p, start, end) >= 0 for p in patterns)
        assert _flagged(raw, start, end) == expected, (raw, start, end)
