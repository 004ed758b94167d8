"""Files of a remote cache found corrupt or missing, remembered in
`.tipi_cache/remote-suspects.msgpack` so the next push with good bytes re-uploads them.

The file maps a remote's URL to its suspects: object digests (32 hex) and records
(`<key>/<name>`). It is a hint, never trusted: entries that are not well-formed names are
ignored, a damaged file reads as empty, and a re-upload checks its own bytes anyway (a wrong
entry costs one upload of good bytes, nothing else).
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Set as AbstractSet
from pathlib import Path

import msgpack

from tipi.atomic import atomic_write
from tipi.runcache.files import open_regular
from tipi.runcache.record import is_digest, is_record_name
from tipi.state.layout import SUSPECTS_FILE, suspects_file

FILE = SUSPECTS_FILE
_MAX_BYTES = 4 << 20  # far more than any real list; a bigger file is not ours


def well_formed(entry: object) -> bool:
    """An object digest, or `<key>/<record name>`."""
    if not isinstance(entry, str):
        return False
    key, _, name = entry.partition("/")
    return is_digest(entry) or (is_digest(key) and is_record_name(name))


class Suspects:
    """The suspects of the remote at `url`, in memory and (when a cache folder is known) on
    disk; safe to use from several threads."""

    def __init__(self, url: str) -> None:
        self.url = url
        self._entries: set[str] = set()
        self._lock = threading.Lock()
        self._loaded: set[Path] = set()

    def load(self, cache_dir: Path) -> None:
        """Add what an earlier process remembered in `cache_dir` (once per folder)."""
        with self._lock:
            if cache_dir not in self._loaded:
                self._loaded.add(cache_dir)
                self._entries |= _read(cache_dir).get(self.url, set())

    def add(self, entry: str, cache_dir: Path | None) -> None:
        with self._lock:
            if entry in self._entries:
                return
            self._entries.add(entry)
        if cache_dir is not None:
            self._update(cache_dir, add={entry})

    def healed(self, entries: set[str], cache_dir: Path | None) -> None:
        with self._lock:
            self._entries -= entries
        if entries and cache_dir is not None:
            self._update(cache_dir, remove=entries)

    def __contains__(self, entry: str) -> bool:
        return entry in self._entries

    def snapshot(self) -> set[str]:
        with self._lock:
            return set(self._entries)

    def _update(
        self,
        cache_dir: Path,
        add: AbstractSet[str] = frozenset(),
        remove: AbstractSet[str] = frozenset(),
    ) -> None:
        """Read, change this remote's entries, write back whole (a hint: a write racing
        another process's may lose an entry, which costs a later heal, not a wrong file)."""
        with self._lock, contextlib.suppress(OSError):  # a cache folder we cannot write
            known = _read(cache_dir)
            entries = (known.get(self.url, set()) | add) - remove
            if entries:
                known[self.url] = entries
            else:
                known.pop(self.url, None)
            data = {url: sorted(found) for url, found in sorted(known.items())}
            cache_dir.mkdir(parents=True, exist_ok=True)
            atomic_write(suspects_file(cache_dir), msgpack.packb(data), durable=False)


def _read(cache_dir: Path) -> dict[str, set[str]]:
    try:
        with open_regular(suspects_file(cache_dir)) as f:  # never a FIFO or a link
            raw = msgpack.unpackb(f.read(_MAX_BYTES + 1), raw=False, strict_map_key=True)
    except (OSError, ValueError, msgpack.UnpackException):
        return {}
    if not isinstance(raw, dict):
        return {}
    return {
        url: {e for e in entries if well_formed(e)}
        for url, entries in raw.items()
        if isinstance(url, str) and isinstance(entries, list)
    }


__all__ = ["FILE", "Suspects", "well_formed"]
