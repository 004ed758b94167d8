"""Builds the PipelineView of a pipeline: a dry run's decisions plus what the last runs left."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from tipi.engine import Engine, MakeOptions
from tipi.report.groups import fold_reasons
from tipi.report.views import PipelineView, StepView
from tipi.state.failures import load_failures
from tipi.state.store import TraceStore


def overview(
    engine: Engine,
    targets: Sequence[str] = (),
    metrics: bool = False,
    options: MakeOptions | None = None,
) -> PipelineView:
    """Every needed step's state ("up-to-date", "will-run", "failed" last time, "never-run"),
    reasons, last run and duration; with `metrics`, the metrics BasicLoggers wrote."""
    plan = engine.load(save=False)
    statuses = {s.name: s for s in engine.status(targets, options)}
    traces = TraceStore(engine.layout.traces_file).traces
    failures = load_failures(engine.layout.failures_file, engine.reporter.warning)
    steps = []
    for name in plan.order:
        if name not in statuses:
            continue
        status, trace, failure = statuses[name], traces.get(name), failures.get(name)
        if status.status == "up-to-date":
            state = "up-to-date"
        elif failure is not None:
            state = "failed"
        else:
            state = "never-run" if trace is None else "will-run"
        planned = plan.steps[name]
        steps.append(
            StepView(
                name=name,
                type=planned.type,
                state=state,
                reasons=fold_reasons(status.reasons),
                inputs=tuple(planned.inputs.values()),
                outputs=tuple(planned.outputs.values()),
                last_run=(failure or {}).get("at") or (trace.finished if trace else None),
                duration=(failure or {}).get("seconds")
                if failure
                else (trace.seconds if trace else None),
                error=(failure or {}).get("error"),
            )
        )
    names = {s.name for s in steps}
    edges = tuple(
        (p, n) for n in plan.order if n in names for p in plan.predecessors[n] if p in names
    )
    found = _logged_metrics(engine) if metrics else {}
    return PipelineView(engine.name, tuple(steps), edges, found)


def _logged_metrics(engine: Engine) -> dict[str, list[dict[str, Any]]]:
    """What each BasicLogger permanence logged for this pipeline, every run in order, by
    permanence name."""
    from tipi.permanences.loggers import BasicLogger, read_metrics

    resolved = engine.planner.resolve()
    found = {}
    for name, permanence in resolved.permanences.items():
        if issubclass(permanence.cls, BasicLogger):
            rows = read_metrics(Path(permanence.params.get("log_dir", "logs")), engine.name)
            if rows:
                found[name] = rows
    return found
