"""The executable's fast path (tipi/_fastpath.py): a no-op make and --version answered without
Typer, Rich or the engine, byte for byte as the full CLI answers them; everything else falls
through to the full CLI.

Most cases run in this process: the fast door is `answer(argv)` (None: it falls through, having
printed nothing, and main() then runs the full CLI), the full door the Typer app. What needs a
fresh interpreter (what a fast no-op imports, the console script's exit codes and pipes) is
marked slow and starts as few as it can.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from tipi import __version__
from tipi._fastpath import Request, answer, parse, prove_noop

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
# What the fast no-op must not import either: each costs it a few milliseconds, as much as its
# whole check: dataclasses (with inspect, and an exec per class), the planner and the stores of
# a make that define them, traceback, platform, hashing with xxhash, the rebuilder, Rich's
# reporter.
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
    "tipi.uptodate.rebuilder",
    "tipi.report.events",
    "tipi.report.rich_reporter",
)
# Environment variables that change how Rich prints: each test sets what it needs.
RICH_ENV = ("FORCE_COLOR", "TTY_COMPATIBLE", "NO_COLOR", "COLUMNS", "TERM")


@dataclass
class Outcome:
    """What one door printed and returned (code None: the fast door fell through)."""

    code: int | None
    stdout: str
    stderr: str

    def shown(self) -> tuple[int | None, str, str]:
        """What a person sees, with the make's duration made comparable."""
        return self.code, _normalized(self.stdout), _normalized(self.stderr)


def _normalized(text: str) -> str:
    """Durations (and the table padding they widen) made equal."""
    text = re.sub(r"\b\d+(\.\d+)?m?s\b", "T", text)
    return "\n".join(re.sub(" +", " ", line).rstrip() for line in text.split("\n"))


@pytest.fixture(autouse=True)
def _plain_environment(monkeypatch):
    for name in RICH_ENV:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.delenv("TIPI_NO_FAST", raising=False)


@pytest.fixture
def doors(capsys, cli):
    """`fast(*args)` and `full(*args)`: the command line through either door, in the working
    directory."""

    def fast(*args: str) -> Outcome:
        capsys.readouterr()
        handler = signal.getsignal(signal.SIGTERM)
        try:
            code = answer(list(args))
        finally:  # answer() makes SIGTERM stop it, as the console script's whole life
            signal.signal(signal.SIGTERM, handler)
        out, err = capsys.readouterr()
        return Outcome(code, out, err)

    def full(*args: str) -> Outcome:
        done = cli(*args)
        return Outcome(done.exit_code, done.stdout, done.stderr)

    return fast, full


def same_as_full(doors, *args: str) -> Outcome:
    """Answered by the fast door, with the full CLI's output and exit code."""
    fast, full = doors
    answered = fast(*args)
    assert answered.code is not None, "fell through to the full CLI"
    assert answered.shown() == full(*args).shown()
    return answered


def falls_through(doors, *args: str) -> None:
    """The fast door leaves it to the full CLI, having printed nothing."""
    answered = doors[0](*args)
    assert (answered.code, answered.stdout, answered.stderr) == (None, "", "")


def age(root: Path) -> None:
    """Make every file of the project a minute old (the state aside): neither the plan nor
    the clean record is written while a file it vouches for is within its racy window."""
    past = time.time() - 60
    for path in root.rglob("*"):
        if ".tipi_cache" not in path.parts:
            os.utime(path, (past, past))


def settled(root: Path, *targets: str) -> None:
    """Make TARGETS with the full make until the fast door answers the next make of them."""
    from tipi.engine import Engine

    for _ in range(3):
        Engine("p", root=root).make(list(targets))
        if prove_noop(Request(None, targets, True, False)) is not None:
            return
        age(root)
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
    age(root)
    os.chdir(root)
    settled(root)
    return root


@pytest.fixture
def built(tmp_path, monkeypatch) -> Path:
    """A built project of its own, the working directory, for a test that changes it."""
    monkeypatch.chdir(tmp_path)
    return build(tmp_path / "project")


@pytest.fixture(scope="module")
def built_shared(tmp_path_factory) -> Path:
    """A built project shared by tests that change nothing in it."""
    old = os.getcwd()
    try:
        return build(tmp_path_factory.mktemp("shared") / "project")
    finally:
        os.chdir(old)


@pytest.fixture
def built_once(built_shared, monkeypatch) -> Path:
    monkeypatch.chdir(built_shared)
    return built_shared


NO_OPS = [
    ("make",),
    ("make", "-q"),
    ("make", "--quiet"),
    ("make", "-v"),
    ("make", "-p", "p"),
    ("make", "--pipeline=p", "-v"),
    ("make", "second"),
    ("make", "out/first.txt", "-v"),
    ("make", "other", "first", "--pipeline", "p"),
    ("run", "p"),
    ("run", "-v", "p"),
]


@pytest.mark.parametrize("args", NO_OPS)
def test_a_no_op_is_answered_fast_with_the_full_clis_output(built_once, doors, args):
    fast = same_as_full(doors, *args)
    assert fast.code == 0
    quiet = "-q" in args or "--quiet" in args
    assert (fast.stderr == "") == quiet
    if not quiet:
        assert re.search(r"^up to date: \d skipped in \d+ms$", fast.stderr, re.M)
    if not quiet and ("-v" in args or "--verbose" in args):
        assert "· first skipped: up to date" in fast.stderr


def test_colours_on_a_terminal_are_the_full_clis(built_once, doors, monkeypatch):
    # FORCE_COLOR makes Rich colour a pipe: the fast path then renders through Rich too.
    monkeypatch.setenv("FORCE_COLOR", "1")
    for args in (("make",), ("make", "-v", "second")):
        assert "\x1b[" in same_as_full(doors, *args).stderr


def test_a_narrow_or_dumb_terminal_setting_changes_nothing(built_once, doors, monkeypatch):
    monkeypatch.setenv("COLUMNS", "12")
    same_as_full(doors, "make", "-v")
    monkeypatch.delenv("COLUMNS")
    monkeypatch.setenv("TERM", "dumb")
    monkeypatch.setenv("NO_COLOR", "1")
    same_as_full(doors, "make")


def test_the_fast_no_op_writes_nothing_and_takes_no_lock(built_once, doors):
    cache = built_once / ".tipi_cache"

    def snapshot() -> dict[str, tuple[int, int, int]]:
        return {
            str(p): (s.st_size, s.st_mtime_ns, s.st_ino)
            for p in sorted(cache.rglob("*"))
            for s in [p.stat()]
        }

    before = snapshot()
    assert doors[0]("make").code == 0
    assert snapshot() == before


def test_version_is_unchanged(tmp_path, doors, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert same_as_full(doors, "--version").stdout == f"tipi {__version__}\n"
    monkeypatch.setenv("FORCE_COLOR", "1")
    assert "\x1b[" in same_as_full(doors, "--version").stdout


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
def test_a_change_falls_through_to_the_full_cli(built, doors, change):
    CHANGES[change](built)
    falls_through(doors, "make")
    full = doors[1]("make")
    assert full.code == 0, full.stderr
    if change in ("missing clean record", "missing plan", "new module", "unused edit of a module"):
        assert "up to date: 3 skipped" in full.stderr  # nothing to run, but no proof of it
    elif change.startswith("corrupt"):
        assert "warning:" in full.stderr and "starting over" in full.stderr
    else:
        assert re.search(r"^done: \d (ran|restored)", full.stderr, re.M), full.stderr
    settled(built)  # and once the full make has recorded its result, the fast path is back
    assert doors[0]("make").code == 0


FALL_THROUGH = [
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
    ("make", "--verbose", "-q"),  # refused by the full CLI
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
]


@pytest.mark.parametrize("args", FALL_THROUGH)
def test_other_command_lines_fall_through_to_the_full_cli(built_once, doors, args):
    falls_through(doors, *args)


def test_a_volatile_or_forced_step_falls_through(built, doors):
    toml = built / "pipelines/p/pipeline.toml"
    for flag in ("volatile = true", "force = true"):
        toml.write_text(PIPELINE.replace('type = "Write"', f'type = "Write"\n{flag}'))
        age(built)
        for _ in range(2):
            falls_through(doors, "make")  # other is volatile or forced: it runs every time
            assert "✔ other ran" in doors[1]("make").stderr
        # targets that leave that step out are still answered, by both paths alike
        settled(built, "second")
        same_as_full(doors, "make", "second")


def test_no_project_or_an_ambiguous_pipeline_falls_through(built, doors, tmp_path_factory):
    os.chdir(tmp_path_factory.mktemp("elsewhere"))
    falls_through(doors, "make")
    assert doors[1]("make").code == 2
    os.chdir(built)
    (built / "pipelines/q").mkdir()
    (built / "pipelines/q/pipeline.toml").write_text(PIPELINE)
    falls_through(doors, "make")
    assert "which pipeline?" in doors[1]("make").stderr
    same_as_full(doors, "make", "-p", "p")


def test_tipi_no_fast_turns_it_off(monkeypatch):
    import tipi._fastpath as fastpath
    import tipi.cli

    asked: list[list[str]] = []
    monkeypatch.setattr(fastpath, "RUNNING", False)  # main() marks the process as `tipi`
    monkeypatch.setenv("CUDA_DEVICE_ORDER", os.environ.get("CUDA_DEVICE_ORDER", "PCI_BUS_ID"))
    monkeypatch.setattr(fastpath, "answer", lambda argv: asked.append(list(argv)) or 0)
    monkeypatch.setattr(tipi.cli, "main", lambda: asked.append(["full"]))
    monkeypatch.setattr(sys, "argv", ["tipi", "make"])
    monkeypatch.setenv("TIPI_NO_FAST", "1")
    fastpath.main()
    assert asked == [["full"]]
    monkeypatch.setenv("TIPI_NO_FAST", "0")
    with pytest.raises(SystemExit) as exited:
        fastpath.main()
    assert exited.value.code == 0 and asked == [["full"], ["make"]]


def test_shell_completion_goes_to_the_full_cli(built_once, doors, monkeypatch):
    monkeypatch.setenv("_TIPI_COMPLETE", "bash_complete")
    falls_through(doors, "make")


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
    from tipi.state.store import read_document, write_document
    from tipi.uptodate.clean import KIND, signature
    from tipi.uptodate.planfile import PLAN_KIND

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
    # Every step is checked, not only the first (Plan.from_data loads them all).
    "a field of the last step unknown": lambda data: data["plan"]["steps"][-1].update(c=1),
    "a field of the last step missing": lambda data: data["plan"]["steps"][-1].pop("line"),
    "the last step not a map": lambda data: data["plan"]["steps"].append(["name", "x"]),
    # Loads, but is not what the planner wrote (its digest): the fast path leaves it to the
    # full make, which then finds nothing to do.
    "a step's params edited": lambda data: data["plan"]["steps"][-1]["params"].update(x=1),
    "the summary edited": lambda data: data["summary"]["paths"]["first"].pop(),
    "no summary (an earlier tipi's)": lambda data: data.pop("summary"),
}
LOADS = ("a step's params edited", "the summary edited", "no summary (an earlier tipi's)")


@pytest.mark.parametrize("edit", sorted(PLAN_EDITS))
def test_a_plan_the_planner_would_not_load_falls_through(built, doors, edit):
    _rewrite_plan(built, lambda data: None)
    assert doors[0]("make").code == 0  # the rewrite alone changes nothing
    _rewrite_plan(built, PLAN_EDITS[edit])
    falls_through(doors, "make")
    full = doors[1]("make").stderr
    if edit in LOADS:
        assert "warning" not in full and "up to date: 3 skipped" in full
    else:
        assert "is malformed; rebuilding the plan" in full


def test_the_planner_sees_every_entry_of_the_plan_data(built):
    """planfile.is_current (behind Planner.is_current) reads the data's entries (key, deps,
    absent, ...): the fast path's reader hands it all of them, whatever they are."""
    from tipi.uptodate.planfile import peek_plan

    _rewrite_plan(built, lambda data: data.update(extra={"a": [1]}))
    data = peek_plan(built / ".tipi_cache/pipelines/p/plan.msgpack", edges=False)
    assert data is not None and data["extra"] == {"a": [1]}
    assert {"key", "deps"} <= data.keys()
    assert data["plan"]["order"] == ["first", "second", "other"]
    assert sorted(data["summary"]["paths"]) == ["first", "other", "second"]


def test_both_readers_of_the_plan_file_read_the_same_plan(built):
    """planfile.peek_plan (the fast path's) and read_plan_file (the planner's) agree on every
    entry peek_plan decodes, and the summary is what the plan's steps say."""
    from tipi.planning import Plan
    from tipi.uptodate.planfile import always_run, peek_plan, read_plan_file, step_paths

    path = built / ".tipi_cache/pipelines/p/plan.msgpack"
    whole, peeked = read_plan_file(path, print), peek_plan(path, edges=True)
    assert peeked is not None
    assert {k: v for k, v in peeked.items() if k != "plan"} == {
        k: v for k, v in whole.items() if k != "plan"
    }
    for key in ("pipeline", "order", "producers", "predecessors"):
        assert peeked["plan"][key] == whole["plan"][key]
    steps = Plan.from_data(whole["plan"]).steps.values()
    assert peeked["summary"] == {"paths": step_paths(steps), "always_run": always_run(steps)}


def test_the_full_make_and_the_fast_path_print_one_no_op(built_once):
    """Build's no-op and the fast path's are report_up_to_date's events (question.py)."""
    from tipi.engine import Engine
    from tipi.report import ListReporter, RunSummary, StepResult
    from tipi.uptodate.question import report_up_to_date

    full = ListReporter()
    Engine("p", reporter=full).make()
    expected = ListReporter()
    summary = RunSummary("p")
    report_up_to_date(expected, summary, ["first", "second", "other"], 0.0, StepResult)
    assert [e for e in full.events if e[0] != "run_finished"] == [
        e for e in expected.events if e[0] != "run_finished"
    ]
    assert full.events[-1][1].results == summary.results


def test_the_question_says_up_to_date_as_the_rebuilder_does():
    from tipi.uptodate.question import UP_TO_DATE_SAID
    from tipi.uptodate.rebuilder import UP_TO_DATE

    assert UP_TO_DATE.explain() == UP_TO_DATE_SAID


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


def test_the_fast_path_spells_no_state_path():
    """Every .tipi_cache path comes from state/layout.py's Layout."""
    import tipi._fastpath
    import tipi.uptodate.planfile
    import tipi.uptodate.question

    for module in (tipi._fastpath, tipi.uptodate.question, tipi.uptodate.planfile):
        text = Path(module.__file__).read_text()
        assert ".tipi_cache" not in text.replace("`.tipi_cache`", ""), module.__name__
        assert '.msgpack"' not in text and 'traces.log"' not in text, module.__name__


def test_the_plan_key_names_python_as_platform_does(tmp_path):
    import platform

    from tipi.planning import Planner
    from tipi.uptodate.planfile import plan_key, python_version

    assert python_version() == platform.python_version()
    planner = Planner(tmp_path, "p", tmp_path / "p.toml", ("a=1",), tmp_path / "x", print)
    assert planner.key() == plan_key(tmp_path / "p.toml", ["a=1"], tmp_path, None)
    assert planner.key()[-1] == platform.python_version()


# The console script in fresh interpreters ------------------------------------------------
# Runs `tipi ARGS` for each case of a JSON list (argv, environment) as the console script
# does (its main(), exit code caught) in one interpreter, the fast door's cases first; prints,
# per case, the exit code and the HEAVY and COSTLY modules imported so far.
BATCH = f"""
import json, os, sys
from tipi._fastpath import main
watched = {HEAVY + COSTLY!r}
for argv, env in json.loads(sys.argv[1]):
    os.environ.update(env)
    sys.argv = ["tipi", *argv]
    try:
        main()
        code = 0
    except SystemExit as exit:
        code = exit.code or 0
    sys.stdout.flush(), sys.stderr.flush()
    print(json.dumps([code, [m for m in watched if m in sys.modules]]), file=sys.__stdout__)
"""


def console(root: Path, *cases: tuple[str, ...], **env: str) -> list[tuple[int, list[str]]]:
    """Each command line through the console script's main(), in one fresh interpreter in
    `root`: its exit code and what it and the ones before it imported (HEAVY and COSTLY)."""
    environ = {k: v for k, v in os.environ.items() if k not in RICH_ENV}
    environ |= env
    plan = json.dumps([[list(args), {}] for args in cases])
    done = subprocess.run(
        [sys.executable, "-c", BATCH, plan],
        cwd=root,
        capture_output=True,
        text=True,
        env=environ,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    return [tuple(json.loads(line)) for line in done.stdout.splitlines() if line[:1] == "["]


def script(root: Path, *args: str, **env: str) -> tuple[int, str, str]:
    """`tipi ARGS` as the console script runs it, alone in a fresh interpreter: exit code,
    stdout and stderr (durations made comparable)."""
    environ = {k: v for k, v in os.environ.items() if k not in RICH_ENV} | env
    done = subprocess.run(
        [sys.executable, "-m", "tipi", *args],
        cwd=root,
        capture_output=True,
        text=True,
        env=environ,
        timeout=120,
    )
    return done.returncode, _normalized(done.stdout), _normalized(done.stderr)


@pytest.fixture(scope="module")
def fast_imports(built_shared) -> dict[tuple[str, ...], list[str]]:
    """What each fast no-op of IMPORT_CASES imported, all in one interpreter (modules stay
    imported: a case is charged with what it or one before it imported)."""
    results = console(built_shared, *IMPORT_CASES)
    assert [code for code, _ in results] == [0] * len(IMPORT_CASES)
    return {case: imported for case, (_, imported) in zip(IMPORT_CASES, results, strict=True)}


IMPORT_CASES = [("make",), ("make", "-q"), ("make", "second"), ("run", "p"), ("make", "-v")]


@pytest.mark.slow
@pytest.mark.parametrize("args", IMPORT_CASES)
def test_a_fast_no_op_imports_nothing_costly(fast_imports, args):
    assert fast_imports[args] == []


@pytest.mark.slow
def test_the_console_script_answers_as_the_full_cli(built_shared):
    """Exit codes and output on real pipes, through main(): the fast answer, a fall-through,
    --version and a terminal's colours, each as TIPI_NO_FAST=1 has them."""
    for args, env in (
        (("make", "-v"), {}),
        (("make", "-n"), {}),
        (("--version",), {}),
        (("make", "nope"), {}),
        (("make",), {"FORCE_COLOR": "1"}),
    ):
        fast = script(built_shared, *args, **env)
        assert fast == script(built_shared, *args, TIPI_NO_FAST="1", **env), args
