"""The stores of one make under `.tipi_cache/` (state/layout.py says where each lives),
opened on first use and closed once: a no-op make opens none."""

from __future__ import annotations

import os
from collections import ChainMap
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from tipi.errors import AccessError
from tipi.state.layout import Layout, store_folders

if TYPE_CHECKING:
    from tipi.execution.staging import Staging
    from tipi.identity.hashing import StatCache
    from tipi.runcache.content import ContentStore
    from tipi.state.lock import ProjectLock
    from tipi.state.store import TraceStore


class State:
    """The stores of one make, each opened on first use (a no-op make opens none)."""

    def __init__(
        self,
        layout: Layout,
        warn: Callable[[str], None],
        notice: Callable[[str], None],
        rehash: bool = False,
        code_units: Mapping[str, Mapping[str, str]] | None = None,
        outputs: Iterable[Path] = (),
    ) -> None:
        self.layout = layout
        self.outputs = list(outputs)
        self.warn = warn
        self.notice = notice
        self.rehash = rehash
        self.code_units = dict(code_units or {})
        self._traces: TraceStore | None = None
        self._stat: StatCache | None = None
        self._staging: Staging | None = None
        self._run_cache: ContentStore | None = None
        self._lock: ProjectLock | None = None
        self._codes: Mapping[str, Mapping[str, str]] | None = None

    @property
    def traces(self) -> TraceStore:
        if self._traces is None:
            from tipi.state.store import TraceStore

            self._traces = TraceStore(self.layout.traces_file, self.warn)
        return self._traces

    def reload_traces(self) -> None:
        """Read the trace log again (another make wrote it while this one waited)."""
        if self._traces is not None:
            self._traces.close()
            self._traces = None

    @property
    def stat(self) -> StatCache:
        if self._stat is None:
            from tipi.state.store import load_stat_cache

            self._stat = load_stat_cache(self.layout.stat_file, self.warn, not self.rehash)
        return self._stat

    @property
    def staging(self) -> Staging:
        if self._staging is None:
            from tipi.execution.staging import Staging

            self._staging = Staging(self.layout.cache, self.layout.pipeline)
        return self._staging

    @property
    def run_cache(self) -> ContentStore:
        if self._run_cache is None:
            from tipi.runcache.content import ContentStore

            self._run_cache = ContentStore(self.layout.cache, self.warn)
        return self._run_cache

    @property
    def codes(self) -> Mapping[str, Mapping[str, str]]:
        """Closures by code fingerprint: this make's plan's, then the project's code table
        (read only if a code change must be explained)."""
        if self._codes is None:
            from tipi.state.codetable import CodeTable

            self._codes = ChainMap(self.code_units, CodeTable(self.layout.code_file, self.warn))
        return self._codes

    @property
    def lock_held(self) -> bool:
        return self._lock is not None and self._lock.held

    def lock(self) -> bool:
        """Take the project lock, waiting for another make; True if one held it.

        Raises:
            AccessError: a folder this make writes in may not be written (checked first:
                before a step runs for hours, not when its outputs are put in place).
        """
        from tipi.state.lock import ProjectLock

        self.check_access()
        self._lock = ProjectLock(self.layout.cache, self.notice, self.warn)
        return self._lock.acquire()

    def check_access(self) -> None:
        """Raise AccessError unless every folder this make writes in can be entered, read
        and written (or, not made yet, the folder it would be made in can): the state's
        folders and those of the make's outputs. `runs/` is not among them: a run that
        cannot be recorded is a warning (runs/recorder.py)."""
        layout = self.layout
        folders = [layout.cache, *store_folders(layout.cache)]
        folders += [layout.staging_dir.parent, layout.scratch_dir.parent]
        folders += [layout.pipeline_dir, layout.variant_dir]
        folders += [Path(p).parent for p in self.outputs]
        for folder in dict.fromkeys(folders):
            problem = _unusable(folder)
            if problem is not None:
                raise AccessError.about(problem)

    def try_lock(self) -> bool:
        """Take the project lock only if it is free right now; True if now held."""
        from tipi.state.lock import ProjectLock

        lock = ProjectLock(self.layout.cache, self.notice, self.warn)
        lock.acquire(wait=False)
        if lock.held:
            self._lock = lock
        return lock.held

    def close(self, write: bool = True) -> None:
        """Close the stores; with `write` (not a dry run), write back what changed, and
        compact and tidy when this make holds the lock (another one may be running)."""
        from tipi.identity.hashing import STAT_KIND
        from tipi.state.store import write_document

        if self._run_cache is not None:
            self._run_cache.close()
        if self._traces is not None:
            self._traces.close()
            if write and self.lock_held:
                self._traces.compact(force=False)
        if write and self.lock_held and self._staging is not None:
            self._staging.tidy()
        if write and self._stat is not None and self._stat.dirty:
            write_document(self.layout.stat_file, STAT_KIND, self._stat.entries)

    def release(self) -> None:
        if self._lock is not None:
            self._lock.release()


def _unusable(folder: Path) -> Path | None:
    """`folder`, or the folder it would be made in, when this user may not work in it."""
    while not os.path.isdir(folder):
        if os.path.lexists(folder) or folder == folder.parent:
            return None  # not a folder: whatever uses it says what is wrong
        folder = folder.parent
    if os.access(folder, os.R_OK | os.W_OK | os.X_OK):
        return None
    # access() can say no where the file system would say yes (ACLs it does not read, some
    # network file systems): only a refusal of the real thing stops the make.
    probe = folder / f".tipi-access-{os.getpid()}"
    try:
        os.listdir(folder)
        os.close(os.open(probe, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))
        os.unlink(probe)
    except OSError:
        return folder
    return None
