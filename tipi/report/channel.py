"""Progress bars of a step running in a worker (`-j N`, Dask), forwarded to the driver's display.

The worker's ProgressManagers describe their open bars in a side file beside the step's log,
`<logs>/<step>.progress.json`, rewritten whole (write, then rename) at most every
FLUSH_SECONDS and whenever a bar closes:

    {"version": 1, "run": "<the make's run id>",
     "rows": [{"key": "…", "parent": "…" | null, "label": "train: epochs", "n": 2,
               "total": 3, "status": "loss 0.31", "unit": "it", "unit_scale": false,
               "unit_divisor": 1000, "slot": 0, "colour": null, "done": false}, …]}

Rows come parents first; `done` marks a finished bar kept on screen (tqdm's `leave`). The
driver reads the file at each poll of its running steps and mirrors the rows under the step's
row of its display; a file of another run (a stale one) is ignored. Without a live display
nothing is read, and the worker's plain `[progress]` lines in its log are what is shown.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

from tipi.report.live import LiveProgress

ENV_PATH = "TIPI_PROGRESS_CHANNEL"
ENV_RUN = "TIPI_PROGRESS_RUN"
FLUSH_SECONDS = 0.2
VERSION = 1


def path_for(log: str) -> Path:
    """The side file of the step whose output goes to `log`."""
    return Path(log).with_suffix(".progress.json")


def worker_env(log: str, run: str) -> dict[str, str]:
    """What a worker sets while it runs the step of `log`, for its bars to be forwarded."""
    return {ENV_PATH: str(path_for(log)), ENV_RUN: run} if log else {}


class Writer:
    """The worker's side: the rows of every open bar of this process, flushed to the file."""

    def __init__(self, path: str, run: str) -> None:
        self.path, self.run = Path(path), run
        self.rows: dict[str, dict[str, Any]] = {}
        self.last = 0.0
        self.dirty = False

    def put(self, key: str, row: dict[str, Any], force: bool = False) -> None:
        if key not in self.rows and row.get("slot") is not None:
            for other, old in list(self.rows.items()):  # a kept bar gives its place up
                if old["done"] and (old["parent"], old["slot"]) == (row["parent"], row["slot"]):
                    del self.rows[other]
        self.rows[key] = {"key": key, **row}
        self.dirty = True
        self.flush(force)

    def drop(self, key: str) -> None:
        if self.rows.pop(key, None) is not None:
            self.dirty = True
            self.flush(force=True)

    def flush(self, force: bool = False) -> None:
        now = time.monotonic()
        if not self.dirty or (not force and now - self.last < FLUSH_SECONDS):
            return
        document = {"version": VERSION, "run": self.run, "rows": list(self.rows.values())}
        temp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        try:
            temp.write_text(json.dumps(document))
            os.replace(temp, self.path)
        except OSError:
            return  # progress is a courtesy: a full disk must not fail the step
        self.last, self.dirty = now, False


_writer: Writer | None = None


def writer() -> Writer | None:
    """This worker's writer while it runs a step for a driver, else None."""
    global _writer
    path = os.environ.get(ENV_PATH)
    if not path:
        return None
    run = os.environ.get(ENV_RUN, "")
    if _writer is None or (str(_writer.path), _writer.run) != (path, run):
        _writer = Writer(path, run)
    return _writer


class _Mirror:
    """The driver's side for one running step: the worker's rows as rows of the display."""

    def __init__(self, step: str, path: Path, run: str) -> None:
        self.step, self.path, self.run = step, path, run
        self.ids: dict[str, Any] = {}
        self.kept: set[str] = set()
        self.stamp: tuple[int, int] | None = None

    def poll(self, board: Any) -> None:
        try:
            stat = self.path.stat()
        except OSError:
            return
        stamp = (stat.st_mtime_ns, stat.st_size)
        if stamp == self.stamp:
            return
        try:
            document = json.loads(self.path.read_text())
            rows = document["rows"] if document.get("run") == self.run else None
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            return
        if not isinstance(rows, list):
            return
        self.stamp = stamp
        self._apply(board, [r for r in rows if isinstance(r, dict) and "key" in r])

    def _apply(self, board: Any, rows: list[dict[str, Any]]) -> None:
        root = board.step_row(self.step)
        if root is None:
            root = board.open_step(self.step)
        seen = set()
        for row in rows:
            key = str(row["key"])
            seen.add(key)
            shown = {
                "completed": row.get("n") or 0,
                "description": str(row.get("label", "")),
                "status": str(row.get("status") or ""),
            }
            if row.get("total") is not None:
                shown["total"] = row["total"]
            if key not in self.ids:
                self.ids[key] = board.add_row(
                    shown.pop("description"),
                    parent=self.ids.get(str(row.get("parent")), root),
                    slot=row.get("slot"),
                    unit=row.get("unit", "it"),
                    unit_scale=row.get("unit_scale", False),
                    unit_divisor=row.get("unit_divisor", 1000),
                    colour=row.get("colour"),
                    **shown,
                )
            else:
                board.set_row(self.ids[key], **shown)
            if row.get("done") and key not in self.kept:
                self.kept.add(key)
                board.close_row(self.ids[key], keep=True)
        for key in [k for k in self.ids if k not in seen]:
            board.drop(self.ids.pop(key))
            self.kept.discard(key)


_mirrors: dict[str, _Mirror] = {}


def show(step: str, log: str, run: str) -> None:
    """The driver's poll of a running step: its worker's bars onto the display, if any."""
    board = LiveProgress.current()
    if board is None or not log:
        return
    mirror = _mirrors.get(step)
    if mirror is None:
        mirror = _mirrors[step] = _Mirror(step, path_for(log), run)
    mirror.poll(board)


def forwarded(step: str) -> bool:
    """Whether the running `step`'s bars are on the display (its plain lines are redundant)."""
    mirror = _mirrors.get(step)
    return mirror is not None and bool(mirror.ids or mirror.stamp)


def finish(step: str) -> None:
    """The step ended: one last read, so that its bars show their final counts."""
    mirror = _mirrors.pop(step, None)
    board = LiveProgress.current()
    if mirror is not None and board is not None:
        mirror.poll(board)
