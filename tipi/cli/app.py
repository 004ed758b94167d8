"""The Typer app: parses the command line, calls the programmatic API, renders errors."""

from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, TypeVar

import typer
from rich.console import Console

import tipi
from tipi.cli.errors import render_bug, render_error
from tipi.errors import TipiError

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


@app.command("run")
@guarded
def run_command(
    pipeline: PipelineArg,
    config: ConfigOpt = None,
    set_: SetOpt = None,
    force: Annotated[
        bool, typer.Option("--force", "-F", help="Run steps even if skip() says done.")
    ] = False,
) -> None:
    """Run every step of PIPELINE, in dependency order."""
    from tipi.engine import PipelineRunner
    from tipi.report import RichReporter

    runner = PipelineRunner(
        pipeline, config=config, overrides=set_ or (), reporter=RichReporter(stderr())
    )
    runner.run(force=force)


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
