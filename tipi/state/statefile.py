"""One state file under `.tipi_cache/`, read and written safely whatever is found there.

Any state file may be missing, empty, garbage, of the wrong shape, a folder, a link, a FIFO or
unreadable. Missing is the normal fresh start. Anything else is reported once, as a warning
naming the file, what it is for and what starting it over costs, and that part starts over:
tipi never crashes, never blocks and never follows a link on its own cache.

* Reading opens without following a link and without blocking (a FIFO opens at once and is
  then refused), and reads only a regular file.
* Writing replaces the file whole (tipi.atomic): a link is replaced, never written through;
  a folder is removed first, and so is a file where one of its folders belongs.
"""

from __future__ import annotations

import errno
import math
import os
import stat
from collections.abc import Callable
from pathlib import Path
from typing import Any, BinaryIO

from tipi import atomic

Warn = Callable[[str], None]
Check = Callable[[Any], str | None]
# No state file comes near this; a bigger one (a sparse file, a mistake) is not read at all.
MAX_STATE_BYTES = 1 << 30
_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_NONBLOCK = getattr(os, "O_NONBLOCK", 0)
_EXTRA = getattr(os, "O_BINARY", 0) | getattr(os, "O_CLOEXEC", 0)

# What each kind of state file is for, and what starting it over costs: the two halves of
# the warning that names a broken one.
ROLES: dict[str, tuple[str, str]] = {
    "trace-log": ("the record of past runs", "every step will run"),
    "plan": ("the cached plan", "the plan will be made again"),
    "stat-cache": ("the file-hash cache", "files will be hashed again"),
    "clean-record": ("the no-op record", "each step will be checked"),
    "failures": ("the failures of earlier runs", "they are forgotten"),
    "code-table": ("the code table", "a code change may be named less precisely"),
}
# Kinds that are caches of what tipi can work out again (at the cost of the warning above):
# written without fsync (tipi.atomic), so that a make never waits for the disk for them.
REBUILT = frozenset({"plan", "stat-cache", "clean-record", "code-table"})
# Broken files already reported in this process, by path, problem and file identity: a file
# read twice in one command (the plan, by `tipi status`) is reported once, and a file broken
# again later (a new inode, size or mtime) is reported again.
_REPORTED: set[tuple[str, str, tuple[int, ...] | None]] = set()


class BrokenState(Exception):
    """A state file exists but cannot be used; the message says why ("is a FIFO, not a file")."""


def shown(path: Path | str) -> str:
    """`path` as the user knows it: relative to the working directory when inside it."""
    text = os.fspath(path)
    try:
        relative = os.path.relpath(text)
    except ValueError:  # another drive (Windows)
        return text
    return text if relative.startswith("..") else relative


def warn_broken(warn: Warn, path: Path, problem: str, kind: str, action: str = "") -> None:
    """Warn, once per process and state of the file, that the state file `path` is unusable.

    The line names the file, what it is for (from `kind`), what is wrong (`problem`) and what
    tipi does instead (`action`; default: it starts over, and what that costs)."""
    try:
        st = os.lstat(path)
        identity: tuple[int, ...] | None = (st.st_ino, st.st_size, st.st_mtime_ns, st.st_mode)
    except OSError:
        identity = None
    key = (os.fspath(path), problem, identity)
    if key in _REPORTED:
        return
    role, cost = ROLES.get(kind, ("", ""))
    name = f"{shown(path)} ({role})" if role else shown(path)
    action = action or (f"starting over: {cost}" if cost else "starting over")
    warn(f"{name} {problem}; {action}")
    _REPORTED.add(key)  # after: a sink that raises (the fast path's) has reported nothing


def state_bytes(path: Path) -> bytes | None:
    """The bytes of the state file at `path`; None when there is none.

    Raises:
        BrokenState: something other than a readable regular file is there.
    """
    try:
        fd = os.open(path, os.O_RDONLY | _NOFOLLOW | _NONBLOCK | _EXTRA)
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise BrokenState(_open_problem(path, exc)) from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise BrokenState(f"is {file_kind(st.st_mode)}, not a file")
        if st.st_size > MAX_STATE_BYTES:
            raise BrokenState(f"is larger than {MAX_STATE_BYTES >> 20} MiB")
        with os.fdopen(os.dup(fd), "rb") as handle:
            return handle.read(MAX_STATE_BYTES + 1)
    except OSError as exc:
        raise BrokenState(f"cannot be read: {exc.strerror or exc}") from None
    finally:
        os.close(fd)


def open_append(path: Path) -> BinaryIO | None:
    """`path` opened for appending, only if it is a regular file (never through a link, never
    waiting for a FIFO's reader); None when it is missing or something else."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | _NOFOLLOW | _NONBLOCK | _EXTRA)
    except OSError:
        return None
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        return None
    return os.fdopen(fd, "ab")


def _open_problem(path: Path, exc: OSError) -> str:
    """Why `path` could not be opened: what is there instead of a file, or the error."""
    try:
        mode = os.lstat(path).st_mode
    except OSError:
        mode = stat.S_IFREG
    if stat.S_ISLNK(mode):
        return "is a symbolic link (tipi never follows one in its cache)"
    if not stat.S_ISREG(mode):
        return f"is {file_kind(mode)}, not a file"
    if exc.errno == errno.ENOTDIR:
        return "cannot be read: a folder on its path is not a folder"
    return f"cannot be read: {exc.strerror or exc}"


def file_kind(mode: int) -> str:
    """'a folder', 'a FIFO', ... for a file mode, to name what is where a file should be."""
    kinds = (
        (stat.S_ISDIR, "a folder"),
        (stat.S_ISLNK, "a symbolic link"),
        (stat.S_ISFIFO, "a FIFO"),
        (stat.S_ISSOCK, "a socket"),
        (stat.S_ISCHR, "a device"),
        (stat.S_ISBLK, "a device"),
        (stat.S_ISREG, "a file"),
    )
    return next((name for test, name in kinds if test(mode)), "not a regular file")


def remove_path(path: Path) -> None:
    """Delete whatever is at `path` (a folder with its contents; a link, never its target)."""
    try:
        if stat.S_ISDIR(os.lstat(path).st_mode):
            import shutil  # only to repair: a no-op make never gets here

            shutil.rmtree(path, ignore_errors=True)
        else:
            os.unlink(path)
    except FileNotFoundError:
        pass


def write_state(path: Path, data: bytes, *, durable: bool = True) -> None:
    """Replace the state file `path` with `data` (tipi.atomic: readers see the old or the new
    content, never a mix; `durable`: fsynced), repairing the cache on the way.

    Whatever is at `path` is replaced, never written through: a link by the file, a folder
    after it is removed; and its folder is made, removing what stands in the way."""
    try:
        _repair_and_write(path, data, durable)
    except FileNotFoundError:
        # The temp file went before the rename (the make that holds the project lock removes
        # leftovers of killed runs, leftovers.py) or its folder did (`tipi clean`): again.
        _repair_and_write(path, data, durable)


def _repair_and_write(path: Path, data: bytes, durable: bool) -> None:
    _make_folder(path.parent)
    if os.path.isdir(path) and not os.path.islink(path):
        import shutil

        shutil.rmtree(path, ignore_errors=True)
    atomic.atomic_write(path, data, durable=durable)


def _make_folder(folder: Path) -> None:
    """Make `folder` and its parents, removing first what stands in the way: the outermost
    of them that is there but is not a folder (a file, a FIFO, a dangling link). Every state
    file lies in the cache, so that is the cache's own."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        return
    except (FileExistsError, NotADirectoryError):
        pass
    for candidate in reversed([folder, *folder.parents]):
        if os.path.lexists(candidate) and not candidate.is_dir():
            remove_path(candidate)
            break
    folder.mkdir(parents=True, exist_ok=True)


# Checks of the shape of loaded data: each says what is wrong ("['a']['error'] is an integer,
# not text"), None when nothing is.


def is_map(data: Any) -> str | None:
    return None if isinstance(data, dict) else f"is {type_name(data)}, not a map"


def map_problem(data: Any, value: Check | None = None) -> str | None:
    """What is wrong with `data` as a map of text to values `value` accepts."""
    if not isinstance(data, dict):
        return f"is {type_name(data)}, not a map"
    for key, item in data.items():
        if not isinstance(key, str):
            return f"has a key {key!r} that is not text"
        problem = value(item) if value is not None else None
        if problem:
            return f"[{key!r}]{'' if problem.startswith('[') else ' '}{problem}"
    return None


def list_problem(data: Any, item: Check, length: int | None = None) -> str | None:
    """What is wrong with `data` as a list (of `length` items) that `item` accepts."""
    if not isinstance(data, list):
        return f"is {type_name(data)}, not a list"
    if length is not None and len(data) != length:
        return f"has {len(data)} items, not {length}"
    return next((f"[{i}] {p}" for i, x in enumerate(data) if (p := item(x))), None)


def fields_problem(data: Any, fields: dict[str, tuple[bool, Check]]) -> str | None:
    """What is wrong with `data` as a map with these fields: name → (required, check)."""
    problem = map_problem(data)
    if problem:
        return problem
    for key, (required, check) in fields.items():
        if key not in data:
            if required:
                return f"lacks {key!r}"
            continue
        problem = check(data[key])
        if problem:
            return f"[{key!r}]{'' if problem.startswith('[') else ' '}{problem}"
    return None


def number_problem(value: Any) -> str | None:
    """A time or a duration: a finite number of seconds."""
    ok = isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
    return None if ok and abs(value) < 1e12 else f"is {value!r}, not a number of seconds"


def int_problem(value: Any) -> str | None:
    ok = isinstance(value, int) and not isinstance(value, bool)
    return None if ok else f"is {type_name(value)}, not an integer"


def text_problem(value: Any) -> str | None:
    return None if isinstance(value, str) else f"is {type_name(value)}, not text"


def type_name(value: Any) -> str:
    names = {
        dict: "a map",
        list: "a list",
        str: "text",
        bytes: "bytes",
        int: "an integer",
        float: "a number",
        bool: "a boolean",
        type(None): "nil",
    }
    return names.get(type(value), type(value).__name__)
