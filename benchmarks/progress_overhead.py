"""Per-iteration cost of tipi's progress_bar against tqdm, side by side in one process.

Each variant iterates range(N) with an empty body: a bare loop; tqdm (its output to
/dev/null, as in a pipe); and progress_bar in a script and inside a pipeline step (on the
step's ProgressManager), each in a pipe (plain lines to /dev/null) and in a terminal (the
live Rich display drawn to /dev/null as if it were one, its refresh thread running). Every
round runs all variants in a new order; the figures are medians over the rounds of the
process's CPU time (its threads included): nanoseconds per iteration over the bare loop, and
the ratio to tqdm's, computed within each round.

Usage:
    .venv/bin/python benchmarks/progress_overhead.py [--n 2000000] [--rounds 7]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import random
import statistics
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent.parent))

from rich.console import Console
from tqdm import tqdm

import tipi.permanences.progress as progress_module
from tipi import context
from tipi.helpers import progress_bar
from tipi.permanences.progress import ProgressManager
from tipi.report import live
from tipi.report.board import Board

SINK = open(os.devnull, "w")  # noqa: SIM115 - open for the whole run


@contextlib.contextmanager
def terminal(on: bool) -> Iterator[None]:
    """progress_bar and ProgressManager believe stderr is a terminal (drawn to /dev/null)."""
    saved = progress_module.interactive, live.new_progress
    if on:
        os.environ.pop("CI", None)
        progress_module.interactive = lambda console=None, file=None: True
        live.new_progress = lambda console=None: Board(Console(file=SINK, force_terminal=True))
    else:
        os.environ["CI"] = "true"
    try:
        yield
    finally:
        progress_module.interactive, live.new_progress = saved


class _Controller:
    """Just enough of a pipeline's controller for progress_bar to find the step's manager."""

    def __init__(self, manager: ProgressManager) -> None:
        self.manager = manager

    def declared(self) -> list[str]:
        return ["progress"]

    def declared_class(self, name: str) -> type:
        return ProgressManager

    def get_permanence(self, name: str) -> ProgressManager:
        return self.manager


def timed(loop: Callable[[], None]) -> float:
    """CPU seconds of this process (all its threads: Rich's refresh thread counts), so that
    other processes on the machine do not blur the comparison."""
    started = time.process_time()
    loop()
    return time.process_time() - started


def bare(n: int) -> float:
    def loop() -> None:
        for _ in range(n):
            pass

    return timed(loop)


def with_tqdm(n: int) -> float:
    def loop() -> None:
        for _ in tqdm(range(n), file=SINK):
            pass

    return timed(loop)


def with_tipi(n: int, in_step: bool, in_terminal: bool) -> float:
    def loop() -> None:
        for _ in progress_bar(range(n), desc="bench"):
            pass

    with terminal(in_terminal), contextlib.redirect_stderr(io.StringIO()):
        if not in_step:
            return timed(loop)
        manager = ProgressManager()
        manager.initialize()
        try:
            with context.running(_Controller(manager), "bench"):
                return timed(loop)
        finally:
            manager.cleanup()


VARIANTS: dict[str, Callable[[int], float]] = {
    "bare loop": bare,
    "tqdm": with_tqdm,
    "script, pipe": lambda n: with_tipi(n, in_step=False, in_terminal=False),
    "script, terminal": lambda n: with_tipi(n, in_step=False, in_terminal=True),
    "in a step, pipe": lambda n: with_tipi(n, in_step=True, in_terminal=False),
    "in a step, terminal": lambda n: with_tipi(n, in_step=True, in_terminal=True),
}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--n", type=int, default=2_000_000)
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    runs: dict[str, list[float]] = {name: [] for name in VARIANTS}
    for _ in range(args.rounds):
        order = list(VARIANTS)
        random.shuffle(order)
        for name in order:
            runs[name].append(VARIANTS[name](args.n))
    ns = 1e9 / args.n
    over = {
        name: [(t - b) * ns for t, b in zip(times, runs["bare loop"], strict=True)]
        for name, times in runs.items()
    }
    print(
        f"{args.n:,} iterations, median of {args.rounds} rounds (python {sys.version.split()[0]})"
    )
    print(f"{'bare loop':<22}{statistics.median(runs['bare loop']) * ns:7.1f} ns/iteration")
    print(f"{'':<22}{'ns/it over bare':>16}{'ratio to tqdm':>16}")
    worst = 0.0
    for name in VARIANTS:
        if name == "bare loop":
            continue
        ratios = [o / q for o, q in zip(over[name], over["tqdm"], strict=True)]
        ratio = statistics.median(ratios)
        worst = max(worst, ratio) if name != "tqdm" else worst
        print(f"{name:<22}{statistics.median(over[name]):16.1f}{ratio:16.2f}")
    verdict = "ok" if worst <= 1.0 else "ABOVE TARGET"
    print(f"worst progress_bar / tqdm: {worst:.2f} (target: at most 1.0): {verdict}")


if __name__ == "__main__":
    main()
