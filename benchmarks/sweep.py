"""A sweep against the same variants made one by one with `--set`, in the same invocation.

Pipeline: prepare (sleeps `--prepare` s, like loading data) → train (sleeps `--train` s, swept
over `--variants` learning rates) → evaluate (writes a metrics JSON). For each side, in a fresh
project: a cold round, then the same variants again (warm), medians of `--repeat` runs.

- sweep: `Sweep(...).run()`; each variant keeps its own outputs and traces, so the warm round
  runs nothing;
- one by one: `Engine(overrides=[...]).make()` per variant, as a shell loop of `tipi make --set`
  would; the variants overwrite each other's outputs, so the warm round reruns train and
  evaluate for each (restored from the run cache, or run again with `--no-run-cache`);
- sweep -j N (`--jobs N`, default 2): the sweep with up to N variants at once, each step in
  one of N worker processes (-j 1 runs the variants one after another, steps in-process).

Prepare runs once on every side: it does not depend on the swept param.

Usage:
    .venv/bin/python benchmarks/sweep.py [--variants 8] [--prepare 0.5] [--train 0.2] [--repeat 3]
        [--jobs 2]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import time
from pathlib import Path

from tipi.engine import Engine
from tipi.sweep.runner import Sweep
from tipi.sweep.spec import grid_from_options

STEPS = """
import json
import time
from tipi import PipelineProcess


class Prepare(PipelineProcess):
    def __init__(self, controller, force: bool = False, seconds: float = 0.5) -> None:
        super().__init__(controller, force)
        self.seconds = seconds

    def execute(self) -> None:
        time.sleep(self.seconds)
        self.outputs["data"].write_text("data")


class Train(PipelineProcess):
    def __init__(self, controller, force: bool = False, lr: float = 0.1, seconds: float = 0.2):
        super().__init__(controller, force)
        self.lr, self.seconds = lr, seconds

    def execute(self) -> None:
        time.sleep(self.seconds)
        self.outputs["model"].write_text(repr(self.lr))


class Evaluate(PipelineProcess):
    def execute(self) -> None:
        lr = float(self.inputs["model"].read_text())
        self.outputs["metrics"].write_text(json.dumps({"accuracy": 1 - lr}))
"""

PIPELINE = """
[processes.prepare]
type = "Prepare"
params = {{ seconds = {prepare} }}
outputs = {{ data = "data/bench/data.txt" }}

[processes.train]
type = "Train"
params = {{ seconds = {train} }}
inputs = {{ data = "data/bench/data.txt" }}
outputs = {{ model = "out/bench/train/model.txt" }}

[processes.evaluate]
type = "Evaluate"
inputs = {{ model = "out/bench/train/model.txt" }}
outputs = {{ metrics = "out/bench/evaluate/metrics.json" }}
"""


def project(base: Path, prepare: float, train: float) -> Path:
    shutil.rmtree(base, ignore_errors=True)
    folder = base / "pipelines" / "bench"
    folder.mkdir(parents=True)
    (folder / "steps.py").write_text(STEPS)
    (folder / "pipeline.toml").write_text(PIPELINE.format(prepare=prepare, train=train))
    return base


def timed(action) -> float:
    started = time.perf_counter()
    action()
    return time.perf_counter() - started


def side(
    kind: str, root: Path, lrs: list[float], run_cache: bool, jobs: int = 1
) -> tuple[float, float]:
    if kind == "sweep":
        spec = grid_from_options([f"train.lr={','.join(map(str, lrs))}"])
        options = {"run_cache": run_cache, "jobs": jobs}

        def once() -> None:
            Sweep("bench", spec, root=root, make_options=options).run()
    else:

        def once() -> None:
            for lr in lrs:
                Engine("bench", root=root, overrides=[f"train.lr={lr}"]).make(run_cache=run_cache)

    return timed(once), timed(once)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variants", type=int, default=8)
    parser.add_argument("--prepare", type=float, default=0.5)
    parser.add_argument("--train", type=float, default=0.2)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--jobs", type=int, default=2, help="-j of the side-by-side sweep")
    args = parser.parse_args()
    lrs = [round(0.001 * (i + 1), 3) for i in range(args.variants)]
    base = Path(os.environ.get("TIPI_BENCH_DIR", Path.cwd() / ".bench-sweep"))
    sides = [("sweep", True, 1), ("one by one", True, 1), ("one by one", False, 1)]
    sides.append(("sweep", True, args.jobs))
    labels = [
        f"{k}{'' if c else ' (no run cache)'}{f' -j {j}' if j > 1 else ''}" for k, c, j in sides
    ]
    figures: dict[str, list[tuple[float, float]]] = {label: [] for label in labels}
    for _ in range(args.repeat):
        for (kind, cache, jobs), label in zip(sides, labels, strict=True):
            root = project(base, args.prepare, args.train)
            figures[label].append(side(kind, root, lrs, cache, jobs))
    shutil.rmtree(base, ignore_errors=True)
    print(
        f"{args.variants} variants; prepare {args.prepare}s once, train {args.train}s per variant; "
        f"medians of {args.repeat}"
    )
    print(f"{'':32} {'cold':>8} {'again':>8}")
    for label, runs in figures.items():
        cold = statistics.median(r[0] for r in runs)
        warm = statistics.median(r[1] for r in runs)
        print(f"{label:32} {cold:7.2f}s {warm:7.2f}s")
    sweep_warm = statistics.median(r[1] for r in figures["sweep"])
    for label in labels[1:3]:
        warm = statistics.median(r[1] for r in figures[label])
        print(f"again, {label} / sweep: {warm / sweep_warm:.1f}x")
    cold_1 = statistics.median(r[0] for r in figures["sweep"])
    cold_n = statistics.median(r[0] for r in figures[labels[3]])
    print(f"cold, sweep / {labels[3]}: {cold_1 / cold_n:.2f}x")


if __name__ == "__main__":
    main()
