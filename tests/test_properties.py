"""Property tests on random DAGs ("Build Systems à la Carte"): minimal and correct."""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tipi.engine import Engine

NODE = """
import os
from tipi import PipelineProcess


class Node(PipelineProcess):
    def __init__(self, controller, force: bool = False, salt: int = 0, mod: int = 1) -> None:
        super().__init__(controller, force)
        self.salt, self.mod = salt, mod

    def execute(self) -> None:
        with open(os.path.join(os.getcwd(), "runs.log"), "a") as f:
            f.write(self.outputs["out"].stem + "\\n")
        parts = [self.inputs[k].read_text() for k in sorted(self.inputs)]
        self.outputs["out"].write_text(f"{self.salt % self.mod}(" + ",".join(parts) + ")")
"""


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
    deps: list[list[int]]
    sources: list[list[int]]
    salts: list[int]
    mods: list[int]
    texts: list[str]

    def toml(self) -> str:
        lines = []
        for i in range(len(self.deps)):
            inputs = [f'i{j} = "out/n{j}.txt"' for j in self.deps[i]]
            inputs += [f's{k} = "src/s{k}.txt"' for k in self.sources[i]]
            lines += [
                f"[processes.n{i}]",
                'type = "Node"',
                f"params = {{ salt = {self.salts[i]}, mod = {self.mods[i]} }}",
                f"inputs = {{ {', '.join(inputs)} }}",
                f'outputs = {{ out = "out/n{i}.txt" }}',
                "",
            ]
        return "\n".join(lines)

    def outputs(self) -> list[str]:
        """What each step's output must contain: the model the engine is checked against."""
        out: list[str] = []
        for i in range(len(self.deps)):
            parts = {f"i{j}": out[j] for j in self.deps[i]}
            parts |= {f"s{k}": self.texts[k] for k in self.sources[i]}
            out.append(
                f"{self.salts[i] % self.mods[i]}(" + ",".join(parts[k] for k in sorted(parts)) + ")"
            )
        return out

    def write(self, root: Path) -> None:
        (root / "pipelines/p").mkdir(parents=True, exist_ok=True)
        (root / "src").mkdir(exist_ok=True)
        (root / "pipelines/p/steps.py").write_text(NODE)
        (root / "pipelines/p/pipeline.toml").write_text(self.toml())
        for k, text in enumerate(self.texts):
            path = root / "src" / f"s{k}.txt"
            if not path.exists() or path.read_text() != text:
                path.write_text(text)


@st.composite
def dags(draw) -> Dag:
    n = draw(st.integers(2, 7))
    deps = [sorted(draw(st.sets(st.integers(0, i - 1), max_size=3))) if i else [] for i in range(n)]
    return Dag(
        deps=deps,
        sources=[sorted(draw(st.sets(st.integers(0, 1), max_size=2))) for _ in range(n)],
        salts=draw(st.lists(st.integers(0, 5), min_size=n, max_size=n)),
        mods=draw(st.lists(st.integers(1, 3), min_size=n, max_size=n)),
        texts=draw(st.lists(st.text("ab", max_size=3), min_size=2, max_size=2)),
    )


changes = st.lists(
    st.one_of(
        st.tuples(st.just("salt"), st.integers(0, 6), st.integers(0, 5)),
        st.tuples(st.just("text"), st.integers(0, 1), st.text("ab", max_size=3)),
    ),
    min_size=1,
    max_size=4,
)


def apply(dag: Dag, change: tuple) -> Dag:
    kind, index, value = change
    salts, texts = list(dag.salts), list(dag.texts)
    if kind == "salt":
        salts[index % len(salts)] = value
    else:
        texts[index] = value
    return Dag(dag.deps, dag.sources, salts, dag.mods, texts)


def expected_reruns(old: Dag, new: Dag) -> set[str]:
    """Exactly the steps whose params or input contents changed (early cutoff included)."""
    before, after = old.outputs(), new.outputs()
    rerun = set()
    for i in range(len(new.deps)):
        if (
            old.salts[i] != new.salts[i]
            or any(before[j] != after[j] for j in new.deps[i])
            or any(old.texts[k] != new.texts[k] for k in new.sources[i])
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


def make_and_log(root: Path) -> set[str]:
    Engine("p", root=root).make()
    log = root / "runs.log"
    ran = set(log.read_text().split()) if log.exists() else set()
    log.unlink(missing_ok=True)
    age(root)
    return ran


def age(root: Path) -> None:
    """Make every file look a minute old, so stat caches and the clean record are trusted;
    an edit afterwards gets a fresh mtime, as in real use."""
    past = time.time() - 60
    for folder in ("out", "src", "pipelines/p"):
        for path in (root / folder).glob("*"):
            os.utime(path, (past, past))


PROPERTY = settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@PROPERTY
@given(dag=dags(), edits=changes)
def test_minimal(dag: Dag, edits: list[tuple]) -> None:
    """Nothing reruns without a cause; a change reruns exactly what it affects."""
    with Workspace() as root:
        dag.write(root)
        assert make_and_log(root) == {f"n{i}" for i in range(len(dag.deps))}
        assert make_and_log(root) == set()
        assert make_and_log(root) == set()  # now through the clean record
        for change in edits:
            new = apply(dag, change)
            new.write(root)
            assert make_and_log(root) == expected_reruns(dag, new), change
            dag = new


@PROPERTY
@given(dag=dags(), edits=changes)
def test_correct(dag: Dag, edits: list[tuple]) -> None:
    """After any sequence of edits, an incremental build equals a clean build."""
    with Workspace() as root:
        dag.write(root)
        make_and_log(root)
        for change in edits:
            dag = apply(dag, change)
            dag.write(root)
            make_and_log(root)
        incremental = {p.name: p.read_text() for p in (root / "out").iterdir()}
        shutil.rmtree(root / "out")
        shutil.rmtree(root / ".tipi_cache")
        make_and_log(root)
        clean = {p.name: p.read_text() for p in (root / "out").iterdir()}
        assert incremental == clean
        assert incremental == {f"n{i}.txt": text for i, text in enumerate(dag.outputs())}
