"""`tipi sweep`: run a pipeline's variants, reusing what they share, and compare them."""

from __future__ import annotations

import functools
import json
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from tipi.cli.app import (
    _handle_sigterm,
    _reporter,
    _state,
    app,
    guarded,
    stderr,
    stdout,
)
from tipi.cli.durations import recorded_seconds
from tipi.cli.errors import render_error
from tipi.cli.examples import epilog
from tipi.cli.options import (
    DECIDE,
    RUN,
    ConfigOpt,
    MakeCommand,
    PipelineOpt,
    SetOpt,
    TargetsArg,
    make_options,
)
from tipi.cli.resume import continue_command
from tipi.engine import MakeOptions
from tipi.errors import UsageError

if TYPE_CHECKING:
    from tipi.sweep.runner import Sweep
    from tipi.sweep.spec import SweepSpec

SWEEP_FILE = "sweep.toml"


@app.command("sweep", cls=MakeCommand, epilog=epilog("sweep"))
@guarded
@make_options(DECIDE, RUN)
def sweep_command(
    targets: TargetsArg = None,
    pipeline: PipelineOpt = None,
    sweep_file: Annotated[
        Path | None,
        typer.Option(
            "--sweep",
            metavar="FILE",
            help="A sweep table in W&B's format (default: the pipeline folder's sweep.toml).",
        ),
    ] = None,
    grid: Annotated[
        list[str] | None,
        typer.Option(
            "--grid",
            metavar="STEP.PARAM=V1,V2",
            help="Sweep a grid instead of a file (repeat for more params).",
        ),
    ] = None,
    name: Annotated[
        str | None,
        typer.Option("--name", help="The sweep's name: its folder under out/sweeps/PIPELINE/."),
    ] = None,
    folds: Annotated[
        int | None,
        typer.Option(
            "--folds",
            metavar="K",
            help="Cross-validate: one variant per fold of the Data permanence (or the one "
            "component taking folds and fold); with --grid or --sweep, K folds of each.",
        ),
    ] = None,
    count: Annotated[
        int | None,
        typer.Option("--count", metavar="N", help="Run at most N variants (random: draw N)."),
    ] = None,
    seed: Annotated[int, typer.Option("--seed", help="Seed of the random method's draws.")] = 0,
    metric: Annotated[
        list[str] | None,
        typer.Option(
            "--metric",
            metavar="NAME",
            help="Show this metric in the table (repeat); the first ranks the variants "
            "when the sweep names no metric.",
        ),
    ] = None,
    goal: Annotated[
        str | None,
        typer.Option("--goal", help="minimize or maximize the metric (default: minimize)."),
    ] = None,
    wandb: Annotated[
        bool, typer.Option("--wandb", help="Let a W&B sweep agent choose and run the variants.")
    ] = False,
    logger: Annotated[
        str | None,
        typer.Option("--logger", metavar="NAME", help="Let this logger permanence run the sweep."),
    ] = None,
    json_: Annotated[bool, typer.Option("--json", help="Print the results as JSON.")] = False,
    set_: SetOpt = None,
    config: ConfigOpt = None,
    *,
    options: MakeOptions,
) -> None:
    """Make PIPELINE once per variant of a sweep; steps the swept params do not reach run once.

    Each variant's swept steps write under out/sweeps/PIPELINE/SWEEP/VARIANT/; its metrics
    (the numbers in those steps' JSON outputs) go to results.json and results.csv there.
    With -j N, up to N variants run at once, N steps in all, after the shared steps.
    """
    from tipi.config.project import locate_pipeline, require_project_root
    from tipi.sweep.runner import Sweep, sweep_logger
    from tipi.sweep.spec import grid_from_options, hyperparameter_sweep, load_sweep

    _handle_sigterm()
    if grid and sweep_file:
        raise UsageError("give either --grid or --sweep, not both")
    if wandb and logger:
        raise UsageError("give either --wandb or --logger, not both")
    if grid:
        spec = grid_from_options(grid, name)
    elif folds is not None and not sweep_file:
        spec = None  # --folds alone: only the folds, not the pipeline's sweep.toml
    else:
        root = require_project_root()
        _, pipeline_file = locate_pipeline(root, pipeline, None)
        file = sweep_file or pipeline_file.parent / SWEEP_FILE
        if file.exists() or sweep_file:
            spec = load_sweep(file, name)
        else:
            found = hyperparameter_sweep(pipeline_file, name)
            if found is None:
                raise UsageError(
                    f"no sweep to run: {file} does not exist",
                    hint="write a sweep table there, pass --sweep FILE, give a Hyperparameters "
                    "permanence a sweep param, or sweep a grid: --grid train.lr=0.001,0.01",
                )
            spec = found
    if folds is not None:
        spec = _folded(spec if grid or sweep_file else None, folds, name)
    spec = _ranked(spec, metric, goal)
    console = stderr()
    reporter = _reporter()
    sweep = Sweep(
        pipeline,
        spec,
        config=config,
        overrides=set_ or (),
        reporter=reporter,
        targets=targets or (),
        make_options=options,
        announce=lambda line: console.rule(f"[bold]{line}", align="left"),
        on_failure=lambda error: render_error(error, console, _state["debug"]),
    )
    sweep.resume = continue_command()
    # The ETA counts a step at its last time: in an earlier variant, as often as not.
    reporter.recorded = functools.partial(recorded_seconds, sweep.base.root, sweep.base.name)
    try:
        if wandb or logger:
            sweep.run_with(sweep_logger(sweep, logger, wandb))
        else:
            sweep.run(count, seed)
    finally:
        _show(sweep, metric or (), json_, options.dry_run)


def _folded(spec: SweepSpec | None, folds: int, name: str | None) -> SweepSpec:
    """`--folds K`: the folds alone, or K folds of each variant of a grid."""
    from tipi.sweep.spec import SweepSpec

    if folds < 2:
        raise UsageError(f"--folds must be 2 or more, not {folds}")
    if spec is None:
        return SweepSpec(name=name or f"{folds}-fold", method="folds", parameters={}, folds=folds)
    if spec.method not in ("grid", "folds"):
        raise UsageError(
            f"--folds combines with a grid sweep, not with method {spec.method!r}",
            hint="cross-validate a grid: --grid STEP.PARAM=V1,V2 --folds K",
        )
    return replace(spec, method="folds", folds=folds)


def _ranked(spec: SweepSpec, metrics: list[str] | None, goal: str | None) -> SweepSpec:
    """The spec with the metric and goal given on the command line, if any."""
    from tipi.sweep.spec import GOALS

    if goal is not None and goal not in GOALS:
        raise UsageError(f"--goal must be minimize or maximize, not {goal!r}")
    metric = spec.metric or (metrics[0] if metrics else "")
    return replace(spec, metric=metric, goal=goal or spec.goal)


def _show(sweep: Sweep, metrics: list[str] | tuple[str, ...], as_json: bool, dry_run: bool) -> None:
    results = sweep.results
    if not results.variants:
        return
    if as_json:
        stdout().print_json(json.dumps(results.to_json()))
        return
    key = results.metric_key()
    known = {k for v in results.variants for k in v.metrics}
    if key and known and key not in known:
        stderr().print(
            f"[yellow]warning:[/] no variant measured the metric '{key}'; "
            f"measured: {', '.join(sorted(known))}"
        )
    stdout().print(results.table(metrics))
    if not dry_run:
        where = sweep.folder.relative_to(sweep.base.root)
        stdout().print(f"results: {where}/results.json, {where}/results.csv")
