"""`tipi runs`, `tipi diff` and `tipi show`: the makes that ran or restored steps, what they
were given and what they measured. A run is named by its id or a unique prefix of it."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from tipi.cli import complete
from tipi.cli.app import app, guarded, stderr, stdout
from tipi.cli.examples import epilog
from tipi.errors import UsageError

if TYPE_CHECKING:
    from tipi.runs.record import RunRecord
    from tipi.runs.store import RunStore

JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")]
RunsPipelineOpt = Annotated[
    str | None,
    typer.Option(
        "-p", "--pipeline", help="Only this pipeline's runs.", autocompletion=complete.pipelines
    ),
]
DEFAULT_COUNT = 20
# The rows `show` and `diff` print unless told: a 20,000-step run would take minutes to
# render, and scroll past any terminal; the rest is counted, and --all / --json show it.
DEFAULT_ROWS = 50
LimitOpt = Annotated[
    int,
    typer.Option(
        "--limit",
        metavar="N",
        min=0,
        help=f"Show the first N rows (default {DEFAULT_ROWS}; 0: all).",
    ),
]
AllOpt = Annotated[bool, typer.Option("--all", help="Show every row (as --limit 0).")]


@app.command("runs", epilog=epilog("runs"))
@guarded
def runs_command(
    pipeline: RunsPipelineOpt = None,
    json_: JsonOpt = False,
    count: Annotated[
        int,
        typer.Option("-n", metavar="N", help="The N newest runs (0: all).", min=0),
    ] = DEFAULT_COUNT,
    metrics: Annotated[
        str | None,
        typer.Option(
            "--metrics",
            metavar="NAMES",
            help="The metric columns, comma-separated: a name, step.name or a pattern "
            "('evaluate.*'); default: the key ones that fit the terminal.",
        ),
    ] = None,
) -> None:
    """List runs, newest first: when, commit, what ran, params changed, key metrics."""
    from tipi.cli.runs_table import runs_table
    from tipi.cli.runs_view import dumps, to_json

    store = _store(pipeline)
    records, previous = newest(store, pipeline, count)
    if json_:
        typer.echo(dumps([to_json(r) for r in records]))
    elif not records:
        stdout().print(f"no runs{_of(pipeline)} yet: a make that runs a step records one")
    else:
        console = stdout()
        chosen = [name.strip() for name in (metrics or "").split(",") if name.strip()]
        console.print(runs_table(records, previous, console, chosen))


@app.command("diff")
@guarded
def diff_command(
    run_a: Annotated[
        str | None,
        typer.Argument(metavar="[RUN_A]", help="The older run (default: the one before RUN_B)."),
    ] = None,
    run_b: Annotated[
        str | None, typer.Argument(metavar="[RUN_B]", help="The newer run (default: the newest).")
    ] = None,
    pipeline: RunsPipelineOpt = None,
    json_: JsonOpt = False,
    limit: LimitOpt = DEFAULT_ROWS,
    all_: AllOpt = False,
) -> None:
    """Show the params and metrics that differ between two runs (default: the two newest)."""
    from tipi.cli.runs_view import diff_view, dumps
    from tipi.runs.diff import diff_runs

    store = _store(pipeline)
    old, new = pick_pair(store, pipeline, run_a, run_b)
    diff = diff_runs(old, new)
    if json_:
        typer.echo(dumps(diff.to_json()))
    else:
        stdout().print(diff_view(diff, 0 if all_ else limit))


@app.command("show")
@guarded
def show_command(
    run: Annotated[
        str | None, typer.Argument(metavar="[RUN]", help="The run (default: the newest).")
    ] = None,
    pipeline: RunsPipelineOpt = None,
    json_: JsonOpt = False,
    limit: LimitOpt = DEFAULT_ROWS,
    all_: AllOpt = False,
) -> None:
    """Show one run: command, commit, each step's outcome, params, metrics (the first
    --limit steps, and how many ended each way; --all: every step)."""
    from tipi.cli.runs_view import dumps, show_view, to_json

    store = _store(pipeline)
    record = store.find(run, pipeline) if run else _newest(store, pipeline)
    if json_:
        data = to_json(record)
        data["steps"] = {name: step.to_data() for name, step in record.steps.items()}
        typer.echo(dumps(data))
    else:
        stdout().print(show_view(record, 0 if all_ else limit))


def _store(pipeline: str | None) -> RunStore:
    """The project's run store; `pipeline` must be a pipeline's name (one that has runs, or
    one of the project)."""
    from tipi.config.project import locate_pipeline, require_project_root
    from tipi.paths import is_name
    from tipi.runs.store import RunStore
    from tipi.state.layout import Layout

    root = require_project_root()
    store = RunStore(root, _warn)
    if pipeline is not None and not (
        is_name(pipeline) and Layout(root, pipeline).runs_dir.is_dir()
    ):
        locate_pipeline(root, pipeline)  # a name, never a path; did you mean
    return store


def _warn(text: str) -> None:
    from rich.markup import escape

    stderr().print(f"[yellow]warning:[/] {escape(text)}", highlight=False)


def newest(
    store: RunStore, pipeline: str | None, count: int
) -> tuple[list[RunRecord], dict[str, RunRecord | None]]:
    """The `count` newest runs (0: all), and for each, by id, its pipeline's run before it
    (None for a pipeline's first)."""
    shown: list[RunRecord] = []
    previous: dict[str, RunRecord | None] = {}
    waiting: dict[str, RunRecord] = {}  # pipeline → its oldest shown run, predecessor unknown
    for record in store.records(pipeline):
        later = waiting.pop(record.pipeline, None)
        if later is not None:
            previous[later.id] = record
        if count and len(shown) >= count:
            if not waiting:
                break
            continue
        shown.append(record)
        previous[record.id] = None
        waiting[record.pipeline] = record
    return shown, previous


def pick_pair(
    store: RunStore, pipeline: str | None, run_a: str | None, run_b: str | None
) -> tuple[RunRecord, RunRecord]:
    """The runs to compare: both named; RUN_A and the newest run of its pipeline; or the
    newest run (of `pipeline`) and the run of its pipeline before it."""
    if run_a is not None and run_b is not None:
        return store.find(run_a, pipeline), store.find(run_b, pipeline)
    if run_a is not None:
        old = store.find(run_a, pipeline)
        new = _newest(store, old.pipeline)
        if new.id == old.id:
            raise UsageError(
                f"run {old.id} is the newest of pipeline '{old.pipeline}': "
                "name the run to compare it with"
            )
        return old, new
    records = store.records(pipeline)
    new = next(records, None)
    if new is None:
        raise UsageError(f"no runs{_of(pipeline)} to compare")
    old = next((r for r in records if r.pipeline == new.pipeline), None)
    if old is None:
        raise UsageError(
            f"pipeline '{new.pipeline}' has one run only ({new.id}): nothing to compare"
        )
    return old, new


def _newest(store: RunStore, pipeline: str | None) -> RunRecord:
    record = next(store.records(pipeline), None)
    if record is None:
        raise UsageError(f"no runs{_of(pipeline)} yet")
    return record


def _of(pipeline: str | None) -> str:
    return f" of pipeline '{pipeline}'" if pipeline else ""
