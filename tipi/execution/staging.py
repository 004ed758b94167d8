"""Staging and scratch folders: outputs are written aside and moved into place on success."""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Mapping
from pathlib import Path

from tipi.errors import ProcessFailure


class Staging:
    """Per-step folders under `.tipi_cache/`.

    ``staging/<pipeline>/<step>/<n>/<basename>`` receives output n while the step runs (same
    basename, so code that looks at the suffix still works); ``scratch/<pipeline>/<step>/``
    holds the step's own checkpoints and survives a crash so a rerun can resume from it.
    """

    def __init__(self, cache_dir: Path, pipeline: str) -> None:
        self.staging_root = cache_dir / "staging" / pipeline
        self.scratch_root = cache_dir / "scratch" / pipeline

    def prepare(self, step: str, outputs: Mapping[str, Path]) -> tuple[dict[str, Path], Path]:
        """Fresh staging paths for `outputs` (parents created) and the step's scratch folder."""
        folder = self.staging_root / step
        _remove(folder)
        staged = {}
        for index, (name, final) in enumerate(outputs.items()):
            path = folder / str(index) / final.name
            path.parent.mkdir(parents=True, exist_ok=True)
            staged[name] = path
        scratch = self.scratch_root / step
        scratch.mkdir(parents=True, exist_ok=True)
        return staged, scratch

    def commit(self, step: str, staged: Mapping[str, Path], outputs: Mapping[str, Path]) -> None:
        """Move every staged output into place, after checking the step wrote them all.

        Raises:
            ProcessFailure: an output was not written; nothing is moved.
        """
        missing = [name for name, path in staged.items() if not os.path.lexists(path)]
        if missing:
            names = ", ".join(f"'{n}' ({outputs[n]})" for n in missing)
            raise ProcessFailure(
                step,
                FileNotFoundError(f"the step did not write its output {names}"),
                hint="write every declared output to self.outputs[name]",
            )
        for name, path in staged.items():
            _replace(path, outputs[name])
        self.discard(step)

    def discard(self, step: str) -> None:
        """Remove the step's staging folder (after a failure, or once committed)."""
        _remove(self.staging_root / step)

    def finish(self, step: str) -> None:
        """Remove the step's scratch folder: it succeeded, nothing to resume."""
        _remove(self.scratch_root / step)

    def discard_all(self) -> None:
        """Remove staging left by runs that died (call it while holding the project lock)."""
        _remove(self.staging_root)

    def tidy(self) -> None:
        """Remove this pipeline's staging and scratch folders where they are empty."""
        for folder in (self.staging_root, self.scratch_root):
            for path in (folder, folder.parent):
                try:
                    path.rmdir()
                except OSError:
                    break


def _replace(source: Path, target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    if target.is_dir() and not target.is_symlink():
        # A directory cannot be replaced atomically: move the old one aside first.
        trash = target.with_name(f".{target.name}.tipi-old-{uuid.uuid4().hex[:8]}")
        os.replace(target, trash)
        _move(source, target)
        shutil.rmtree(trash, ignore_errors=True)
    else:
        _move(source, target)


def _move(source: Path, target: Path) -> None:
    try:
        os.replace(source, target)
    except OSError:
        shutil.move(source, target)  # another file system: copy, then remove


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    elif os.path.lexists(path):
        path.unlink()
