"""What BasicLoggers wrote, run by run, read back for `tipi report`.

A BasicLogger writes a folder per run, `log_dir/<pipeline>/<run id>/` (`log_dir/<run id>/`
for a run that did not know its pipeline): `metrics.jsonl` (a line per call, with the step
that logged it), `hparams.json` (per step: type, params, final metrics) and
`figures/NAME_STEP.png`. A line or file that cannot be read is left out.
"""

from __future__ import annotations

import base64
import calendar
import json
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tipi.context import RunInfo
from tipi.permanences.loggers.base import run_folder
from tipi.permanences.loggers.files import HPARAMS_FILE, METRICS_FILE
from tipi.report.experiments import Curve, Figure
from tipi.runs.record import RunRecord, StepRun, is_number, plain

RUN_ID = re.compile(r"\d{8}-\d{6}-[0-9a-f]+")
FIGURE = re.compile(r"(?P<name>.+?)_(?P<step>\d+)(?:_\d+)?\.png")
MAX_LOG_BYTES = 256 << 20
MAX_FIGURE_BYTES = 4 << 20  # a larger image is left out of the report
SKIP = ("run", "step_name", "step", "time", "epoch")  # what a log line holds besides metrics


@dataclass
class Logged:
    """One run's logger folder.

    Attributes:
        rows: the metrics.jsonl records by the step that logged them ("main" when none),
            in the order they were written.
        hparams: hparams.json.
        figures: (name, global step, path) of each figure.
    """

    id: str
    rows: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    hparams: dict[str, Any] = field(default_factory=dict)
    figures: list[tuple[str, int, Path]] = field(default_factory=list)

    def hparams_steps(self) -> dict[str, dict[str, Any]]:
        steps = self.hparams.get("steps")
        if not isinstance(steps, dict):
            return {}
        return {k: v for k, v in steps.items() if isinstance(v, dict)}

    def step_at(self, at: int) -> str:
        """The step that logged global step `at`: the one that wrote the last record at or
        before it (a figure logged without a step takes the step of the last record)."""
        best, found = -1, ""
        for name, rows in self.rows.items():
            for row in rows:
                step = row.get("step")
                if isinstance(step, int) and best < step <= at:
                    best, found = step, name
        if not found and len(self.hparams_steps()) == 1:
            return next(iter(self.hparams_steps()))
        return found


def logged_runs(log_dirs: list[Path], pipeline: str) -> dict[str, Logged]:
    """Every run folder under `log_dirs` for `pipeline`, by run id (the first folder found
    for an id)."""
    found: dict[str, Logged] = {}
    for log_dir in log_dirs:
        mine = run_folder(log_dir, RunInfo("x", pipeline, "", "")).parent
        for parent in dict.fromkeys((mine, log_dir)):
            for folder in _folders(parent):
                if RUN_ID.fullmatch(folder.name) and folder.name not in found:
                    logged = read_folder(folder)
                    other = logged.hparams.get("pipeline")
                    if other and other != pipeline:  # another pipeline's run
                        continue
                    if logged.rows or logged.hparams or logged.figures:
                        found[folder.name] = logged
    return found


def read_folder(folder: Path) -> Logged:
    logged = Logged(folder.name)
    for row in _rows(folder / METRICS_FILE):
        name = row.get("step_name")
        logged.rows.setdefault(name if isinstance(name, str) and name else "main", []).append(row)
    try:
        hparams = json.loads((folder / HPARAMS_FILE).read_text())
    except (OSError, ValueError):
        hparams = {}
    logged.hparams = hparams if isinstance(hparams, dict) else {}
    for path in _folders(folder / "figures", files=True):
        match = FIGURE.fullmatch(path.name)
        if match:
            logged.figures.append((match["name"], int(match["step"]), path))
    return logged


def curves(logged: Logged | None, step: str) -> list[Curve]:
    """Each scalar `step` logged in the run, over its epochs (else its global steps); a value
    logged twice at one x counts once, the later one."""
    rows = logged.rows.get(step, []) if logged else []
    x_key = "epoch" if rows and all(is_number(r.get("epoch")) for r in rows) else "step"
    series: dict[str, dict[float, float]] = {}
    for i, row in enumerate(rows):
        x = row.get(x_key, i + 1)
        if not is_number(x):
            continue
        for key, value in numbers(row).items():
            series.setdefault(key, {})[float(x)] = float(value)
    return [
        Curve(metric, step, x_key, tuple(sorted(points.items())))
        for metric, points in series.items()
    ]


def figures(logged: Logged | None, step: str) -> list[Figure]:
    """The figures `step` logged in the run, the last of each name, as data URIs."""
    if logged is None:
        return []
    newest: dict[str, Path] = {}
    for name, at, path in sorted(logged.figures, key=lambda f: f[1]):
        if logged.step_at(at) == step:
            newest[name] = path
    found = []
    for name, path in newest.items():
        try:
            if path.stat().st_size > MAX_FIGURE_BYTES:
                continue
            data = base64.b64encode(path.read_bytes()).decode("ascii")
        except OSError:
            continue
        found.append(Figure(name, step, f"data:image/png;base64,{data}"))
    return found


def from_logs(logged: Logged) -> RunRecord:
    """A record made up from what a run logged, for a run the make did not record: each step
    that logged "ran", with the params and final metrics of hparams.json (else the last
    value of each scalar); status "logged"."""
    steps = {}
    for name in {**logged.hparams_steps(), **logged.rows}:
        hp = logged.hparams_steps().get(name, {})
        last = {k: v for row in logged.rows.get(name, []) for k, v in numbers(row).items()}
        final = hp.get("metrics") if isinstance(hp.get("metrics"), dict) else last
        steps[name] = StepRun(
            type=str(hp.get("type") or ""),
            params=plain(hp.get("params") if isinstance(hp.get("params"), dict) else {}),
            outcome="ran",
            logged=numbers(final or {}),
        )
    return RunRecord(logged.id, "", started_of(logged.id), status="logged", steps=steps)


def numbers(row: dict[str, Any]) -> dict[str, float]:
    """The metrics of a log line: its finite numbers but the step, time, epoch."""
    return {k: v for k, v in row.items() if k not in SKIP and is_number(v)}


def started_of(run: str) -> float:
    """When a run started, from its id (`YYYYMMDD-HHMMSS-...`, UTC); 0 when it says not."""
    try:
        return float(calendar.timegm(time.strptime(run[:15], "%Y%m%d-%H%M%S")))
    except ValueError:
        return 0.0


def _rows(path: Path) -> list[dict[str, Any]]:
    try:
        if path.stat().st_size > MAX_LOG_BYTES:
            return []
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return []
    rows = []
    for line in text.splitlines():
        try:
            row = json.loads(line)
        except ValueError:  # a line being written, or damaged
            continue
        if isinstance(row, dict):
            rows.append(row)
    return rows


def _folders(folder: Path, files: bool = False) -> list[Path]:
    try:
        return sorted(p for p in folder.iterdir() if (p.is_file() if files else p.is_dir()))
    except OSError:
        return []
