"""The pipeline as a make planned it: loaded from the text the plan was made from, and only
while the files the plan read are unchanged."""

from __future__ import annotations

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


def check_unchanged(deps: Sequence[Sequence[Any]], pipeline_file: Path | str) -> None:
    """Raise when a code file a plan was made from changed since: its steps' fingerprints no
    longer describe the code they would run. (The pipeline file itself may change: a make
    runs with the text it planned with.)"""
    skip = str(pipeline_file)
    changed = [d[0] for d in deps if d[0] != skip and stat_dep(d[0]) != list(d)]
    if changed:
        raise ConfigError(
            f"{changed[0]} changed after this make planned its steps",
            hint="run the make again: it plans with the files as they are now",
            location=Location(file=Path(changed[0])),
        )


def stat_dep(path: str) -> list[Any] | None:
    """[path, mtime_ns, size, inode] of a file a plan depends on; None when it is gone."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return [path, st.st_mtime_ns, st.st_size, st.st_ino]
