"""A matrix's values read from the data (issue 29): a glob's matching files' stems, a lines
file's lines; and the checks that keep those sources source files.

Why a source must be a source file: a build decides its graph before anything runs (the plan
is complete before the first step starts), so matrix values are read at plan time. A lines
file or a glob that a step of the pipeline writes would give the values of the make *before*,
and a step writing into its own glob would add an instance at every make, never converging.
`check_sources` (called by resolve.py once every output is bound) refuses both, naming the
matrix key, the source and the step that writes it. A source that gives no value is refused
too (a matrix with no instance would silently remove its step), as is a lines file that is not
a regular file (`/dev/zero`, a FIFO) or is larger than `MAX_LINES_BYTES`.
"""

from __future__ import annotations

import fnmatch
import os
import stat
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from tipi.config.instances import glob_matches, value_problem
from tipi.config.schema import PipelineSpec, ProcessSpec
from tipi.errors import ConfigError
from tipi.suggest import did_you_mean

MAX_LINES_BYTES = 1 << 20  # 1 MiB: ~5,000 values of 200 characters; more is not a step list
SOURCE_HINT = (
    "matrix values are read when planning, before any step runs: they must come from source files"
)


def read_source(
    name: str,
    key: str,
    given: Mapping[str, Any],
    spec: PipelineSpec,
    location: Any,
    processes: Mapping[str, ProcessSpec],
    globs: list[list[Any]],
    files: list[str],
) -> list[str]:
    """The values of matrix key `key` of process `name` given as `{ glob = ... }` or
    `{ lines = ... }`; records the glob's matches in `globs`, the lines file in `files`."""
    kind = next(iter(given), None)
    source = given.get(kind) if kind else None
    if len(given) != 1 or kind not in ("glob", "lines") or not isinstance(source, str):
        raise ConfigError(
            f"matrix key '{key}' reads its values from {{ glob = \"...\" }} or "
            '{ lines = "file.txt" }',
            hint=did_you_mean(str(kind), ("glob", "lines")) or f'{key} = {{ glob = "data/*.png" }}',
            location=location,
        )
    path = Path(source) if Path(source).is_absolute() else spec.root / source
    if kind == "lines":
        values = _lines(name, key, source, path, spec, location, processes)
        files.append(str(path))
        return values
    matched = glob_matches(str(path))
    globs.append([str(path), matched])
    stems: dict[str, str] = {}
    for file in matched:
        stem = Path(file).stem
        problem = value_problem(stem)
        if problem:
            raise ConfigError(
                f"file {file} cannot be an instance of matrix key '{key}': {problem}",
                hint="rename the file, or narrow the glob",
                location=location,
            )
        if stem in stems:
            raise ConfigError(
                f"files {stems[stem]} and {file} give matrix key '{key}' the same value {stem}",
                hint="values are the files' names without their suffix: narrow the glob",
                location=location,
            )
        stems[stem] = file
    if not stems:
        raise ConfigError(
            f"matrix key '{key}' of '{name}' has no values: glob {source} matches no file, "
            f"so '{name}' would have no instance",
            hint=_writer(processes, spec, path, glob=True) or _empty_glob_hint(source),
            location=location,
        )
    return list(stems)


def _lines(
    name: str,
    key: str,
    source: str,
    path: Path,
    spec: PipelineSpec,
    location: Any,
    processes: Mapping[str, ProcessSpec],
) -> list[str]:
    def refuse(why: str, hint: str | None = None) -> ConfigError:
        return ConfigError(
            f"cannot read the values of matrix key '{key}' of '{name}' from {source}: {why}",
            hint=_writer(processes, spec, path, glob=False) or hint,
            location=location,
        )

    try:
        # stat first: opening a FIFO blocks, and /dev/zero never ends
        if not stat.S_ISREG(os.stat(path).st_mode):
            raise refuse("it is not a regular file", "lines = names a text file, one value a line")
        with open(path, "rb") as file:
            data = file.read(MAX_LINES_BYTES + 1)
        if len(data) > MAX_LINES_BYTES:
            raise refuse(
                f"it is larger than {MAX_LINES_BYTES // 1024} KiB",
                "a lines file lists one value a line: a few thousand at most",
            )
        text = data.decode("utf-8-sig")  # a byte order mark is not part of the first value
    except (OSError, UnicodeDecodeError) as exc:
        raise refuse(str(exc)) from None
    lines = (line.strip() for line in text.splitlines())
    values = [line for line in lines if line and not line.startswith("#")]
    for value in values:
        problem = value_problem(value)
        if problem:
            raise ConfigError(
                f"a line of {source} cannot be a value of matrix key '{key}': {problem}",
                location=location,
            )
    if not values:
        raise ConfigError(
            f"matrix key '{key}' of '{name}' has no values: {source} has no line that is a "
            f"value, so '{name}' would have no instance",
            hint="write one value a line (blank lines and lines starting with # are skipped)",
            location=location,
        )
    return values


def _empty_glob_hint(source: str) -> str:
    if "{" in source:
        return "placeholders ({pipeline}, {name}, ...) are not expanded in a glob: write the path"
    if source.count("[") > source.count("]"):
        return "'[' starts a set of characters ([abc]) and needs its ']'; write [[] for a '['"
    return "a matrix needs at least one value: add the files, or remove the matrix"


def _parts(path: str | Path) -> list[str]:
    return [p for p in os.path.normpath(str(path)).split(os.sep) if p]


def _component(name: str, pattern: str) -> bool:
    # as glob does: a wildcard does not match a hidden name
    if name.startswith(".") and not pattern.startswith(".") and pattern != name:
        return False
    return fnmatch.fnmatchcase(name, pattern)


def _may_hold(path: list[str], pattern: list[str], folder: bool) -> bool:
    """Whether `path` matches the glob `pattern`, or, when it may be a `folder`, holds a
    place where a match could lie."""
    if not path:
        return folder or all(part == "**" for part in pattern)
    if not pattern:
        return False
    if pattern[0] == "**":
        return _may_hold(path, pattern[1:], folder) or _may_hold(path[1:], pattern, folder)
    return _component(path[0], pattern[0]) and _may_hold(path[1:], pattern[1:], folder)


def _writes(output: str | Path, source: str | Path, glob: bool) -> bool:
    """Whether writing `output` may write the source `source`: it is the source (matches the
    glob), or a folder that holds it. An output is taken for a folder when it has no suffix
    (`out/images`) or is one on disk; `stats.json` is a file, so a step writing it under a
    glob's `**` does not feed a glob of `*.png`."""
    out, src = _parts(output), _parts(source)
    folder = len(out) < len(src) and (not Path(output).suffix or os.path.isdir(output))
    if glob:
        return _may_hold(out, src, folder)
    return out == src or (folder and src[: len(out)] == out)


def _writer(
    processes: Mapping[str, ProcessSpec], spec: PipelineSpec, source: Path, glob: bool
) -> str | None:
    """A hint naming the step whose TOML output (placeholders {name} and {pipeline} aside)
    is `source`, for a source not there yet; best effort: outputs are not bound yet."""
    for proc in processes.values():
        for key, template in proc.outputs.items():
            text = template.replace("{name}", proc.name).replace("{pipeline}", spec.name)
            if "{" not in text and _writes(spec.root / text, source, glob):
                return f"step '{proc.name}' writes it (output '{key}' = {template}): {SOURCE_HINT}"
    return None


def check_sources(spec: PipelineSpec, outputs: Mapping[str, Mapping[str, Path]]) -> None:
    """Refuse a lines file or a glob of a matrix that a step writes (`outputs`: step → its
    bound outputs): values must come from source files (module docstring)."""
    sources = [(file, False) for file in spec.matrix_files]
    sources += [(pattern, True) for pattern, _ in spec.matrix_globs]
    for source, glob in sources:
        for step, paths in outputs.items():
            for key, path in paths.items():
                if _writes(path, source, glob):
                    _refuse(spec, source, glob, step, key, path)


def _refuse(spec: PipelineSpec, source: str, glob: bool, step: str, key: str, path: Path) -> None:
    name, mkey, written = _origin(spec, source, "glob" if glob else "lines")
    what = f"glob {written}" if glob else f"file {written}"
    shown = os.path.relpath(path, spec.root)
    raise ConfigError(
        f"matrix key '{mkey}' of '{name}' reads its values from the {what}, "
        f"which step '{step}' writes (output '{key}' = {shown})",
        hint=f"{SOURCE_HINT}; list the values, or read them from a file no step writes",
        location=spec.locate("processes", name, "matrix", mkey) if name != "?" else None,
    )


def _origin(spec: PipelineSpec, source: str, kind: str) -> tuple[str, str, str]:
    """(process, key, as written) of the matrix reading `source`: read again from the TOML,
    only for an error."""
    try:
        tables = tomllib.loads(spec.source or "").get("processes", {})
    except tomllib.TOMLDecodeError:
        tables = {}
    for name, table in tables.items():
        matrix = table.get("matrix") if isinstance(table, dict) else None
        for key, given in (matrix or {}).items() if isinstance(matrix, dict) else ():
            written = given.get(kind) if isinstance(given, dict) else None
            if isinstance(written, str):
                path = Path(written) if Path(written).is_absolute() else spec.root / written
                if str(path) == source:
                    return name, key, written
    return "?", "?", os.path.relpath(source, spec.root)
