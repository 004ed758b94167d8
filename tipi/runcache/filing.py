"""Where the run cache's records lie, reading them without trusting them, and sweeping
what dead writers left.

This tipi files a record as `runs/<first 2 hex of the key>/<key>.<record hash>.msgpack`: a
first build of N steps makes at most 256 folders for its records, not N (a folder is as
costly to make as a file). An older tipi filed it as `runs/<key>/<record hash>.msgpack`;
those are read (and dropped when bad) alike. A remote keeps the older layout (remote.py).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from tipi.runcache.files import drop, open_regular, stale_temporary, subfolders
from tipi.runcache.record import (
    MAX_RECORD_BYTES,
    BadRecord,
    CachedRun,
    CorruptCache,
    ForeignRecord,
    is_digest,
)
from tipi.state.layout import OBJECTS_DIR, RECORDS_DIR, TMP_DIR

Found = list[tuple[Path, CachedRun]]


def listing(folder: Path | str) -> list[str]:
    """The names in `folder`; none when it is not there (or not a folder)."""
    try:
        return os.listdir(folder)
    except (FileNotFoundError, NotADirectoryError):
        return []


def read_record(path: Path, key: str, name: str, warn: Callable[[str], None]) -> Found:
    """[(path, the record there)] when it is record `name` of `key`; else [] and a warning
    (a bad one is dropped; one of another format version is left for its tipi)."""
    try:
        with open_regular(path) as f:
            if os.fstat(f.fileno()).st_size > MAX_RECORD_BYTES:
                raise BadRecord("larger than any run record")
            data = f.read(MAX_RECORD_BYTES + 1)
        return [(path, CachedRun.from_bytes(data, key, name))]
    except ForeignRecord as exc:
        warn(f"skipping the run record {path}: {exc}")
    except (BadRecord, CorruptCache) as exc:
        warn(f"dropping the run record {path}: {exc}")
        drop(path)
    except OSError as exc:
        warn(f"skipping unreadable run record {path}: {exc}")
    return []


def legacy_records(runs: Path, key: str, warn: Callable[[str], None]) -> Found:
    """The records of `key` an older tipi filed in a folder of their own under `runs`."""
    found: Found = []
    for name in listing(os.path.join(runs, key)):  # a string: asked once a step
        if not name.startswith("."):  # an older tipi's temporary file
            found += read_record(runs / key / name, key, name, warn)
    return found


def all_records(runs: Path, warn: Callable[[str], None]) -> Iterator[tuple[Path, CachedRun]]:
    """Every usable record under `runs`, in either layout."""
    for entry in sorted(listing(runs)):
        if entry.startswith("."):
            continue
        if is_digest(entry):
            yield from legacy_records(runs, entry, warn)
        elif len(entry) == 2 and is_digest(entry * 16):
            for name in sorted(listing(runs / entry)):
                key, _, rest = name.partition(".")
                if is_digest(key) and key[:2] == entry:
                    yield from read_record(runs / entry / name, key, rest, warn)
                elif not name.startswith("."):
                    warn(f"ignoring {runs / entry / name}: not a run record")
        else:
            warn(f"ignoring {runs / entry}: not a run key")


def sweep(store: Path, everywhere: bool = False) -> int:
    """Remove the temporary files in `store`/tmp/ left by writers that died (see
    `stale_temporary`); with `everywhere`, also an older tipi's `.<name>.tmp` files in
    `objects/` and `runs/`. Returns how many."""
    folders = [store / TMP_DIR]
    if everywhere:
        folders += [p for f in (OBJECTS_DIR, RECORDS_DIR) for p in subfolders(store / f)]
    removed = 0
    now = time.time()
    for folder in folders:
        for name in listing(folder):
            if folder.name != TMP_DIR and not (name.startswith(".") and name.endswith(".tmp")):
                continue
            try:
                age = now - (folder / name).lstat().st_mtime
            except FileNotFoundError:
                continue
            if stale_temporary(name, age):
                drop(folder / name)
                removed += 1
    return removed
