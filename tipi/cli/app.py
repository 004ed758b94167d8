"""The Typer app: parses the command line, calls the programmatic API, renders errors."""

from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, TypeVar

import typer
from rich.console import Console

import tipi
from tipi.cli.errors import render_bug, render_error
from tipi.errors import PipelineInterrupted, TipiError

if TYPE_CHECKING:
    from tipi.report import Reporter

app = typer.Typer(
    name="tipi",
    help="tipi: reproducible, cached, config-driven PyTorch pipelines.",
    no_args_is_help=True,
    add_completion=False,
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


PipelineArg = Annotated[str, typer.Argument(help="The pipeline: a folder name under pipelines/.")]
ConfigOpt = Annotated[
    Path | None,
    typer.Option(
        "-c", "--config", help="A TOML file to use instead of the folder's pipeline.toml."
    ),
]
SetOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--set", metavar="STEP.PARAM=VALUE", help="Override a param (value parsed as TOML)."
    ),
]


PipelineOpt = Annotated[
    str | None,
    typer.Option("-p", "--pipeline", help="The pipeline (may be left out when there is one)."),
]
TargetsArg = Annotated[
    list[str] | None,
    typer.Argument(
        help="Steps or output paths to build (default: every step).", show_default=False
    ),
]
DryRunOpt = Annotated[
    bool, typer.Option("-n", "--dry-run", help="Say what would run and why; run nothing.")
]
ExplainOpt = Annotated[
    bool, typer.Option("--explain", help="Print every reason, not only the first.")
]
KeepGoingOpt = Annotated[
    bool, typer.Option("-k", "--keep-going", help="After a failure, go on with independent steps.")
]
ForceAllOpt = Annotated[bool, typer.Option("-F", "--force-all", help="Run every needed step.")]
JobsOpt = Annotated[
    int | None,
    typer.Option(
        "-j",
        "--jobs",
        metavar="N",
        help="Run up to N independent steps at once, each in a worker process.",
        show_default=False,
    ),
]
ExecutorOpt = Annotated[
    str,
    typer.Option("--executor", help="Where steps run with -j: local (worker processes) or dask."),
]
RemoteOpt = Annotated[
    str | None,
    typer.Option(
        "--remote",
        metavar="URL",
        help="A remote run cache (directory, file://, s3://, gs://): restore from it, push to it.",
    ),
]
RunCacheOpt = Annotated[
    bool | None,
    typer.Option(
        "--run-cache/--no-run-cache",
        help="Restore outputs of earlier runs with the same fingerprint, keep new ones.",
        show_default=False,
    ),
]
RehashOpt = Annotated[
    bool,
    typer.Option(
        "--rehash",
        help="Trust no timestamp: re-read every input, output and code file (for files "
        "restored with old timestamps on purpose).",
    ),
]
SchedulerOpt = Annotated[
    str | None,
    typer.Option(
        "--scheduler",
        metavar="ADDRESS",
        help="The Dask scheduler (tcp://host:8786); default: a local cluster for this make.",
    ),
]


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
def make_command(
    targets: TargetsArg = None,
    pipeline: PipelineOpt = None,
    dry_run: DryRunOpt = False,
    force: Annotated[
        list[str] | None,
        typer.Option("-f", "--force", metavar="TARGET", help="Run this step even if up to date."),
    ] = None,
    force_all: ForceAllOpt = False,
    keep_going: KeepGoingOpt = False,
    jobs: JobsOpt = None,
    executor: ExecutorOpt = "local",
    scheduler: SchedulerOpt = None,
    remote: RemoteOpt = None,
    run_cache: RunCacheOpt = None,
    rehash: RehashOpt = False,
    set_: SetOpt = None,
    config: ConfigOpt = None,
    explain: ExplainOpt = False,
    verbose: Annotated[
        bool, typer.Option("-v", "--verbose", help="List up-to-date steps too.")
    ] = False,
    quiet: Annotated[
        bool, typer.Option("-q", "--quiet", help="Print only warnings and errors.")
    ] = False,
) -> None:
    """Build TARGETS and what they need, running only what is out of date."""
    from tipi.engine import Engine
    from tipi.report import WarningsReporter

    _handle_sigterm()
    reporter = WarningsReporter(stderr()) if quiet else _reporter(explain, verbose)
    engine = Engine(pipeline, config=config, overrides=set_ or (), reporter=reporter)
    engine.make(
        targets or (),
        dry_run=dry_run,
        force=force or (),
        force_all=force_all,
        keep_going=keep_going,
        jobs=jobs,
        executor=executor,
        scheduler=scheduler,
        remote=remote,
        run_cache=run_cache,
        rehash=rehash,
    )


@app.command("run")
@guarded
def run_command(
    pipeline: PipelineArg,
    config: ConfigOpt = None,
    set_: SetOpt = None,
    force_all: ForceAllOpt = False,
    dry_run: DryRunOpt = False,
    keep_going: KeepGoingOpt = False,
    jobs: JobsOpt = None,
    executor: ExecutorOpt = "local",
    scheduler: SchedulerOpt = None,
    remote: RemoteOpt = None,
    rehash: RehashOpt = False,
) -> None:
    """Make every step of PIPELINE (what is up to date is skipped)."""
    from tipi.engine import Engine

    _handle_sigterm()
    engine = Engine(pipeline, config=config, overrides=set_ or (), reporter=_reporter())
    engine.make(
        dry_run=dry_run,
        force_all=force_all,
        keep_going=keep_going,
        jobs=jobs,
        executor=executor,
        scheduler=scheduler,
        remote=remote,
        rehash=rehash,
    )


@app.command("status")
@guarded
def status_command(
    targets: TargetsArg = None,
    pipeline: PipelineOpt = None,
    json_: Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")] = False,
    explain: ExplainOpt = False,
    rehash: RehashOpt = False,
    set_: SetOpt = None,
    config: ConfigOpt = None,
) -> None:
    """Say which steps are up to date and why the others would run."""
    from tipi.engine import Engine
    from tipi.report import WarningsReporter

    engine = Engine(
        pipeline, config=config, overrides=set_ or (), reporter=WarningsReporter(stderr())
    )
    if json_:
        import json

        rows = engine.status(targets or (), rehash=rehash)
        typer.echo(json.dumps([row.to_json() for row in rows], indent=2, ensure_ascii=False))
        return
    from tipi.cli.views import status_table
    from tipi.overview import overview

    stdout().print(status_table(overview(engine, targets or (), rehash=rehash), explain=explain))


FormatOpt = Annotated[
    str,
    typer.Option("--format", help="tree, dot, mermaid, json, svg, png or html."),
]


@app.command("graph")
@guarded
def graph_command(
    targets: TargetsArg = None,
    pipeline: PipelineOpt = None,
    format_: FormatOpt = "tree",
    output: Annotated[Path | None, typer.Option("-o", "--output", help="Write to FILE.")] = None,
    files: Annotated[bool, typer.Option("--files", help="Draw artifact files as nodes.")] = False,
    set_: SetOpt = None,
    config: ConfigOpt = None,
) -> None:
    """Draw the step graph, each step marked by its state and first reason."""
    from tipi.cli.views import render_graph
    from tipi.engine import Engine
    from tipi.overview import overview
    from tipi.report import WarningsReporter

    engine = Engine(
        pipeline, config=config, overrides=set_ or (), reporter=WarningsReporter(stderr())
    )
    data = render_graph(overview(engine, targets or ()), format_, files, output, engine.root)
    _emit(data, output)


@app.command("report")
@guarded
def report_command(
    pipeline: PipelineOpt = None,
    output: Annotated[Path, typer.Option("-o", "--output", help="The HTML file.")] = Path(
        "report.html"
    ),
    set_: SetOpt = None,
    config: ConfigOpt = None,
) -> None:
    """Write one self-contained HTML report: DAG, states, durations, reasons, metrics, outputs."""
    from tipi.engine import Engine
    from tipi.overview import overview
    from tipi.report import WarningsReporter
    from tipi.report.html import to_html

    engine = Engine(
        pipeline, config=config, overrides=set_ or (), reporter=WarningsReporter(stderr())
    )
    page = to_html(overview(engine, metrics=True), base=output.resolve().parent, root=engine.root)
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
        import sys

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
) -> None:
    """Forget what was built: remove tipi's state (and with --outputs, the outputs)."""
    from tipi.cli.clean import clean

    for line in clean(pipeline, outputs, lambda text: stderr().print(f"note: {text}")):
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
