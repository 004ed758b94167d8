"""What `tipi report` shows of a pipeline's runs, read from the run records (`tipi runs`) and
the folders BasicLoggers write (a folder per run: metrics.jsonl, hparams.json, figures/).

Each run's curves are read from its own folder, never joined with another run's. A step a run
restored from the run cache shows the curves of the run that ran it, and the view of the
outputs in place those of the runs that made them (sources.py says which).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tipi.cli.logged import SKIP, curves, figures, logged_runs
from tipi.cli.sources import Runs
from tipi.errors import UsageError
from tipi.report.experiments import (
    COMPARE,
    IN_PLACE,
    Curve,
    Experiments,
    Figure,
    RunRow,
    RunView,
)
from tipi.runs.record import RunRecord, flat_params, is_number

if TYPE_CHECKING:
    from tipi.engine import Engine
    from tipi.report.views import PipelineView

MAX_RUNS = 12  # runs listed (and given a view) unless named with --runs
MAX_COMPARE = 4  # runs overlaid by default
MAX_OUTPUT_BYTES = 16 << 20
KEY_WORDS = ("accuracy", "f1", "score", "auc", "loss", "error", "precision", "recall", "mse")
SHOWN = ("ran", "restored", "failed", "interrupted", "running")  # a run view's steps


def collect(engine: Engine, view: PipelineView, refs: Sequence[str] = ()) -> Experiments:
    """The runs table and views of `engine`'s pipeline (see `build`)."""
    from tipi.runs.store import RunStore
    from tipi.state.store import TraceStore

    warn: Callable[[str], None] = engine.reporter.warning
    log_dirs = _log_dirs(engine)
    runs = Runs(
        records={r.id: r for r in RunStore(engine.root, warn).records(engine.name)},
        logged=logged_runs(log_dirs, engine.name),
        traces={n: t.params for n, t in TraceStore(engine.layout.traces_file).traces.items()},
    )
    notes = []
    if not log_dirs:
        notes.append(
            "No BasicLogger permanence: runs have no curves here (declare one, and name it in "
            "the steps' `loggers`)."
        )
    elif not runs.records and runs.logged:
        notes.append(
            "No run records (.tipi_cache/runs): runs are read from the loggers' folders only."
        )
    return build(runs, view, refs, engine.root, notes)


def build(
    runs: Runs, view: PipelineView, refs: Sequence[str], root: Path, notes: Sequence[str] = ()
) -> Experiments:
    """The runs table (the MAX_RUNS newest runs, those of `refs` and those that made the
    outputs in place) and the picker's views: the outputs in place (unless one run made them
    all: its view says so), a view overlaying `refs` (two or more; else the MAX_COMPARE newest
    runs that logged curves), one per run. The picker shows first the overlay of `refs`, the one run
    of `refs`, or the outputs in place.

    Raises:
        UsageError: a ref names no run, or several.
    """
    experiments = Experiments(notes=list(notes))
    if not runs.preds:
        runs.preds = {s.name: [a for a, b in view.edges if b == s.name] for s in view.steps}
    chosen = [_find(runs.ids, ref) for ref in refs]
    ids = runs.ids
    in_place = {s.name: runs.in_place(s.name) for s in view.steps}
    sources = list(dict.fromkeys(r for r in in_place.values() if r))
    wanted = {*ids[:MAX_RUNS], *chosen, *sources}
    listed = [run for run in ids if run in wanted]
    experiments.rows = [_row(runs, run) for run in listed]
    views = {run: _run_view(runs, run) for run in listed}
    current = _in_place_view(runs, view, in_place, root)
    if len(sources) == 1:
        views[sources[0]].title += " (outputs in place)"
        views[sources[0]].confusion = current.confusion
    elif sources:
        experiments.views.append(current)
    logging = [r for r in listed if r in runs.logged and runs.logged[r].rows]
    overlaid = chosen or logging[:MAX_COMPARE]  # by default, runs that logged curves
    if len(overlaid) > 1:
        experiments.views.append(_compare(overlaid, views))
    experiments.views += list(views.values())
    if len(chosen) > 1:
        experiments.selected = COMPARE
    elif chosen:
        experiments.selected = chosen[0]
    elif sources:
        experiments.selected = sources[0] if len(sources) == 1 else IN_PLACE
    elif listed:
        experiments.selected = listed[0]
    return experiments


def _log_dirs(engine: Engine) -> list[Path]:
    from tipi.permanences.loggers import BasicLogger

    found = []
    for permanence in engine.planner.resolve().permanences.values():
        if isinstance(permanence.cls, type) and issubclass(permanence.cls, BasicLogger):
            folder = Path(permanence.params.get("log_dir", "logs"))
            found.append(folder if folder.is_absolute() else engine.root / folder)
    return list(dict.fromkeys(found))


def _find(ids: list[str], ref: str) -> str:
    """The run `ref` names: its id, a unique prefix, or a unique end (the charts name runs
    by the end of their id)."""
    if ref in ids:
        return ref
    found = [run for run in ids if run.startswith(ref)] or [r for r in ids if r.endswith(ref)]
    if len(found) == 1:
        return found[0]
    if not found:
        raise UsageError(f"no run {ref!r} of this pipeline", hint="`tipi runs` lists the runs")
    raise UsageError(
        f"run id {ref!r} is ambiguous: {len(found)} runs start with it "
        f"({', '.join(found[:5])}); give more of it"
    )


def _run_view(runs: Runs, run: str) -> RunView:
    record = runs.record(run)
    view = RunView(run, f"run {run}", runs=[run])
    shown: list[Curve] = []
    metrics = {**record.metrics()}
    for name, step in record.steps.items():
        if step.outcome not in SHOWN:
            continue
        source = runs.source(run, name)
        if source != run:
            view.notes.append(
                f"{name} was restored from the run cache: "
                + (
                    f"its curves are those of run {source}, which ran it."
                    if source
                    else "the run that ran it is not known, so it has no curves here."
                )
            )
        if source is not None:
            shown += curves(runs.logged.get(source), name)
            view.figures += figures(runs.logged.get(source), name)
            logged = runs.record(source).steps.get(name, step).logged
            metrics.update({f"{name}.{k}": v for k, v in logged.items() if k not in SKIP})
    view.curves = {run: shown}
    view.params = {run: {**record.params(), **_permanence_params(record)}}
    view.metrics = {run: dict(sorted(metrics.items()))}
    return view


def _in_place_view(
    runs: Runs, pipeline: PipelineView, in_place: dict[str, str | None], root: Path
) -> RunView:
    view = RunView(IN_PLACE, "outputs in place")
    shown: list[Curve] = []
    params: dict[str, Any] = {}
    metrics: dict[str, float] = {}
    made = []
    for step in pipeline.steps:
        params.update(flat_params(step.name, runs.traces.get(step.name) or {}))
        source = in_place.get(step.name)
        if source is None:
            continue
        made.append(f"{step.name} by {source}")
        shown += curves(runs.logged.get(source), step.name)
        view.figures += figures(runs.logged.get(source), step.name)
        found = runs.record(source).steps[step.name]
        values = {**found.logged, **found.metrics}
        metrics.update({f"{step.name}.{k}": v for k, v in values.items() if k not in SKIP})
        if view.runs.count(source) == 0:
            view.runs.append(source)
    if made:
        view.notes.append("Made by run: " + ", ".join(made) + ".")
    view.curves = {IN_PLACE: shown}
    view.params = {IN_PLACE: params}
    view.metrics = {IN_PLACE: dict(sorted(metrics.items()))}
    view.confusion = _confusion(pipeline, root)
    return view


def _compare(overlaid: list[str], views: dict[str, RunView]) -> RunView:
    shown = [views[r] for r in overlaid]
    return RunView(
        COMPARE,
        "compare " + ", ".join(overlaid),
        curves={v.id: v.curves[v.id] for v in shown},
        figures=[Figure(f.name, f"{v.id} {f.step}", f.uri) for v in shown for f in v.figures],
        params={v.id: v.params[v.id] for v in shown},
        metrics={v.id: v.metrics[v.id] for v in shown},
        runs=list(overlaid),
    )


def _confusion(pipeline: PipelineView, root: Path) -> list[list[float]] | None:
    """A `confusion_matrix` (a square list of lists of numbers) in a JSON output in place."""
    for step in pipeline.steps:
        for output in step.outputs:
            path = Path(output) if Path(output).is_absolute() else root / output
            if path.suffix != ".json":
                continue
            try:
                if path.stat().st_size > MAX_OUTPUT_BYTES:
                    continue
                data = json.loads(path.read_text())
            except (OSError, ValueError):
                continue
            matrix = data.get("confusion_matrix") if isinstance(data, dict) else None
            if (
                isinstance(matrix, list)
                and matrix
                and all(isinstance(r, list) and len(r) == len(matrix) for r in matrix)
                and all(is_number(v) for r in matrix for v in r)
            ):
                return matrix
    return None


def _row(runs: Runs, run: str) -> RunRow:
    from tipi.cli.runs_view import when
    from tipi.runs.diff import changed_since

    record = runs.record(run)
    older = runs.older(run)
    changes = changed_since(runs.record(older[0]), record) if older else []
    changed = ", ".join(f"{c.key} {_text(c.old)}→{_text(c.new)}" for c in changes[:3])
    if len(changes) > 3:
        changed += f", +{len(changes) - 3} more"
    from tipi.report.groups import fold_names

    ran = ", ".join(fold_names(record.ran))  # a step matrix's instances: `train ×6`
    for outcome in ("restored", "failed", "interrupted"):
        if names := fold_names(record.with_outcome(outcome)):
            ran += ("; " if ran else "") + f"{outcome}: {', '.join(names)}"
    commit = (record.commit or "")[:8] + ("*" if record.dirty else "")
    return RunRow(
        id=run,
        when=when(record.started),
        status="" if record.status == "logged" else record.shown_status,
        commit=commit or "-",
        ran=ran or "-",
        changed=changed or ("-" if not older else "same"),
        metrics=", ".join(f"{k} {_text(v)}" for k, v in _key_metrics(record)) or "-",
    )


def _key_metrics(record: RunRecord, limit: int = 3) -> list[tuple[str, float]]:
    metrics = list((record.metrics() or record.logged()).items())
    keyed = [kv for kv in metrics if any(w in kv[0].rsplit(".", 1)[-1] for w in KEY_WORDS)]
    return (keyed + [kv for kv in metrics if kv not in keyed])[:limit]


def _permanence_params(record: RunRecord) -> dict[str, Any]:
    return {
        k: v
        for name, params in record.permanences().items()
        for k, v in flat_params(f"permanences.{name}", params).items()
    }


def _text(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.4g}"
    return value if isinstance(value, str) else json.dumps(value)
