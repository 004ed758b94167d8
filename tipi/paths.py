"""Confinement: names are identifiers, never paths; outputs lie strictly inside the project.

Everything tipi writes, moves or deletes on a user's behalf is a step's output, a file under
`.tipi_cache/`, or a sweep's folder. Step, permanence and pipeline names become parts of paths
(`.tipi_cache/scratch/<pipeline>/<step>/`), so they are identifiers. An output path must
resolve, symlinks followed, strictly inside the project root and outside the places tipi's
own correctness rests on: the project root itself, `.tipi_cache/`, `pipelines/` (the sources)
and every other output (a step writing into another's output folder, or around it, would
replace or delete it). Paths are checked when the plan is made and again right before
anything is moved or deleted: a symlink planted in between is caught.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path

NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]*\Z")
NAME_RULE = "letters, digits, '_', '-' and '.', not starting with '.' or '-'"
PROTECTED = {".tipi_cache": "tipi's state", "pipelines": "your sources"}


def is_name(text: object) -> bool:
    """Whether `text` may name a step, a permanence or a pipeline."""
    return isinstance(text, str) and NAME.match(text) is not None and len(text) <= 200


class RealPaths:
    """`os.path.realpath` for many paths at one moment (a plan's outputs): each folder is
    resolved once, and a path in it costs one `lstat` (is its last part a link?) instead of
    one per part of the path. The same answers as `os.path.realpath`: a last part that is not
    a link adds itself to its folder's real path; one that is, is resolved in full.
    Only for paths checked together: a link planted later is for the next check to see."""

    def __init__(self) -> None:
        self._folders: dict[str, str] = {}
        self._paths: dict[str, str] = {}  # the project root, asked once an output

    def __call__(self, path: str | os.PathLike[str]) -> str:
        text = os.fspath(path)
        found = self._paths.get(text)
        if found is None:
            found = self._paths[text] = self._real(text)
        return found

    def _real(self, path: str) -> str:
        head, tail = os.path.split(path)
        if not head or tail in ("", ".", "..") or os.path.islink(path):
            return os.path.realpath(path)
        real = self._folders.get(head)
        if real is None:
            real = self._folders[head] = os.path.realpath(head)
        return os.path.join(real, tail)


def output_problem(
    path: Path, root: Path, real: Callable[[Path], str] = os.path.realpath
) -> str | None:
    """Why `path` may not be an output of a step in the project at `root`; None if it may.

    Checked on the path as written (normalized) and as it resolves (symlinks followed, by
    `real`: a RealPaths for many outputs checked together).
    Written on strings, not Paths: it runs for every output at plan time and again before
    each step's outputs are moved (pathlib's parsing was ~0.2 ms an output).
    """
    base = os.path.normpath(root)
    checks = ((os.path.normpath(path), base), (real(path), real(root)))
    for candidate, top in checks:
        if candidate == top:
            return "it is the project root"
        prefix = top if top.endswith(os.sep) else top + os.sep
        if not candidate.startswith(prefix):
            return f"it is outside the project root {root}"
        first = candidate[len(prefix) :].split(os.sep, 1)[0]
        if first in PROTECTED:
            return f"it is inside {first}/, which holds {PROTECTED[first]}"
    return None


def nesting_problem(
    outputs: Mapping[str, Iterable[Path]],
    root: Path,
    real: Callable[[Path], str] = os.path.realpath,
) -> tuple[str, str] | None:
    """(step, message) for the first output that contains, or lies in, another output.

    Sorted by path parts, everything inside a path follows it directly: one pass with a
    stack of the enclosing paths finds every nesting (n log n, not n²). The parts are those
    of the real paths (absolute and normalized, so split on the separator as pathlib would).
    """
    entries = sorted(
        (tuple(real(path).split(os.sep)), step, path)
        for step, paths in outputs.items()
        for path in paths
    )
    stack: list[tuple[tuple[str, ...], str, Path]] = []
    for parts, step, path in entries:
        while stack and parts[: len(stack[-1][0])] != stack[-1][0]:
            stack.pop()
        if stack and stack[-1][0] != parts:  # the same path twice: the graph reports that
            _, outer_step, outer = stack[-1]
            shown, other_shown = _shown(path, root), _shown(outer, root)
            return step, (f"output {shown} lies inside output {other_shown} of step '{outer_step}'")
        stack.append((parts, step, path))
    return None


def _shown(path: Path, root: Path) -> str:
    return path.relative_to(root).as_posix() if path.is_relative_to(root) else str(path)


def relative(path: Path, root: Path) -> str:
    """Project-relative POSIX path when under `root`, else the path as it is. On strings
    (pathlib's `relative_to` was ~10 µs a path, three paths a step): a pathlib path's text
    is normalized, so a prefix of it is a prefix of its parts."""
    text, base = str(path), str(root)
    if text.startswith("//") or base.startswith("//"):  # POSIX's other root: pathlib decides
        try:
            return path.relative_to(root).as_posix()
        except ValueError:
            return text
    if text == base:
        return "."
    prefix = base if base.endswith("/") else base + "/"
    return text[len(prefix) :] if text.startswith(prefix) else text


def self_input_problem(
    step: str,
    inputs: Mapping[str, Path],
    outputs: Mapping[str, Path],
    root: Path,
    real: Callable[[Path], str] = os.path.realpath,
) -> str | None:
    """Why a step's outputs may not be what it reads; None if they may be.

    An output that is one of the step's own inputs, lies inside an input folder, or holds an
    input, would be written over (a source lost) and change the step's own fingerprint, so
    the step would rerun at every make. Compared on the real paths, as nesting_problem."""
    for out_key, out in outputs.items():
        out_parts = real(out).split(os.sep)
        for in_key, source in inputs.items():
            in_parts = real(source).split(os.sep)
            n = min(len(out_parts), len(in_parts))
            if out_parts[:n] != in_parts[:n]:
                continue
            how = (
                "is its own input"
                if len(out_parts) == len(in_parts)
                else "lies inside its input"
                if len(out_parts) > len(in_parts)
                else "holds its input"
            )
            return (
                f"output '{out_key}' of step '{step}' ({_shown(out, root)}) {how} "
                f"'{in_key}' ({_shown(source, root)}): the step would write over what it reads"
            )
    return None
