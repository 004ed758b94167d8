"""Broken state is a warning, never a crash or a hang: every file and folder under
`.tipi_cache/` is made missing, empty, garbage, msgpack of the wrong shape, a folder, a link
(elsewhere, dangling, to a folder, to /dev/zero), a FIFO or unreadable, then a real make must
build the right outputs, warn once naming it, and leave a state the next make finds clean.

Forms that could block (a FIFO, /dev/zero) run the make as `python -m tipi make` with a
timeout. The tests run as root here, where chmod 000 blocks nothing: `unreadable` then expects
the file to be used as it is, and `eacces` makes the open itself fail with EACCES, as chmod
000 does for anyone else.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import stat
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import msgpack
import pytest

import tipi
from tipi.engine import Engine
from tipi.report import ListReporter
from tipi.state import statefile

AS_ROOT = hasattr(os, "geteuid") and os.geteuid() == 0
CACHE = ".tipi_cache"

STEPS = """
import os
from tipi import PipelineProcess


def log_run(name):
    with open(os.path.join(os.getcwd(), "runs.log"), "a") as f:
        f.write(name + "\\n")


class Write(PipelineProcess):
    def __init__(self, controller, force: bool = False, text: str = "") -> None:
        super().__init__(controller, force)
        self.text = text

    def execute(self) -> None:
        log_run("a")
        (self.scratch_dir / "checkpoint").write_text("half")
        self.outputs["out"].write_text(self.text)


class Upper(PipelineProcess):
    def execute(self) -> None:
        log_run("up")
        self.outputs["out"].write_text(self.inputs["src"].read_text().upper())
"""

PIPELINE = """
[processes.a]
type = "Write"
params = { text = "abc" }
outputs = { out = "out/a.txt" }

[processes.up]
type = "Upper"
inputs = { src = "out/a.txt" }
outputs = { out = "out/up.txt" }
"""


@pytest.fixture(autouse=True)
def _quiet_env(monkeypatch):
    # Without the run cache a deleted output is remade, not restored: the runs are the point.
    monkeypatch.setenv("TIPI_RUN_CACHE", "0")
    monkeypatch.setenv("TIPI_NO_LIVE", "1")


@pytest.fixture
def proj(project):
    """The pipeline made twice with old sources and outputs: every state file is written."""
    project.pipeline("m", PIPELINE, steps=STEPS)
    age(project.root / "pipelines")
    make()
    age(project.root / "out")
    make()  # hashes the aged outputs again, and writes the clean record
    for name in ("traces.log", "plan.msgpack", "clean.msgpack"):
        assert (project.root / CACHE / "pipelines/m" / name).is_file(), name
    for name in ("stat.msgpack", "code.msgpack", "lock"):
        assert (project.root / CACHE / name).is_file(), name
    ran(project)
    return project


def age(folder: Path, seconds: float = 120) -> None:
    past = time.time() - seconds
    for path in [folder, *folder.rglob("*")]:
        os.utime(path, (past, past))


def make(jobs: int | None = None) -> ListReporter:
    reporter = ListReporter()
    Engine("m", reporter=reporter).make(jobs=jobs)
    return reporter


def ran(project) -> list[str]:
    """The steps run since the last call."""
    log = project.root / "runs.log"
    names = log.read_text().split() if log.exists() else []
    log.unlink(missing_ok=True)
    return sorted(names)


@dataclass
class Said:
    """What a make printed besides its results: warnings and notes."""

    warnings: list[str] = field(default_factory=list)
    notices: list[str] = field(default_factory=list)

    @classmethod
    def of(cls, reporter: ListReporter) -> Said:
        return cls(
            [m for k, m in reporter.events if k == "warning"],
            [m for k, m in reporter.events if k == "notice"],
        )

    @classmethod
    def parse(cls, stderr: str) -> Said:
        lines = stderr.splitlines()
        return cls(
            [x.removeprefix("warning: ") for x in lines if x.startswith("warning: ")],
            [x.removeprefix("note: ") for x in lines if x.startswith("note: ")],
        )

    def about(self, name: str) -> list[str]:
        """Warnings (and, for the lock, notes until it gets a warning sink) naming `name`."""
        return [m for m in [*self.warnings, *self.notices] if f"{name} " in m]


def make_in_subprocess(project, *args: str, timeout: float = 60, **extra_env: str) -> Said:
    """`python -m tipi make` in a child with a timeout: a FIFO must not hang it."""
    env = {**os.environ, "COLUMNS": "1000", "PYTHONPATH": str(Path(tipi.__file__).parents[1])}
    env.update(extra_env)
    result = subprocess.run(
        [sys.executable, "-m", "tipi", "make", *args],
        cwd=project.root,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr, result.stderr
    return Said.parse(result.stderr)


def corrupted_make(project, form: str, target: Path, jobs: int | None = None) -> Said:
    """The make after the damage: in a child where the form could block, in this process
    (with EACCES for `target` under `eacces`) otherwise."""
    if form in BLOCKING:  # the full make (the fast path's own test is below)
        return make_in_subprocess(project, *(["-j", str(jobs)] if jobs else []), TIPI_NO_FAST="1")
    if form != "eacces":
        return Said.of(make(jobs))
    real_open = os.open

    def refusing(path, flags, *args, **kwargs):
        if os.fspath(path) == str(target):
            raise PermissionError(errno.EACCES, "Permission denied", str(path))
        return real_open(path, flags, *args, **kwargs)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(os, "open", refusing)
        return Said.of(make(jobs))


def next_make_is_clean(project, jobs: int | None = None) -> None:
    """The state left behind is usable: the next make runs nothing and says nothing."""
    statefile._REPORTED.clear()  # a warning already given in this process must come again
    said = Said.of(make(jobs))
    assert said.warnings == []
    assert ran(project) == []


def assert_outputs(project) -> None:
    assert project.read("out/a.txt") == "abc"
    assert project.read("out/up.txt") == "ABC"


# The damage ------------------------------------------------------------------------------

BLOCKING = {"fifo", "link-devzero"}
CONTENT_FORMS = ("empty", "garbage", "list", "wrong-types")
FILE_FORMS = (
    "missing",
    *CONTENT_FORMS,
    "folder",
    "link-file",
    "link-dangling",
    "link-folder",
    "link-devzero",
    "fifo",
    "unreadable",
    "eacces",
)


def damage(path: Path, form: str, elsewhere: Path, valid: bytes, wrong: bytes) -> None:
    """Put `form` at `path`; `valid` is a usable content of it, `wrong` well-formed msgpack
    of the wrong shape. Links point into `elsewhere`, outside the cache."""
    statefile.remove_path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    elsewhere.mkdir(exist_ok=True)
    contents = {
        "empty": b"",
        "garbage": b"\xc1\x00 not msgpack \xff" * 3,
        "list": msgpack.packb([1, 2, 3]),
        "wrong-types": wrong,
        "unreadable": valid,
        "eacces": valid,
        "file": b"not a folder",
    }
    if form in contents:
        path.write_bytes(contents[form])
        if form == "unreadable":
            path.chmod(0)
    elif form == "folder":
        path.mkdir()
        (path / "inside").write_text("x")
    elif form == "fifo":
        os.mkfifo(path)
    elif form.startswith("link-"):
        targets = {
            "link-file": elsewhere / "victim",
            "link-dangling": elsewhere / "nothing-here",
            "link-folder": elsewhere,
            "link-devzero": Path("/dev/zero"),
        }
        if form == "link-file":
            targets[form].write_bytes(valid)
        os.symlink(targets[form], path)
    else:
        assert form == "missing", form


def document(kind: str, data) -> bytes:
    return msgpack.packb({"tipi": kind, "version": 1, "data": data})


def plan_with_bad_deps(path: Path) -> bytes:
    doc = msgpack.unpackb(path.read_bytes(), strict_map_key=False)
    doc["data"]["deps"] = [[1, 2, 3]]
    return msgpack.packb(doc)


@dataclass(frozen=True)
class Kind:
    """A state file: where it is, how to make a make read it, and what then runs.

    Attributes:
        path: under .tipi_cache/.
        trigger: what makes the next make read it: "" (any make does), "remove" (delete
            out/a.txt: `a` runs, the lock is taken, failures are updated), "touch-output"
            (the clean record no longer holds: hashes are looked up), "touch-code" (the plan
            is made again: the code table is updated).
        runs: the steps that run after the trigger when the file is fine.
        start_over: the steps that run when the file started over.
        reads_content: False for files whose content tipi never reads on this path.
        wrong: well-formed msgpack of the wrong shape (from the intact file).
        valid: a usable content (from the intact file, if any).
    """

    path: str
    trigger: str
    runs: tuple[str, ...]
    start_over: tuple[str, ...]
    wrong: Callable[[Path], bytes]
    reads_content: bool = True
    valid: Callable[[Path], bytes] = lambda path: path.read_bytes()


FAILURES_DOC = document("failures", {"up": {"error": "boom", "at": 1.0e9, "seconds": 0.5}})
KINDS = {
    "traces": Kind(
        "pipelines/m/traces.log",
        "",
        (),
        ("a", "up"),
        # A header of the wrong types; records of the wrong shape: the test below.
        lambda p: msgpack.packb({"tipi": "trace-log", "version": "one"}),
    ),
    "plan": Kind("pipelines/m/plan.msgpack", "", (), (), plan_with_bad_deps),
    "clean": Kind(
        "pipelines/m/clean.msgpack",
        "",
        (),
        (),
        lambda p: document("clean-record", {"steps": "a", "files": [1, 2]}),
    ),
    "failures": Kind(
        "pipelines/m/failures.msgpack",
        "remove",
        ("a",),
        ("a",),
        lambda p: document("failures", {"a": {"error": 5, "at": "noon", "seconds": None}}),
        valid=lambda p: FAILURES_DOC,
    ),
    "stat": Kind(
        "stat.msgpack",
        "touch-output",
        (),
        (),
        lambda p: document("stat-cache", {str(p.parents[1] / "out/a.txt"): "x", "y": [1, 2]}),
    ),
    "code": Kind(
        "code.msgpack",
        "touch-code",
        (),
        (),
        lambda p: document("code-table", {"f1": {"unit": 5}, "f2": "units"}),
    ),
    "lock": Kind(
        "lock", "remove", ("a",), ("a",), lambda p: document("x", {}), reads_content=False
    ),
    "holder": Kind(
        "lock.holder",
        "remove",
        ("a",),
        ("a",),
        lambda p: json.dumps([1, 2]).encode(),
        reads_content=False,
        valid=lambda p: json.dumps({"pid": 1, "host": "h", "command": "tipi make"}).encode(),
    ),
}


def expectation(kind: Kind, form: str) -> bool:
    """Whether the make must warn about the file."""
    if form == "missing":
        return False
    if form in (*CONTENT_FORMS, "unreadable", "eacces") and not kind.reads_content:
        # The lock file's permissions are repaired (with a warning); nothing else is read.
        return kind.path == "lock" and form == "unreadable"
    if form == "unreadable":
        return not AS_ROOT  # root reads a file whatever its mode
    return True


def trigger(project, how: str) -> None:
    if how == "remove":
        (project.root / "out/a.txt").unlink()
    elif how == "touch-output":
        age(project.root / "out/a.txt", 300)
    elif how == "touch-code":
        age(project.root / "pipelines/m/steps.py", 300)


NEEDS_OTHERS: dict[tuple[str, str], str] = {}


def file_cases() -> list:
    cases = []
    for name in KINDS:
        for form in FILE_FORMS:
            if (name, form) == ("lock", "eacces"):
                continue  # another user's lock is refused, not taken over: test_lock.py
            reason = NEEDS_OTHERS.get((name, form))
            marks = [pytest.mark.xfail(strict=True, reason=reason)] if reason else []
            cases.append(pytest.param(name, form, id=f"{name}-{form}", marks=marks))
    return cases


@pytest.mark.slow
@pytest.mark.parametrize(("name", "form"), file_cases())
def test_a_broken_state_file_is_one_warning_and_a_correct_build(proj, tmp_path, name, form):
    kind = KINDS[name]
    path = proj.root / CACHE / kind.path
    valid = kind.valid(path)
    elsewhere = tmp_path / "elsewhere"
    damage(path, form, elsewhere, valid, kind.wrong(path))
    trigger(proj, kind.trigger)

    said = corrupted_make(proj, form, path)

    assert_outputs(proj)
    warns = expectation(kind, form)
    about = said.about(kind.path)
    assert len(about) == (1 if warns else 0), said
    assert [w for w in said.warnings if w not in about] == [], said
    expected_runs = kind.start_over if warns or (name, form) == ("traces", "missing") else kind.runs
    assert ran(proj) == sorted(expected_runs)
    if form == "link-file":
        assert (elsewhere / "victim").read_bytes() == valid  # never written through
    if warns and form != "unreadable":  # a broken file is replaced, or gone
        assert not os.path.lexists(path) or stat.S_ISREG(os.lstat(path).st_mode)
    assert sorted(p.name for p in elsewhere.iterdir()) in ([], ["victim"])
    next_make_is_clean(proj)


@pytest.mark.parametrize(
    ("entry", "runs"),
    [
        pytest.param(["a", {"fp": "x"}], ["a"], id="record-missing-keys"),
        pytest.param(
            ["a", {"fp": "x", "ty": "Write", "co": "c", "pa": {}, "in": {}, "pe": {}, "ou": 7}],
            ["a"],
            id="record-wrong-types",
        ),
        pytest.param(["a", [1, 2]], ["a"], id="record-a-list"),
        pytest.param({7: {}, "up": [1, 2]}, [], id="snapshot-of-the-wrong-shape"),
        pytest.param([1, 2, 3], [], id="entry-of-the-wrong-shape"),
    ],
)
def test_a_malformed_entry_of_the_trace_log_reruns_its_step_only(proj, entry, runs):
    log = proj.root / CACHE / "pipelines/m/traces.log"
    log.write_bytes(log.read_bytes() + msgpack.packb(entry))
    said = Said.of(make())
    assert_outputs(proj)
    assert len(said.about(str(Path(CACHE, "pipelines/m/traces.log")))) == 1, said
    assert len(said.warnings) == 1, said
    assert ran(proj) == runs
    next_make_is_clean(proj)


# Folders tipi writes into, and the files a step's run opens ----------------------------

FOLDER_FORMS = ("file", "fifo", "link-folder", "link-dangling")
FOLDERS = {
    "staging": "staging",
    "scratch": "scratch",
    "scratch-pipeline": "scratch/m",
    "scratch-step": "scratch/m/a",
    "logs-pipeline": "logs/m",
}


@pytest.mark.slow
@pytest.mark.parametrize("form", FOLDER_FORMS)
@pytest.mark.parametrize("name", FOLDERS)
def test_a_cache_folder_that_is_not_a_folder_is_replaced(proj, tmp_path, name, form):
    path = proj.root / CACHE / FOLDERS[name]
    elsewhere = tmp_path / "elsewhere"
    damage(path, form, elsewhere, b"", b"")
    trigger(proj, "remove")
    jobs = 2 if name.startswith("logs") else None

    said = corrupted_make(proj, form, path, jobs)

    assert_outputs(proj)
    assert len(said.about(FOLDERS[name])) == 1, said
    assert ran(proj) == ["a"]
    assert list(elsewhere.iterdir()) == []  # nothing written through a link
    assert not os.path.islink(path)
    next_make_is_clean(proj, jobs)


@pytest.mark.slow
@pytest.mark.parametrize("form", ["file", "fifo", "link-dangling"])
def test_a_pipeline_state_folder_that_is_not_a_folder_starts_over(proj, tmp_path, form):
    path = proj.root / CACHE / "pipelines/m"
    damage(path, form, tmp_path / "elsewhere", b"", b"")

    said = corrupted_make(proj, form, path)

    assert_outputs(proj)
    if form == "link-dangling":  # a link to nothing: no state, a fresh start
        assert said.warnings == []
    else:
        assert len(said.warnings) == 1 and "pipelines/m/" in said.warnings[0], said
    assert ran(proj) == ["a", "up"]  # the record of past runs was in it
    assert (proj.root / CACHE / "pipelines/m").is_dir()
    next_make_is_clean(proj)


@pytest.mark.slow
@pytest.mark.parametrize(
    "form", ["fifo", "link-devzero", "folder", "link-file", "garbage", "empty"]
)
def test_a_broken_resume_binding_discards_the_checkpoint(proj, tmp_path, form):
    folder = proj.root / CACHE / "scratch/m/a"
    folder.mkdir(parents=True)
    (folder / "checkpoint").write_text("from a run of long ago")
    binding = folder / ".tipi-binding"
    damage(binding, form, tmp_path / "elsewhere", b"\x80", b"")
    trigger(proj, "remove")

    said = corrupted_make(proj, form, binding)

    assert_outputs(proj)
    assert ran(proj) == ["a"]
    assert any("discarding the resume checkpoint of a" in n for n in said.notices), said
    regular = form in ("garbage", "empty")  # read, found unusable: the discard says it
    assert len(said.about(".tipi-binding")) == (0 if regular else 1), said
    if form == "link-file":
        assert (tmp_path / "elsewhere/victim").read_bytes() == b"\x80"
    next_make_is_clean(proj)


@pytest.mark.slow
@pytest.mark.parametrize("form", ["fifo", "link-file", "folder"])
def test_a_broken_worker_log_is_replaced(proj, tmp_path, form):
    log = proj.root / CACHE / "logs/m/a.log"
    elsewhere = tmp_path / "elsewhere"
    damage(log, form, elsewhere, b"precious", b"")
    trigger(proj, "remove")

    said = corrupted_make(proj, form, log, jobs=2)

    assert_outputs(proj)
    assert ran(proj) == ["a"]
    assert len(said.about("logs/m/a.log")) == 1, said
    if form == "link-file":
        assert (elsewhere / "victim").read_bytes() == b"precious"
    next_make_is_clean(proj, jobs=2)


def test_status_reads_a_broken_plan_twice_and_warns_once(proj, cli):
    (proj.root / CACHE / "pipelines/m/plan.msgpack").write_bytes(b"\xc1 garbage")
    result = cli("status")
    assert result.exit_code == 0, result.stderr
    assert result.stderr.count("plan.msgpack") == 1, result.stderr


@pytest.mark.slow
def test_the_fast_path_does_not_hang_on_a_fifo_plan(proj):
    plan = proj.root / CACHE / "pipelines/m/plan.msgpack"
    plan.unlink()
    os.mkfifo(plan)
    said = make_in_subprocess(proj, timeout=5)
    assert len(said.about("plan.msgpack")) == 1, said


def test_leftovers_of_a_killed_make_are_removed_by_the_next_make(proj):
    cache = proj.root / CACHE
    leftovers = [
        cache / ".stat.msgpack.k1ll3d_x.tmp",
        cache / "pipelines/m/.traces.log.abcdefgh.tmp",
        cache / "scratch/m/a/.resume.pt.tmp",
        cache / "scratch/m/a/.tipi-binding.4242.tmp",
    ]
    for path in leftovers:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"half written")
    trigger(proj, "remove")
    said = Said.of(make())
    assert said.warnings == []
    assert [p for p in leftovers if p.exists()] == []
    assert ran(proj) == ["a"]


def test_an_old_directory_output_moved_aside_is_removed_by_the_next_make(proj):
    aside = proj.root / "out/.a.txt.tipi-old-0123abcd"
    aside.mkdir()
    (aside / "old").write_text("old")
    trigger(proj, "remove")
    make()
    assert not aside.exists()


def test_no_leftover_check_costs_a_no_op_make_anything(proj, monkeypatch):
    import tipi.state.leftovers as leftovers

    monkeypatch.setattr(leftovers, "tidy_cache", lambda *a, **k: pytest.fail("tidied"))
    assert Said.of(make()).warnings == []
    assert ran(proj) == []


def test_a_folder_beside_the_cache_is_never_touched(proj, tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / ".precious.abcdefgh.tmp").write_text("mine")
    os.symlink(outside, proj.root / CACHE / "store-link")
    trigger(proj, "remove")
    make()
    assert (outside / ".precious.abcdefgh.tmp").read_text() == "mine"
    shutil.rmtree(outside)


# A crafted clean record -----------------------------------------------------------------
# The clean record lets both doors (the full make's shortcut, the executable's fast path)
# skip every step on stat signatures alone. One that is well formed but does not name each
# selected step's inputs and outputs, and the plan and trace log, proves nothing.

CRAFTED_STEPS = """
from tipi import PipelineProcess


class Copy(PipelineProcess):
    def execute(self) -> None:
        self.outputs["out"].write_text(self.inputs["src"].read_text())


class Upper(PipelineProcess):
    def execute(self) -> None:
        self.outputs["out"].write_text(self.inputs["src"].read_text().upper())
"""

CRAFTED_PIPELINE = """
[processes.copy]
type = "Copy"
inputs = { src = "data/in.txt" }
outputs = { out = "out/copy.txt" }

[processes.up]
type = "Upper"
inputs = { src = "out/copy.txt" }
outputs = { out = "out/up.txt" }
"""

# What a record may name (relative to the root; the guards are the plan and the trace log).
RECORD_PATHS = (
    "data/in.txt",
    "out/copy.txt",
    "out/up.txt",
    f"{CACHE}/pipelines/k/plan.msgpack",
    f"{CACHE}/pipelines/k/traces.log",
    "out/elsewhere.txt",
    "pipelines/k/pipeline.toml",
)
CRAFTED_CHANGES = {
    "modified input": ("data/in.txt", "write"),
    "modified output": ("out/copy.txt", "write"),
    "modified last output": ("out/up.txt", "write"),
    "deleted output": ("out/copy.txt", "delete"),
    "deleted last output": ("out/up.txt", "delete"),
}


@pytest.fixture
def crafted(project) -> Path:
    project.pipeline("k", CRAFTED_PIPELINE, steps=CRAFTED_STEPS)
    (project.root / "data").mkdir()
    (project.root / "data/in.txt").write_text("abc")
    age(project.root / "pipelines")
    Engine("k").make()
    return project.root


def _write_record(root: Path, data) -> Path:
    from tipi.state.store import write_document
    from tipi.uptodate.clean import KIND

    path = root / CACHE / "pipelines/k/clean.msgpack"
    write_document(path, KIND, data)
    return path


def _signatures(root: Path) -> dict[str, list[int] | None]:
    from tipi.uptodate.clean import signature

    return {p: signature(str(root / p)) for p in RECORD_PATHS}


def _change(root: Path, change: str, round_: int) -> None:
    relative, how = CRAFTED_CHANGES[change]
    path = root / relative
    if how == "delete":
        path.unlink()
    else:  # another length: the signature changes whatever the clock's granularity
        path.write_text(path.read_text() + "x" * (round_ % 3 + 1))


def _fast_door_skips(root: Path) -> bool:
    from tipi._fastpath import Request, prove_noop

    try:
        return prove_noop(Request("k", (), True, False)) is not None
    except Exception:  # a fall-through: the full CLI answers
        return False


def _assert_remade(root: Path) -> None:
    source = (root / "data/in.txt").read_text()
    assert (root / "out/copy.txt").read_text() == source
    assert (root / "out/up.txt").read_text() == source.upper()


def test_a_record_of_the_steps_and_no_file_proves_nothing(crafted):
    """The record the issue crafted: both steps, no file. Each door checks the steps."""
    _write_record(crafted, {"steps": ["copy", "up"], "files": {}})
    (crafted / "out/up.txt").write_text("tampered")
    assert not _fast_door_skips(crafted)
    said = Said.of(make_k())
    assert any("clean.msgpack (the no-op record) leaves out" in w for w in said.warnings)
    _assert_remade(crafted)


def test_a_record_naming_all_it_must_still_proves_a_no_op(crafted):
    sigs = _signatures(crafted)
    files = {str(crafted / p): sig for p, sig in sigs.items() if p in RECORD_PATHS[:5]}
    _write_record(crafted, {"steps": ["copy", "up"], "files": files})
    assert _fast_door_skips(crafted)
    reporter = ListReporter()
    Engine("k", reporter=reporter).make()
    assert Said.of(reporter).warnings == []


def make_k() -> ListReporter:
    reporter = ListReporter()
    Engine("k", reporter=reporter).make()
    return reporter


def _records():
    """Clean records as a careless or hostile hand would write them: any steps, any of the
    paths with its true signature, another one or junk, and shapes that are not a record."""
    from hypothesis import strategies as st

    names = st.lists(st.sampled_from(["copy", "up", "ghost", ""]), max_size=4)
    sig = st.one_of(
        st.just("true"),
        st.lists(st.integers(-1, 2**63 - 1), min_size=3, max_size=3),
        st.lists(st.integers(0, 9), max_size=4),
        st.sampled_from([None, "x", 1.5, {}]),
    )
    files = st.dictionaries(st.sampled_from(RECORD_PATHS), sig, max_size=len(RECORD_PATHS))
    record = st.fixed_dictionaries(
        {"steps": st.one_of(st.just(["copy", "up"]), names), "files": files}
    )
    odd = st.sampled_from(
        [[], {}, "steps", {"steps": ["copy", "up"]}, {"files": {}}, {"steps": "copy", "files": []}]
    )
    return st.one_of(record, record, record, odd)


def _spelled(root: Path, record, sigs):
    """The drawn record with real paths, and "true" as the file's signature now."""
    if not (isinstance(record, dict) and isinstance(record.get("files"), dict)):
        return record
    files = {str(root / p): sigs[p] if s == "true" else s for p, s in record["files"].items()}
    return {**record, "files": files}


@pytest.mark.slow
def test_a_crafted_clean_record_never_skips_a_changed_step(crafted):
    """Whatever record is written, once an input or output changes after it, neither door
    skips: the fast path falls through and the make remakes what changed."""
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    rounds = iter(range(10**6))

    @settings(
        max_examples=60,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
    )
    @given(record=_records(), change=st.sampled_from(sorted(CRAFTED_CHANGES)))
    def check(record, change):
        statefile._REPORTED.clear()
        _write_record(crafted, _spelled(crafted, record, _signatures(crafted)))
        _change(crafted, change, next(rounds))
        assert not _fast_door_skips(crafted)
        make_k()
        _assert_remade(crafted)

    check()
