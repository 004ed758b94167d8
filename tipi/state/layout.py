"""Everything tipi keeps under `.tipi_cache/`: where each file lives. The layout is documented
here and nowhere else, and every path under it is built here (but for two names beside a step's
own: its binding note and a worker's progress file, named by the modules given):

    .tipi_cache/
      lock, lock.holder               the project lock, and who holds it        state/lock.py
      stat.msgpack                    file hashes by (size, mtime_ns, inode)    identity/hashing.py
      code.msgpack                    code fingerprint → closure, unit by unit  state/codetable.py
      code_memo.msgpack               closures by class, kept while code unchanged  identity/memo.py
      remote-suspects.msgpack         a remote's files found corrupt or missing  runcache/
      store/packs/<writer>.pack       the run cache: the records of successful runs (and their
                                      small outputs) one make filed, and <writer>.idx, their
                                      index; an older tipi's store/runs/<xx>/<key>.<name>
                                      and runs/<key>/<name> are read too         runcache/
      store/objects/<xx>/<digest>     ... and its other output files, by content
      store/tmp/                      ... and a file of it being written
      pipelines/<p>/traces.log        each step's last successful run (append-only msgpack log)
      pipelines/<p>/failures.msgpack  each step's last failure, for status and report
      pipelines/<p>/plan.msgpack      the validated plan and the files it was made from
      pipelines/<p>/clean.msgpack     proof that every step was up to date  uptodate/clean.py
      pipelines/<p>/sweeps/<s>/<v>/plan.msgpack   the plan of sweep <s>'s variant <v>
      pipelines/<p>/sweeps/<s>/<v>/clean.msgpack  ... and its clean record
      staging/<p>/<make>.slot<k>/     outputs of a running step, moved into place on success
      staging/<p>/variant-<i>/        ... of a sweep's variant i                 sweep/slots.py
      scratch/<p>/<step>/             a step's resumable checkpoints, bound to its fingerprint
      scratch/<p>/<step>/.tipi-binding  ... by this note    uptodate/resume.py, process.py
      scratch/<p>/.ranks-<step>/      a distributed step's task file and rank reports
      predictions/<p>/<step>/<k>.msgpack  Predict's per-file predictions  processes/predict_files.py
      logs/<p>/<step>.log             what a step printed in a worker process
      logs/<p>/<step>.progress.json   its progress bars, for the driver   report/channel.py
      runs/<p>/<id>.msgpack           one make that ran or restored a step (`tipi runs`)  runs/

Every state file is versioned msgpack (never pickle; the lock's note and a progress file are
JSON), written atomically; any of them may be lost or damaged: tipi warns and starts that part
over. Steps of a sweep variant keep their traces in the pipeline's log under
`<step>@<sweep>/<variant>` and their scratch folder, predictions and log under
`<step>@<sweep>~<variant>`. A run is written when its first step starts (status running) and
again as each step ends and when the make ends.

A pipeline's state is its folder in each of PER_PIPELINE (pipelines/, staging/, scratch/,
predictions/, logs/, runs/) and nothing else: `tipi clean -p <p>` removes exactly those
(`Layout.per_pipeline_dirs`), runs/<p> only without --keep-runs. The store, the code and stat
tables and the suspects are the project's: only `tipi clean` without -p removes them.

Modules below tipi.state in the layers (the run cache, the executors) are given a `cache`
folder, not a Layout: the functions here that take one say where things live inside it.
This module imports nothing but pathlib and typing: the no-op fast path builds a Layout.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from tipi.config.variant import Variant

CACHE_DIR = ".tipi_cache"
PIPELINES_DIR = "pipelines"
STAGING_DIR = "staging"
SCRATCH_DIR = "scratch"
PREDICTIONS_DIR = "predictions"
LOGS_DIR = "logs"
RUNS_DIR = "runs"
CODE_MEMO = "code_memo.msgpack"  # beside code.msgpack; planning.py finds it from there
# The folders under CACHE_DIR that hold one folder per pipeline: all of a pipeline's state.
PER_PIPELINE = (PIPELINES_DIR, STAGING_DIR, SCRATCH_DIR, PREDICTIONS_DIR, LOGS_DIR, RUNS_DIR)
STORE_DIR = "store"
# Inside the store (the same on a remote, where there is no CACHE_DIR): runcache/content.py.
OBJECTS_DIR = "objects"
RECORDS_DIR = "runs"  # an older tipi's records, one file each (still read)
PACKS_DIR = "packs"  # the records each make filed, one file a make (runcache/packs.py)
TMP_DIR = "tmp"
SUSPECTS_FILE = "remote-suspects.msgpack"
RANKS_PREFIX = ".ranks-"
# In a step's scratch folder (uptodate/resume.py); process.py, a layer below, spells it.
BINDING_FILE = ".tipi-binding"


def cache_of(root: Path) -> Path:
    """The state folder of the project at `root`."""
    return root / CACHE_DIR


def store_dir(cache: Path) -> Path:
    """The local run cache."""
    return cache / STORE_DIR


def store_folders(cache: Path) -> tuple[Path, Path, Path, Path]:
    """The run cache's folder, then those it writes in: objects, record packs, temporary files."""
    store = store_dir(cache)
    return store, store / OBJECTS_DIR, store / PACKS_DIR, store / TMP_DIR


def lock_file(cache: Path) -> Path:
    return cache / "lock"


def lock_holder_file(cache: Path) -> Path:
    """The note naming who holds the lock, for the message a waiting make prints."""
    return cache / "lock.holder"


def suspects_file(cache: Path) -> Path:
    return cache / SUSPECTS_FILE


def runs_folder(cache: Path) -> Path:
    """Every pipeline's runs (`tipi runs`), one folder per pipeline."""
    return cache / RUNS_DIR


def staging_dir(cache: Path, pipeline: str) -> Path:
    return cache / STAGING_DIR / pipeline


def scratch_dir(cache: Path, pipeline: str) -> Path:
    return cache / SCRATCH_DIR / pipeline


def predictions_beside(scratch: Path) -> Path | None:
    """The predictions folder of the step whose scratch folder is `scratch`
    (`scratch/<p>/<step>/` → `predictions/<p>/<step>/`); None for any other folder."""
    pipeline = scratch.parent
    if pipeline.parent.name != SCRATCH_DIR:
        return None
    return pipeline.parent.parent / PREDICTIONS_DIR / pipeline.name / scratch.name


def ranks_beside(scratch: Path) -> Path:
    """A distributed step's task file, rank reports and throw-away outputs: beside its
    scratch folder, not in it (that folder holds only what the step keeps to resume)."""
    return scratch.parent / f"{RANKS_PREFIX}{scratch.name}"


class Layout:
    """Where one pipeline's (or sweep variant's) state lives.

    A plain immutable class, not a dataclass: the no-op fast path builds one, and creating a
    dataclass costs it about a millisecond (see tipi/_fastpath.py).
    """

    __slots__ = ("pipeline", "root", "variant")

    root: Path
    pipeline: str
    variant: Variant | None

    def __init__(self, root: Path, pipeline: str, variant: Variant | None = None) -> None:
        object.__setattr__(self, "root", root)
        object.__setattr__(self, "pipeline", pipeline)
        object.__setattr__(self, "variant", variant)

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(f"Layout is immutable: cannot set {name!r}")

    def __reduce__(self) -> tuple[type[Layout], tuple[Path, str, Variant | None]]:
        return (Layout, (self.root, self.pipeline, self.variant))

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Layout):
            return NotImplemented
        return (self.root, self.pipeline, self.variant) == (
            other.root,
            other.pipeline,
            other.variant,
        )

    def __hash__(self) -> int:
        return hash((self.root, self.pipeline, self.variant))

    def __repr__(self) -> str:
        return f"Layout(root={self.root!r}, pipeline={self.pipeline!r}, variant={self.variant!r})"

    @property
    def cache(self) -> Path:
        return cache_of(self.root)

    # The project's files, shared by every pipeline.

    @property
    def stat_file(self) -> Path:
        return self.cache / "stat.msgpack"

    @property
    def code_file(self) -> Path:
        return self.cache / "code.msgpack"

    @property
    def code_memo_file(self) -> Path:
        return self.cache / CODE_MEMO

    @property
    def lock_file(self) -> Path:
        return lock_file(self.cache)

    @property
    def lock_holder_file(self) -> Path:
        return lock_holder_file(self.cache)

    @property
    def suspects_file(self) -> Path:
        return suspects_file(self.cache)

    @property
    def store_dir(self) -> Path:
        return store_dir(self.cache)

    # The pipeline's own folders (PER_PIPELINE), and what lies in them.

    @property
    def pipeline_dir(self) -> Path:
        return self.cache / PIPELINES_DIR / self.pipeline

    @property
    def staging_dir(self) -> Path:
        return staging_dir(self.cache, self.pipeline)

    @property
    def scratch_dir(self) -> Path:
        return scratch_dir(self.cache, self.pipeline)

    @property
    def predictions_dir(self) -> Path:
        return self.cache / PREDICTIONS_DIR / self.pipeline

    @property
    def logs_dir(self) -> Path:
        return self.cache / LOGS_DIR / self.pipeline

    @property
    def runs_dir(self) -> Path:
        """The pipeline's runs (`tipi runs`), its sweep variants' included."""
        return runs_folder(self.cache) / self.pipeline

    def per_pipeline_dirs(self) -> tuple[Path, ...]:
        """Every folder of this pipeline's state (its sweep variants' included), in
        PER_PIPELINE's order: what `tipi clean -p` removes."""
        return tuple(self.cache / part / self.pipeline for part in PER_PIPELINE)

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

    def key(self, step: str) -> str:
        """The name `step`'s trace is kept under (its own per sweep variant)."""
        return step if self.variant is None else self.variant.key(step)

    def slug(self, step: str) -> str:
        """The file-name form of `step`'s key (a variant's has a slash)."""
        return self.key(step).replace("/", "~")

    def log_of(self, step: str) -> Path:
        return self.logs_dir / f"{self.slug(step)}.log"

    def variant_staging_dir(self, index: int) -> Path:
        """The staging folder of a sweep's variant `index` while variants run side by side."""
        return self.staging_dir / f"variant-{index}"

    def scratch_of(self, step: str) -> Path:
        return self.scratch_dir / self.slug(step)

    def predictions_of(self, step: str) -> Path:
        return self.predictions_dir / self.slug(step)
