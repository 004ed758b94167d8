"""Staging and scratch folders: outputs are written aside and moved into place on success."""

from __future__ import annotations

import os
import re
import secrets
import shutil
import uuid
from collections.abc import Mapping
from pathlib import Path

from tipi.errors import DefinitionError, ProcessFailure, TipiError
from tipi.paths import output_problem
from tipi.state.layout import scratch_dir, staging_dir


class Staging:
    """Per-pipeline folders under `.tipi_cache/`.

    ``staging/<pipeline>/<make>.slot<k>/<basename>`` receives each output while a step runs in
    slot k (one slot per concurrently running step; the same basename, so code that looks at
    names or suffixes still works; ``.../<n>/`` when two outputs share a basename). A slot
    is reused by the next step instead of being made and removed for each one: on slow file
    systems a mkdir/rmdir pair costs more than a small step. `<make>` is this make's own
    (pid and random): a worker of a killed make that still writes never writes where the
    next make stages, and the next make removes its folders before it stages anything.
    ``scratch/<pipeline>/<step>/`` holds the step's own checkpoints and survives a crash so a
    rerun can resume from it; it is created only when the step asks for it.
    """

    def __init__(self, cache_dir: Path, pipeline: str) -> None:
        self.root = cache_dir.parent
        self.staging_root = staging_dir(cache_dir, pipeline)
        self.scratch_root = scratch_dir(cache_dir, pipeline)
        self.token = f"{os.getpid()}-{secrets.token_hex(3)}"
        self._ready = False
        self._slots: dict[int, Path] = {}  # the slot folders this make has made
        self._real_root: str | None = None

    def prepare(
        self, step: str, outputs: Mapping[str, Path], slot: int = 0, scratch: str | None = None
    ) -> tuple[dict[str, Path], Path]:
        """Fresh staging paths for `outputs` and the scratch folder (named `scratch`, default
        the step's name; created by the step when it asks for it)."""
        folder = self._slots.get(slot) if self._ready else None
        leftovers = _listing(folder) if folder is not None else None  # a slot made: no mkdir
        if folder is None or leftovers is None:
            folder = self._make_slot(slot)
            leftovers = os.listdir(folder)
        for leftover in leftovers:  # left by a step that failed or was killed
            _remove(folder / leftover)
        unique = len({p.name for p in outputs.values()}) == len(outputs)
        staged = {}
        for index, (name, final) in enumerate(outputs.items()):
            if unique:
                staged[name] = folder / final.name
            else:
                staged[name] = folder / str(index) / final.name
                staged[name].parent.mkdir()
        return staged, self.scratch_root / (scratch or step)

    def _make_slot(self, slot: int) -> Path:
        if not self._ready:
            self.staging_root.mkdir(parents=True, exist_ok=True)
            self._slots.clear()
            self._ready = True
        folder = self._slots[slot] = self.staging_root / f"{self.token}.slot{slot}"
        folder.mkdir(exist_ok=True)
        return folder

    def commit(
        self,
        step: str,
        staged: Mapping[str, Path],
        outputs: Mapping[str, Path],
        since: float | None = None,
    ) -> None:
        """Move every staged output into place, after checking the step wrote them all
        (`since`: when the step started, to tell a final path it wrote itself).

        Raises:
            OutputNotWritten: an output was not written; nothing is moved.
        """
        missing = [name for name, path in staged.items() if not os.path.lexists(path)]
        if missing:
            raise OutputNotWritten(step, missing[0], outputs[missing[0]], self.root, since)
        for name in staged:  # again now: a symlink may have been planted since the plan
            problem = output_problem(outputs[name], self.root, self._real)
            if problem:
                raise DefinitionError(
                    f"output '{name}' of step '{step}' ({outputs[name]}) is not allowed: "
                    f"{problem}; nothing was moved",
                    hint="remove the symlink or fix the path, then make again",
                )
        for name, path in staged.items():
            _replace(path, outputs[name])

    def _real(self, path: Path) -> str:
        """`os.path.realpath`, the project root's resolved once a make: what matters is
        below it (were the root itself moved meanwhile, its outputs would resolve outside
        the root as first resolved, and be refused)."""
        if path is self.root:
            if self._real_root is None:
                self._real_root = os.path.realpath(path)
            return self._real_root
        return os.path.realpath(path)

    def discard(self, staged: Mapping[str, Path]) -> None:
        """Remove whatever a step left at its staging paths (nothing, once committed)."""
        for path in staged.values():
            if os.path.lexists(path):
                _remove(path)

    def finish(self, step: str) -> None:
        """Remove the step's scratch folder: it succeeded, nothing to resume."""
        folder = self.scratch_root / step
        if os.path.lexists(folder):  # most steps never make one: no failed unlink to raise
            _remove(folder)

    def discard_all(self) -> None:
        """Remove staging left by runs that died (call it while holding the project lock)."""
        _remove(self.staging_root)
        self._ready = False

    def tidy(self) -> None:
        """Remove this pipeline's staging and scratch folders where they are empty."""
        if self.staging_root.is_dir():
            for slot in os.listdir(self.staging_root):
                _remove(self.staging_root / slot)
        for folder in (self.staging_root, self.scratch_root):
            for path in (folder, folder.parent):
                try:
                    path.rmdir()
                except OSError:
                    break
        self._ready = False


def _listing(folder: Path) -> list[str] | None:
    try:
        return os.listdir(folder)
    except FileNotFoundError:  # removed since: made again
        return None


class OutputNotWritten(ProcessFailure):
    """A step ended without writing a declared output (exit 1). Nothing was raised in the
    step, so there is no traceback to show: the message says which output, where, and what
    to do."""

    def __init__(
        self, step: str, name: str, final: Path, root: Path, since: float | None = None
    ) -> None:
        shown = _shown(final, root)
        wrote = since is not None and _written_since(final, since)
        if wrote:
            message = (
                f"step '{step}' wrote its output '{name}' to its final path {shown} itself; "
                f"tipi keeps only what a step writes to self.outputs['{name}']"
            )
        else:
            message = f"step '{step}' did not write its declared output '{name}' ({shown})"
        TipiError.__init__(self, message, hint=_hint(name, shown))
        self.step = step
        self.error = None  # type: ignore[assignment]  # nothing raised: no traceback


def misplaced_output(error: TipiError, outputs: Mapping[str, Path], root: Path) -> None:
    """Say so in `error` when a step failed writing to one of its final output paths (or
    into an output folder) instead of `self.outputs[name]`: the message names the output,
    the hint what to do."""
    cause = getattr(error, "error", None) or error
    filename = getattr(cause, "filename", None) if isinstance(cause, OSError) else None
    if filename is None:  # a worker's failure comes back as text
        found = re.search(r"No such file or directory: '([^']+)'", str(error))
        filename = found[1] if found else None
    if not filename:
        return
    target = Path(os.path.abspath(root / os.fsdecode(filename)))
    for name, final in outputs.items():
        final = Path(os.path.abspath(final))
        if target == final or final in target.parents:
            shown = _shown(final, root)
            error.message += (
                f" (the step writes to its final output path {shown} instead of "
                f"self.outputs['{name}'])"
            )
            error.hint = _hint(name, shown)
            return


def _hint(name: str, shown: str) -> str:
    return (
        f"write it to self.outputs['{name}'] (a staging path tipi gives the step; it moves "
        f"what is there to {shown} when the step succeeds)"
    )


def _shown(path: Path, root: Path) -> str:
    try:
        return str(Path(path).relative_to(root))
    except ValueError:
        return str(path)


def _written_since(path: Path, since: float) -> bool:
    try:
        return os.lstat(path).st_mtime >= since - 1  # file systems round times to a second
    except OSError:
        return False


def _replace(source: Path, target: Path) -> None:
    try:
        _move(source, target)
    except FileNotFoundError:
        target.parent.mkdir(parents=True, exist_ok=True)
        _move(source, target)
    except IsADirectoryError:
        _replace_dir(source, target)
    except OSError:
        if not target.is_dir():
            raise
        _replace_dir(source, target)


def _replace_dir(source: Path, target: Path) -> None:
    # A directory cannot be replaced atomically: move the old one aside first.
    trash = target.with_name(f".{target.name}.tipi-old-{uuid.uuid4().hex[:8]}")
    os.replace(target, trash)
    _move(source, target)
    shutil.rmtree(trash, ignore_errors=True)


def _move(source: Path, target: Path) -> None:
    try:
        os.replace(source, target)
    except OSError as exc:
        if exc.errno != 18:  # EXDEV: another file system; anything else is real
            raise
        shutil.move(source, target)


def _remove(path: Path) -> None:
    try:
        path.unlink()
    except FileNotFoundError:
        return
    except (IsADirectoryError, PermissionError):
        shutil.rmtree(path, ignore_errors=True)
