"""The clean record: proof that a whole selection of steps was up to date, checked by stat alone.

After a make in which every selected step ended up to date (ran or skipped by the cache), tipi
writes ``pipelines/<name>/clean.msgpack``: the stat signature (size, mtime_ns, inode) of the
plan file, of the trace log and of every input and output of those steps. The next make, when
nothing is forced, no step is volatile and its selection is covered, only stats those files; if
every signature matches, nothing changed and every step is up to date, without loading traces or
fingerprinting anything (ninja's no-op path). Any mismatch means the normal, step-by-step path.

A file modified within the file system's timestamp granularity of the record could keep its
signature, so no record is written while any file is racy (hashing.is_racy), nor by a make
one of whose files no longer holds what it decided on (edited while a later step ran: build.py
asks step_facts.FactReader.unchanged).

A directory's own stat does not reflect its contents, so a directory (an input or output that
is a folder) is covered by `folder_signature`: a digest of the stat signature of every entry
below it (os.scandir, recursive, stat only, nothing read). A file added, removed, renamed,
modified or replaced (new inode) anywhere below changes it; a folder with a racy file is not
recorded. Symbolic links are followed as hashing.StatCache hashes them: a link's target's
signature counts (a dangling link counts as missing), a link to a folder is not entered.

A record is trusted only as far as it covers the make that asks: besides its shape, every input
and output of the selected steps and both guards must be among its files, or it proves nothing
(a record that names the steps and no file would pass any signature check). Both doors (the
full make and the fast path) ask question.py, which works out those paths from the steps with
`required_paths` and hands them to `is_clean`, which warns about a record that falls short and
treats it as absent. On disk: ``{"steps": [name], "files": {absolute path: [size, mtime_ns,
inode]}, "dirs": {absolute path: folder digest}}`` (store.py document, kind KIND); a folder is
named in both, with [0, 0, 0] in `files` (a tipi that knows no `dirs` finds it changed).
"""

from __future__ import annotations

import os
import stat
import time
from collections.abc import Callable, Collection, Iterable
from pathlib import Path
from typing import Any

from tipi.state.statefile import (
    fields_problem,
    int_problem,
    list_problem,
    map_problem,
    remove_path,
    shown,
    text_problem,
    warn_broken,
)
from tipi.state.store import read_document, write_document

KIND = "clean-record"


def signature(path: str) -> list[int] | None:
    """[size, mtime_ns, inode] of a regular file; None if missing or not a regular file."""
    try:
        st = os.stat(path)
    except (OSError, ValueError):  # ValueError: a NUL byte, in a damaged record's path
        return None
    if not stat.S_ISREG(st.st_mode):
        return None
    return [st.st_size, st.st_mtime_ns, st.st_ino]


# What `files` holds for a folder (its signature is in `dirs`): no regular file has it.
FOLDER_MARK = [0, 0, 0]


def folder_signature(path: str) -> tuple[str, int] | None:
    """(digest of the stat signatures of every entry below `path`, the newest mtime_ns of its
    files) for a folder; None when `path` is not one or a folder below cannot be listed."""
    try:
        if not stat.S_ISDIR(os.stat(path).st_mode):
            return None
        entries: list[Any] = []
        newest = _list_folder(os.fsencode(path), b"", entries)
    except (OSError, ValueError):
        return None
    import hashlib  # only where a folder is covered: not on every no-op's import path

    import msgpack  # as the record itself: C speed over 10,000 entries

    return hashlib.blake2b(msgpack.packb(entries), digest_size=16).hexdigest(), newest


def _list_folder(path: bytes, prefix: bytes, entries: list[Any]) -> int:
    """Append (relative name, mode, size, mtime_ns, inode) of each entry below `path`, in name
    order (names as bytes: none is decoded; sub-folders entered, links to folders not, as
    os.walk in hashing); the newest mtime_ns of a file below."""
    newest = 0
    with os.scandir(path) as listing:
        found = sorted(listing, key=_name)
    for entry in found:
        name = prefix + entry.name
        try:
            st = entry.stat()  # follows a link: its target's content is what is hashed
        except FileNotFoundError:  # a dangling link (or removed meanwhile)
            entries.append((name, -1))
            continue
        entries.append((name, st.st_mode, st.st_size, st.st_mtime_ns, st.st_ino))
        if entry.is_dir(follow_symlinks=False):
            newest = max(newest, _list_folder(entry.path, name + b"/", entries))
        elif st.st_mtime_ns > newest:
            newest = st.st_mtime_ns
    return newest


def _name(entry: os.DirEntry[bytes]) -> bytes:
    return entry.name


def write_clean_record(
    file: Path, steps: Iterable[str], paths: Iterable[str], guards: Iterable[Path]
) -> bool:
    """Record that `steps` are up to date; False (nothing written) when it cannot be trusted.

    Args:
        file: where the record goes.
        steps: the steps the record covers.
        paths: absolute paths of every input and output of those steps.
        guards: files whose change must invalidate the record (plan cache, trace log).
    """
    from tipi.identity.hashing import is_racy  # not on the no-op path, which only checks records

    now = time.time_ns()
    files: dict[str, list[int]] = {}
    dirs: dict[str, str] = {}
    for path in paths:
        sig = signature(path)
        if sig is None and (folder := folder_signature(path)) is not None:
            dirs[path], newest = folder
            sig = [*FOLDER_MARK[:1], newest, 0]  # racy if a file below is
        if sig is None or is_racy(sig[1], now):
            forget(file)
            return False
        files[path] = list(FOLDER_MARK) if path in dirs else sig
    # tipi changes its own files only by rename (new inode) or append (new size), so their
    # signature always changes with them: no racy check needed.
    for guard in guards:
        sig = signature(str(guard))
        if sig is None:
            forget(file)
            return False
        files[str(guard)] = sig
    write_document(file, KIND, {"steps": sorted(steps), "files": files, "dirs": dirs})
    return True


def required_paths(paths: Iterable[Iterable[str]], root: Path | str) -> set[str]:
    """The absolute paths a record of steps with these paths (one list per step: its inputs
    and outputs as the plan spells them) must name, spelled as the make spells them
    (planning.absolute, which the fast path does not import)."""
    prefix = f"{root}/"
    return {path if path[:1] == "/" else prefix + path for each in paths for path in each}


def is_clean(
    file: Path, steps: Iterable[str], warn: Callable[[str], None], required: Collection[str]
) -> bool:
    """True when the record covers `steps`, names every path of `required` (the steps'
    inputs and outputs, `required_paths`, and the guards) and no file it names has changed.

    A record of other steps is no proof, silently (the last make had other targets); one of
    these steps that leaves out a path they need is malformed: a warning, and no proof.
    """
    record: Any = read_document(file, KIND, warn, _record_problem)
    if record is None:
        return False
    if not set(record["steps"]).issuperset(steps):
        return False
    files = record["files"]
    missing = [path for path in required if path not in files]
    if missing:
        more = f" and {len(missing) - 1} more" if len(missing) > 1 else ""
        warn_broken(warn, file, f"leaves out {shown(min(missing))}{more}", KIND)
        return False
    dirs = record.get("dirs") or {}
    return all(signature(path) == sig for path, sig in files.items() if path not in dirs) and all(
        _same_folder(path, digest) for path, digest in dirs.items()
    )


def _same_folder(path: str, digest: str) -> bool:
    folder = folder_signature(path)
    return folder is not None and folder[0] == digest


def forget(file: Path) -> None:
    """Remove the record (before anything that changes outputs or traces)."""
    remove_path(file)


def _record_problem(record: Any) -> str | None:
    """What is wrong with a loaded clean record: {"steps": [name], "files": {path: sig}}."""
    return fields_problem(record, _FIELDS)


def _steps_problem(steps: Any) -> str | None:
    return list_problem(steps, text_problem)


def _files_problem(files: Any) -> str | None:
    # Plain type tests first, as msgpack decodes a good record (a record names every input and
    # output: 10x faster over thousands); the generic checks find and word any problem.
    if type(files) is dict and all(
        type(path) is str
        and type(sig) is list
        and len(sig) == 3
        and type(sig[0]) is type(sig[1]) is type(sig[2]) is int
        for path, sig in files.items()
    ):
        return None
    return map_problem(files, lambda sig: list_problem(sig, int_problem, length=3))


def _dirs_problem(dirs: Any) -> str | None:
    return map_problem(dirs, text_problem)


_FIELDS = {
    "steps": (True, _steps_problem),
    "files": (True, _files_problem),
    "dirs": (False, _dirs_problem),
}
