"""The `tipi` executable: answers `--version` and a no-op `make` without Typer, Rich or the
engine, and hands every other command line to the full CLI (tipi.cli).

A no-op is answered here only when the full make would take its clean-record shortcut (build.py
`_clean_shortcut`) and print nothing but its summary: the command line is one this module fully
understands (`make [TARGET]... [-p NAME] [-q] [-v]`, `run NAME [-q] [-v]`), the cached plan is
current by the planner's own key and stat checks (uptodate/planfile.py, behind `Planner.key` and
`Planner.is_current`) and would load (`Plan.from_data`), no selected step is volatile or
forced, and the clean record proves every selected step up to date (uptodate/clean.py `is_clean`,
given what the record must name: the plan file, the trace log and the selected steps' inputs
and outputs, from the plan file's `paths`). Anything else, any warning and any error fall
through to the full CLI, which then does the whole make as if this module did not exist; so
does every command line when the environment sets TIPI_NO_FAST=1. Like the full no-op, the fast
one takes no lock and writes nothing.

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

# msgpack's encoding of a step's `"volatile": true` / `"force": true` (fixstr key, then
# true): a plan none of whose bytes match holds no such step, so its steps need no decoding.
_TRUE = b"\xc3"
_FLAGGED_KEYS = (b"\xa8volatile", b"\xa5force")


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
    """A NoOp when the clean record proves the make has nothing to do, else None.

    Raises:
        FallThrough, TipiError, OSError: the full CLI must answer (and report).
    """
    from tipi.config.project import PIPELINES_DIR, find_project_root, locate_pipeline
    from tipi.uptodate.clean import is_clean, required_paths
    from tipi.uptodate.planfile import is_current, plan_key

    root = find_project_root()
    if root is None:
        return None
    name, file = locate_pipeline(root, request.pipeline)
    plan_file, clean_file, traces_file = state_files(root, name)
    data = read_plan(plan_file, edges=bool(request.targets))
    if data is None or not _loadable(data["plan"]):
        return None
    # Planner(root, name, file, overrides=()).is_current(data), without the planner.
    if not is_current(data, plan_key(file, (), root, None), root / PIPELINES_DIR / name):
        return None
    plan = data["plan"]
    order = select(plan, request.targets, root)
    if plan["steps"].flagged is not None and _volatile_or_forced(plan["steps"].flagged, order):
        return None
    started = time.perf_counter()  # where Build.run starts its clock
    # As Build._covered: what a record must name to prove anything about these steps.
    paths = data["paths"]
    required = required_paths((paths[n] for n in order), root)
    required |= {str(plan_file), str(traces_file)}
    if not order or not is_clean(clean_file, order, _refuse, required):
        return None
    return NoOp(plan["pipeline"], order, started)


def state_files(root: Path, name: str) -> tuple[Path, Path, Path]:
    """`state.Layout(root, name).plan_file`, `.clean_file` and `.traces_file`, spelled out:
    tipi.state defines a dataclass (see the module's docstring). tests/test_fast_path.py
    checks they agree."""
    folder = root / ".tipi_cache" / "pipelines" / name
    return folder / "plan.msgpack", folder / "clean.msgpack", folder / "traces.log"


def select(plan: dict[str, Any], targets: Sequence[str], root: Path) -> list[str]:
    """The steps the make considers, in plan order, exactly as Engine.make selects them."""
    if not targets:
        return list(plan["order"])
    from tipi.graph.select import needed, resolve_target

    goal = [resolve_target(t, plan["order"], plan["producers"], root) for t in targets]
    selected = needed(goal, plan["predecessors"])
    return [name for name in plan["order"] if name in selected]


class Steps(NamedTuple):
    """A plan's steps, undecoded: how many, the first one (to check its fields) and, when
    their bytes may hold a volatile or forced step, those bytes (to decode and look at)."""

    count: int
    first: Any
    flagged: bytes | None


def read_plan(path: Path, edges: bool) -> dict[str, Any] | None:
    """A plan file's data (store.py format, written by Planner.plan) as planfile.is_current
    reads it, every entry decoded but the plan itself, of which only the pipeline, the order
    (with `edges`, also producers and predecessors) and a Steps are; None when unusable."""
    import msgpack

    from tipi.state.statefile import BrokenState, state_bytes
    from tipi.state.store import FORMAT_VERSION
    from tipi.uptodate.planfile import PLAN_KIND

    try:  # never blocks on a FIFO nor reads /dev/zero: the full make then warns
        raw = state_bytes(path)
    except BrokenState:
        return None
    if not raw:
        return None
    unpacker = msgpack.Unpacker(raw=False, strict_map_key=False, max_buffer_size=len(raw) + 1)
    unpacker.feed(raw)
    plan_reader = {"pipeline": _decode, "order": _decode, "steps": _read_steps}
    if edges:
        plan_reader |= {"producers": _decode, "predecessors": _decode}
    data_reader = {"plan": lambda u, r: _read_map(u, r, plan_reader, _skip)}
    document = _read_map(unpacker, raw, {"data": lambda u, r: _read_map(u, r, data_reader)})
    if unpacker.tell() != len(raw):
        return None  # trailing bytes: msgpack.unpackb, and with it the full make, refuses
    if document.get("tipi") != PLAN_KIND or document.get("version") != FORMAT_VERSION:
        return None
    data = document.get("data")
    if not isinstance(data, dict) or not isinstance(data.get("plan"), dict):
        return None
    return data


_SKIPPED = object()


def _decode(unpacker: Any, raw: bytes) -> Any:
    return unpacker.unpack()


def _skip(unpacker: Any, raw: bytes) -> Any:
    unpacker.skip()
    return _SKIPPED


def _read_map(unpacker: Any, raw: bytes, readers: dict[str, Any], default: Any = _decode) -> dict:
    """A msgpack map, each value read by its key's reader (default: `default`)."""
    found: dict[str, Any] = {}
    for _ in range(unpacker.read_map_header()):
        key = unpacker.unpack()
        found[key] = readers.get(key, default)(unpacker, raw)
    return found


def _read_steps(unpacker: Any, raw: bytes) -> Steps:
    start = unpacker.tell()
    count = unpacker.read_array_header()
    first = unpacker.unpack() if count else None
    for _ in range(count - 1):
        unpacker.skip()
    end = unpacker.tell()
    return Steps(count, first, raw[start:end] if _flagged(raw, start, end) else None)


def _flagged(raw: bytes, start: int, end: int) -> bool:
    """Whether raw[start:end] holds a key of _FLAGGED_KEYS followed by true: found from the
    true bytes, which are few (a search for the whole pattern takes 1-2 ms per MB)."""
    at = raw.find(_TRUE, start, end)
    while at >= 0:
        if any(raw.endswith(key, start, at) for key in _FLAGGED_KEYS):
            return True
        at = raw.find(_TRUE, at + 1, end)
    return False


def _loadable(plan: dict[str, Any]) -> bool:
    """Whether Plan.from_data would load this plan (else the full make warns and plans
    again): every field of Plan present, and the steps' entries PlannedStep's fields, checked
    on the first one (Plan.to_data writes them all alike)."""
    from tipi.uptodate.planfile import PLAN_FIELDS, STEP_FIELDS, STEP_REQUIRED

    if not plan.keys() >= PLAN_FIELDS or not isinstance(plan["order"], list):
        return False
    steps = plan["steps"]
    if not isinstance(steps, Steps) or steps.count == 0:
        return isinstance(steps, Steps)
    return isinstance(steps.first, dict) and STEP_REQUIRED <= steps.first.keys() <= STEP_FIELDS


def _volatile_or_forced(steps: bytes, order: Sequence[str]) -> bool:
    """Whether a selected step is volatile or forced (decoding the steps: their bytes say
    one may be)."""
    import msgpack

    flags = {s["name"]: s["volatile"] or s["force"] for s in msgpack.unpackb(steps, raw=False)}
    return any(flags[name] for name in order)


def _refuse(message: str) -> None:
    """The warning callback: the full make would print `message`, so it must answer."""
    raise FallThrough(message)


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def _report(noop: NoOp, verbose: bool) -> None:
    """Print what the full make prints for this no-op (its RichReporter, Build.run's events
    for the clean-record shortcut): plain lines when Rich would print plain text too."""
    if not _plain(sys.stderr):
        _report_rich(noop, verbose)
        return
    from tipi.report import lines

    count = len(noop.order)
    text = [lines.run_header(noop.pipeline, count)]
    if verbose:
        from tipi.uptodate.rebuilder import UP_TO_DATE

        reasons = UP_TO_DATE.explain()
        text += [lines.step_line(name, "skipped", reasons=reasons) for name in noop.order]
    took = time.perf_counter() - noop.started
    text.append(lines.summary_line("up to date", {"skipped": count}, took))
    sys.stderr.write("\n".join(text) + "\n")


def _report_rich(noop: NoOp, verbose: bool) -> None:
    """The same events through the full CLI's reporter: colours, a terminal's live bar."""
    importing = time.perf_counter()
    from rich.console import Console

    from tipi.report import RichReporter, RunSummary, StepResult
    from tipi.uptodate.rebuilder import UP_TO_DATE

    # The full CLI imported all this before its make started the clock.
    started = noop.started + (time.perf_counter() - importing)
    reporter = RichReporter(Console(stderr=True, soft_wrap=True), verbose=verbose)
    summary = RunSummary(noop.pipeline)
    reporter.run_started(noop.pipeline, noop.order)
    for name in noop.order:
        summary.results.append(StepResult(name, "skipped", reasons=UP_TO_DATE.explain()))
        reporter.step_finished(summary.results[-1])
    summary.seconds = time.perf_counter() - started
    reporter.run_finished(summary)


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
