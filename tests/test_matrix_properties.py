"""Property tests on random step matrices (issue 29), in the style of test_properties.py: a
producer over two keys, a consumer that pairs one key and gathers the other, a step that
gathers all; after any edit of the values (added, removed, reordered) or of a param, a make
runs exactly the instances whose inputs or params changed, leaves the others up to date, and
its outputs equal a clean build's. Before every make, the fast path agrees with the full one."""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tipi._fastpath import Request, prove_noop
from tipi.engine import Engine

STEPS = """
import os
from tipi import PipelineProcess


def log(name):
    with open(os.path.join(os.getcwd(), "runs.log"), "a") as f:
        f.write(name + "\\n")


class A(PipelineProcess):
    def __init__(self, controller, force: bool = False, salt: int = 0, x: int = 0,
                 y: str = "") -> None:
        super().__init__(controller, force)
        self.salt, self.x, self.y = salt, x, y

    def execute(self) -> None:
        log(self.name)
        self.outputs["out"].write_text(f"{self.salt}:{self.x}:{self.y}")


class Join(PipelineProcess):
    def execute(self) -> None:
        log(self.name)
        parts = [p.read_text() for p in self.input_lists.get("src", [])]
        self.outputs["out"].write_text("|".join(parts) if parts else "-")
"""


def toml(xs: list[int], ys: list[str], salt: int) -> str:
    return f"""
[processes.a]
type = "A"
matrix = {{ x = {xs!r}, y = {[str(y) for y in ys]!r} }}
params = {{ salt = {salt}, x = "{{x}}", y = "{{y}}" }}
outputs = {{ out = "out/a/{{x}}/{{y}}.txt" }}

[processes.b]
type = "Join"
matrix = {{ x = {xs!r} }}
inputs = {{ src = "out/a/{{x}}/{{y}}.txt" }}
outputs = {{ out = "out/b/{{x}}.txt" }}

[processes.g]
type = "Join"
inputs = {{ src = "out/b/{{x}}.txt" }}
outputs = {{ out = "out/g.txt" }}
""".replace("'", '"')


def model(xs: list[int], ys: list[str], salt: int) -> dict[str, tuple[str, str]]:
    """step name → (what decides its run, the output it writes)."""
    steps: dict[str, tuple[str, str]] = {}
    for x in xs:
        for y in ys:
            text = f"{salt}:{x}:{y}"
            steps[f"a[x={x},y={y}]"] = (text, text)
    for x in xs:
        joined = "|".join(steps[f"a[x={x},y={y}]"][1] for y in ys) or "-"
        steps[f"b[x={x}]"] = (joined, joined)
    g = "|".join(steps[f"b[x={x}]"][1] for x in xs) or "-"
    steps["g"] = (g, g)
    return steps


# at least one value: a matrix with none is refused (tests/test_matrix_attack.py)
values_x = st.lists(st.integers(0, 4), unique=True, min_size=1, max_size=3)
values_y = st.lists(st.sampled_from("pqrs"), unique=True, min_size=1, max_size=2)
edits = st.lists(
    st.one_of(
        st.tuples(st.just("add-x"), st.integers(0, 6)),
        st.tuples(st.just("drop-x"), st.integers(0, 3)),
        st.tuples(st.just("add-y"), st.sampled_from("pqrst")),
        st.tuples(st.just("drop-y"), st.integers(0, 3)),
        st.tuples(st.just("reverse-x"), st.just(0)),
        st.tuples(st.just("salt"), st.integers(0, 2)),
    ),
    min_size=1,
    max_size=4,
)


def edit(xs: list[int], ys: list[str], salt: int, change: tuple) -> tuple:
    kind, arg = change
    xs, ys = list(xs), list(ys)
    if kind == "add-x" and arg not in xs:
        xs.append(arg)
    elif kind == "drop-x" and len(xs) > 1:
        xs.pop(arg % len(xs))
    elif kind == "add-y" and arg not in ys:
        ys.append(arg)
    elif kind == "drop-y" and len(ys) > 1:
        ys.pop(arg % len(ys))
    elif kind == "reverse-x":
        xs.reverse()
    elif kind == "salt":
        salt = arg
    return xs, ys, salt


@pytest.fixture(autouse=True, scope="module")
def _without_run_cache():
    """The decisions are pinned (what reruns): a restored step would not log a run."""
    saved = os.environ.get("TIPI_RUN_CACHE")
    os.environ["TIPI_RUN_CACHE"] = "0"
    yield
    if saved is None:
        os.environ.pop("TIPI_RUN_CACHE", None)
    else:
        os.environ["TIPI_RUN_CACHE"] = saved


def make(root: Path) -> set[str]:
    """Make `p` and return the steps that ran; the fast path must answer as the make does."""
    try:
        fast = prove_noop(Request("p", (), True, False)) is not None
    except Exception:  # a fall-through: the full CLI would answer
        fast = False
    build = Engine("p", root=root).build()
    build.run()
    assert build.shortcut == fast, "the fast path and the full make disagree"
    log = root / "runs.log"
    ran = set(log.read_text().split()) if log.exists() else set()
    log.unlink(missing_ok=True)
    assert not (fast and ran)
    now = time.time()  # what the make wrote looks old: stat caches and clean record trust it
    for path in root.rglob("*"):
        if ".tipi_cache" not in path.parts and path.stat().st_mtime > now - 30:
            os.utime(path, (now - 60, now - 60))
    return ran


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(xs=values_x, ys=values_y, salt=st.integers(0, 2), changes=edits)
def test_minimal_and_correct(xs: list[int], ys: list[str], salt: int, changes: list) -> None:
    old = os.getcwd()
    root = Path(tempfile.mkdtemp(prefix="tipi-matrix-"))
    try:
        os.chdir(root)
        folder = root / "pipelines" / "p"
        folder.mkdir(parents=True)
        (folder / "steps.py").write_text(STEPS)
        last: dict[str, str] = {}  # step → what decided its last run (traces outlive instances)
        for step in [None, *changes]:
            if step is not None:
                xs, ys, salt = edit(xs, ys, salt, step)
            (folder / "pipeline.toml").write_text(toml(xs, ys, salt))
            expected = model(xs, ys, salt)
            reruns = {n for n, (why, _) in expected.items() if last.get(n) != why}
            assert make(root) == reruns, (step, xs, ys, salt)
            last |= {n: expected[n][0] for n in reruns}
            assert (root / "out/g.txt").read_text() == expected["g"][1]
            assert make(root) == set()
    finally:
        os.chdir(old)
        shutil.rmtree(root, ignore_errors=True)
