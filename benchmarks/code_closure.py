"""No-op and re-plan time, two tipi trees side by side, of steps spread over 20 modules.

Target: following each step class's references through sibling modules (its code closure)
must not slow the no-op path: the 1,000-step no-op stays within 10% of the baseline's.

It generates a project, `pipelines/bench/pipeline.toml` with N steps (a fan-in or a chain,
as in engine_scale.py) whose types are spread over 20 step modules `steps_00.py` ...
`steps_19.py`; each step class's execute() calls functions, reads constants and uses a class
from 5 helper modules `helpers_0.py` ... beside them (imported relatively:
`from .helpers_0 import scale, OFFSET`), and the helpers import each other in a chain. Each
tree gets its own copy of the project (its .tipi_cache differs between versions), is run with
PYTHONPATH=TREE (checked: `tipi` must import from TREE) as `python -m tipi make -q -p bench`,
and after a first full build and a discarded warm-up, measured alternating (A B A B ...):

* no-op: the make again, nothing to do (median of REPEAT runs);
* plan rebuild: helpers_0.py gets a new comment line before each make, which invalidates the
  saved plan (a comment is not code: nothing should rerun; `reran` counts outputs rewritten).

Usage:
    .venv/bin/python benchmarks/code_closure.py [--baseline /tmp/tipi-base] [--current PATH]
        [--steps 1000] [--shape fanin|chain] [--repeat 7]
    # a baseline tree: mkdir /tmp/tipi-base && git archive HEAD | tar -x -C /tmp/tipi-base
Without --baseline only the current tree (default: this checkout) is measured.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
from pathlib import Path

from source_tree import SourceTree

REPO = Path(__file__).resolve().parent.parent
WORKDIR = Path(__file__).resolve().parent / ".work" / "code_closure"
STEP_MODULES, HELPER_MODULES = 20, 5


def helper_source(h: int) -> str:
    base = (
        f"from .helpers_{h - 1} import scale as base_scale\n"
        if h
        else "def base_scale(x):\n    return x\n"
    )
    return f'''"""Helpers shared by the step modules (generated)."""

{base}
OFFSET = {h}
SCALE = {1.5 + h}
NAMES = ("alpha", "beta", "gamma", "delta")


def scale(x):
    return base_scale(x) * SCALE + OFFSET


def label(i):
    return f"{{NAMES[i % len(NAMES)]}}-{{i}}"


class Accumulator:
    def __init__(self):
        self.total = 0.0

    def add(self, x):
        self.total += scale(x)
        return self
'''


def step_class(m: int, k: int) -> str:
    return f"""

class Step{m:02d}_{k}(PipelineProcess):
    def __init__(self, controller, force: bool = False, i: int = 0) -> None:
        super().__init__(controller, force)
        self.i = i

    def execute(self) -> None:
        acc = Accumulator()
        for path in self.inputs.values():
            acc.add(len(path.read_bytes()))
        value = scale(self.i) + OFFSET * OTHER_SCALE + min(acc.total, LIMIT) + {k}
        self.outputs["out"].write_text(_fmt(self.i, value))
"""


def step_module_source(m: int, per_module: int) -> str:
    a, b = m % HELPER_MODULES, (m + 2) % HELPER_MODULES
    head = f'''"""Step module {m} (generated)."""

from tipi import PipelineProcess

from .helpers_{a} import OFFSET, label, scale
from .helpers_{b} import SCALE as OTHER_SCALE
from .helpers_{b} import Accumulator

LIMIT = {m + 3}


def _fmt(i, value):
    return f"{{label(i)}} {{value:.3f}}\\n"
'''
    return head + "".join(step_class(m, k) for k in range(per_module))


def inputs_of(shape: str, n: int, i: int) -> list[int]:
    if shape == "chain":
        return [i - 1] if i else []
    return list(range(n - 1)) if i == n - 1 else []


def write_project(root: Path, shape: str, n: int, per_module: int) -> None:
    folder = root / "pipelines" / "bench"
    folder.mkdir(parents=True)
    for h in range(HELPER_MODULES):
        (folder / f"helpers_{h}.py").write_text(helper_source(h))
    for m in range(STEP_MODULES):
        (folder / f"steps_{m:02d}.py").write_text(step_module_source(m, per_module))
    lines = []
    for i in range(n):
        m, k = i % STEP_MODULES, (i // STEP_MODULES) % per_module
        ins = ", ".join(f'i{j} = "out/{j}.txt"' for j in inputs_of(shape, n, i))
        lines += [
            f"[processes.s{i}]",
            f'type = "Step{m:02d}_{k}"',
            f"params = {{ i = {i} }}",
            f"inputs = {{ {ins} }}",
            f'outputs = {{ out = "out/{i}.txt" }}',
            "",
        ]
    (folder / "pipeline.toml").write_text("\n".join(lines))


class Tree(SourceTree):
    """One tipi source tree and its own copy of the generated project."""

    def __init__(self, label: str, path: Path, root: Path) -> None:
        super().__init__(label, path, root)
        self.helper = root / "pipelines" / "bench" / "helpers_0.py"
        self.original = ""
        self.first = 0.0
        self.noop: list[float] = []
        self.replan: list[float] = []
        self.reran = 0

    def outputs(self) -> dict[str, int]:
        return {e.name: e.stat().st_mtime_ns for e in os.scandir(self.root / "out")}

    def timed(self, into: list[float], touch: str | None = None) -> None:
        if touch is not None:
            self.helper.write_text(self.original + touch)
        before = self.outputs()
        into.append(self.make())
        after = self.outputs()
        self.reran += sum(after.get(k) != v for k, v in before.items())


def ratio_line(name: str, base: list[float], cur: list[float]) -> str:
    ratio = statistics.median(cur) / statistics.median(base)
    paired = statistics.median(c / b for b, c in zip(base, cur, strict=True))
    best = min(cur) / min(base)
    return f"current/baseline {name:13}: {ratio:.3f}  (paired median {paired:.3f}, min {best:.3f})"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--baseline", type=Path, help="an older tipi source tree")
    parser.add_argument("--current", type=Path, default=REPO, help="default: this checkout")
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--classes-per-module", type=int, default=5)
    parser.add_argument("--shape", choices=["fanin", "chain"], default="fanin")
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--workdir", type=Path, default=WORKDIR)
    parser.add_argument("--raw", action="store_true", help="also print every run's time")
    args = parser.parse_args()

    shutil.rmtree(args.workdir, ignore_errors=True)
    named = [("baseline", args.baseline)] if args.baseline else []
    trees = []
    for label, path in [*named, ("current", args.current)]:
        root = args.workdir / label
        write_project(root, args.shape, args.steps, args.classes_per_module)
        trees.append(Tree(label, path.resolve(), root))
    for tree in trees:
        tree.check_import()
        tree.original = tree.helper.read_text()
        tree.first = tree.make()
        tree.make()  # warm-up: bytecode caches, the first clean record
    for _ in range(args.repeat):
        for tree in trees:
            tree.timed(tree.noop)
    for r in range(args.repeat):
        for tree in trees:
            tree.timed(tree.replan, touch=f"# touched {r}\n")
    for tree in trees:
        tree.helper.write_text(tree.original)

    print(
        f"{args.steps} steps ({args.shape}) typed by {STEP_MODULES * args.classes_per_module} "
        f"classes in {STEP_MODULES} step modules + {HELPER_MODULES} helper modules; "
        f"medians of {args.repeat}, alternating"
    )
    header = f"{'tree':9} {'first s':>8} {'no-op s':>8} {'replan s':>9} {'reran':>6}  path"
    print(header)
    print("-" * len(header))
    for t in trees:
        print(
            f"{t.label:9} {t.first:>8.2f} {statistics.median(t.noop):>8.3f} "
            f"{statistics.median(t.replan):>9.3f} {t.reran:>6}  {t.path}"
        )
        if args.raw:
            print(f"  no-op  {' '.join(f'{x:.3f}' for x in t.noop)}")
            print(f"  replan {' '.join(f'{x:.3f}' for x in t.replan)}")
    if len(trees) == 2:
        base, cur = trees
        print(ratio_line("no-op", base.noop, cur.noop))
        print(ratio_line("plan rebuild", base.replan, cur.replan))
        ratio = statistics.median(cur.noop) / statistics.median(base.noop)
        verdict = "met" if ratio <= 1.10 else "MISSED"
        print(f"target: no-op at most 1.10x the baseline's -> {verdict}")
    print(
        "replan = a make after a comment line is added to helpers_0.py (the saved plan is "
        "invalid: modules imported, code fingerprinted); reran = outputs rewritten by the timed "
        "makes (expected 0)."
    )


if __name__ == "__main__":
    main()
