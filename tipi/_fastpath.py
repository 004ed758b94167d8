"""The `tipi` executable: answers `--version` and a no-op `make` without Typer, Rich or the
engine, and hands every other command line to the full CLI (tipi.cli).

This is a cheaper door to the question the full make asks, never a second answer: a no-op is
answered here when the command line is one this module fully understands (`make [TARGET]...
[-p NAME] [-q] [-v]`, `run NAME [-q] [-v]`), the cached plan is current by the planner's own
checks and would load (uptodate/planfile.py `peek_plan` and `is_current`, behind
`Planner.is_current`), and uptodate/question.py `is_up_to_date`, which Build asks too, says the
selection has nothing to do. What it prints comes from the same `report_up_to_date` as the full
make's no-op (plain lines on a pipe, the full CLI's RichReporter on a terminal). Anything else,
any warning and any error fall through to the full CLI, which then does the whole make as if
this module did not exist; so does every command line when the environment sets TIPI_NO_FAST=1.
Like the full no-op, the fast one takes no lock and writes nothing.

Every module this one imports on the way to a no-op is kept light: no Typer, Click or Rich
(unless on a terminal), no engine, and no dataclass (the `dataclasses` module, `inspect` with
it, and an `exec` per class cost more than the whole check); tests/test_fast_path.py lists them.
"""

from __future__ import annotations

import os
import sys
import time
from typing import TYPE_CHECKING, Any, NamedTuple

if TYPE_CHECKING:  # only what `tipi --version` needs is imported before it answers
    from collections.abc import Sequence
    from pathlib import Path


class FallThrough(Exception):
    """The fast path cannot answer: the full CLI must."""


# NamedTuples, not dataclasses: a dataclass costs about a millisecond to create (exec).
class Request(NamedTuple):
    """A make the fast path may answer: the pipeline (None: the only one), targets, output."""

    pipeline: str | None
    targets: tuple[str, ...]
    quiet: bool
    verbose: bool


class NoOp(NamedTuple):
    """A make proven to have nothing to do: its pipeline, selected steps and start time."""

    pipeline: str
    order: list[str]
    started: float


RUNNING = False  # set by main(): this process is the `tipi` command, not a caller's program


def main() -> None:
    """Console-script entry point (`tipi`, `python -m tipi`)."""
    global RUNNING
    RUNNING = True
    if os.environ.get("TIPI_NO_FAST", "") in ("", "0"):
        code = answer(sys.argv[1:])
        if code is not None:
            sys.exit(code)
    # Before anything can start CUDA: number devices as NVML does (tipi picks by NVML index),
    # here and in every process tipi starts, unless the user chose an order.
    os.environ.setdefault("CUDA_DEVICE_ORDER", "PCI_BUS_ID")
    from tipi.cli import main as full_cli

    full_cli()


def answer(argv: Sequence[str]) -> int | None:
    """Answer the command line when it is `--version` or a no-op make, returning the exit
    code; None when the full CLI must answer it (nothing was printed then)."""
    if any(k.startswith("_") and k.endswith("_COMPLETE") for k in os.environ):
        return None  # shell completion (Click's _TIPI_COMPLETE): the full CLI answers
    if list(argv) == ["--version"]:
        return _version()
    request = parse(argv)
    if request is None:
        return None
    import signal

    # As the full CLI does for a make: SIGTERM stops it like Ctrl-C.
    previous = signal.signal(signal.SIGTERM, _interrupt)
    try:
        try:
            noop = prove_noop(request)
        except Exception:  # FallThrough, or an error the full CLI reports its own way
            noop = None
        if noop is None:
            signal.signal(signal.SIGTERM, previous)
            return None
        if not request.quiet:  # -q shows warnings only, and a no-op here has none
            _report(noop, request.verbose)
    except KeyboardInterrupt:
        return _interrupted()
    return 0


def parse(argv: Sequence[str]) -> Request | None:
    """The make that `argv` asks for, when it uses only what the fast path understands:
    `make [TARGET]... [-p|--pipeline NAME] [-q|--quiet] [-v|--verbose]` or
    `run NAME [-q] [-v]`, in any order; None for anything else."""
    if not argv or argv[0] not in ("make", "run"):
        return None
    pipeline: str | None = None
    positional: list[str] = []
    flags: set[str] = set()
    rest = iter(argv[1:])
    for arg in rest:
        if arg in ("-q", "--quiet", "-v", "--verbose"):
            flags.add(arg.lstrip("-")[0])
        elif argv[0] == "make" and (arg in ("-p", "--pipeline") or arg[:11] == "--pipeline="):
            value = arg.partition("=")[2] if "=" in arg else next(rest, None)
            if pipeline is not None or not value or value.startswith("-"):
                return None
            pipeline = value
        elif arg.startswith("-") or not arg:
            return None  # another option (or `--`): the full CLI knows them all
        else:
            positional.append(arg)
    quiet, verbose = "q" in flags, "v" in flags
    if argv[0] == "make":
        return Request(pipeline, tuple(positional), quiet, verbose)
    return Request(positional[0], (), quiet, verbose) if len(positional) == 1 else None


def prove_noop(request: Request) -> NoOp | None:
    """A NoOp when the make has nothing to do, by the question the full make asks
    (uptodate/question.py `is_up_to_date`), else None.

    Raises:
        FallThrough, TipiError, OSError: the full CLI must answer (and report).
    """
    from tipi.config.project import PIPELINES_DIR, find_project_root, locate_pipeline
    from tipi.state.layout import Layout
    from tipi.uptodate.planfile import is_current, peek_plan, plan_key
    from tipi.uptodate.question import is_up_to_date

    root = find_project_root()
    if root is None:
        return None
    name, file = locate_pipeline(root, request.pipeline)
    layout = Layout(root, name)
    data = peek_plan(layout.plan_file, edges=bool(request.targets))
    if data is None:
        return None
    # Planner(root, name, file, overrides=()).is_current(data), without the planner: the
    # full make then reads its plan from this file.
    if not is_current(data, plan_key(file, (), root, None), root / PIPELINES_DIR / name):
        return None
    plan = data["plan"]
    order = select(plan, request.targets, root)
    started = time.perf_counter()  # where Build.run starts its clock
    summary = data["summary"]
    paths, always = summary["paths"], summary["always_run"]
    if not order or not is_up_to_date(layout, order, paths, always, _refuse):
        return None
    return NoOp(plan["pipeline"], order, started)


def select(plan: dict[str, Any], targets: Sequence[str], root: Path) -> list[str]:
    """The steps the make considers, in plan order, exactly as Engine.make selects them."""
    if not targets:
        return list(plan["order"])
    from tipi.graph.select import needed, resolve_targets

    goal = [n for t in targets for n in resolve_targets(t, plan["order"], plan["producers"], root)]
    selected = needed(goal, plan["predecessors"])
    return [name for name in plan["order"] if name in selected]


def _refuse(message: str) -> None:
    """The warning callback: the full make would print `message`, so it must answer."""
    raise FallThrough(message)


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def _report(noop: NoOp, verbose: bool) -> None:
    """Print what the full make prints for this no-op: uptodate/question.py
    `report_up_to_date`'s events, through the full CLI's RichReporter, or as the plain lines
    it would print (report/lines.py) when Rich would print plain text."""
    from tipi.uptodate.question import report_up_to_date

    if _plain(sys.stderr):
        report_up_to_date(
            _Lines(verbose), _Summary(noop.pipeline), noop.order, noop.started, _Result
        )
        return
    importing = time.perf_counter()
    from rich.console import Console

    from tipi.report import RichReporter, RunSummary, StepResult

    # The full CLI imported all this before its make started the clock.
    started = noop.started + (time.perf_counter() - importing)
    reporter = RichReporter(Console(stderr=True, soft_wrap=True), verbose=verbose)
    report_up_to_date(reporter, RunSummary(noop.pipeline), noop.order, started, StepResult)


class _Result(NamedTuple):
    """A step's result as report.events.StepResult has it, without its dataclass."""

    name: str
    outcome: str
    seconds: float = 0.0
    reasons: tuple[str, ...] = ()


class _Summary:
    """A no-op's report.events.RunSummary, without its dataclass."""

    def __init__(self, pipeline: str) -> None:
        self.pipeline = pipeline
        self.results: list[_Result] = []
        self.seconds = 0.0


class _Lines:
    """The events of a no-op as the plain lines RichReporter writes to a pipe: the header, a
    line per step only when verbose (up-to-date steps are counted, not listed), the summary."""

    def __init__(self, verbose: bool) -> None:
        self.verbose = verbose
        self.text: list[str] = []

    def run_started(self, pipeline: str, steps: list[str]) -> None:
        from tipi.report import lines

        self.text.append(lines.run_header(pipeline, len(steps)))

    def step_finished(self, result: _Result) -> None:
        from tipi.report import lines

        if self.verbose:
            self.text.append(lines.step_line(result.name, result.outcome, reasons=result.reasons))

    def run_finished(self, summary: _Summary) -> None:
        from tipi.report import lines

        counts = {"skipped": len(summary.results)}
        self.text.append(lines.summary_line("up to date", counts, summary.seconds))
        sys.stderr.write("\n".join(self.text) + "\n")


def _plain(stream: Any) -> bool:
    """Whether Rich would write plain text to `stream`: not a terminal, and no environment
    variable that makes Rich treat it as one (https://force-color.org/, TTY_COMPATIBLE)."""
    if stream is None or "FORCE_COLOR" in os.environ or "TTY_COMPATIBLE" in os.environ:
        return False
    encoding = (getattr(stream, "encoding", None) or "").lower().replace("-", "")
    try:
        return encoding in ("utf8", "utf_8") and not stream.isatty()
    except (AttributeError, ValueError):
        return False


def _version() -> int:
    """`tipi --version`, as the full CLI prints it (to stdout, through Rich on a terminal)."""
    from tipi._version import __version__

    text = f"tipi {__version__}"
    if _plain(sys.stdout):
        sys.stdout.write(text + "\n")
    else:
        from rich.console import Console

        Console(soft_wrap=True).print(text)
    return 0


def _interrupted() -> int:
    """Ctrl-C (or SIGTERM) before anything was shown: what the full CLI says then."""
    from rich.console import Console

    from tipi.cli.errors import render_error
    from tipi.errors import PipelineInterrupted

    stopped = PipelineInterrupted("interrupted before any step ran; nothing was changed")
    render_error(stopped, Console(stderr=True, soft_wrap=True))
    return stopped.exit_code
