"""Everything tipi keeps under `.tipi_cache/`: where each file lives, and the stores of one
make, opened on first use and closed once. The layout is documented here and nowhere else:

    .tipi_cache/
      lock, lock.holder               the project lock: one make changes files at a time
      stat.msgpack                    file hashes by (size, mtime_ns, inode)    cache/hashing.py
      code.msgpack                    code fingerprint → closure, unit by unit  cache/codetable.py
      store/runs/<key>/<name>         the run cache: a successful run's record  cache/content.py
      store/objects/<xx>/<digest>     ... and its output files, by content
      pipelines/<p>/traces.log        each step's last successful run (append-only msgpack log)
      pipelines/<p>/failures.msgpack  each step's last failure, for status and report
      pipelines/<p>/plan.msgpack      the validated plan and the files it was made from
      pipelines/<p>/clean.msgpack     proof that every step was up to date  cache/clean.py
      pipelines/<p>/sweeps/<s>/<v>/   plan.msgpack and clean.msgpack of a sweep variant
      staging/<p>/<make>.slot<k>/     outputs of a running step, moved into place on success
      scratch/<p>/<step>/             a step's resumable checkpoints, bound to its fingerprint
      predictions/<p>/<step>/<k>.msgpack  Predict's per-file predictions  processes/predict_files.py
      logs/<p>/<step>.log             what a step printed in a worker process
      runs/<p>/<id>.msgpack           one make that ran or restored a step (`tipi runs`)  runs/

Every file is versioned msgpack (never pickle), written atomically; any of them may be lost
or damaged: tipi warns and starts that part over. Steps of a sweep variant keep their traces
in the pipeline's log under `<step>@<sweep>/<variant>` and their scratch folder and log under
`<step>@<sweep>~<variant>`. A run is written when its first step starts (status running) and
again as each step ends and when the make ends; `tipi clean` keeps runs only with --keep-runs.
"""

from __future__ import annotations

import os
from collections import ChainMap
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from tipi.errors import AccessError

if TYPE_CHECKING:
    from tipi.cache.content import ContentStore
    from tipi.cache.hashing import StatCache
    from tipi.cache.lock import ProjectLock
    from tipi.cache.store import TraceStore
    from tipi.config.variant import Variant
    from tipi.execution.staging import Staging

CACHE_DIR = ".tipi_cache"
RUNS_DIR = "runs"  # under CACHE_DIR: one folder of run records per pipeline


@dataclass(frozen=True)
class Layout:
    """Where one pipeline's (or sweep variant's) state lives."""

    root: Path
    pipeline: str
    variant: Variant | None = None

    @property
    def cache(self) -> Path:
        return self.root / CACHE_DIR

    @property
    def pipeline_dir(self) -> Path:
        return self.cache / "pipelines" / self.pipeline

    @property
    def variant_dir(self) -> Path:
        """The plan's and the clean record's folder: the pipeline's, or its variant's."""
        if self.variant is None:
            return self.pipeline_dir
        return self.pipeline_dir / "sweeps" / self.variant.sweep / self.variant.name

    @property
    def traces_file(self) -> Path:
        return self.pipeline_dir / "traces.log"

    @property
    def failures_file(self) -> Path:
        return self.pipeline_dir / "failures.msgpack"

    @property
    def plan_file(self) -> Path:
        return self.variant_dir / "plan.msgpack"

    @property
    def clean_file(self) -> Path:
        return self.variant_dir / "clean.msgpack"

    @property
    def stat_file(self) -> Path:
        return self.cache / "stat.msgpack"

    @property
    def code_file(self) -> Path:
        return self.cache / "code.msgpack"

    @property
    def runs_dir(self) -> Path:
        """The pipeline's runs (`tipi runs`), its sweep variants' included."""
        return self.cache / RUNS_DIR / self.pipeline

    @property
    def logs_dir(self) -> Path:
        return self.cache / "logs" / self.pipeline

    def key(self, step: str) -> str:
        """The name `step`'s trace is kept under (its own per sweep variant)."""
        return step if self.variant is None else self.variant.key(step)

    def slug(self, step: str) -> str:
        """The file-name form of `step`'s key (a variant's has a slash)."""
        return self.key(step).replace("/", "~")

    def log_of(self, step: str) -> Path:
        return self.logs_dir / f"{self.slug(step)}.log"


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
            from tipi.cache.store import TraceStore

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
            from tipi.cache.store import load_stat_cache

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
            from tipi.cache.content import ContentStore

            self._run_cache = ContentStore(self.layout.cache, self.warn)
        return self._run_cache

    @property
    def codes(self) -> Mapping[str, Mapping[str, str]]:
        """Closures by code fingerprint: this make's plan's, then the project's code table
        (read only if a code change must be explained)."""
        if self._codes is None:
            from tipi.cache.codetable import CodeTable

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
        from tipi.cache.lock import ProjectLock

        self.check_access()
        self._lock = ProjectLock(self.layout.cache, self.notice, self.warn)
        return self._lock.acquire()

    def check_access(self) -> None:
        """Raise AccessError unless every folder this make writes in can be entered, read
        and written (or, not made yet, the folder it would be made in can): the state's
        folders and those of the make's outputs. `runs/` is not among them: a run that
        cannot be recorded is a warning (runs/recorder.py)."""
        cache, layout = self.layout.cache, self.layout
        store = cache / "store"
        folders = [cache, store, store / "objects", store / "runs", store / "tmp"]
        folders += [cache / "staging", cache / "scratch", layout.pipeline_dir, layout.variant_dir]
        folders += [Path(p).parent for p in self.outputs]
        for folder in dict.fromkeys(folders):
            problem = _unusable(folder)
            if problem is not None:
                raise AccessError.about(problem)

    def try_lock(self) -> bool:
        """Take the project lock only if it is free right now; True if now held."""
        from tipi.cache.lock import ProjectLock

        lock = ProjectLock(self.layout.cache, self.notice, self.warn)
        lock.acquire(wait=False)
        if lock.held:
            self._lock = lock
        return lock.held

    def close(self, write: bool = True) -> None:
        """Close the stores; with `write` (not a dry run), write back what changed, and
        compact and tidy when this make holds the lock (another one may be running)."""
        from tipi.cache.hashing import STAT_KIND
        from tipi.cache.store import write_document

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
