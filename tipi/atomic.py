"""Replacing a file whole: readers see the old content or the new one, never a mix, and a
writer that dies half way (an exception, Ctrl-C, a kill) leaves the old content in place.

Every file tipi replaces (state files, a step's scratch marker and resume checkpoint, a
distributed step's rank reports, a sweep's results, saved weights) goes through here, so
there is one way of doing it and one temp name for the leftover sweep to recognise
(state/leftovers.py): the new content is written to ``.<name>.tipi-<8 hex>.tmp`` in the
target's folder (a rename is atomic only within one file system) and renamed over the target.
A killed writer leaves that temp file; the make that next takes the project lock removes it.

`durable` (the default) also fsyncs the temp file before the rename and the folder after it:
without, a power cut soon after the rename can leave the target empty (the rename reached the
disk, the data did not) or the old one back. That matters where losing the file costs work
(the trace log, checkpoints); caches that are checked when read and rebuilt when damaged pass
``durable=False`` and a make never waits for the disk on their account.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

# What `temp_path` makes, as a regular expression of the whole name (state/leftovers.py).
TEMP_PATTERN = r"\..+\.tipi-[0-9a-f]{8}\.tmp"
# Never through a link, never over something already there (two writers get two names).
_CREATE = (
    os.O_WRONLY
    | os.O_CREAT
    | os.O_EXCL
    | getattr(os, "O_NOFOLLOW", 0)
    | getattr(os, "O_BINARY", 0)
    | getattr(os, "O_CLOEXEC", 0)
)


def temp_path(target: Path) -> Path:
    """A fresh temp name beside `target`: ``.<name>.tipi-<8 random hex>.tmp``; random, not
    the pid, so that writers in several processes or threads never share one."""
    return target.with_name(f".{target.name}.tipi-{os.urandom(4).hex()}.tmp")


def atomic_write(path: Path | str, data: bytes | str, *, durable: bool = True) -> None:
    """Replace `path` with `data` (text is written as UTF-8) in one step.

    Whatever is at `path` is replaced, never written through: a link by the file. Its folder
    must exist. With `durable`, the content is on disk when this returns.
    """
    target = Path(path)
    payload = data.encode() if isinstance(data, str) else data
    fd, tmp = _create(target)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(payload)
            if durable:
                handle.flush()
                os.fsync(handle.fileno())
        _commit(tmp, target, durable)
    except BaseException:
        _discard(tmp)
        raise


@contextmanager
def atomic_path(target: Path | str, *, durable: bool = True) -> Iterator[Path]:
    """A temp path to write the new content of `target` to, for writers that want a path or
    open a file themselves (`torch.save`, `csv.writer`)::

        with atomic_path(checkpoint) as tmp:
            torch.save(state, tmp)

    Leaving the block renames the temp file over `target`; an exception in it (Ctrl-C
    included) removes the temp file and leaves `target` as it was. The temp file exists,
    empty, when the block starts (that reserves its name).
    """
    final = Path(target)
    fd, tmp = _create(final)
    os.close(fd)
    try:
        yield tmp
        if durable:
            _fsync(tmp, os.O_RDWR if os.name == "nt" else os.O_RDONLY)
        _commit(tmp, final, durable)
    except BaseException:
        _discard(tmp)
        raise


def _create(target: Path) -> tuple[int, Path]:
    """A new temp file beside `target`, open for writing: its descriptor and path."""
    while True:
        tmp = temp_path(target)
        try:
            return os.open(tmp, _CREATE, 0o666), tmp
        except FileExistsError:  # 1 in 4 billion, or a link planted under that name
            continue


def _commit(tmp: Path, target: Path, durable: bool) -> None:
    os.replace(tmp, target)
    if durable and os.name != "nt":  # Windows cannot open a folder to fsync it
        # Some file systems refuse it (EINVAL); the file itself is synced then all the same.
        with suppress(OSError):
            _fsync(target.parent, os.O_RDONLY)


def _fsync(path: Path, flags: int) -> None:
    fd = os.open(path, flags)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _discard(tmp: Path) -> None:
    with suppress(OSError):  # gone already (renamed, or removed by the writer or a sweep)
        os.unlink(tmp)
