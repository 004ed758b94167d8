"""The pipeline as a make planned it: loaded from the text the plan was made from, and only
while the files the plan read are unchanged (by their stat signature, or by content)."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tipi.errors import ConfigError, Location

if TYPE_CHECKING:
    from tipi.config.resolve import ResolvedPipeline
    from tipi.config.variant import Variant


def load_resolved(
    root: Path,
    name: str,
    file: Path,
    overrides: Sequence[str],
    variant: Variant | None,
    source: str | None = None,
) -> ResolvedPipeline:
    """Parse (the given `source` text of) a pipeline file, import its classes, check its
    params and apply the sweep variant: what the driver and every worker run."""
    from tipi.config.loader import load_pipeline
    from tipi.config.resolve import resolve_pipeline
    from tipi.config.variant import apply_variant

    spec = load_pipeline(
        file,
        name=name,
        root=root,
        overrides=overrides,
        folder=root / "pipelines" / name,
        text=source,
    )
    return apply_variant(resolve_pipeline(spec), variant)


def check_unchanged(
    deps: Sequence[Sequence[Any]], pipeline_file: Path | str, globs: Sequence[Any] = ()
) -> None:
    """Raise when a code file a plan was made from changed since: its steps' fingerprints no
    longer describe the code they would run. (The pipeline file itself may change: a make
    runs with the text it planned with.) Nor may a glob matrix (`globs`: [[pattern, files]],
    config/matrix.py) match other files: the plan's instances would not be the pipeline's.

    A dep is `stat_dep`'s [path, mtime_ns, size, inode], or that and the file's content
    digest (`with_content`, what a Dask task carries): then a file whose stat signature
    differs but whose bytes are the same is unchanged. Another machine's view of a shared
    file system (NFS, FUSE) may show its own inode numbers and times."""
    from tipi.config.instances import glob_matches

    for pattern, matched in globs:
        if glob_matches(pattern) != list(matched):
            raise ConfigError(
                f"the files {pattern} matches changed after this make planned its steps",
                hint="run the make again: it plans with the files as they are now",
            )
    skip = str(pipeline_file)
    changed = [d[0] for d in deps if d[0] != skip and not unchanged(d)]
    if changed:
        raise ConfigError(
            f"{changed[0]} changed after this make planned its steps",
            hint="run the make again: it plans with the files as they are now",
            location=Location(file=Path(changed[0])),
        )


def unchanged(dep: Sequence[Any]) -> bool:
    """Whether the file of `dep` (see check_unchanged) is as it was planned."""
    if stat_dep(dep[0]) == list(dep[:4]):
        return True
    return len(dep) > 4 and content_digest(dep[0]) == dep[4]


def with_content(
    deps: Sequence[Sequence[Any]], known: dict[tuple[Any, ...], str] | None = None
) -> tuple[tuple[Any, ...], ...]:
    """`deps` with each file's content digest added, for a check made on another machine;
    only for files unchanged here (one changed already must fail there as it would here).
    `known` caches digests by stat signature, so a make reads each file once."""
    known = {} if known is None else known
    out = []
    for dep in deps:
        key = tuple(dep[:4])
        if key not in known and stat_dep(dep[0]) == list(key):
            digest = content_digest(dep[0])
            if digest is not None:
                known[key] = digest
        out.append((*key, known[key]) if key in known else key)
    return tuple(out)


def content_digest(path: str) -> str | None:
    """The SHA-256 of a file's bytes; None when it cannot be read."""
    try:
        return hashlib.sha256(Path(path).read_bytes()).hexdigest()
    except OSError:
        return None


def stat_dep(path: str) -> list[Any] | None:
    """[path, mtime_ns, size, inode] of a file a plan depends on; None when it is gone."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return [path, st.st_mtime_ns, st.st_size, st.st_ino]
