"""Content hashes (xxh3_128) of files and directories, with a stat cache so unchanged files
are never read twice."""

from __future__ import annotations

import os
import stat
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import xxhash

_CHUNK = 1 << 20
# A file modified less than this long before it was hashed could change again within the
# file system's timestamp granularity without its (size, mtime, inode) changing ("racy git");
# such entries are used once and not trusted later.
RACY_SECONDS = 0.1
# File systems with coarse timestamps (ext2/3: 1 s, FAT: 2 s, HFS+, many network mounts)
# store whole seconds, so a file's mtime alone tells which window applies: one with no
# sub-second part may be rewritten for up to two seconds without its mtime changing.
COARSE_RACY_SECONDS = 2.0
MISSING = None
# What a folder's hash says of an entry whose target is gone (a dangling link): its name counts.
MISSING_IN_FOLDER = "missing"
_SECOND = 1_000_000_000
STAT_KIND = "stat-cache"


def is_racy(mtime_ns: int, now_ns: int | None = None) -> bool:
    """True when a file with this mtime could still change without its mtime changing.

    The window follows the file system's granularity, read off the mtime itself: a whole
    second means a coarse file system (or, once in a billion, a fine one that hit an exact
    second: then the wider window only costs a re-read).
    """
    now = time.time_ns() if now_ns is None else now_ns
    window = COARSE_RACY_SECONDS if mtime_ns % _SECOND == 0 else RACY_SECONDS
    return now - mtime_ns < window * _SECOND


@dataclass
class StatCache:
    """Maps a path to ((size, mtime_ns, inode), hash); on disk as a msgpack map (store.py).

    Attributes:
        entries: path string → [size, mtime_ns, inode, hex hash].
        reads: how many files were actually read (tests assert unchanged files are not).
        trusted: False (`--rehash`) reads every file once this make, whatever its signature.
    """

    entries: dict[str, list] = field(default_factory=dict)
    reads: int = 0
    dirty: bool = False
    trusted: bool = True
    # Hashes taken during this make, trusted by signature for its rest even when racy: the
    # make holds the project lock, and what a step just wrote is read by the next one.
    session: dict[str, list] = field(default_factory=dict)

    def hash_path(self, path: str | Path) -> str | None:
        """Content hash of a file or directory; None when it does not exist."""
        try:
            st = os.stat(path)
        except (FileNotFoundError, NotADirectoryError):
            return MISSING
        if stat.S_ISDIR(st.st_mode):
            return self._hash_dir(str(path))
        return self._hash_file(str(path), st)

    def _hash_file(self, key: str, st: os.stat_result) -> str:
        if not stat.S_ISREG(st.st_mode):  # a FIFO or a device: reading it could block forever
            return f"special-{stat.S_IFMT(st.st_mode):o}"
        signature = [st.st_size, st.st_mtime_ns, st.st_ino]
        cached = self.session.get(key)
        if cached is None and self.trusted:
            cached = self.entries.get(key)
        # An entry of another shape (a damaged stat.msgpack) is as good as none.
        if type(cached) is list and len(cached) == 4 and cached[:3] == signature:
            return cached[3]
        digest = hash_file_content(key)
        self.reads += 1
        self.session[key] = [*signature, digest]
        if not is_racy(st.st_mtime_ns):
            self.entries[key] = [*signature, digest]
            self.dirty = True
        elif key in self.entries:
            del self.entries[key]
            self.dirty = True
        return digest

    def _hash_dir(self, path: str) -> str:
        """Hash of the sorted (relative path, content hash) pairs of every file below."""
        h = xxhash.xxh3_128()
        for root, dirs, files in os.walk(path):
            dirs.sort()
            for name in sorted(files):
                full = os.path.join(root, name)
                rel = os.path.relpath(full, path)
                try:
                    content = self._hash_file(full, os.stat(full))
                except FileNotFoundError:  # a link to nothing (or a file removed meanwhile)
                    content = MISSING_IN_FOLDER
                h.update(rel.encode() + b"\0" + content.encode() + b"\n")
        return "d" + h.hexdigest()

    def forget(self, path: Path) -> None:
        """Drop what is known of `path` (and below, for a directory)."""
        prefix, below = str(path), str(path) + os.sep
        for key in [k for k in self.entries if k == prefix or str(k).startswith(below)]:
            del self.entries[key]
            self.dirty = True


def stat_problem(entries: Any) -> str | None:
    """What is wrong with loaded stat cache entries ({path: [size, mtime_ns, inode, hash]})."""
    if type(entries) is not dict:
        return "is not a map"
    for key, entry in entries.items():  # plain type tests: a big cache has 100,000 entries
        if type(entry) is not list or len(entry) != 4 or type(key) is not str:
            return f"[{key!r}] is not [size, mtime_ns, inode, hash]"
        size, mtime, inode, digest = entry
        if not (type(size) is type(mtime) is type(inode) is int and type(digest) is str):
            return f"[{key!r}] is not [size, mtime_ns, inode, hash]"
    return None


def hash_file_content(path: str | Path) -> str:
    """xxh3_128 of a file's bytes, read in 1 MiB chunks."""
    h = xxhash.xxh3_128()
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            h.update(chunk)
    return h.hexdigest()


def hash_bytes(data: bytes) -> str:
    """xxh3_128 of `data` as hex."""
    return xxhash.xxh3_128_hexdigest(data)
