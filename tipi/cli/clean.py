"""`tipi clean`: remove engine state, and optionally the outputs of a pipeline's steps."""

from __future__ import annotations

import shutil
from pathlib import Path

from tipi.config import list_pipelines
from tipi.config.project import require_project_root
from tipi.config.variant import SWEEPS_DIR
from tipi.engine import CACHE_DIR, Engine


def clean(pipeline: str | None, outputs: bool) -> list[str]:
    """Delete `.tipi_cache/` (or one pipeline's part of it) and, with `outputs`, its outputs
    and its sweeps' (`out/sweeps/<pipeline>/`).

    Returns:
        one line per thing removed, for the user.
    """
    root = require_project_root()
    cache = root / CACHE_DIR
    names = [pipeline] if pipeline else list_pipelines(root)
    removed: list[str] = []
    if outputs:
        for name in names:
            plan = Engine(name, root=root).load(save=False)
            for step in plan.steps.values():
                for path in step.outputs.values():
                    removed += _remove(root / path, root)
            removed += _remove(root / SWEEPS_DIR / name, root)
    if pipeline is None:
        removed += _remove(cache, root)
    else:
        for part in ("pipelines", "staging", "scratch"):
            removed += _remove(cache / part / pipeline, root)
    return removed or ["nothing to clean"]


def _remove(path: Path, root: Path) -> list[str]:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif path.exists() or path.is_symlink():
        path.unlink()
    else:
        return []
    return [f"removed {path.relative_to(root) if path.is_relative_to(root) else path}"]
