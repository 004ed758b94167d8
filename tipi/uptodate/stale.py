"""Stale inputs: a step reading a file that an earlier run of a step made, and that no step of
the plan makes any more (attack report, item 4).

When a step's outputs move (a matrix key added, an output renamed, a step removed), the files it
made before stay on disk. A step still reading one of the old paths finds it there, so nothing
says the path is wrong: it reads a leftover, never remade, as if it were a source. The traces
know which files tipi made: an input that no step of the plan produces, whose path a trace
names as an output and whose content is still what that run wrote, gets a warning when the plan
is made. A warning, not a refusal: a project may keep a removed step's output as a source on
purpose (once edited, it is the user's, and the warning stops).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any


def stale_inputs(
    steps: Iterable[Any], producers: Mapping[str, str], traces_file: Path, root: Path
) -> list[str]:
    """One message per input of `steps` (planning.PlannedStep) that no step produces
    (`producers`: the plan's path → step) and that the traces in `traces_file` say a run
    made, its content unchanged since."""
    unproduced = {
        path: (step.name, key)
        for step in steps
        for key, path in step.inputs.items()
        if path not in producers
    }
    if not unproduced or not traces_file.exists():
        return []  # no trace is read for a pipeline all of whose inputs a step makes
    from tipi.identity.hashing import StatCache
    from tipi.state.store import TraceStore

    with TraceStore(traces_file) as store:
        traces = store.traces
    hashes = StatCache()
    messages = []
    for maker, trace in sorted(traces.items()):
        for path, digest in trace.outputs.items():
            reader = unproduced.get(path)
            if reader is None or digest is None:
                continue
            full = path if path.startswith("/") else f"{root}/{path}"
            if hashes.hash_path(full) != digest:
                continue  # changed since: the user's file now
            step, key = reader
            messages.append(
                f"input '{key}' of step '{step}' ({path}) was made by an earlier run of step "
                f"'{maker}', which no longer makes it: it is stale and will not be remade"
            )
            del unproduced[path]
    return messages


def warn_stale_inputs(plan: Any, root: Path, warn: Callable[[str], None]) -> None:
    """Warn about each stale input of a new plan (planning.Plan), with what to do."""
    from tipi.state.layout import Layout

    traces_file = Layout(root, plan.pipeline).traces_file
    for message in stale_inputs(plan.steps.values(), plan.producers, traces_file, root):
        warn(f"{message} (point it at what a step makes now, or delete the file)")
