"""Per-iteration cost of tipi's progress_bar against tqdm and a bare loop, in one process.

Each variant iterates range(N) with an empty body, output going to a pipe-like stream (plain
log lines for tipi, tqdm's own redraws to /dev/null), alternating variants, medians of
--repeat runs; it prints nanoseconds per iteration over the bare loop and the ratio to tqdm.

Usage:
    .venv/bin/python benchmarks/progress_overhead.py [--n 2000000] [--repeat 5]
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

from tqdm import tqdm

from tipi.helpers import progress_bar


def bare(n: int) -> float:
    started = time.perf_counter()
    for _ in range(n):
        pass
    return time.perf_counter() - started


def with_tqdm(n: int) -> float:
    with open(os.devnull, "w") as sink:
        started = time.perf_counter()
        for _ in tqdm(range(n), file=sink):
            pass
        return time.perf_counter() - started


def with_tipi(n: int) -> float:
    started = time.perf_counter()
    for _ in progress_bar(range(n), desc="bench"):
        pass
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--n", type=int, default=2_000_000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    os.environ["CI"] = "true"  # plain lines, as in a pipe or CI
    runs: dict[str, list[float]] = {"bare": [], "tqdm": [], "tipi": []}
    for _ in range(args.repeat):
        runs["bare"].append(bare(args.n))
        runs["tqdm"].append(with_tqdm(args.n))
        runs["tipi"].append(with_tipi(args.n))
    median = {name: statistics.median(times) for name, times in runs.items()}
    per = {name: (median[name] - median["bare"]) / args.n * 1e9 for name in ("tqdm", "tipi")}
    print(f"bare loop      : {median['bare'] / args.n * 1e9:6.1f} ns/iteration")
    print(f"tqdm           : {per['tqdm']:6.1f} ns/iteration over the bare loop")
    print(f"progress_bar   : {per['tipi']:6.1f} ns/iteration over the bare loop")
    print(f"tipi / tqdm    : {per['tipi'] / per['tqdm']:.2f}  (target: at most 1.0)")


if __name__ == "__main__":
    main()
