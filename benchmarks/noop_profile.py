"""Where a no-op `tipi make` spends its time: the interpreter, each import, each stage.

Generates the fan-in project of engine_scale.py (N steps), builds it until the fast path
(tipi/_fastpath.py) answers its no-op, then prints:

* the floor: `python -c pass` and `python -c "import re"` (the first line of pip's console
  script), and the no-op itself (`tipi make -q`), medians of REPEAT runs;
* its imports by `python -X importtime`, the minimum of REPEAT runs per module (a shared
  machine only ever adds time): the top-level imports with their cumulative time, and below
  each the modules inside it that take at least --min-ms;
* its stages, timed in one process after the imports (medians of REPEAT runs): finding the
  project, reading the plan file, checking it is current, reading the clean record and the
  one `stat` per file it names.

With --baseline TREE (another checkout: `git archive COMMIT | tar -x -C TREE`), the no-op and
`tipi --version` of both trees are also timed, alternating, as the console script runs them
(`import re`, then tipi._fastpath's main) with PYTHONPATH=TREE; each tree makes the no-op of
its own copy of the project (plans written by different code need not agree).

Like engine_scale.py, commands run with the bytecode cache on, whatever the environment says.

Usage:
    .venv/bin/python benchmarks/noop_profile.py [--steps 1000] [--repeat 15] [--min-ms 0.5]
        [--baseline TREE]
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from engine_scale import ENV, TIPI, WORKDIR, write_tipi

PYTHON = sys.executable
HERE = Path(__file__).resolve().parent.parent  # this checkout
# What the `tipi` console script runs (pip writes it so), for a tree named by PYTHONPATH.
CONSOLE = (
    "import re, sys\nsys.argv = ['tipi', *sys.argv[1:]]\nfrom tipi._fastpath import main\nmain()"
)
IMPORT_LINE = re.compile(r"import time:\s+(\d+) \|\s+(\d+) \|( *)(\S+)")

STAGES = """
import os, statistics, sys, time
import msgpack
import tipi._fastpath as fp
from tipi.uptodate.clean import _record_problem, signature
from tipi.uptodate.planfile import is_current, peek_plan, plan_key
from tipi.uptodate.question import is_up_to_date
from tipi.state.layout import Layout
from tipi.state.statefile import state_bytes
from tipi.config.project import PIPELINES_DIR, find_project_root, locate_pipeline

repeat = int(sys.argv[1])
times = {}

def timed(label, work):
    started = time.perf_counter()
    result = work()
    times.setdefault(label, []).append(time.perf_counter() - started)
    return result

for _ in range(repeat):
    root = timed("find the project and its pipeline", find_project_root)
    name, file = locate_pipeline(root, None)
    layout = Layout(root, name)
    plan_file = layout.plan_file
    data = timed("read the plan file (key, deps, order, summary)", lambda: peek_plan(plan_file, 0))
    timed(
        "check it is current (glob, a stat per source)",
        lambda: is_current(data, plan_key(file, (), root, None), root / PIPELINES_DIR / name),
    )
    order = fp.select(data["plan"], (), root)
    raw = timed("clean record: read", lambda: state_bytes(layout.clean_file))
    document = timed(
        "clean record: decode", lambda: msgpack.unpackb(raw, raw=False, strict_map_key=False)
    )
    timed("clean record: check its shape", lambda: _record_problem(document["data"]))
    files = document["data"]["files"]
    timed("clean record: a stat per file", lambda: [signature(p) == s for p, s in files.items()])
    timed(
        "is_up_to_date, all of the above",
        lambda: is_up_to_date(layout, order, *data["summary"].values(), fp._refuse),
    )
    timed("prove_noop, everything", lambda: fp.prove_noop(fp.Request(None, (), True, False)))
print(f"files in the clean record: {len(files)}")
for label, values in times.items():
    print(f"  {label:46} {statistics.median(values) * 1000:7.2f} ms")
"""


def median_ms(cmd: list[str], cwd: Path, repeat: int) -> float:
    runs = []
    for _ in range(repeat):
        started = time.perf_counter()
        subprocess.run(cmd, cwd=cwd, env=ENV, check=True, stdout=subprocess.DEVNULL)
        runs.append(time.perf_counter() - started)
    return statistics.median(runs) * 1000


def tree_env(tree: Path) -> dict[str, str]:
    return {**ENV, "PYTHONPATH": str(tree)}


def build(root: Path, steps: int, tree: Path = HERE) -> None:
    """The project, built by `tree`'s tipi, and made again until its fast path answers (the
    first no-op after a build writes the clean record; none is written while a file is racy)."""
    write_tipi(root, "fanin", steps)
    env = tree_env(tree)
    probe = "from tipi._fastpath import answer; print(answer(['make', '-q']))"
    for _ in range(20):
        subprocess.run([PYTHON, "-m", "tipi", "make", "-q"], cwd=root, env=env, check=True)
        done = subprocess.run(
            [PYTHON, "-c", probe], cwd=root, env=env, capture_output=True, text=True, check=True
        )
        if done.stdout.strip() == "0":
            return
        time.sleep(0.2)
    raise RuntimeError(f"the fast path of {tree} never answered the no-op")


def against_baseline(roots: dict[Path, Path], repeat: int) -> None:
    """The no-op and `tipi --version` of each tree (tree → its project), alternating."""
    cases = {"no-op (make -q)": ["make", "-q"], "--version": ["--version"]}
    runs: dict[tuple[str, Path], list[float]] = defaultdict(list)
    for _ in range(repeat):
        for label, args in cases.items():
            for tree, root in roots.items():
                started = time.perf_counter()
                subprocess.run(
                    [PYTHON, "-c", CONSOLE, *args],
                    cwd=root,
                    env=tree_env(tree),
                    check=True,
                    stdout=subprocess.DEVNULL,
                )
                runs[label, tree].append(time.perf_counter() - started)
    print("  both trees, alternating (min in brackets):")
    for label in cases:
        for tree in roots:
            ms = [r * 1000 for r in runs[label, tree]]
            name = "this checkout" if tree == HERE else str(tree)
            print(f"    {label:16} {name:22} {statistics.median(ms):6.1f} ms  ({min(ms):5.1f})")


def import_table(root: Path, repeat: int, min_ms: float) -> None:
    """python -X importtime of the no-op: per module, the minimum over `repeat` runs."""
    own: dict[str, list[int]] = defaultdict(list)
    cumulative: dict[str, list[int]] = defaultdict(list)
    depth: dict[str, int] = {}
    for _ in range(repeat):
        done = subprocess.run(
            [PYTHON, "-X", "importtime", str(TIPI), "make", "-q"],
            cwd=root,
            env=ENV,
            capture_output=True,
            text=True,
            check=True,
        )
        for line in done.stderr.splitlines():
            found = IMPORT_LINE.match(line)
            if found:
                name = found.group(4)
                depth.setdefault(name, len(found.group(3)) // 2)
                own[name].append(int(found.group(1)))
                cumulative[name].append(int(found.group(2)))
    total = sum(min(cumulative[n]) for n in depth if depth[n] == 0) / 1000
    print(f"\nimports (python -X importtime, min of {repeat}; all top-level: {total:.1f} ms):")
    for name, level in depth.items():
        took = min(cumulative[name]) / 1000
        if took >= (0.1 if level == 0 else min_ms):
            note = f"  (own {min(own[name]) / 1000:.2f})" if level == 0 else ""
            print(f"  {'  ' * level}{name:{40 - 2 * level}} {took:6.2f} ms{note}")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=15)
    parser.add_argument("--min-ms", type=float, default=0.5)
    parser.add_argument("--baseline", type=Path, help="another checkout to compare with")
    args = parser.parse_args()
    WORKDIR.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="tipi-profile-", dir=WORKDIR) as tmp:
        root = Path(tmp) / "current"
        build(root, args.steps)
        print(f"{args.steps}-step fan-in, no-op; medians of {args.repeat} runs:")
        if args.baseline is not None:
            baseline = args.baseline.resolve()
            build(Path(tmp) / "baseline", args.steps, baseline)
            against_baseline({baseline: Path(tmp) / "baseline", HERE: root}, args.repeat)
        for label, cmd in (
            ("python -c pass", [PYTHON, "-c", "pass"]),
            ('python -c "import re"', [PYTHON, "-c", "import re"]),
            ("tipi make -q (no-op)", [str(TIPI), "make", "-q"]),
        ):
            print(f"  {label:24} {median_ms(cmd, root, args.repeat):6.1f} ms")
        import_table(root, args.repeat, args.min_ms)
        print(f"\nstages, in one process after the imports (medians of {args.repeat}):")
        done = subprocess.run(
            [PYTHON, "-c", STAGES, str(args.repeat)],
            cwd=root,
            env=ENV,
            capture_output=True,
            text=True,
        )
        print(done.stdout.rstrip() or done.stderr[-2000:])
        print(f"  (load average: {', '.join(f'{x:.2f}' for x in os.getloadavg())})")


if __name__ == "__main__":
    main()
