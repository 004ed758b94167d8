"""Property tests on random DAGs ("Build Systems à la Carte"): minimal and correct; and before
every make, the executable's fast path and the full make answer "is it up to date?" alike."""

from __future__ import annotations

import copy
import os
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tipi._fastpath import Request, prove_noop
from tipi.engine import Engine

STEP = """
class N{i}(PipelineProcess):
    def __init__(self, controller, force: bool = False, salt: int = 0, mod: int = 1) -> None:
        super().__init__(controller, force)
        self.salt, self.mod = salt, mod

    def execute(self) -> None:
        log("n{i}")
        parts = [self.inputs[k].read_text() for k in sorted(self.inputs)]
        code = "".join([{calls}])
        self.outputs["out"].write_text(f"{{self.salt % self.mod}}(" + ",".join(parts) + ")" + code)
"""

STEPS_HEAD = """
import importlib
import os
from tipi import PipelineProcess
from . import h0
from .h1 import f10, f11
import h2
import shared


def log(name):
    with open(os.path.join(os.getcwd(), "runs.log"), "a") as f:
        f.write(name + "\\n")
"""

HELPERS, FUNCTIONS = 3, 2  # modules h0..h2 beside pipeline.toml, f{m}{k} in each
CALL_FORMS = {0: "h0.f0{k}()", 1: "f1{k}()", 2: "h2.f2{k}()"}

# Code no step imports that tipi imports (every *.py beside pipeline.toml), and a module
# loaded by a computed name: a step `uses` them through what they change.
SHARED = """
class Box:
    def tag(self):
        return "plain"


REGISTRY = {}


def register(fn):
    REGISTRY[fn.__name__] = fn
    return fn
"""
PATCH = "import shared\n\n\ndef _tag(self):\n    return {!r}\n\n\nshared.Box.tag = _tag\n"
PLUGINS = "from shared import register\n\n\n@register\ndef plug():\n    return {!r}\n"
USES = {
    "box": "shared.Box().tag()",
    "plug": 'shared.REGISTRY.get("plug", lambda: "-")()',
    "dyn": 'importlib.import_module("dynmod" + "_a").VALUE',
}


@pytest.fixture(autouse=True, scope="module")
def _without_run_cache():
    """These tests pin the rebuilder's decisions (what reruns); with the run cache on, a
    step whose outputs were deleted or changed would be restored instead (test_run_cache)."""
    saved = os.environ.get("TIPI_RUN_CACHE")
    os.environ["TIPI_RUN_CACHE"] = "0"
    yield
    if saved is None:
        os.environ.pop("TIPI_RUN_CACHE", None)
    else:
        os.environ["TIPI_RUN_CACHE"] = saved


@dataclass
class Dag:
    """A random pipeline and the code it runs: step i calls the helpers `calls[i]`; helper
    f{m}{k} returns the constant C{m}{k}, followed by f{m-1}{k}() when `links[m][k]`; `forms`
    picks one of two spellings of the same helper (a code change with the same result),
    `comments` and `unused` edit code no step reaches. Step i also `uses` what code tipi
    imports at load changes: a class `patch`ed by a sibling no step imports (None: no such
    sibling), a registry a decorator fills (`plug`), a module imported by computed name
    (`dyn`); `spare` edits a sibling function nothing calls."""

    deps: list[list[int]]
    sources: list[list[int]]
    salts: list[int]
    mods: list[int]
    texts: list[str]
    calls: list[list[tuple[int, int]]]
    links: list[list[bool]]
    consts: list[list[str]]
    forms: list[list[int]]
    comments: list[int]
    unused: list[int]
    uses: list[list[str]]
    patch: str | None
    plug: str
    dyn: str
    spare: int

    def toml(self) -> str:
        lines = []
        for i in range(len(self.deps)):
            inputs = [f'i{j} = "out/n{j}.txt"' for j in self.deps[i]]
            inputs += [f's{k} = "src/s{k}.txt"' for k in self.sources[i]]
            lines += [
                f"[processes.n{i}]",
                f'type = "N{i}"',
                f"params = {{ salt = {self.salts[i]}, mod = {self.mods[i]} }}",
                f"inputs = {{ {', '.join(inputs)} }}",
                f'outputs = {{ out = "out/n{i}.txt"}}',
                "",
            ]
        return "\n".join(lines)

    def steps_py(self) -> str:
        classes = []
        for i, calls in enumerate(self.calls):
            forms = [CALL_FORMS[m].format(k=k) for m, k in calls]
            text = ", ".join(forms + [USES[use] for use in self.uses[i]])
            classes.append(STEP.format(i=i, calls=text))
        return STEPS_HEAD + "".join(classes)

    def helper_py(self, m: int) -> str:
        lines = [f"# comment {c}" for c in range(self.comments[m])]
        if m:  # the previous module, imported script-style and relatively in turn
            lines.append(f"import h{m - 1}" if m % 2 else f"from . import h{m - 1}")
        lines.append(f"UNUSED = {self.unused[m]}")
        lines.append("def u():\n    return UNUSED\n")
        for k in range(FUNCTIONS):
            lines.append(f"C{m}{k} = {self.consts[m][k]!r}")
            tail = f"h{m - 1}.f{m - 1}{k}()" if m and self.links[m][k] else '""'
            body = f"C{m}{k} + {tail}" if self.forms[m][k] == 0 else f'"".join([C{m}{k}, {tail}])'
            lines.append(f"def f{m}{k}():\n    return {body}\n")
        return "\n".join(lines) + "\n"

    def value(self, m: int, k: int) -> str:
        tail = self.value(m - 1, k) if m and self.links[m][k] else ""
        return self.consts[m][k] + tail

    def reached(self, i: int) -> set[tuple[str, int, int]]:
        """The units of helper modules step i's code reaches: ("f"|"C", m, k)."""
        found = set()
        for m, k in self.calls[i]:
            while True:
                found |= {("f", m, k), ("C", m, k)}
                if not (m and self.links[m][k]):
                    break
                m -= 1
        return found

    def used(self, i: int) -> str:
        values = {"box": self.patch or "plain", "plug": self.plug, "dyn": self.dyn}
        return "".join(values[use] for use in self.uses[i])

    def outputs(self) -> list[str]:
        """What each step's output must contain: the model the engine is checked against."""
        out: list[str] = []
        for i in range(len(self.deps)):
            parts = {f"i{j}": out[j] for j in self.deps[i]}
            parts |= {f"s{k}": self.texts[k] for k in self.sources[i]}
            code = "".join(self.value(m, k) for m, k in self.calls[i]) + self.used(i)
            out.append(
                f"{self.salts[i] % self.mods[i]}("
                + ",".join(parts[k] for k in sorted(parts))
                + ")"
                + code
            )
        return out

    def write(self, root: Path) -> None:
        folder = root / "pipelines/p"
        folder.mkdir(parents=True, exist_ok=True)
        (root / "src").mkdir(exist_ok=True)
        files = {folder / "steps.py": self.steps_py(), folder / "pipeline.toml": self.toml()}
        files |= {folder / f"h{m}.py": self.helper_py(m) for m in range(HELPERS)}
        files |= {root / "src" / f"s{k}.txt": text for k, text in enumerate(self.texts)}
        files |= {
            folder / "shared.py": SHARED,
            folder / "plugins.py": PLUGINS.format(self.plug),
            folder / "dynmod_a.py": f"VALUE = {self.dyn!r}\n",
            folder / "idle.py": f"def spare():\n    return {self.spare}\n",
        }
        if self.patch is None:
            (folder / "patch.py").unlink(missing_ok=True)
        else:
            files[folder / "patch.py"] = PATCH.format(self.patch)
        for path, text in files.items():
            if not path.exists() or path.read_text() != text:
                path.write_text(text)


@st.composite
def dags(draw) -> Dag:
    n = draw(st.integers(2, 6))
    deps = [sorted(draw(st.sets(st.integers(0, i - 1), max_size=3))) if i else [] for i in range(n)]
    helper = st.tuples(st.integers(0, HELPERS - 1), st.integers(0, FUNCTIONS - 1))
    grid = lambda values: st.lists(  # noqa: E731
        st.lists(values, min_size=FUNCTIONS, max_size=FUNCTIONS),
        min_size=HELPERS,
        max_size=HELPERS,
    )
    return Dag(
        deps=deps,
        sources=[sorted(draw(st.sets(st.integers(0, 1), max_size=2))) for _ in range(n)],
        salts=draw(st.lists(st.integers(0, 5), min_size=n, max_size=n)),
        mods=draw(st.lists(st.integers(1, 3), min_size=n, max_size=n)),
        texts=draw(st.lists(st.text("ab", max_size=3), min_size=2, max_size=2)),
        calls=[sorted(draw(st.sets(helper, max_size=2))) for _ in range(n)],
        links=draw(grid(st.booleans())),
        consts=draw(grid(st.sampled_from(["x", "y", ""]))),
        forms=draw(grid(st.integers(0, 1))),
        comments=[0] * HELPERS,
        unused=[0] * HELPERS,
        uses=[sorted(draw(st.sets(st.sampled_from(sorted(USES)), max_size=2))) for _ in range(n)],
        patch=draw(st.sampled_from([None, "p"])),
        plug=draw(st.sampled_from("gh")),
        dyn=draw(st.sampled_from("de")),
        spare=0,
    )


module = st.integers(0, HELPERS - 1)
function = st.integers(0, FUNCTIONS - 1)
changes = st.lists(
    st.one_of(
        st.tuples(st.just("salt"), st.integers(0, 6), st.integers(0, 5)),
        st.tuples(st.just("text"), st.integers(0, 1), st.text("ab", max_size=3)),
        st.tuples(st.just("const"), st.tuples(module, function), st.sampled_from("xyz")),
        st.tuples(st.just("form"), st.tuples(module, function), st.just(None)),
        st.tuples(st.just("comment"), module, st.just(None)),
        st.tuples(st.just("unused"), module, st.integers(1, 9)),
        st.tuples(st.just("patch"), st.just(0), st.sampled_from([None, "p", "q"])),
        st.tuples(st.just("plug"), st.just(0), st.sampled_from("ghi")),
        st.tuples(st.just("dyn"), st.just(0), st.sampled_from("def")),
        st.tuples(st.just("spare"), st.just(0), st.integers(1, 9)),
    ),
    min_size=1,
    max_size=4,
)


def apply(dag: Dag, change: tuple) -> Dag:
    kind, index, value = change
    new = copy.deepcopy(dag)
    if kind == "salt":
        new.salts[index % len(new.salts)] = value
    elif kind == "text":
        new.texts[index] = value
    elif kind == "const":
        new.consts[index[0]][index[1]] = value
    elif kind == "form":
        new.forms[index[0]][index[1]] ^= 1
    elif kind == "comment":
        new.comments[index] += 1
    elif kind == "unused":
        new.unused[index] = value
    else:
        setattr(new, kind, value)
    return new


def expected_reruns(old: Dag, new: Dag) -> set[str]:
    """Exactly the steps whose params, input contents or reached code changed (early cutoff
    included: a step whose inputs came out byte-identical does not rerun). What runs when tipi
    imports the pipeline's modules (the patch, the registering decorator) is code of every
    step; a step that imports a module by computed name reaches every module of the folder
    (any code edit there, a comment excepted)."""
    before, after = old.outputs(), new.outputs()
    changed = {
        (kind, m, k)
        for m in range(HELPERS)
        for k in range(FUNCTIONS)
        for kind, differs in (
            ("C", old.consts[m][k] != new.consts[m][k]),
            ("f", old.forms[m][k] != new.forms[m][k]),
        )
        if differs
    }
    at_load = (old.patch, old.plug) != (new.patch, new.plug)
    in_folder = (
        bool(changed)
        or at_load
        or (old.unused, old.dyn, old.spare)
        != (
            new.unused,
            new.dyn,
            new.spare,
        )
    )
    rerun = set()
    for i in range(len(new.deps)):
        if (
            old.salts[i] != new.salts[i]
            or any(before[j] != after[j] for j in new.deps[i])
            or any(old.texts[k] != new.texts[k] for k in new.sources[i])
            or new.reached(i) & changed
            or at_load
            or ("dyn" in new.uses[i] and in_folder)
        ):
            rerun.add(f"n{i}")
    return rerun


class Workspace:
    """A project folder made the working directory for the duration of one example."""

    def __enter__(self) -> Path:
        self.old = os.getcwd()
        self.dir = tempfile.mkdtemp(prefix="tipi-prop-")
        os.chdir(self.dir)
        return Path(self.dir)

    def __exit__(self, *exc: object) -> None:
        os.chdir(self.old)
        shutil.rmtree(self.dir, ignore_errors=True)


def make_and_log(root: Path, jobs: int | None = None) -> set[str]:
    """Make the pipeline; the steps that ran. First asks the question the executable's fast
    path asks (uptodate/question.py, through _fastpath.prove_noop on this project): the full
    make must answer it alike, taking its no-op exactly when the fast path says up to date
    (and then running nothing)."""
    fast = fast_answer()
    build = Engine("p", root=root).build(jobs=jobs)
    build.run()
    assert build.shortcut == fast, "the fast path and the full make disagree"
    log = root / "runs.log"
    ran = set(log.read_text().split()) if log.exists() else set()
    log.unlink(missing_ok=True)
    assert not (fast and ran), f"the fast path said up to date, and {sorted(ran)} ran"
    age(root)
    return ran


def fast_answer() -> bool:
    """Whether the fast path (`tipi make -p p`, in this process) says nothing is to do."""
    try:
        return prove_noop(Request("p", (), True, False)) is not None
    except Exception:  # a fall-through: the full CLI would answer
        return False


def age(root: Path) -> None:
    """Make every file written since the last make look a minute old, so stat caches and
    the clean record are trusted; an edit afterwards gets a fresh mtime, as in real use.
    Files already old keep their signature: a clean record of them stays valid."""
    now = time.time()
    for folder in ("out", "src", "pipelines/p"):
        for path in (root / folder).glob("*"):
            if path.stat().st_mtime > now - 30:
                os.utime(path, (now - 60, now - 60))


SEQUENTIAL = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
# -j 2 starts worker processes for every make that runs a step: the slow tier's, with fewer
# examples (each costs about 1.5 s; the sequential ones try the same DAGs and edits).
PARALLEL = settings(SEQUENTIAL, max_examples=10)


@SEQUENTIAL
@given(dag=dags(), edits=changes)
def test_minimal(dag: Dag, edits: list[tuple]) -> None:
    """Nothing reruns without a cause; a change (to params, inputs, or code a step reaches
    in another module) reruns exactly what it affects."""
    check_minimal(None, dag, edits)


@pytest.mark.slow
@PARALLEL
@given(dag=dags(), edits=changes)
def test_minimal_j2(dag: Dag, edits: list[tuple]) -> None:
    """test_minimal, each make with -j 2 (worker processes)."""
    check_minimal(2, dag, edits)


@SEQUENTIAL
@given(dag=dags(), edits=changes)
def test_correct(dag: Dag, edits: list[tuple]) -> None:
    """After any sequence of edits, an incremental build equals a clean build."""
    check_correct(None, dag, edits)


@pytest.mark.slow
@PARALLEL
@given(dag=dags(), edits=changes)
def test_correct_j2(dag: Dag, edits: list[tuple]) -> None:
    """test_correct, each make with -j 2 (worker processes)."""
    check_correct(2, dag, edits)


def check_minimal(jobs: int | None, dag: Dag, edits: list[tuple]) -> None:
    with Workspace() as root:
        dag.write(root)
        assert make_and_log(root, jobs) == {f"n{i}" for i in range(len(dag.deps))}
        assert make_and_log(root, jobs) == set()
        assert fast_answer()  # that make wrote the clean record: the fast path answers
        assert make_and_log(root, jobs) == set()  # now through the clean record
        for change in edits:
            new = apply(dag, change)
            new.write(root)
            assert make_and_log(root, jobs) == expected_reruns(dag, new), change
            dag = new


def check_correct(jobs: int | None, dag: Dag, edits: list[tuple]) -> None:
    with Workspace() as root:
        dag.write(root)
        make_and_log(root, jobs)
        for change in edits:
            dag = apply(dag, change)
            dag.write(root)
            make_and_log(root, jobs)
        incremental = {p.name: p.read_text() for p in (root / "out").iterdir()}
        shutil.rmtree(root / "out")
        shutil.rmtree(root / ".tipi_cache")
        make_and_log(root, jobs)
        clean = {p.name: p.read_text() for p in (root / "out").iterdir()}
        assert incremental == clean
        assert incremental == {f"n{i}.txt": text for i, text in enumerate(dag.outputs())}
