"""How long each step took when it last ran: the overall ETA of the live display counts the
steps still to run at these durations (tipi/report/rich_reporter.py MakeView)."""

from __future__ import annotations

from pathlib import Path

# The newest runs read for durations (a run of 20,000 steps takes 0.2 s to read, before the
# make starts): a step that has not run in these is counted as unknown.
RECENT_RUNS = 5


def recorded_seconds(root: Path, pipeline: str, steps: list[str]) -> dict[str, float]:
    """Each of `steps` → the seconds it took the last time it ran, from the run records
    (`tipi runs`); a step that never ran (in the recent runs) is left out."""
    from tipi.runs.store import RunStore

    found: dict[str, float] = {}
    wanted = set(steps)
    records = RunStore(root).records(pipeline)
    for _, record in zip(range(RECENT_RUNS), records, strict=False):
        for name, step in record.steps.items():
            seconds = step.seconds if step.outcome == "ran" else None
            if name in wanted and name not in found and seconds is not None and seconds >= 0:
                found[name] = float(seconds)
        if len(found) == len(wanted):
            break
    return found
