"""Re-planning time, two tipi trees side by side: many step classes reaching one big helper.

Target (issue 28 item 1): on 500 steps of 500 classes that each reach one helper module of
5,000 small functions, a dry run after a `--set` takes at most 0.5 s, after a comment-only edit
of the helper at most 1.0 s, and the first build is no slower than before.

It generates `pipelines/bench/`: `helpers.py` with FUNCTIONS functions `f0` ... in a chain
(`f{i}` calls `f{i-1}`, so reaching the last reaches them all; a step names the last one
without calling it), and STEPS step classes spread
over 10 step modules (`from .helpers import f4999`), one step each. Each tree gets its own copy
of the project, runs with PYTHONPATH=TREE (checked: `tipi` must import from TREE) as
`python -m tipi make -q -p bench`, and after the first build and a no-op warm-up is measured
alternating (A B A B ...), medians of REPEAT:

* no-op: the make again, nothing to do;
* set: `make -n --set s0.i=N` (a new N each time: the saved plan does not fit, the pipeline
  is planned again; no source changed);
* comment: a comment line added to helpers.py, then `make -n` (the source changed, its code
  did not);
* edit: the body of `f10` in helpers.py changed (a new constant each time), then `make -n`
  (the code every class reaches changed: each closure's fingerprint must change).

Python's bytecode cache is on, as on a user's machine, even where the environment sets
PYTHONDONTWRITEBYTECODE (as engine_scale.py does): with it, every make would compile the
5,000-function helper again, which is not what a user waits for.

Usage:
    .venv/bin/python benchmarks/replan.py [--baseline /tmp/tipi-base] [--current PATH]
        [--steps 500] [--functions 5000] [--repeat 5] [--first-repeat 1] [--quick]
    # a baseline tree: mkdir /tmp/tipi-base && git archive COMMIT | tar -x -C /tmp/tipi-base
`--quick` is 50 steps and 500 functions; `--first-repeat K`: the first build's median of K
clean builds per tree (alternating). Each make's CPU time (user + system, from the child's
rusage) is printed too: on a shared machine it waits for other work far less than the wall
time. `--profile FILE` writes a cProfile of one
current-tree `--set` dry run (and FILE.comment of one after a comment edit).
"""

from __future__ import annotations

import argparse
import resource
import shutil
import statistics
from pathlib import Path

from source_tree import SourceTree

REPO = Path(__file__).resolve().parent.parent
WORKDIR = Path(__file__).resolve().parent / ".work" / "replan"
STEP_MODULES = 10


def helper_source(functions: int) -> str:
    parts = ['"""A big helper module (generated)."""\n\n\ndef f0(x):\n    return x\n']
    parts += [f"\n\ndef f{i}(x):\n    return f{i - 1}(x) + {i}\n" for i in range(1, functions)]
    return "".join(parts)


def step_module_source(m: int, classes: list[int], functions: int) -> str:
    head = (
        f'"""Step module {m} (generated)."""\n\nfrom tipi import PipelineProcess\n\n'
        f"from .helpers import f{functions - 1}\n"
    )
    body = "".join(
        f"""

class Step{c}(PipelineProcess):
    def __init__(self, controller, force: bool = False, i: int = 0) -> None:
        super().__init__(controller, force)
        self.i = i

    def execute(self) -> None:
        self.outputs["out"].write_text(f{functions - 1}.__name__ + str(self.i + {c}))
"""
        for c in classes
    )
    return head + body


def write_project(root: Path, steps: int, functions: int) -> None:
    folder = root / "pipelines" / "bench"
    folder.mkdir(parents=True)
    (folder / "helpers.py").write_text(helper_source(functions))
    for m in range(STEP_MODULES):
        classes = list(range(m, steps, STEP_MODULES))
        (folder / f"steps_{m}.py").write_text(step_module_source(m, classes, functions))
    lines = []
    for i in range(steps):
        lines += [
            f"[processes.s{i}]",
            f'type = "Step{i}"',
            "params = { i = 0 }",
            f'outputs = {{ out = "out/{i}.txt" }}',
            "",
        ]
    (folder / "pipeline.toml").write_text("\n".join(lines))


class Tree(SourceTree):
    """One tipi source tree and its own copy of the generated project."""

    def __init__(self, label: str, path: Path, root: Path) -> None:
        super().__init__(label, path, root)
        self.helper = root / "pipelines" / "bench" / "helpers.py"
        self.original = ""
        self.first = 0.0
        self.noop: list[float] = []
        self.set: list[float] = []
        self.comment: list[float] = []
        self.edit: list[float] = []
        self.cpu: dict[str, list[float]] = {}  # what → CPU seconds (user + system) of each
        self.walls: dict[str, list[float]] = {}
        self.env.pop("PYTHONDONTWRITEBYTECODE", None)

    def make(self, *extra: str, profile: Path | None = None, what: str = "") -> float:
        """SourceTree.make, also noting its CPU time under `what`: on a shared machine the
        wall time waits for other work, the CPU time much less."""
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        wall = super().make(*extra, profile=profile)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu = after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime
        self.cpu.setdefault(what, []).append(cpu)
        self.walls.setdefault(what, []).append(wall)
        return wall


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--baseline", type=Path, help="an older tipi source tree")
    parser.add_argument("--current", type=Path, default=REPO, help="default: this checkout")
    parser.add_argument("--steps", type=int, default=500)
    parser.add_argument("--functions", type=int, default=5000)
    parser.add_argument("--quick", action="store_true", help="50 steps, 500 functions")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--first-repeat", type=int, default=1, help="clean builds per tree")
    parser.add_argument("--workdir", type=Path, default=WORKDIR)
    parser.add_argument("--profile", type=Path, help="cProfile output of the current tree")
    parser.add_argument("--raw", action="store_true", help="also print every run's time")
    args = parser.parse_args()
    if args.quick:
        args.steps, args.functions = 50, 500

    shutil.rmtree(args.workdir, ignore_errors=True)
    named = [("baseline", args.baseline)] if args.baseline else []
    trees = []
    for label, path in [*named, ("current", args.current)]:
        root = args.workdir / label
        write_project(root, args.steps, args.functions)
        trees.append(Tree(label, path.resolve(), root))
    for tree in trees:
        tree.check_import()
        tree.original = tree.helper.read_text()
        tree.make(what="first")
    for _ in range(args.first_repeat - 1):  # clean builds again, alternating
        for tree in trees:
            for state in (".tipi_cache", "out"):
                shutil.rmtree(tree.root / state)
            tree.make(what="first")
    for tree in trees:
        tree.first = statistics.median(tree.walls["first"])
        tree.make()  # warm-up: bytecode caches, the first clean record
    for _ in range(args.repeat):
        for tree in trees:
            tree.noop.append(tree.make(what="noop"))
    for value in range(1, args.repeat + 1):
        for tree in trees:
            tree.set.append(tree.make("-n", "--set", f"s0.i={value}", what="set"))
    for r in range(args.repeat):
        for tree in trees:
            tree.helper.write_text(tree.original + f"# touched {r}\n")
            tree.comment.append(tree.make("-n", what="comment"))
    for r in range(args.repeat):
        for tree in trees:
            edited = tree.original.replace("return f9(x) + 10\n", f"return f9(x) + {11 + r}\n")
            assert edited != tree.original
            tree.helper.write_text(edited)
            tree.edit.append(tree.make("-n", what="edit"))
    if args.profile is not None:
        current = trees[-1]
        current.make("-n", "--set", "s0.i=-1", profile=args.profile)
        current.helper.write_text(current.original + "# profiled\n")
        current.make("-n", profile=Path(f"{args.profile}.comment"))
    for tree in trees:
        tree.helper.write_text(tree.original)

    print(
        f"{args.steps} steps of {args.steps} classes in {STEP_MODULES} step modules, each "
        f"reaching a helper of {args.functions} functions; medians of {args.repeat}, alternating"
    )
    header = (
        f"{'tree':9} {'first s':>8} {'no-op s':>8} {'set -n s':>9} {'comment -n s':>13} "
        f"{'edit -n s':>10}  path"
    )
    print(header)
    print("-" * len(header))
    for t in trees:
        print(
            f"{t.label:9} {t.first:>8.2f} {statistics.median(t.noop):>8.3f} "
            f"{statistics.median(t.set):>9.3f} {statistics.median(t.comment):>13.3f} "
            f"{statistics.median(t.edit):>10.3f}  {t.path}"
        )
        cpu = {what: statistics.median(v) for what, v in t.cpu.items() if what}
        print(
            f"  CPU s (user + system, medians): {' '.join(f'{k} {v:.3f}' for k, v in cpu.items())}"
        )
        if args.raw:
            for name in ("first", "noop", "set", "comment", "edit"):
                print(f"  {name:8} {' '.join(f'{x:.3f}' for x in t.walls[name])}")
    cur = trees[-1]
    met = [
        ("set -n <= 0.5 s", statistics.median(cur.set) <= 0.5),
        ("comment -n <= 1.0 s", statistics.median(cur.comment) <= 1.0),
    ]
    if len(trees) == 2:
        met.append(("first build no slower (<= 1.10x)", cur.first <= 1.10 * trees[0].first))
    for name, ok in met:
        print(f"target {name}: {'met' if ok else 'MISSED'}")


if __name__ == "__main__":
    main()
