"""The Typer app: parses the command line, calls the programmatic API, renders errors."""

from __future__ import annotations

import enum
import functools
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, TypeVar

import typer
from rich.console import Console

import tipi
from tipi.cli.errors import render_bug, render_error
from tipi.cli.options import (
    DECIDE,
    RUN,
    CheckOpt,
    ConfigOpt,
    ExpandOpt,
    ExplainOpt,
    PipelineArg,
    PipelineOpt,
    QuietOpt,
    SetOpt,
    TargetsArg,
    VerboseOpt,
    make_options,
)
from tipi.errors import AccessError, PipelineInterrupted, TipiError, UsageError

if TYPE_CHECKING:
    from tipi.engine import MakeOptions
    from tipi.report import Reporter

app = typer.Typer(
    name="tipi",
    help="tipi: reproducible, cached, config-driven PyTorch pipelines.",
    no_args_is_help=True,
    add_completion=True,
    pretty_exceptions_enable=False,
    rich_markup_mode="rich",
)

_state = {"debug": False}
EXIT_INTERNAL_ERROR = 3
F = TypeVar("F", bound=Callable[..., object])


def stdout() -> Console:
    return Console(soft_wrap=True)


def stderr() -> Console:
    return Console(stderr=True, soft_wrap=True)


def guarded(command: F) -> F:
    """Turn TipiError into its message and exit code; anything else is a tipi bug."""

    @functools.wraps(command)
    def wrapper(*args: object, **kwargs: object) -> object:
        try:
            return command(*args, **kwargs)
        except typer.Exit:
            raise
        except TipiError as error:
            render_error(error, stderr(), _state["debug"])
            raise typer.Exit(error.exit_code) from None
        except KeyboardInterrupt:  # before a make started its steps (loading, planning)
            stopped = PipelineInterrupted("interrupted before any step ran; nothing was changed")
            render_error(stopped, stderr(), _state["debug"])
            raise typer.Exit(stopped.exit_code) from None
        except Exception as error:
            refused = AccessError.from_os_error(error)  # the machine's setup, not a bug
            if refused is not None:
                render_error(refused, stderr(), _state["debug"])
                raise typer.Exit(refused.exit_code) from None
            if _state["debug"]:
                raise
            render_bug(error, stderr())
            raise typer.Exit(EXIT_INTERNAL_ERROR) from None

    return wrapper  # type: ignore[return-value]


def _print_version(value: bool) -> None:
    if value:
        stdout().print(f"tipi {tipi.__version__}")
        raise typer.Exit()


@app.callback()
def _main(
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_print_version, is_eager=True, help="Print the version."
        ),
    ] = False,
    debug: Annotated[
        bool, typer.Option("--debug", help="Show full tracebacks, tipi's frames too.")
    ] = False,
) -> None:
    _state["debug"] = debug


def _reporter(explain: bool = False, verbose: bool = False) -> Reporter:
    from tipi.report import RichReporter

    return RichReporter(stderr(), verbose=verbose, explain=explain)


def _handle_sigterm() -> None:
    """Treat SIGTERM like Ctrl-C, so a killed make still cleans up and keeps no partial file."""
    import signal

    def interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, interrupt)


@app.command("make")
@guarded
@make_options(DECIDE, RUN)
def make_command(
    targets: TargetsArg = None,
    pipeline: PipelineOpt = None,
    set_: SetOpt = None,
    config: ConfigOpt = None,
    check: CheckOpt = False,
    explain: ExplainOpt = False,
    verbose: VerboseOpt = False,
    quiet: QuietOpt = False,
    *,
    options: MakeOptions,
) -> None:
    """Build TARGETS and what they need, running only what is out of date."""
    _make(pipeline, targets or (), set_, config, check, options, explain, verbose, quiet)


@app.command("run")
@guarded
@make_options(DECIDE, RUN)
def run_command(
    pipeline: PipelineArg,
    set_: SetOpt = None,
    config: ConfigOpt = None,
    check: CheckOpt = False,
    explain: ExplainOpt = False,
    verbose: VerboseOpt = False,
    quiet: QuietOpt = False,
    *,
    options: MakeOptions,
) -> None:
    """Make every step of PIPELINE (what is up to date is skipped): make's options but targets."""
    _make(pipeline, (), set_, config, check, options, explain, verbose, quiet)


def _make(
    pipeline: str | None,
    targets: Sequence[str],
    set_: list[str] | None,
    config: Path | None,
    check: bool,
    options: MakeOptions,
    explain: bool,
    verbose: bool,
    quiet: bool,
) -> None:
    from tipi.engine import Engine
    from tipi.report import WarningsReporter

    if check and not options.dry_run:
        raise UsageError("--check goes with -n (a dry run): `tipi make -n --check`")
    _handle_sigterm()
    reporter = WarningsReporter(stderr()) if quiet else _reporter(explain, verbose)
    engine = Engine(pipeline, config=config, overrides=set_ or (), reporter=reporter)
    summary = engine.make(targets, options)
    if check and any(r.outcome == "would run" for r in summary.results):
        raise typer.Exit(1)


@app.command("status")
@guarded
@make_options(DECIDE)
def status_command(
    targets: TargetsArg = None,
    pipeline: PipelineOpt = None,
    json_: Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")] = False,
    check: CheckOpt = False,
    explain: ExplainOpt = False,
    expand: ExpandOpt = False,
    set_: SetOpt = None,
    config: ConfigOpt = None,
    *,
    options: MakeOptions,
) -> None:
    """Say which steps are up to date and why the others would run."""
    from tipi.engine import Engine
    from tipi.report import WarningsReporter

    engine = Engine(
        pipeline, config=config, overrides=set_ or (), reporter=WarningsReporter(stderr())
    )
    if json_:
        import json

        rows = engine.status(targets or (), options)
        typer.echo(json.dumps([row.to_json() for row in rows], indent=2, ensure_ascii=False))
        stale = any(row.status == "will-run" for row in rows)
    else:
        from tipi.cli.views import status_table, unfolded
        from tipi.overview import overview

        view = overview(engine, targets or (), options=options)
        stdout().print(status_table(view, explain, unfolded(targets or (), expand)))
        stale = any(step.state != "up-to-date" for step in view.steps)
    if check and stale:
        raise typer.Exit(1)


class GraphFormat(enum.StrEnum):
    tree = "tree"
    dot = "dot"
    mermaid = "mermaid"
    json = "json"
    svg = "svg"
    png = "png"
    html = "html"


@app.command("graph")
@guarded
@make_options(DECIDE)
def graph_command(
    targets: TargetsArg = None,
    pipeline: PipelineOpt = None,
    format_: Annotated[
        GraphFormat, typer.Option("--format", help="What to draw.", case_sensitive=False)
    ] = GraphFormat.tree,
    output: Annotated[Path | None, typer.Option("-o", "--output", help="Write to FILE.")] = None,
    files: Annotated[bool, typer.Option("--files", help="Draw artifact files as nodes.")] = False,
    expand: ExpandOpt = False,
    set_: SetOpt = None,
    config: ConfigOpt = None,
    *,
    options: MakeOptions,
) -> None:
    """Draw the step graph, each step marked by its state and first reason."""
    from tipi.cli.views import render_graph, unfolded
    from tipi.engine import Engine
    from tipi.overview import overview
    from tipi.report import WarningsReporter

    binary = format_ in (GraphFormat.png,)
    if binary and output is None and sys.stdout.isatty():
        raise UsageError(
            f"--format {format_.value} is binary and would be written to the terminal",
            hint=f"write it to a file: -o graph.{format_.value} (or pipe it: > graph.png)",
        )
    engine = Engine(
        pipeline, config=config, overrides=set_ or (), reporter=WarningsReporter(stderr())
    )
    view = overview(engine, targets or (), options=options)
    shown = unfolded(targets or (), expand)
    _emit(render_graph(view, format_.value, files, output, engine.root, shown), output)


@app.command("report")
@guarded
@make_options(DECIDE)
def report_command(
    pipeline: PipelineOpt = None,
    output: Annotated[Path, typer.Option("-o", "--output", help="The HTML file.")] = Path(
        "report.html"
    ),
    runs: Annotated[
        list[str] | None,
        typer.Option(
            "--runs", metavar="RUN", help="Overlay these runs (ids or prefixes): --runs A B"
        ),
    ] = None,
    more_runs: Annotated[list[str] | None, typer.Argument(hidden=True, metavar="")] = None,
    set_: SetOpt = None,
    config: ConfigOpt = None,
    *,
    options: MakeOptions,
) -> None:
    """Write one self-contained HTML report: DAG, states, reasons, outputs, and the runs: their
    train/val curves, confusion matrix, params and metrics (a picker shows one or overlays)."""
    from tipi.cli.experiments import collect
    from tipi.engine import Engine
    from tipi.overview import overview
    from tipi.report import WarningsReporter
    from tipi.report.html import to_html

    if more_runs and not runs:
        raise UsageError(f"unexpected argument {more_runs[0]!r}", hint="overlay runs: --runs A B")
    refs = [r for ref in [*(runs or ()), *(more_runs or ())] for r in ref.split(",") if r]
    engine = Engine(
        pipeline, config=config, overrides=set_ or (), reporter=WarningsReporter(stderr())
    )
    view = overview(engine, options=options)
    experiments = collect(engine, view, refs)
    page = to_html(view, base=output.resolve().parent, root=engine.root, experiments=experiments)
    output.write_text(page, encoding="utf-8")
    stdout().print(f"[green]wrote[/] {output}")


def _emit(data: str | bytes, output: Path | None) -> None:
    if output is not None:
        if isinstance(data, bytes):
            output.write_bytes(data)
        else:
            output.write_text(data, encoding="utf-8")
        stdout().print(f"[green]wrote[/] {output}")
    elif isinstance(data, bytes):
        sys.stdout.buffer.write(data)
    else:
        typer.echo(data, nl=False)


@app.command("clean")
@guarded
def clean_command(
    pipeline: PipelineOpt = None,
    outputs: Annotated[
        bool,
        typer.Option("--outputs", help="Also delete the outputs tipi recorded making, and sweeps."),
    ] = False,
    keep_runs: Annotated[
        bool, typer.Option("--keep-runs", help="Keep the record of past runs (`tipi runs`).")
    ] = False,
) -> None:
    """Forget what was built: remove tipi's state (and with --outputs, the outputs)."""
    from tipi.cli.clean import clean

    for line in clean(
        pipeline, outputs, lambda text: stderr().print(f"note: {text}"), keep_runs=keep_runs
    ):
        stdout().print(line, highlight=False)


@app.command("list")
@guarded
def list_command(
    pipeline: Annotated[
        str | None, typer.Option("-p", "--pipeline", help="Only this pipeline's types.")
    ] = None,
) -> None:
    """List the pipelines of this project and the types their TOML can name, with params."""
    from tipi.cli.listing import show_listing

    show_listing(stdout(), pipeline)


@app.command("init")
@guarded
def init_command(
    name: Annotated[str, typer.Argument(help="Name of the new pipeline folder.")],
) -> None:
    """Create pipelines/NAME/ with a pipeline that runs as it is."""
    from tipi.cli.scaffold import scaffold
    from tipi.config import find_project_root

    root = find_project_root() or Path.cwd()
    files = scaffold(root, name)
    console = stdout()
    here = Path.cwd()
    for path in files:
        console.print(
            f"[green]created[/] {path.relative_to(here) if path.is_relative_to(here) else path}"
        )
    console.print(f"next: [bold]tipi run {name}[/]")


def main() -> None:
    """Console-script entry point."""
    app()
