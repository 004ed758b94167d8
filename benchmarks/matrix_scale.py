"""Step matrices at scale (issue 29): 100 steps x 50 instances against 5,000 plain steps.

Generates two projects of the same 5,000 trivial file steps (engine_scale.py's `Touch`):

* matrix: 100 processes, each with `matrix = { i = [0, ..., 49] }`; instance `p{k}[i=I]`
  reads `p{k-1}[i=I]`'s output (paired by value): 50 chains of 100 steps;
* plain: the same 5,000 steps written out one by one (`s{k}_{I}`), the same files and edges.

and measures, in this one invocation, the two projects alternating (medians):

* plan: `tipi make -n -q` of a project with no .tipi_cache (reading the TOML, expanding the
  matrices, planning and deciding every step: a dry run's whole cost);
* first: the first build (`tipi make -q`), once;
* no-op: `tipi make -q` once built (the fast path, 5 x REPEAT runs), and through the full CLI
  (TIPI_NO_FAST=1, REPEAT runs);
* dry: `tipi make -n -q` once built (what would run: nothing; REPEAT runs);
* in-process, in a fresh interpreter per project and round (imports done before timing):
  `Engine.make()` of the built project through the full path (no fast path; the median of 5
  calls) and `Engine.load()` with the plan file removed (planning alone: reading the TOML,
  expanding the matrices, resolving, the DAG; the median of 3).

Each command is timed around fork/exec with its peak RSS (engine_scale.timed).

Usage:
    .venv/bin/python benchmarks/matrix_scale.py [--processes 100] [--instances 50] [--repeat 5]
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from engine_scale import STEPS_PY, TIPI, WORKDIR, timed


def write_matrix(root: Path, processes: int, instances: int) -> None:
    folder = root / "pipelines" / "bench"
    folder.mkdir(parents=True)
    (folder / "steps.py").write_text(STEPS_PY)
    values = ", ".join(str(i) for i in range(instances))
    lines = []
    for k in range(processes):
        ins = f'i0 = "out/p{k - 1}/{{i}}.txt"' if k else ""
        lines += [
            f"[processes.p{k}]",
            'type = "Touch"',
            f"matrix = {{ i = [{values}] }}",
            'params = { i = "{i}" }',
            f"inputs = {{ {ins} }}",
            f'outputs = {{ out = "out/p{k}/{{i}}.txt" }}',
            "",
        ]
    (folder / "pipeline.toml").write_text("\n".join(lines))


def write_plain(root: Path, processes: int, instances: int) -> None:
    folder = root / "pipelines" / "bench"
    folder.mkdir(parents=True)
    (folder / "steps.py").write_text(STEPS_PY)
    lines = []
    for k in range(processes):
        for i in range(instances):
            ins = f'i0 = "out/p{k - 1}/{i}.txt"' if k else ""
            lines += [
                f"[processes.s{k}_{i}]",
                'type = "Touch"',
                f"params = {{ i = {i} }}",
                f"inputs = {{ {ins} }}",
                f'outputs = {{ out = "out/p{k}/{i}.txt" }}',
                "",
            ]
    (folder / "pipeline.toml").write_text("\n".join(lines))


IN_PROCESS = """
import os, statistics, sys, time
from tipi.engine import Engine

def timed(work, n):
    found = []
    for _ in range(n):
        started = time.perf_counter()
        work()
        found.append(time.perf_counter() - started)
    return statistics.median(found)

engine = Engine("bench")
noop = timed(lambda: Engine("bench").make(), 5)

plan_file = engine.layout.plan_file
kept = plan_file.read_bytes()

def plan():
    plan_file.unlink(missing_ok=True)
    Engine("bench").load(save=False)

planning = timed(plan, 3)
plan_file.write_bytes(kept)  # the no-ops that follow must find it, as before
print(noop, planning)
"""


def in_process(root: Path) -> tuple[float, float]:
    """(no-op through the full path, planning) in seconds, timed inside one interpreter."""
    done = subprocess.run(
        [sys.executable, "-c", IN_PROCESS], cwd=root, capture_output=True, text=True, check=True
    )
    noop, plan = done.stdout.split()
    return float(noop), float(plan)


def tipi(*args: str) -> list[str]:
    return [str(TIPI), *args]


def check_same(roots: dict[str, Path]) -> None:
    """Both projects built the same files with the same contents (the comparison is fair)."""
    found = {
        shape: {p.relative_to(root): p.read_bytes() for p in (root / "out").rglob("*.txt")}
        for shape, root in roots.items()
    }
    matrix, plain = found["matrix"], found["plain"]
    if matrix != plain:
        raise SystemExit(f"the projects differ: {len(matrix)} files against {len(plain)}")


def bench(processes: int, instances: int, repeat: int) -> dict[str, dict[str, float]]:
    runs: dict[str, dict[str, list[tuple[float, float]]]] = {}
    with tempfile.TemporaryDirectory(prefix="tipi-matrix-", dir=WORKDIR) as tmp:
        roots = {"matrix": Path(tmp) / "matrix", "plain": Path(tmp) / "plain"}
        for shape, root in roots.items():
            root.mkdir()
            (write_matrix if shape == "matrix" else write_plain)(root, processes, instances)
            runs[shape] = {"plan": [], "first": [], "noop": [], "full": [], "dry": []}
            runs[shape].update({"engine_noop": [], "engine_plan": []})
        for _ in range(repeat):
            for shape, root in roots.items():
                shutil.rmtree(root / ".tipi_cache", ignore_errors=True)
                runs[shape]["plan"].append(timed(tipi("make", "-n", "-q"), root))
        for shape, root in roots.items():
            runs[shape]["first"].append(timed(tipi("make", "-q"), root))
            timed(tipi("make", "-q"), root)  # writes the clean record (engine_scale.first_runs)
        check_same(roots)
        for _ in range(repeat):
            for shape, root in roots.items():
                runs[shape]["noop"] += [timed(tipi("make", "-q"), root) for _ in range(5)]
                runs[shape]["full"].append(timed(tipi("make", "-q"), root, {"TIPI_NO_FAST": "1"}))
                runs[shape]["dry"].append(timed(tipi("make", "-n", "-q"), root))
        for _ in range(repeat):  # after the commands: it rewrites the plan file
            for shape, root in roots.items():
                noop, plan = in_process(root)
                runs[shape]["engine_noop"].append((noop, 0.0))
                runs[shape]["engine_plan"].append((plan, 0.0))
        for shape, root in roots.items():
            # a no-op must be one: nothing would run
            done = subprocess.run(
                tipi("make", "-n", "--check", "-q"), cwd=root, capture_output=True, check=False
            )
            if done.returncode != 0:
                raise SystemExit(f"{shape}: a no-op would run something: {done.stderr[-300:]!r}")
    return {
        shape: {
            **{kind: statistics.median(r[0] for r in found) for kind, found in kinds.items()},
            **{f"{kind}_rss": max(r[1] for r in found) for kind, found in kinds.items()},
        }
        for shape, kinds in runs.items()
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--processes", type=int, default=100)
    parser.add_argument("--instances", type=int, default=50)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--workdir", type=Path, default=WORKDIR)
    args = parser.parse_args()
    args.workdir.mkdir(parents=True, exist_ok=True)
    globals()["WORKDIR"] = args.workdir
    found = bench(args.processes, args.instances, args.repeat)
    steps = args.processes * args.instances
    header = (
        f"{'project':8} {'steps':>6} {'plan s':>7} {'first s':>8} {'no-op s':>8} "
        f"{'full CLI s':>10} {'dry s':>6} {'RSS plan':>9} {'RSS no-op':>10}"
    )
    print(header)
    print("-" * len(header))
    for shape, r in found.items():
        print(
            f"{shape:8} {steps:>6} {r['plan']:>7.3f} {r['first']:>8.2f} {r['noop']:>8.3f} "
            f"{r['full']:>10.3f} {r['dry']:>6.3f} {r['plan_rss']:>7.0f}MB {r['noop_rss']:>8.0f}MB"
        )
    print(f"\nin-process ({args.repeat} rounds, medians):")
    for shape, r in found.items():
        print(
            f"  {shape:8} Engine.make() no-op (full path) {r['engine_noop'] * 1000:7.1f} ms, "
            f"planning (Engine.load, no plan file) {r['engine_plan'] * 1000:7.1f} ms"
        )
    kinds = ("plan", "noop", "full", "dry", "engine_noop", "engine_plan")
    ratio = {k: found["matrix"][k] / found["plain"][k] for k in kinds}
    print(
        f"\nmatrix / plain: plan {ratio['plan']:.2f}x, no-op {ratio['noop']:.2f}x, "
        f"full-CLI no-op {ratio['full']:.2f}x, dry run {ratio['dry']:.2f}x, in-process no-op "
        f"{ratio['engine_noop']:.2f}x, in-process planning {ratio['engine_plan']:.2f}x. "
        f"Medians: plan, full CLI and dry run of {args.repeat} runs, no-op of "
        f"{5 * args.repeat}; first build: one run."
    )


if __name__ == "__main__":
    main()
