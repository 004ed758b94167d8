"""Big runs and big folder inputs: `tipi runs` / `show` / `diff` on one run of N steps, and a
no-op make whose step reads a folder of M files, before and after a change, side by side.

Runs: a project holds two runs of N steps each (every step with params, one in three with a
metric, one in ten restored in the newer run, half the params changed between them), written as
a make writes them (the same msgpack document, read back through RunRecord.decode before
timing). Each command's output goes to a pipe, as `tipi show | less` would.

Folder: a project whose one step reads a folder of M small files (half in a sub-folder), and
the same project with a single-file input (the floor): both built, their files aged past the
racy window, then the no-op `tipi make` timed (the console script's path: `python -m tipi`).

Every figure is the median of --repeat runs of a fresh interpreter, the baseline's and the
current tree's alternating so that a change of load on a shared machine falls on both.
`--baseline PATH` is a `git archive` export of the commit before the change (its `tipi`
package is imported through PYTHONPATH); the current tree is this checkout's.

Usage:
    .venv/bin/python benchmarks/big_runs.py --baseline /tmp/base [--steps 8000 20000]
        [--files 10000] [--repeat 5]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import msgpack

HERE = Path(__file__).resolve().parent.parent
TIMEOUT = 120.0
STEPS_PY = """
import os
from tipi import PipelineProcess


class Count(PipelineProcess):
    def execute(self) -> None:
        src = self.inputs["data"]
        n = sum(len(f) for _, _, f in os.walk(src)) if os.path.isdir(src) else 1
        self.outputs["out"].write_text(str(n))
"""


def write_runs(root: Path, n: int) -> None:
    """Two runs of `n` steps of pipeline `p` in `root`'s run store."""
    from tipi.runs.record import RunRecord

    folder = root / ".tipi_cache/runs/p"
    folder.mkdir(parents=True)
    (root / "pipelines/p").mkdir(parents=True)
    (root / "pipelines/p/pipeline.toml").write_text("")
    start = time.time() - 3600
    for k, run_id in enumerate(("20260101-100000-aaaaaa", "20260101-100100-bbbbbb")):
        steps = {
            f"s{i}": {
                "type": "Touch",
                "params": {"i": i, "lr": 0.1 * (k + 1) if i % 2 else 0.1},
                "outcome": "ran" if i % 10 else ("restored" if k else None),
                "seconds": 1e-4,
                "permanences": {},
                "metrics": {"loss": 1.0 / (i + 1 + k)} if i % 3 == 0 else {},
                "logged": {},
                "error": "",
            }
            for i in range(n)
        }
        data = {
            "id": run_id,
            "pipeline": "p",
            "started": start + 60 * k,
            "status": "ok",
            "ended": start + 60 * k + 5,
            "command": ["tipi", "make"],
            "commit": None,
            "dirty": None,
            "variant": None,
            "host": "bench",
            "pid": 0,
            "steps": steps,
        }
        raw = msgpack.packb({"tipi": "run", "version": 1, "data": data}, use_bin_type=True)
        assert len(RunRecord.decode(raw).steps) == n  # what a make writes, as it reads it
        (folder / f"{run_id}.msgpack").write_bytes(raw)


def write_folder_project(root: Path, files: int) -> None:
    """Pipeline `p`: one step reading `data` (a folder of `files` files, or one file)."""
    (root / "pipelines/p").mkdir(parents=True)
    (root / "pipelines/p/steps.py").write_text(STEPS_PY)
    (root / "pipelines/p/pipeline.toml").write_text(
        '[processes.count]\ntype = "Count"\ninputs = { data = "data" }\n'
        'outputs = { out = "out/count.txt" }\n'
    )
    if files:
        (root / "data/sub").mkdir(parents=True)
        for i in range(files):
            (root / ("data/sub" if i % 2 else "data") / f"f{i}.txt").write_text(str(i))
    else:
        (root / "data").write_text("one file")


def age(root: Path) -> None:
    past = time.time() - 60
    for folder, _, names in os.walk(root):
        if ".tipi_cache" not in folder:
            for name in names:
                os.utime(os.path.join(folder, name), (past, past))


def timed(tree: Path, cwd: Path, *args: str) -> float:
    """Seconds of `python -m tipi ARGS` with `tree`'s tipi; inf past TIMEOUT."""
    env = {**os.environ, "PYTHONPATH": str(tree), "COLUMNS": "120"}
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    start = time.perf_counter()
    try:
        subprocess.run(
            [sys.executable, "-m", "tipi", *args],
            cwd=cwd,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            timeout=TIMEOUT,
            check=True,
        )
    except subprocess.TimeoutExpired:
        return float("inf")
    return time.perf_counter() - start


def side_by_side(
    trees: dict[str, Path], cwd: dict[str, Path], args: tuple[str, ...], repeat: int
) -> dict[str, float]:
    """Median seconds of each tree's command (run in its `cwd`), the trees alternating."""
    times: dict[str, list[float]] = {name: [] for name in trees}
    for _ in range(repeat):
        for name, tree in trees.items():
            if times[name] and times[name][-1] == float("inf"):
                continue  # past the timeout once: not again
            times[name].append(timed(tree, cwd[name], *args))
    return {name: statistics.median(found) for name, found in times.items()}


def show(label: str, medians: dict[str, float]) -> None:
    cells = "  ".join(
        f"{name} {'>' + str(int(TIMEOUT)) if t == float('inf') else f'{t:7.3f}'} s"
        for name, t in medians.items()
    )
    base, now = medians.get("before"), medians["after"]
    ratio = f"  ({base / now:.0f}x)" if base and base != float("inf") else ""
    print(f"{label:<38}{cells}{ratio}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--baseline", type=Path, help="a `git archive` export of the commit before")
    parser.add_argument("--steps", type=int, nargs="+", default=[8000, 20000])
    parser.add_argument("--files", type=int, default=10000)
    parser.add_argument("--repeat", type=int, default=5)
    options = parser.parse_args()
    trees = {"before": options.baseline} if options.baseline else {}
    trees["after"] = HERE
    print(f"load: {os.getloadavg()[0]:.2f} (1 min), median of {options.repeat}", flush=True)
    work = Path(tempfile.mkdtemp(prefix="tipi-big-runs-"))
    try:
        # The floor of these commands: the full CLI started, in a project with no run.
        (work / "empty/pipelines").mkdir(parents=True)
        floor = side_by_side(trees, dict.fromkeys(trees, work / "empty"), ("runs",), options.repeat)
        show("tipi runs, no run (floor)", floor)
        for n in options.steps:
            root = work / f"runs{n}"
            write_runs(root, n)
            for command in (("runs",), ("show",), ("diff",)):
                medians = side_by_side(trees, dict.fromkeys(trees, root), command, options.repeat)
                show(f"tipi {command[0]}, {n:,} steps", medians)
        for files in (0, options.files):
            roots = {}
            for name, tree in trees.items():
                root = roots[name] = work / f"folder{files}-{name}"
                write_folder_project(root, files)
                for _ in range(3):  # built, aged, its clean record written (when it can be)
                    age(root)
                    timed(tree, root, "make")
            medians = side_by_side(trees, roots, ("make",), options.repeat)
            what = f"folder of {files:,} files" if files else "one-file input (floor)"
            show(f"no-op make, {what}", medians)
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
