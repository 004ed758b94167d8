"""The runs of a project: one msgpack file per run, `.tipi_cache/runs/<pipeline>/<id>.msgpack`.

A run's file is replaced whole on every write (tipi.atomic), so a reader sees a whole record
or none. A damaged file is reported once and skipped: `tipi runs` shows the others.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterator
from pathlib import Path

from tipi.atomic import atomic_write
from tipi.errors import UsageError
from tipi.paths import is_name
from tipi.runs.record import RunRecord
from tipi.state.layout import Layout, cache_of, runs_folder
from tipi.state.statefile import BrokenState, state_bytes, warn_broken

Warn = Callable[[str], None]
SUFFIX = ".msgpack"
MAX_RUN_BYTES = 16 << 20  # a run of thousands of steps is a few MiB
# What a run id may be (tipi.runid makes `YYYYMMDD-HHMMSS-xxxx`): safe as a file name.
ID_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,99}")
# A run id's part that orders runs: its time stamp (to the second).
_STAMP = re.compile(r"\d{8}-\d{6}")


class RunStore:
    """Read and write the run records of the project at `root`.

    Attributes:
        warn: hears about each damaged run file (it is then skipped).
    """

    def __init__(self, root: Path, warn: Warn | None = None) -> None:
        self.root = root
        self.folder = runs_folder(cache_of(root))
        self.warn: Warn = warn or (lambda text: None)

    def path(self, pipeline: str, run_id: str) -> Path:
        if not ID_PATTERN.fullmatch(run_id):
            raise ValueError(f"{run_id!r} is not a run id")
        return Layout(self.root, pipeline).runs_dir / f"{run_id}{SUFFIX}"

    def write(self, record: RunRecord, durable: bool = True) -> None:
        """Replace the run's file with `record` (creating its folder)."""
        path = self.path(record.pipeline, record.id)
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(path, record.encode(), durable=durable)

    def read(self, path: Path) -> RunRecord | None:
        """The run in `path`; None, with one warning, when the file is damaged or holds
        another run than its name says."""
        try:
            size = os.lstat(path).st_size if os.path.lexists(path) else 0
            if size > MAX_RUN_BYTES:
                raise BrokenState(f"is larger than {MAX_RUN_BYTES >> 20} MiB: no run is")
            raw = state_bytes(path)
            if raw is None:
                return None
            record = RunRecord.decode(raw)
            if record.id != path.name.removesuffix(SUFFIX) or record.pipeline != path.parent.name:
                raise BrokenState(f"holds run {record.id!r} of pipeline {record.pipeline!r}")
        except BrokenState as broken:
            warn_broken(self.warn, path, str(broken), "run", "skipped")
            return None
        return record

    def files(self, pipeline: str | None = None) -> list[Path]:
        """The run files (of `pipeline`, else of every pipeline), newest id first."""
        if pipeline is not None and not is_name(pipeline):
            return []  # a name, never a path
        if pipeline:
            folders = [f for f in [Layout(self.root, pipeline).runs_dir] if not f.is_symlink()]
        else:
            folders = _folders(self.folder, self.warn)
        found = [
            path
            for folder in folders
            for path in _entries(folder, self.warn)
            if path.name.endswith(SUFFIX) and ID_PATTERN.fullmatch(path.name[: -len(SUFFIX)])
        ]
        return sorted(found, key=lambda p: (p.name, p.parent.name), reverse=True)

    def records(self, pipeline: str | None = None) -> Iterator[RunRecord]:
        """The runs (of `pipeline`), newest first: by id, and by start time among runs that
        started in the same second. Damaged files are reported and skipped."""
        group: list[Path] = []
        stamp: str | None = None
        for path in self.files(pipeline):
            # A file holds the run its name says (read() checks): its stamp is known unread,
            # so the newest run costs one file read, not two (a 20,000-step run's is 0.2 s).
            found = _stamp(path.name.removesuffix(SUFFIX))
            if group and found != stamp:
                yield from self._newest_first(group)
                group = []
            group.append(path)
            stamp = found
        yield from self._newest_first(group)

    def _newest_first(self, paths: list[Path]) -> list[RunRecord]:
        """The runs in `paths` (of one second), by start time then id, newest first."""
        found = [r for r in map(self.read, paths) if r is not None]
        return sorted(found, key=lambda r: (r.started, r.id), reverse=True)

    def find(self, ref: str, pipeline: str | None = None) -> RunRecord:
        """The run whose id is `ref` or starts with it (like a git commit).

        Raises:
            UsageError: no run, several runs or only a damaged file match.
        """
        if not ID_PATTERN.fullmatch(ref):
            raise UsageError(f"{ref!r} is not a run id (`tipi runs` lists the runs)")
        paths = [p for p in self.files(pipeline) if p.name.startswith(ref)]
        exact = [p for p in paths if p.name == f"{ref}{SUFFIX}"]
        paths = exact or paths
        where = f" of pipeline '{pipeline}'" if pipeline else ""
        if not paths:
            raise UsageError(f"no run {ref!r}{where} (`tipi runs` lists the runs)")
        if len(paths) > 1:
            ids = ", ".join(p.name.removesuffix(SUFFIX) for p in paths[:5])
            more = f" and {len(paths) - 5} more" if len(paths) > 5 else ""
            raise UsageError(
                f"run id {ref!r} is ambiguous: {len(paths)} runs start with it "
                f"({ids}{more}); give more of it"
            )
        record = self.read(paths[0])
        if record is None:
            raise UsageError(f"run {ref!r} cannot be read (its file is damaged)")
        return record


def _folders(folder: Path, warn: Warn) -> list[Path]:
    return [p for p in _entries(folder, warn) if p.is_dir() and not p.is_symlink()]


def _entries(folder: Path, warn: Warn) -> list[Path]:
    try:
        return list(folder.iterdir())
    except (FileNotFoundError, NotADirectoryError):
        return []
    except OSError as error:  # unreadable: its runs exist, say so rather than "no runs"
        warn_broken(
            warn, folder, f"cannot be read: {error.strerror or error}", "", "its runs are not shown"
        )
        return []


def _stamp(run_id: str) -> str:
    found = _STAMP.match(run_id)
    return found.group(0) if found else run_id
