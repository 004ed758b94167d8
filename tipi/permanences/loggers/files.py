"""BasicLogger: plain files, a folder per run; and the reader `tipi report` uses."""

from __future__ import annotations

import json
import os
import re
import secrets
import time
from pathlib import Path
from typing import Any

from tipi.context import RunInfo
from tipi.permanences.loggers.base import (
    BaseLoggerManager,
    _safe,
    dumps,
    json_safe,
    redact,
    run_folder,
)

METRICS_FILE = "metrics.jsonl"
HPARAMS_FILE = "hparams.json"
_RUN_ID = re.compile(r"\d{8}-\d{6}-[0-9a-f]+")


class BasicLogger(BaseLoggerManager):
    """Files, one folder per run: `log_dir/<pipeline>/<run id>/` (a script's: `<project>`).

    In it `metrics.jsonl` (a JSON line per call: `run`, `step_name`, the global `step`,
    `time`, the metrics), `figures/NAME_STEP.png`, and `hparams.json` (the permanence
    configs; per step its type, params, logged hparams and final metrics; secrets hidden).

    Args:
        log_dir: the folder that holds the runs' folders.
    """

    def __init__(self, log_dir: Path = Path("logs")) -> None:
        super().__init__()
        self.log_dir = Path(log_dir)
        self.folder: Path | None = None  # the current run's
        self._file: Any = None

    def initialize(self) -> None:
        self.log_dir.mkdir(parents=True, exist_ok=True)

    def _begin(self, run: RunInfo) -> None:
        folder = run_folder(self.log_dir, run)
        if folder != self.folder:
            self._close()
            (folder / "figures").mkdir(parents=True, exist_ok=True)
            self._file = open(folder / METRICS_FILE, "a", encoding="utf-8")  # noqa: SIM115
            self.folder = folder
        self._write_hparams(run)

    def _end(self, run: RunInfo) -> None:
        self._write_hparams(run)

    def _log_metrics(self, metrics: dict[str, float], step: int) -> None:
        run = self.run_info
        assert run is not None
        record: dict[str, Any] = {"run": run.id}
        if run.step:
            record["step_name"] = run.step
        record.update(step=step, time=time.time(), **json_safe(metrics))
        self._file.write(json.dumps(record) + "\n")
        self._file.flush()

    def _log_figure(self, name: str, figure: Any, step: int) -> None:
        assert self.folder is not None
        path = self.folder / "figures" / f"{_safe(name)}_{step}.png"
        n = 1
        while path.exists():
            n += 1
            path = path.with_name(f"{_safe(name)}_{step}_{n}.png")
        figure.savefig(path)

    def _log_hparams(self, hparams: dict[str, Any], metrics: dict[str, float]) -> None:
        assert self.run_info is not None
        self._write_hparams(self.run_info)

    def _write_hparams(self, run: RunInfo) -> None:
        assert self.folder is not None
        path = self.folder / HPARAMS_FILE
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError):
            data = {}
        data.update(run=run.id, pipeline=run.pipeline)
        if run.permanences:
            data["permanences"] = redact({k: dict(v) for k, v in run.permanences.items()})
        data.setdefault("steps", {})[run.step or "main"] = {
            "type": run.step_type,
            "params": redact(dict(run.params)),
            "hparams": self.hparams,
            "metrics": json_safe(self.final_metrics),
        }
        tmp = path.with_name(f".{path.name}.tipi-{secrets.token_hex(4)}.tmp")
        tmp.write_text(dumps(data) + "\n")
        os.replace(tmp, path)  # readers (and other workers of a -j make) see it whole

    def _close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None

    def _finish(self) -> None:
        self._close()


def read_metrics(log_dir: Path, pipeline: str = "") -> list[dict[str, Any]]:
    """Every record BasicLoggers with this `log_dir` wrote for `pipeline`, run after run
    (oldest first: run ids sort by start time). Reads `<pipeline>/<run>/metrics.jsonl`, runs
    that did not know their pipeline (`<run>/metrics.jsonl`) and the one file older versions
    appended to (`metrics.jsonl`)."""
    log_dir = Path(log_dir)
    runs = [p for p in log_dir.glob(f"*/{METRICS_FILE}") if _RUN_ID.fullmatch(p.parent.name)]
    if pipeline:
        runs += list((log_dir / _safe(pipeline)).glob(f"*/{METRICS_FILE}"))
    files = sorted(runs, key=lambda p: p.parent.name)
    if (log_dir / METRICS_FILE).is_file():
        files.insert(0, log_dir / METRICS_FILE)
    rows = []
    for path in files:
        rows += [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return rows
