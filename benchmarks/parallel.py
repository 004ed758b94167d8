"""Parallel steps: `-j 1` (in-process) vs `-j 2` (worker processes) vs the Dask executor.

One wide pipeline of independent steps, made from scratch (`force_all`) by each executor in
turn, in the same invocation, after one discarded warm-up round; medians of `--repeat` runs.

- sleep-bound steps (each sleeps `--sleep` s): the ideal `-j 2` speed-up is 2x on any machine;
- CPU-bound steps (each a pure-Python loop of about `--work` s): at most the number of cores;
- empty steps (each writes a small file): wall time per step is the scheduling overhead,
  i.e. what each executor adds around a step (deciding, staging, sending it to a worker,
  collecting its output, committing and recording it).

Usage:
    .venv/bin/python benchmarks/parallel.py [--steps 8] [--sleep 0.5] [--work 0.5]
        [--empty 100] [--repeat 3] [--no-dask]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import time
from pathlib import Path

from tipi.engine import Engine

STEPS = """
import time
from tipi import PipelineProcess


class Sleep(PipelineProcess):
    def __init__(self, controller, force: bool = False, seconds: float = 0.5) -> None:
        super().__init__(controller, force)
        self.seconds = seconds

    def execute(self) -> None:
        time.sleep(self.seconds)
        self.outputs["out"].write_text("slept")


class Burn(PipelineProcess):
    def __init__(self, controller, force: bool = False, loops: int = 1000) -> None:
        super().__init__(controller, force)
        self.loops = loops

    def execute(self) -> None:
        total = 0
        for i in range(self.loops):
            total += i * i % 7
        self.outputs["out"].write_text(str(total))


class Empty(PipelineProcess):
    def execute(self) -> None:
        self.outputs["out"].write_text("x")
"""


def pipeline(kind: str, steps: int, params: str) -> str:
    return "".join(
        f'[processes.{kind.lower()}{i}]\ntype = "{kind}"\nparams = {{ {params} }}\n'
        f'outputs = {{ out = "out/{kind}/{i}.txt" }}\n\n'
        for i in range(steps)
    )


def loops_for(seconds: float) -> int:
    """How many loop iterations of Burn take `seconds` here."""
    n = 1_000_000
    started = time.perf_counter()
    total = 0
    for i in range(n):
        total += i * i % 7
    return int(n * seconds / (time.perf_counter() - started))


def make(root: Path, name: str, **options: object) -> float:
    started = time.perf_counter()
    summary = Engine(name, root=root).make(force_all=True, **options)  # type: ignore[arg-type]
    assert summary.ok and summary.of("ran"), summary
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--sleep", type=float, default=0.5)
    parser.add_argument("--work", type=float, default=0.5)
    parser.add_argument("--empty", type=int, default=100)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--no-dask", action="store_true")
    args = parser.parse_args()

    root = Path(__file__).resolve().parent / ".work" / "parallel"
    shutil.rmtree(root, ignore_errors=True)
    loops = loops_for(args.work)
    pipelines = {
        "sleep": pipeline("Sleep", args.steps, f"seconds = {args.sleep}"),
        "cpu": pipeline("Burn", args.steps, f"loops = {loops}"),
        "empty": pipeline("Empty", args.empty, ""),
    }
    for name, text in pipelines.items():
        folder = root / "pipelines" / name
        folder.mkdir(parents=True)
        (folder / "pipeline.toml").write_text(text)
        (folder / "steps.py").write_text(STEPS)
    executors: dict[str, dict[str, object]] = {"-j 1": {}, "-j 2": {"jobs": 2}}
    cluster = None
    if not args.no_dask:
        import logging

        from distributed import LocalCluster

        from tipi.execution.dask import preserved_environment

        # A LocalCluster started by each make (its start-up is part of the make), and one
        # already running (what a make costs against a cluster that is up: --scheduler).
        executors["dask -j 2"] = {"executor": "dask", "jobs": 2}
        with preserved_environment():
            cluster = LocalCluster(
                n_workers=2,
                threads_per_worker=1,
                dashboard_address=":0",
                silence_logs=logging.ERROR,
            )
        executors["dask, up"] = {"executor": "dask", "scheduler": cluster.scheduler_address}
    os.environ["TIPI_NO_LIVE"] = "1"
    print(
        f"{os.cpu_count()} cores; {args.steps} sleep steps of {args.sleep}s, {args.steps} CPU "
        f"steps of ~{args.work}s, {args.empty} empty steps; medians of {args.repeat}"
    )
    for name in pipelines:
        for options in executors.values():
            make(root, name, **options)  # warm-up: imports, caches, first worker start
    results: dict[tuple[str, str], float] = {}
    for name in pipelines:
        times: dict[str, list[float]] = {label: [] for label in executors}
        for _ in range(args.repeat):
            for label, options in executors.items():  # interleaved: drift hits all alike
                times[label].append(make(root, name, **options))
        for label in executors:
            results[name, label] = statistics.median(times[label])

    if cluster is not None:
        with preserved_environment():
            cluster.close()
    print(f"\n{'pipeline':<8} {'executor':<10} {'wall s':>8} {'vs -j 1':>8} {'per step ms':>12}")
    for (name, label), wall in results.items():
        steps = args.empty if name == "empty" else args.steps
        base = results[name, "-j 1"]
        print(
            f"{name:<8} {label:<10} {wall:>8.2f} {base / wall:>7.2f}x {wall / steps * 1000:>12.1f}"
        )
    print("\nscheduling overhead per step (empty steps, wall / steps), and what -j 2 adds to an")
    print("ideal split of the sleep steps ((wall - steps * sleep / 2) / steps):")
    ideal = args.steps * args.sleep / 2
    for label in executors:
        if label == "-j 1":
            continue
        extra = (results["sleep", label] - ideal) / args.steps * 1000
        print(
            f"  {label:<10} {results['empty', label] / args.empty * 1000:6.1f} ms per empty "
            f"step; {extra:6.1f} ms per sleep step over the ideal"
        )


if __name__ == "__main__":
    main()
