"""Run records filed in packs: one append-only file per make instead of one file a record.

A make files every record it writes into `store/packs/<host>.<pid>.<random>.pack`, one
frame after the other: a 4-byte big-endian length, the body (the key's 16 bytes, then the
record's msgpack bytes) and the body's xxh3-64 (8 bytes). Each frame is written whole with
one `write` and the file is never rewritten in place, so a kill loses at most the frame
being written: a reader stops at the first frame that is short or whose checksum fails (a
torn tail) and keeps those before it. Nothing is fsynced, as for every file of the store:
a record is checked against its name when read, so what a power cut garbles is a rerun.

When the make closes its store it writes the pack's index next to it (`<pack>.idx`: each
record's key, name, offset and length, and the pack's size then); a reader reads the
indexes once and the packs only for the records it uses. A pack without an index (its
make was killed, or is still running) is scanned; once its writer is dead the scanner
writes the index. Records a make filed are found by the same make (it keeps their places).
"""

from __future__ import annotations

import os
import struct
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import msgpack
import xxhash

from tipi.runcache.files import drop, stale_temporary, temporary_name
from tipi.runcache.record import MAX_RECORD_BYTES, BadRecord, CachedRun, CorruptCache
from tipi.state.layout import PACKS_DIR, TMP_DIR

_HEAD = struct.Struct(">I")
_SUM = 8
_INDEX_VERSION = 1


@dataclass(frozen=True)
class PackEntry:
    """Where one record lies in a pack."""

    pack: Path
    key: str
    name: str
    offset: int  # of the frame
    length: int  # of the body


def frame(key: str, data: bytes) -> bytes:
    body = bytes.fromhex(key) + data
    return _HEAD.pack(len(body)) + body + xxhash.xxh3_64_digest(body)


def scan(pack: Path, content: bytes) -> list[PackEntry]:
    """The whole frames of a pack's bytes, up to the first torn or garbled one. A scan
    never looks for frames past that point: a frame found there could lie inside a
    record's bytes (a step's output is kept inline), and those bytes are not tipi's."""
    entries = []
    at = 0
    while at + _HEAD.size <= len(content):
        found = _frame_at(pack, content, at)
        if found is None:
            break
        entries.append(found)
        at += _HEAD.size + found.length + _SUM
    return entries


def _frame_at(pack: Path, content: bytes, at: int) -> PackEntry | None:
    if at + _HEAD.size > len(content):
        return None
    (length,) = _HEAD.unpack_from(content, at)
    stop = at + _HEAD.size + length + _SUM
    if length < 16 or length > MAX_RECORD_BYTES + 16 or stop > len(content):
        return None
    body = content[at + _HEAD.size : stop - _SUM]
    if xxhash.xxh3_64_digest(body) != content[stop - _SUM : stop]:
        return None
    return PackEntry(pack, body[:16].hex(), _name(body[16:]), at, length)


def _plausible(entry: PackEntry, size: int) -> bool:
    key, name, offset, length = entry.key, entry.name, entry.offset, entry.length
    return (
        isinstance(key, str)
        and len(key) == 32
        and all(c in "0123456789abcdef" for c in key)
        and isinstance(name, str)
        and type(offset) is int
        and type(length) is int
        and offset >= 0
        and 16 <= length <= MAX_RECORD_BYTES + 16
        and offset + _HEAD.size + length + _SUM <= size
    )


def _name(data: bytes) -> str:
    return xxhash.xxh3_128_hexdigest(data) + ".msgpack"


def _pack_name() -> str:
    """`<host>.<pid>.<random>.pack`: who writes it (see `_writer_dead`)."""
    return temporary_name().removeprefix(".").removesuffix(".tmp") + ".pack"


def _writer_dead(pack: Path, age: float) -> bool:
    """Whether the make that wrote `pack` is gone (the rule of temporary files)."""
    host, pid, rand = [*pack.stem.split("."), "", "", ""][:3]
    return stale_temporary(f".{host}.{pid}.{rand}.tmp", age)


class Packs:
    """The packs of one store: the one this make appends to, and everyone's index."""

    def __init__(self, root: Path, warn: Callable[[str], None]) -> None:
        self.folder = root / PACKS_DIR
        self._tmp = root / TMP_DIR
        self.warn = warn
        self._fd: int | None = None
        self._path: Path | None = None
        self._size = 0
        self._own: list[PackEntry] = []
        self._index: dict[str, list[PackEntry]] | None = None
        self._lock = threading.Lock()  # runs are filed from several threads
        self._bad: list[PackEntry] = []  # found corrupt: gc removes them

    def any(self) -> bool:
        try:
            return any(n.endswith(".pack") for n in os.listdir(self.folder))
        except (FileNotFoundError, NotADirectoryError):
            return False

    def append(self, key: str, data: bytes) -> PackEntry:
        """File `data` (a record of `key`) at the end of this make's pack."""
        chunk = frame(key, data)
        with self._lock:
            return self._append(key, chunk, _name(data))

    def _append(self, key: str, chunk: bytes, name: str) -> PackEntry:
        if self._fd is None:
            self.folder.mkdir(parents=True, exist_ok=True)
            self._path = self.folder / _pack_name()
            self._fd = os.open(self._path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND)
        assert self._path is not None
        written = os.write(self._fd, chunk)
        if written != len(chunk):  # a full disk: the torn frame is skipped when read
            self._size += written  # the next frames' offsets lie past the torn bytes
            raise OSError(f"could not write the run record to {self._path}")
        entry = PackEntry(self._path, key, name, self._size, len(chunk) - _HEAD.size - _SUM)
        self._size += len(chunk)
        self._own.append(entry)
        if self._index is not None:
            self._index.setdefault(key, []).append(entry)
        return entry

    def close(self) -> None:
        """Stop appending and write the pack's index."""
        with self._lock:
            self._close()

    def _close(self) -> None:
        if self._fd is None:
            return
        os.close(self._fd)
        self._fd = None
        assert self._path is not None
        self._write_index(self._path, self._own, self._size)
        self._path, self._own, self._size = None, [], 0

    def _write_index(self, pack: Path, entries: list[PackEntry], size: int) -> None:
        rows = [[e.key, e.name, e.offset, e.length] for e in entries]
        data = msgpack.packb({"v": _INDEX_VERSION, "size": size, "entries": rows})
        self._tmp.mkdir(parents=True, exist_ok=True)
        tmp = self._tmp / temporary_name()
        try:
            with open(tmp, "xb") as out:
                out.write(data)
            os.replace(tmp, pack.with_suffix(".idx"))
        except OSError as exc:  # no index: the pack is scanned instead
            tmp.unlink(missing_ok=True)
            self.warn(f"could not index the run records of {pack}: {exc}")

    def _read_index(self, pack: Path, size: int) -> list[PackEntry] | None:
        try:
            with open(pack.with_suffix(".idx"), "rb") as f:
                doc = msgpack.unpackb(f.read(), raw=False)
            if doc.get("v") != _INDEX_VERSION or doc.get("size") != size:
                return None
            entries = [PackEntry(pack, k, n, o, n_) for k, n, o, n_ in doc["entries"]]
        except (OSError, ValueError, TypeError, KeyError, AttributeError, msgpack.UnpackException):
            return None
        # An index is a cache of the pack: one row it cannot vouch for and it is not used
        # (the pack is scanned instead); a row that passes is still checked when read.
        return entries if all(_plausible(e, size) for e in entries) else None

    def entries(self, pack: Path) -> list[PackEntry]:
        """The records of one pack: from its index, else scanned (and indexed when its
        writer is dead)."""
        if pack == self._path:
            return list(self._own)
        try:
            info = pack.stat()
        except OSError:
            return []
        found = self._read_index(pack, info.st_size)
        if found is not None:
            return found
        try:
            content = pack.read_bytes()
        except OSError as exc:
            self.warn(f"skipping unreadable run records {pack}: {exc}")
            return []
        found = scan(pack, content)
        if _writer_dead(pack, time.time() - info.st_mtime):
            self._write_index(pack, found, len(content))
        return found

    def packs(self) -> list[Path]:
        try:
            names = os.listdir(self.folder)
        except (FileNotFoundError, NotADirectoryError):
            return []
        return [self.folder / n for n in sorted(names) if n.endswith(".pack")]

    def index(self) -> dict[str, list[PackEntry]]:
        with self._lock:  # not while a record is filed: the index would miss it
            return self._load_index()

    def _load_index(self) -> dict[str, list[PackEntry]]:
        if self._index is None:
            index: dict[str, list[PackEntry]] = {}
            for pack in self.packs():
                for entry in self.entries(pack):
                    index.setdefault(entry.key, []).append(entry)
            if self._path is not None and self._path not in self.packs():
                for entry in self._own:
                    index.setdefault(entry.key, []).append(entry)
            self._index = index
        return self._index

    def has(self, key: str, name: str) -> bool:
        return any(e.name == name for e in self.index().get(key, ()))

    def read(self, entry: PackEntry) -> CachedRun:
        """The record at `entry`, checked.

        Raises:
            BadRecord, CorruptCache: its bytes are not the record they should be.
            OSError: the pack cannot be read.
        """
        with open(entry.pack, "rb") as f:
            f.seek(entry.offset)
            content = f.read(_HEAD.size + entry.length + _SUM)
        found = scan(entry.pack, content)
        if len(found) != 1 or found[0].key != entry.key or found[0].name != entry.name:
            raise CorruptCache("its pack does not hold it where its index says")
        return CachedRun.from_bytes(content[_HEAD.size + 16 : -_SUM], entry.key, entry.name)

    def records(self, key: str) -> list[tuple[PackEntry, CachedRun]]:
        return [*self._load(self.index().get(key, ()))]

    def all_records(self) -> Iterator[tuple[PackEntry, CachedRun]]:
        for pack in self.packs():
            yield from self._load(self.entries(pack))

    def _load(self, entries: Iterable[PackEntry]) -> Iterator[tuple[PackEntry, CachedRun]]:
        for entry in entries:
            try:
                yield entry, self.read(entry)
            except (BadRecord, CorruptCache) as exc:
                self._bad.append(entry)
                self.warn(
                    f"skipping the run record {entry.name} in {entry.pack}: {exc} "
                    "(`tipi cache gc` removes it)"
                )
            except OSError as exc:
                self.warn(f"skipping unreadable run record in {entry.pack}: {exc}")

    def forget(self, dropped: Iterable[PackEntry]) -> int:
        """Remove records from their packs (for gc): each pack that loses some is written
        anew without them, or removed when it loses all; the pack this make appends to,
        and one whose writer lives, is left as it is. Returns how many were removed."""
        by_pack: dict[Path, set[tuple[str, int]]] = {}
        for entry in [*dropped, *self._bad]:
            by_pack.setdefault(entry.pack, set()).add((entry.name, entry.offset))
        removed = 0
        for pack, names in by_pack.items():
            if pack == self._path:
                continue
            try:
                info = pack.stat()
                content = pack.read_bytes()
            except OSError:
                continue
            if not pack.with_suffix(".idx").exists() and not _writer_dead(
                pack, time.time() - info.st_mtime
            ):
                continue
            # From the index where there is one, each frame checked where it says: gc drops
            # what it was asked to and what is damaged, never a good record behind a bad one.
            entries = self._whole_frames(pack, content, info.st_size)
            kept = [e for e in entries if (e.name, e.offset) not in names]
            removed += len(entries) - len(kept) + len(names - {(e.name, e.offset) for e in entries})
            if kept:
                self._rewrite(pack, content, kept)
            else:
                drop(pack.with_suffix(".idx"))
                drop(pack)
        self._index = None
        return removed

    def _whole_frames(self, pack: Path, content: bytes, size: int) -> list[PackEntry]:
        indexed = self._read_index(pack, size)
        if indexed is None:
            return scan(pack, content)
        found = [_frame_at(pack, content, e.offset) for e in indexed]
        return [f for f, e in zip(found, indexed, strict=True) if f is not None and f == e]

    def _rewrite(self, pack: Path, content: bytes, kept: list[PackEntry]) -> None:
        """Write `kept` of `pack` as a new pack (with its index), then remove the old one: a
        kill in between leaves records twice, never none."""
        new = self.folder / _pack_name()
        self._tmp.mkdir(parents=True, exist_ok=True)
        tmp = self._tmp / temporary_name()
        entries, at, chunks = [], 0, []
        for e in kept:
            chunk = content[e.offset : e.offset + _HEAD.size + e.length + _SUM]
            chunks.append(chunk)
            entries.append(PackEntry(new, e.key, e.name, at, e.length))
            at += len(chunk)
        try:
            with open(tmp, "xb") as out:
                out.write(b"".join(chunks))
            os.replace(tmp, new)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        self._write_index(new, entries, at)
        drop(pack.with_suffix(".idx"))
        drop(pack)
