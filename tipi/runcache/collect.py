"""`tipi cache gc`: drop old runs from the run cache, then the files no run needs."""

from __future__ import annotations

import re
import stat
from collections import defaultdict
from dataclasses import dataclass

from tipi.errors import UsageError
from tipi.runcache.content import ContentStore, drop

_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgt]?i?b?)?\s*$", re.IGNORECASE)
_UNITS = {"": 1, "b": 1, "k": 1e3, "m": 1e6, "g": 1e9, "t": 1e12}


@dataclass
class Collected:
    records: int = 0
    objects: int = 0
    bytes: int = 0
    kept_records: int = 0
    kept_bytes: int = 0


def parse_size(text: str) -> int:
    """'500MB', '2G', '1.5GiB', '1000' → bytes (KiB/MiB/GiB are powers of 1024)."""
    match = _SIZE.match(text)
    if not match:
        raise UsageError(f"cannot read the size {text!r}", hint="write it like 500MB or 2GiB")
    number, unit = float(match.group(1)), (match.group(2) or "").lower()
    base = unit[:1]
    factor = 1024 ** "bkmgt".index(base) if "i" in unit and base else _UNITS[base]
    return int(number * factor)


def collect(store: ContentStore, keep_last: int | None, max_size: int | None) -> Collected:
    """Keep the `keep_last` newest runs of each step, then drop the oldest runs until the
    files the rest need fit in `max_size` bytes; remove every file no kept run needs."""
    if keep_last is not None and keep_last < 0:
        raise UsageError("--keep-last must be at least 0")
    records = sorted(store.all_records(), key=lambda item: -item[1].finished)
    kept = []
    per_step: dict[str, int] = defaultdict(int)
    done = Collected()
    dropped = []
    for path, record in records:
        per_step[record.step] += 1
        if keep_last is not None and per_step[record.step] > keep_last:
            dropped.append(path)
            done.records += 1
        else:
            kept.append((path, record))
    sizes = _sizes(store)
    if max_size is not None:
        needed: set[str] = set()
        fitting = []
        inline = 0  # the bytes of outputs the kept records hold themselves
        for path, record in kept:  # newest first: keep runs while they fit
            extra = set(record.objects()) - needed
            held = record.inline_bytes()
            if sum(sizes.get(d, 0) for d in needed | extra) + inline + held <= max_size:
                needed |= extra
                inline += held
                fitting.append((path, record))
            else:
                dropped.append(path)
                done.records += 1
        kept = fitting
    store.forget(dropped)  # before the objects: a record never outlives its files
    needed = {d for _, record in kept for d in record.objects()}
    for digest, path in store.all_objects():
        if digest not in needed or digest not in sizes:  # unneeded, or not a file: corrupt
            done.bytes += sizes.get(digest, 0)
            drop(path)
            done.objects += 1
    store.sweep(everywhere=True)  # temporary files of writers that died
    records = store.records_dir
    for key_dir in records.glob("*") if records.is_dir() else ():
        if key_dir.is_dir() and not key_dir.is_symlink() and not any(key_dir.iterdir()):
            key_dir.rmdir()
    done.kept_records = len(kept)
    done.kept_bytes = sum(sizes.get(d, 0) for d in needed)
    done.kept_bytes += sum(record.inline_bytes() for _, record in kept)
    return done


def _sizes(store: ContentStore) -> dict[str, int]:
    """Object name → size, for the plain files among the objects (never through a link)."""
    sizes = {}
    for digest, path in store.all_objects():
        try:
            info = path.lstat()
        except FileNotFoundError:
            continue
        if stat.S_ISREG(info.st_mode):
            sizes[digest] = info.st_size
    return sizes
