"""`tipi clean`: remove engine state, and optionally the outputs tipi recorded making."""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Callable
from pathlib import Path

from tipi.config import list_pipelines
from tipi.config.project import locate_pipeline, require_project_root
from tipi.config.variant import SWEEPS_DIR
from tipi.paths import output_problem
from tipi.state.layout import Layout, cache_of, runs_folder
from tipi.state.lock import ProjectLock
from tipi.state.store import TraceStore

SWEEP_RESULTS = ("results.json", "results.csv")


def clean(
    pipeline: str | None,
    outputs: bool,
    notice: Callable[[str], None] | None = None,
    keep_runs: bool = False,
) -> list[str]:
    """Delete `.tipi_cache/` (or one pipeline's part of it) and, with `outputs`, the outputs
    its traces record (sweep variants' included) and its sweeps' result tables. Holds the
    project lock (`notice` hears about waiting for it): no make changes files meanwhile.
    The runs (`tipi runs`) go too, unless `keep_runs`.

    Returns:
        one line per thing removed, for the user.
    """
    root = require_project_root()
    if pipeline is not None:
        locate_pipeline(root, pipeline)  # a name, never a path
    cache = cache_of(root)
    names = [pipeline] if pipeline else list_pipelines(root)
    removed: list[str] = []
    lock = ProjectLock(cache, notice)
    lock.acquire()
    try:
        if outputs:
            for name in names:
                removed += _remove_outputs(root, name)
        if pipeline is None:
            lock.release()  # its file lives in the folder about to go
            if keep_runs and cache.is_dir() and not cache.is_symlink():
                for part in sorted(cache.iterdir()):
                    if part != runs_folder(cache):
                        removed += _remove(part, root)
            else:
                removed += _remove(cache, root)
        else:
            removed += _remove_pipeline(Layout(root, pipeline), keep_runs)
    finally:
        lock.release()
    return removed or ["nothing to clean"]


def _remove_pipeline(layout: Layout, keep_runs: bool) -> list[str]:
    """Every folder of the pipeline's state the layout names (its sweep variants' included),
    its runs unless `keep_runs`."""
    removed: list[str] = []
    for folder in layout.per_pipeline_dirs():
        if not (keep_runs and folder == layout.runs_dir):
            removed += _remove(folder, layout.root)
    return removed


def _remove_outputs(root: Path, name: str) -> list[str]:
    """The outputs recorded in `name`'s traces that still hold what their trace recorded,
    each confined again before it goes; then the sweeps' result tables and the folders
    left empty. An output changed since is kept, and said so."""
    from tipi.identity.hashing import StatCache  # hashes: only when outputs go

    removed: list[str] = []
    folders: set[Path] = set()
    recorded: dict[str, set[str | None]] = {}
    with TraceStore(Layout(root, name).traces_file) as store:
        for trace in store.traces.values():
            for relative, digest in trace.outputs.items():
                recorded.setdefault(relative, set()).add(digest)
    hashes = StatCache(trusted=False)
    for relative, made in sorted(recorded.items()):
        path = root / relative
        if output_problem(path, root) is not None or not (path.exists() or path.is_symlink()):
            continue
        # Only what still holds the bytes tipi made: a file put there since (the user's own,
        # at the path of a step no longer planned) or edited is not tipi's to delete.
        if hashes.hash_path(path) not in made - {None}:
            removed.append(f"kept {relative} (changed since tipi made it)")
            continue
        removed += _remove(path, root)
        folders.add(path.parent)
    sweeps = root / SWEEPS_DIR / name
    if sweeps.is_dir() and not sweeps.is_symlink():
        for sweep in sweeps.iterdir():
            for result in SWEEP_RESULTS:
                removed += _remove(sweep / result, root)
        folders |= {Path(d) for d, _, _ in os.walk(sweeps)}
    for folder in sorted(folders, key=lambda p: len(p.parts), reverse=True):
        _prune(folder, root)
    return removed


def _prune(folder: Path, root: Path) -> None:
    """Remove `folder` and its parents while they are empty, never the project root."""
    while folder != root and folder.is_relative_to(root):
        try:
            folder.rmdir()
        except OSError:
            return
        folder = folder.parent


def _remove(path: Path, root: Path) -> list[str]:
    if path.is_dir() and not path.is_symlink():
        if sys.version_info >= (3, 12):
            shutil.rmtree(path, onexc=_named_whole)
        else:
            shutil.rmtree(path, onerror=lambda f, p, info: _named_whole(f, p, info[1]))
    elif path.exists() or path.is_symlink():
        path.unlink()
    else:
        return []
    return [f"removed {path.relative_to(root) if path.is_relative_to(root) else path}"]


def _named_whole(function: object, path: str, error: BaseException) -> None:
    """Raise rmtree's `error` naming the whole `path`: rmtree works by folder descriptors,
    so its errors name an entry alone (`plan.msgpack`), and a refusal could not say which
    folder to fix (tipi.errors.AccessError)."""
    if isinstance(error, OSError):
        error.filename = path
    raise error
