"""What killed runs leave behind, and cache folders that are not folders, removed by the make
that holds the project lock (no other make is writing then).

A killed make can leave:

* temp files of tipi's atomic writes under `.tipi_cache/` (tipi.atomic): state files, a
  step's scratch marker and resume checkpoint, a distributed step's rank reports, all named
  ``.<name>.tipi-<8 hex>.tmp``; and, for one more release, those of tipi 0.2 and before:
  ``.<name>.<8 chars>.tmp`` (state files), ``.tipi-binding.<pid>.tmp`` and ``.resume.pt.tmp``
  (a step's scratch folder), ``.rank<n>.json.tmp`` (rank reports). The run cache, `store/`,
  sweeps its own (content.py);
* ``.<name>.tipi-old-<8 hex>`` beside a directory output, the old folder moved aside while the
  new one was moved into place (execution/staging.py).

Only names of exactly these forms are removed, only inside `.tipi_cache/` or directly beside a
declared output, and a link is removed itself, never followed.

tidy_cache also makes the folders tipi writes into real folders again: `pipelines/`,
`staging/`, `scratch/` and `logs/`, each pipeline's folder in them, and each step's scratch
folder. A file, a FIFO or a link there (a link could lead writes out of the cache) is removed
with one warning, as is anything but a file where a step's `.tipi-binding` or log file goes
(a FIFO there would block the make, a link would be written through).
"""

from __future__ import annotations

import os
import re
import stat
from collections.abc import Callable, Iterable
from pathlib import Path

from tipi.atomic import TEMP_PATTERN
from tipi.state.layout import (
    BINDING_FILE,
    LOGS_DIR,
    PIPELINES_DIR,
    SCRATCH_DIR,
    STAGING_DIR,
    STORE_DIR,
)
from tipi.state.statefile import file_kind, remove_path, shown

# tipi.atomic's temp names, then those of tipi 0.2 and before (drop them in the next release).
LEGACY_TEMP = r"\.(?:.+\.[A-Za-z0-9_]{8}|tipi-binding\.\d+|resume\.pt|rank\d+\.json)\.tmp"
TEMP_NAME = re.compile(f"{TEMP_PATTERN}|{LEGACY_TEMP}", re.DOTALL)
OLD_SUFFIX = r"\.tipi-old-[0-9a-f]{8}"
# The folders of layout.PER_PIPELINE repaired here, and what for (store/, the run cache, is
# content.py's).
REPAIRED = {
    PIPELINES_DIR: "each pipeline's records",
    STAGING_DIR: "outputs of running steps",
    SCRATCH_DIR: "steps' resume checkpoints",
    LOGS_DIR: "what steps printed in workers",
}


def remove_leftovers(
    cache_dir: Path, output_paths: Iterable[Path | str], warn: Callable[[str], None] | None = None
) -> list[str]:
    """Remove what killed runs left: tidy_cache, then remove_replaced_outputs.

    Call it only while holding the project lock. Returns the paths removed."""
    return [*tidy_cache(cache_dir, warn), *remove_replaced_outputs(output_paths)]


def tidy_cache(cache_dir: Path, warn: Callable[[str], None] | None = None) -> list[str]:
    """Repair the cache's folders (with a warning for each thing removed), then remove temp
    files of killed writes (silently). Call it only while holding the project lock.

    Returns:
        The paths removed.
    """
    removed = _repair_folders(cache_dir, warn or (lambda message: None))
    for folder, dirs, files in os.walk(cache_dir):  # never into a linked folder
        top, *below = Path(folder).relative_to(cache_dir).parts or ("",)
        if top in (STORE_DIR, STAGING_DIR) or (top == SCRATCH_DIR and len(below) > 1):
            # The run cache sweeps its own temp files (content.py), and may hold 100,000
            # files; staging is emptied whole when the lock is taken; below a step's scratch
            # folder lies what the step keeps, maybe many files, and no temp file of tipi's.
            dirs.clear()
        for name in files:
            if TEMP_NAME.fullmatch(name):
                removed += _remove(Path(folder) / name, folders=False)
    return removed


def remove_replaced_outputs(output_paths: Iterable[Path | str]) -> list[str]:
    """Remove ``.<name>.tipi-old-<hex>`` beside each output (absolute paths): an old directory
    output a killed make had moved aside. Call it only while holding the project lock.

    Returns:
        The paths removed.
    """
    by_folder: dict[str, set[str]] = {}
    for path in output_paths:
        folder, name = os.path.split(os.fspath(path).rstrip(os.sep))
        if name:
            by_folder.setdefault(folder, set()).add(name)
    removed: list[str] = []
    for folder, names in by_folder.items():
        try:
            entries = os.listdir(folder)
        except OSError:  # no such folder (yet): nothing beside it
            continue
        for entry in entries:
            # One pattern for every name (one alternation of 1,000 names took 0.1 s to compile).
            match = _REPLACED.fullmatch(entry)
            if match and match.group(1) in names:
                removed += _remove(Path(folder) / entry, folders=True)
    return removed


_REPLACED = re.compile(rf"\.(.+){OLD_SUFFIX}", re.DOTALL)


def _repair_folders(cache_dir: Path, warn: Callable[[str], None]) -> list[str]:
    removed: list[str] = []

    def keep(path: Path, role: str, folder: bool = True) -> bool:
        """True when `path` is a folder (or, not `folder`, a file); False when it is absent
        or was something else, which is then removed with a warning."""
        try:
            mode = os.lstat(path).st_mode
        except OSError:
            return False
        if stat.S_ISDIR(mode) if folder else stat.S_ISREG(mode):
            return True
        want = "folder" if folder else "file"
        found = file_kind(mode)
        warn(f"{shown(path)} ({role}) is {found}, not a {want}; removed it, tipi makes it again")
        removed.extend(_remove(path, folders=True))
        return False

    for top, role in REPAIRED.items():
        if not keep(cache_dir / top, role):
            continue
        for pipeline in _children(cache_dir / top):
            if not keep(pipeline, role):
                continue
            if top == SCRATCH_DIR:
                for step in _children(pipeline):
                    if keep(step, "a step's resume checkpoints"):
                        keep(step / BINDING_FILE, "its checkpoint's fingerprint", folder=False)
            elif top == LOGS_DIR:
                for log in _children(pipeline):
                    keep(log, "what a step printed in a worker", folder=False)
    return removed


def _children(folder: Path) -> list[Path]:
    try:
        return [folder / name for name in sorted(os.listdir(folder))]
    except OSError:
        return []


def _remove(path: Path, folders: bool) -> list[str]:
    """Remove `path` (a folder only when `folders`; a link itself); [path] when it went."""
    try:
        if stat.S_ISDIR(os.lstat(path).st_mode) and not folders:
            return []
        remove_path(path)
    except OSError:
        return []
    return [str(path)]
