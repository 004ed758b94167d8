"""Files of the run cache: unique temporary names (and which are left over), copying while
hashing, opening only regular files, removing without following links."""

from __future__ import annotations

import errno
import os
import re
import shutil
import socket
import stat
import uuid
from pathlib import Path
from typing import BinaryIO

import xxhash

from tipi.runcache.record import CorruptCache

_HOST = re.sub(r"[^A-Za-z0-9_-]", "-", socket.gethostname())[:64] or "host"
STALE_SECONDS = 3600.0
_CHUNK = 1 << 20


def temporary_name() -> str:
    """`.<host>.<pid>.<8 random hex>.tmp`: who writes it, so a sweep knows whether they live
    (and the form of every tipi temporary file, which a make holding the lock removes)."""
    return f".{_HOST}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp"


def stale_temporary(name: str, age: float) -> bool:
    """Whether the temporary file `name`, last written `age` seconds ago, is a dead writer's:
    one of this host whose process is gone, or anyone's idle for STALE_SECONDS."""
    if age > STALE_SECONDS:
        return True
    host, pid, _, suffix = [*name.removeprefix(".").split("."), "", "", ""][:4]
    if host != _HOST or suffix != "tmp" or not (pid.isascii() and pid.isdigit()):
        return False
    return not 0 < int(pid) < 1 << 22 or not _alive(int(pid))


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # EPERM: someone else's process
        return True
    return True


def copy_hashing(source: BinaryIO, target: BinaryIO) -> tuple[str, int]:
    """Copy `source` to `target` in 1 MiB chunks; the xxh3-128 hex of the bytes, and their count."""
    digest = xxhash.xxh3_128()
    size = 0
    while chunk := source.read(_CHUNK):
        digest.update(chunk)
        target.write(chunk)
        size += len(chunk)
    return digest.hexdigest(), size


def open_regular(path: Path) -> BinaryIO:
    """`path` opened for reading, only if it is a plain file (never through a link; a FIFO
    does not block the open).

    Raises:
        CorruptCache: it is a link, a folder or another non-file.
    """
    flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0)
    try:
        fd = os.open(path, flags | getattr(os, "O_BINARY", 0))
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise CorruptCache(f"{path} is a symbolic link") from None
        raise
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise CorruptCache(f"{path} is not a file")
    return os.fdopen(fd, "rb")


def create(path: Path) -> BinaryIO:
    """A new file at `path`: never through a link, never over something already there."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
    return os.fdopen(os.open(path, flags | getattr(os, "O_BINARY", 0), 0o666), "wb")


def drop(path: Path) -> None:
    """Delete `path` (a folder with what is in it; a link, never what it points to)."""
    try:
        if stat.S_ISDIR(path.lstat().st_mode):
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink()
    except FileNotFoundError:
        pass


def subfolders(folder: Path) -> list[Path]:
    try:
        return [folder / name for name in os.listdir(folder)]
    except (FileNotFoundError, NotADirectoryError):
        return []
