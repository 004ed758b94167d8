"""Engine speed and memory at scale: tipi vs Snakemake on the same generated pipelines.

For each size and shape (a chain, and a wide fan-in: N-1 independent steps feeding one),
it generates a tipi project and an equivalent Snakefile, then measures in this one
invocation, side by side:

* first run: a clean build of every step (wall time, peak RSS);
* no-op: the same command again, nothing to do (median of REPEAT runs, peak RSS; tipi's of
  5 x REPEAT runs: a burst of load on a shared machine can cover all of a few 0.1 s runs, but
  not the seconds that Snakemake's take), and tipi's through its full CLI (TIPI_NO_FAST=1).
  Once both tools' projects are built, their no-ops alternate (Snakemake's once, then tipi's
  five times, REPEAT rounds), so that a change of load on a shared machine falls on both;
* status: `tipi status --json` / `snakemake --summary` (median of REPEAT runs);
* engine overhead per executed step: (first run - running the same step bodies in a plain
  loop in one process) / N;
* start-up floor, once: `python -c pass`, `python -c "import tipi"` and `tipi --version`
  (medians of 4 x REPEAT runs).

Each command is timed by this process around fork/exec (perf_counter) and its peak RSS read
from wait4(): no GNU time, whose 10 ms resolution blurs a no-op of a few tens of milliseconds.
Commands run with Python's bytecode cache on, as on a user's machine, even where the
environment sets PYTHONDONTWRITEBYTECODE (it would have tipi's modules compiled on every run,
while Snakemake's were compiled when pip installed them).

Snakemake's rules use `shell: "echo ... > {output}"`: its `run:` rules cost about 2 s per
job in Snakemake 9 (each runs in a fresh interpreter that re-reads the Snakefile), which would
make the comparison meaningless. Snakemake is installed into its own throw-away venv
(~/.cache/tipi-bench/snakemake). The generated projects live under --workdir (default:
benchmarks/.work, git-ignored), on the disk where you work: some machines' /tmp is an order
of magnitude slower at creating files.

With --baseline DIR (a `git archive` export of another commit), that tree's tipi runs beside
this one as `tipi-base` (`python -m tipi` with PYTHONPATH=DIR), each on its own copy of the
project: first runs (--first-repeat K of them, median, the two trees alternating) and
no-ops alternate, so a before/after comparison shares the machine's load.

Usage:
    .venv/bin/python benchmarks/engine_scale.py [--sizes 1000 5000 10000] [--repeat 3]
        [--snakemake-sizes 1000 5000] [--baseline /tmp/tipi-base] [--first-repeat 3]
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

SNAKEMAKE_VERSION = "9.27.1"
HERE = Path(sys.executable).parent
TIPI = HERE / "tipi"
ENV = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}

STEPS_PY = """
from tipi import PipelineProcess


class Touch(PipelineProcess):
    def __init__(self, controller, force: bool = False, i: int = 0) -> None:
        super().__init__(controller, force)
        self.i = i

    def execute(self) -> None:
        size = sum(len(p.read_bytes()) for p in self.inputs.values())
        self.outputs["out"].write_text(f"{self.i} {size}\\n")
"""


def inputs_of(shape: str, n: int, i: int) -> list[int]:
    if shape == "chain":
        return [i - 1] if i else []
    return list(range(n - 1)) if i == n - 1 else []


def write_tipi(root: Path, shape: str, n: int) -> None:
    folder = root / "pipelines" / "bench"
    folder.mkdir(parents=True)
    (folder / "steps.py").write_text(STEPS_PY)
    lines = []
    for i in range(n):
        ins = ", ".join(f'i{j} = "out/{j}.txt"' for j in inputs_of(shape, n, i))
        lines += [
            f"[processes.s{i}]",
            'type = "Touch"',
            f"params = {{ i = {i} }}",
            f"inputs = {{ {ins} }}",
            f'outputs = {{ out = "out/{i}.txt" }}',
            "",
        ]
    (folder / "pipeline.toml").write_text("\n".join(lines))


def write_snakefile(root: Path, shape: str, n: int) -> None:
    if shape == "chain":
        inputs = "lambda wc: [f'out/{int(wc.i) - 1}.txt'] if int(wc.i) > 0 else []"
        sink_rule = ""
    else:
        inputs = "[]"
        sink_rule = (
            "rule sink:\n"
            f"    input: expand('out/{{i}}.txt', i=range({n - 1}))\n"
            f"    output: 'out/{n - 1}.txt'\n"
            f'    shell: "echo {n - 1} > {{output}}"\n\n'
        )
    (root / "Snakefile").write_text(
        'wildcard_constraints:\n    i=r"\\d+"\n\n'
        f"rule all:\n    input: 'out/{n - 1}.txt'\n\n" + sink_rule + "rule step:\n"
        f"    input: {inputs}\n"
        "    output: 'out/{i}.txt'\n"
        '    shell: "echo {wildcards.i} > {output}"\n'
    )


def timed(cmd: list[str], cwd: Path, env: dict[str, str] | None = None) -> tuple[float, float]:
    """(wall seconds, peak RSS MiB) of one command (`env`: more environment variables)."""
    with tempfile.TemporaryFile() as errors:
        started = time.perf_counter()
        child = subprocess.Popen(
            cmd, cwd=cwd, env={**ENV, **(env or {})}, stdout=subprocess.DEVNULL, stderr=errors
        )
        _, status, usage = os.wait4(child.pid, 0)
        wall = time.perf_counter() - started
        child.returncode = os.waitstatus_to_exitcode(status)
        if child.returncode != 0:
            errors.seek(0)
            text = errors.read().decode(errors="replace")
            last = [line for line in text.splitlines() if "Error" in line]
            raise RuntimeError(last[0].strip() if last else text[-300:])
    return wall, usage.ru_maxrss / 1024  # ru_maxrss is in KiB on Linux


def median_of(
    cmd: list[str], cwd: Path, repeat: int, env: dict[str, str] | None = None
) -> tuple[float, float]:
    runs = [timed(cmd, cwd, env) for _ in range(repeat)]
    return statistics.median(r[0] for r in runs), max(r[1] for r in runs)


def plain_loop_seconds(root: Path, shape: str, n: int) -> float:
    """The step bodies alone: the same reads and writes in a plain Python loop."""
    out = root / "plain"
    out.mkdir()
    started = time.perf_counter()
    for i in range(n):
        size = sum(len((out / f"{j}.txt").read_bytes()) for j in inputs_of(shape, n, i))
        (out / f"{i}.txt").write_text(f"{i} {size}\n")
    return time.perf_counter() - started


def snakemake_bin() -> Path:
    venv = Path.home() / ".cache" / "tipi-bench" / "snakemake"
    exe = venv / "bin" / "snakemake"
    if not exe.exists():
        print(f"installing snakemake=={SNAKEMAKE_VERSION} into {venv} ...", file=sys.stderr)
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        subprocess.run(
            [str(venv / "bin" / "pip"), "install", "-q", f"snakemake=={SNAKEMAKE_VERSION}"],
            check=True,
            stderr=subprocess.DEVNULL,
        )
    return exe


WORKDIR = Path(__file__).parent / ".work"


def figures(
    first: float,
    first_rss: float,
    noop: float,
    noop_rss: float,
    status: float,
    plain: float,
    n: int,
) -> dict[str, float]:
    return {
        "first": first,
        "first_rss": first_rss,
        "noop": noop,
        "noop_rss": noop_rss,
        "status": status,
        "overhead_ms": (first - plain) / n * 1000,
    }


TIPI_NOOP = [str(TIPI), "make", "-q"]
BASELINE: Path | None = None  # --baseline: another tree's tipi, run beside this one
FIRST_REPEAT = 1  # --first-repeat


def tipi_cmd(tool: str, *args: str) -> tuple[list[str], dict[str, str]]:
    """The command line and extra environment of `tipi ARGS` for `tool` (tipi, tipi-base)."""
    if tool == "tipi-base":
        return [sys.executable, "-m", "tipi", *args], {"PYTHONPATH": str(BASELINE)}
    return [str(TIPI), *args], {}


def first_runs(roots: dict[str, Path]) -> dict[str, tuple[float, float]]:
    """Each tool's first run (median of FIRST_REPEAT clean builds, the tools alternating)."""
    runs: dict[str, list[tuple[float, float]]] = {tool: [] for tool in roots}
    for _ in range(FIRST_REPEAT):
        for tool, root in roots.items():
            for made in (root / ".tipi_cache", root / "out"):
                shutil.rmtree(made, ignore_errors=True)
            cmd, env = tipi_cmd(tool, "make", "-q")
            runs[tool].append(timed(cmd, root, env))
    for tool, root in roots.items():
        # Not counted: the first no-op writes the clean record, which the build could not
        # while its last outputs were racy (uptodate/clean.py); it takes the full path.
        cmd, env = tipi_cmd(tool, "make", "-q")
        timed(cmd, root, env)
    return {
        tool: (statistics.median(r[0] for r in found), max(r[1] for r in found))
        for tool, found in runs.items()
    }


def snakemake_noop() -> list[str]:
    return [str(snakemake_bin()), "all", "-c1", "--nolock", "--quiet"]


def build_snakemake(root: Path, shape: str, n: int, build: bool) -> tuple[float, float]:
    """Snakemake's first run in a new project at `root`; with `build` False its outputs are
    written directly (in dependency order) and its first run is not timed: it grows
    quadratically here."""
    write_snakefile(root, shape, n)
    if build:
        return timed(snakemake_noop(), root)
    (root / "out").mkdir()
    for i in range(n):
        (root / "out" / f"{i}.txt").write_text(f"{i}\n")
    return float("nan"), float("nan")


def noops(tipi_roots: dict[str, Path], snakemake_root: Path | None, repeat: int) -> dict[str, list]:
    """The tools' no-op runs, alternating: Snakemake's once, then each tipi's five times,
    REPEAT rounds (each a (seconds, peak RSS MiB) pair); Snakemake's error, if it fails,
    under "failed"."""
    runs: dict[str, list] = {"snakemake": [], "failed": [], **{t: [] for t in tipi_roots}}
    for _ in range(repeat):
        if snakemake_root is not None and not runs["failed"]:
            try:
                runs["snakemake"].append(timed(snakemake_noop(), snakemake_root))
            except RuntimeError as failure:
                runs["failed"].append(str(failure))
        for tool, root in tipi_roots.items():
            cmd, env = tipi_cmd(tool, "make", "-q")
            runs[tool] += [timed(cmd, root, env) for _ in range(5)]
    return runs


def bench(shape: str, n: int, repeat: int, snakemake: bool, build: bool) -> dict[str, dict]:
    """Figures of tipi and (when `snakemake`) Snakemake on the same pipeline; Snakemake's
    is missing when it fails, with its error under "snakemake_failed"."""
    found: dict[str, dict] = {}
    with (
        tempfile.TemporaryDirectory(prefix="tipi-bench-", dir=WORKDIR) as tipi_tmp,
        tempfile.TemporaryDirectory(prefix="smk-bench-", dir=WORKDIR) as smk_tmp,
    ):
        tipi_root, smk_root = Path(tipi_tmp), Path(smk_tmp)
        roots = {"tipi": tipi_root / "new"}
        if BASELINE is not None:
            roots["tipi-base"] = tipi_root / "base"
        for root in roots.values():
            root.mkdir()
            write_tipi(root, shape, n)
        firsts = first_runs(roots)
        smk_first = None
        if snakemake:
            try:
                smk_first = build_snakemake(smk_root, shape, n, build)
            except RuntimeError as failure:
                found["snakemake_failed"] = {"error": str(failure)}
        runs = noops(roots, smk_root if smk_first is not None else None, repeat)
        if runs["failed"]:
            found["snakemake_failed"] = {"error": runs["failed"][0]}
        tools = [
            (tool, root, firsts[tool], tipi_cmd(tool, "status", "--json"))
            for tool, root in roots.items()
        ]
        if smk_first is not None and not runs["failed"]:
            exe = str(snakemake_bin())
            summary = ([exe, "-c1", "--summary", "--nolock"], {})
            tools.append(("snakemake", smk_root, smk_first, summary))
        for tool, root, (first, first_rss), (status_cmd, env) in tools:
            noop = statistics.median(r[0] for r in runs[tool])
            noop_rss = max(r[1] for r in runs[tool])
            status, _ = median_of(status_cmd, root, repeat, env)
            plain = plain_loop_seconds(root, shape, n)
            found[tool] = figures(first, first_rss, noop, noop_rss, status, plain, n)
        for tool, root in roots.items():
            cmd, env = tipi_cmd(tool, "make", "-q")
            full, _ = median_of(cmd, root, repeat, {**env, "TIPI_NO_FAST": "1"})
            found[tool]["noop_full"] = full
    return found


def startup(repeat: int) -> None:
    """The floor a no-op make stands on: the interpreter, `import tipi`, `tipi --version`."""
    python = sys.executable
    rows = [
        ("python -c pass", [python, "-c", "pass"]),
        ('python -c "import tipi"', [python, "-c", "import tipi"]),
        ("tipi --version", [str(TIPI), "--version"]),
    ]
    print(f"\nstart-up (medians of {4 * repeat} runs):")
    for label, cmd in rows:
        wall, rss = median_of(cmd, WORKDIR, 4 * repeat)
        print(f"  {label:26} {wall * 1000:6.1f} ms  {rss:4.0f}MB", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 5000, 10000])
    parser.add_argument("--snakemake-sizes", type=int, nargs="*", default=[1000, 5000])
    parser.add_argument(
        "--snakemake-build-max",
        type=int,
        default=1000,
        help="largest size at which Snakemake's own first run is timed",
    )
    parser.add_argument("--shapes", nargs="+", default=["chain", "fanin"])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--workdir", type=Path, default=WORKDIR)
    parser.add_argument("--baseline", type=Path, help="another tree's tipi, run beside this")
    parser.add_argument("--first-repeat", type=int, default=1, help="first runs per tipi tree")
    args = parser.parse_args()
    globals()["WORKDIR"] = args.workdir
    globals()["BASELINE"] = args.baseline
    globals()["FIRST_REPEAT"] = args.first_repeat
    args.workdir.mkdir(parents=True, exist_ok=True)
    header = (
        f"{'shape':7} {'steps':>6} {'tool':10} {'first s':>8} {'no-op s':>8} {'status s':>9} "
        f"{'ms/step':>8} {'RSS first':>10} {'RSS no-op':>10} {'no-op x':>8} {'first x':>8}"
    )
    print(header)
    print("-" * len(header))
    full_cli = []
    for shape in args.shapes:
        for n in args.sizes:
            snakemake = n in args.snakemake_sizes
            found = bench(shape, n, args.repeat, snakemake, n <= args.snakemake_build_max)
            tipis = [tool for tool in ("tipi", "tipi-base") if tool in found]
            for tool in tipis:
                full_cli.append(f"  {shape:7} {n:>6} {tool:10} {found[tool]['noop_full']:.3f} s")
            smk = found.get("snakemake")
            if "snakemake_failed" in found:
                error = found["snakemake_failed"]["error"]
                print(f"{shape:7} {n:>6} {'snakemake':10} failed: {error}")
            for tool in [*tipis, "snakemake"] if smk else tipis:
                r = found[tool]
                noop_x = first_x = ""
                if smk and tool != "snakemake":
                    noop_x = f"{smk['noop'] / r['noop']:.1f}"
                    first_x = f"{smk['first'] / r['first']:.1f}"
                print(
                    f"{shape:7} {n:>6} {tool:10} {r['first']:>8.2f} {r['noop']:>8.3f} "
                    f"{r['status']:>9.3f} {r['overhead_ms']:>8.2f} {r['first_rss']:>8.0f}MB "
                    f"{r['noop_rss']:>8.0f}MB {noop_x:>8} {first_x:>8}",
                    flush=True,
                )
    print("\ntipi's no-op through the full CLI (TIPI_NO_FAST=1):", *full_cli, sep="\n")
    startup(args.repeat)
    print(
        "\nno-op x, first x = Snakemake's no-op / first run time over tipi's, measured in this "
        f"run. Times are medians of {args.repeat} runs (tipi's no-op: {5 * args.repeat}; "
        f"tipi's first run: {FIRST_REPEAT}). ms/step = engine overhead per executed step "
        "beyond the step bodies themselves."
    )


if __name__ == "__main__":
    main()
