"""Runs (`tipi runs`, `tipi diff`, `tipi show`): every make that runs or restores a step is
recorded under `.tipi_cache/runs/` with its command line, git commit, steps, resolved params,
permanence configs and metrics.

The make session records through `RunRecorder` (recorder.py); the CLI reads through
`RunStore` (store.py) and compares with `diff_runs` (diff.py).
"""

from __future__ import annotations

from tipi.runs.diff import Change, RunDiff, diff_runs
from tipi.runs.record import RunRecord, StepRun
from tipi.runs.recorder import RunRecorder
from tipi.runs.store import RunStore

__all__ = ["Change", "RunDiff", "RunRecord", "RunRecorder", "RunStore", "StepRun", "diff_runs"]
