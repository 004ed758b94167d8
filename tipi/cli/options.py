"""The command-line options, each defined once, and the make options shared by make, run,
status, graph, report and sweep.

`@make_options(...)` adds the chosen make options to a command's signature (Typer reads the
signature) and hands the command one `MakeOptions` instead, so a new option is declared here
and reaches every command that makes or decides, with one meaning and one help text.
"""

from __future__ import annotations

import enum
import functools
import inspect
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer

F = TypeVar("F", bound=Callable[..., object])

PipelineOpt = Annotated[
    str | None,
    typer.Option("-p", "--pipeline", help="The pipeline (may be left out when there is one)."),
]
PipelineArg = Annotated[str, typer.Argument(help="The pipeline: a folder name under pipelines/.")]
TargetsArg = Annotated[
    list[str] | None,
    typer.Argument(
        help="Steps or output paths to build (default: every step).", show_default=False
    ),
]
ConfigOpt = Annotated[
    Path | None,
    typer.Option("-c", "--config", help="A TOML file in the pipeline folder to use instead."),
]
SetOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--set", metavar="STEP.PARAM=VALUE", help="Override a param (value parsed as TOML)."
    ),
]
ExplainOpt = Annotated[
    bool, typer.Option("--explain", help="Print every reason, not only the first.")
]
CheckOpt = Annotated[
    bool,
    typer.Option(
        "--check",
        help="Exit 1 when something would run (for CI gates, like make -q); with make, "
        "only together with -n.",
    ),
]
ExpandOpt = Annotated[
    bool,
    typer.Option(
        "--expand",
        help="List every instance of a step matrix (folded as `train ×6` otherwise; naming a "
        "step as a target unfolds it).",
    ),
]
VerboseOpt = Annotated[bool, typer.Option("-v", "--verbose", help="List up-to-date steps too.")]
QuietOpt = Annotated[bool, typer.Option("-q", "--quiet", help="Print only warnings and errors.")]


class Executor(enum.StrEnum):
    local = "local"
    dask = "dask"


def _option(annotation: Any, default: Any) -> tuple[Any, Any]:
    return annotation, default


# name → (annotation, default). "decide" options change what would run; "run" options how.
DECIDE: dict[str, tuple[Any, Any]] = {
    "force": _option(
        Annotated[
            list[str] | None,
            typer.Option(
                "-f", "--force", metavar="TARGET", help="Run this step even if up to date."
            ),
        ],
        None,
    ),
    "force_all": _option(
        Annotated[bool, typer.Option("-F", "--force-all", help="Run every needed step.")], False
    ),
    "remote": _option(
        Annotated[
            str | None,
            typer.Option(
                "--remote",
                metavar="URL",
                help="A remote run cache (directory, file://, s3://, gs://): restore from it, "
                "push to it.",
            ),
        ],
        None,
    ),
    "run_cache": _option(
        Annotated[
            bool | None,
            typer.Option(
                "--run-cache/--no-run-cache",
                help="Restore outputs of earlier runs with the same fingerprint, keep new ones.",
                show_default=False,
            ),
        ],
        None,
    ),
    "rehash": _option(
        Annotated[
            bool,
            typer.Option(
                "--rehash",
                help="Trust no timestamp: re-read every input, output and code file (for files "
                "restored with old timestamps on purpose).",
            ),
        ],
        False,
    ),
}
RUN: dict[str, tuple[Any, Any]] = {
    "dry_run": _option(
        Annotated[
            bool, typer.Option("-n", "--dry-run", help="Say what would run and why; run nothing.")
        ],
        False,
    ),
    "keep_going": _option(
        Annotated[
            bool,
            typer.Option(
                "-k", "--keep-going", help="After a failure, go on with independent steps."
            ),
        ],
        False,
    ),
    "jobs": _option(
        Annotated[
            int | None,
            typer.Option(
                "-j",
                "--jobs",
                metavar="N",
                help="Run up to N independent steps at once, each in a worker process.",
                show_default=False,
            ),
        ],
        None,
    ),
    "executor": _option(
        Annotated[
            Executor,
            typer.Option(
                "--executor", help="Where steps run with -j: local (worker processes) or dask."
            ),
        ],
        Executor.local,
    ),
    "scheduler": _option(
        Annotated[
            str | None,
            typer.Option(
                "--scheduler",
                metavar="ADDRESS",
                help="The Dask scheduler (tcp://host:8786); default: a local cluster for this "
                "make.",
            ),
        ],
        None,
    ),
}


def make_options(*groups: dict[str, tuple[Any, Any]]) -> Callable[[F], F]:
    """Add the options of `groups` (DECIDE, RUN) to a command; it receives `options`."""
    chosen = {name: spec for group in groups for name, spec in group.items()}

    def decorate(command: F) -> F:
        signature = inspect.signature(command)
        kept = [
            p.replace(annotation=_evaluated(p.annotation, command))
            for p in signature.parameters.values()
            if p.name != "options"
        ]
        added = [
            inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=d, annotation=a)
            for name, (a, d) in chosen.items()
        ]

        @functools.wraps(command)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            values = {name: kwargs.pop(name) for name in chosen}
            if "force" in values:
                values["force"] = tuple(values["force"] or ())
            if "executor" in values:
                values["executor"] = Executor(values["executor"]).value
            from tipi.engine import MakeOptions

            return command(*args, options=MakeOptions(**values), **kwargs)

        wrapper.__signature__ = signature.replace(parameters=[*kept, *added])  # type: ignore[attr-defined]
        wrapper.__annotations__ = {p.name: p.annotation for p in [*kept, *added]}
        return wrapper  # type: ignore[return-value]

    return decorate


def _evaluated(annotation: Any, command: Callable[..., object]) -> Any:
    """A string annotation (`from __future__ import annotations`) as the object it names:
    Typer reads its options from `Annotated[...]` in the signature."""
    if isinstance(annotation, str):
        return eval(annotation, command.__globals__)
    return annotation
