"""Everything tipi keeps under `.tipi_cache/`: where each file lives. The layout is documented
here and nowhere else, and every path under it is built here:

    .tipi_cache/
      lock, lock.holder               the project lock: one make changes files at a time
      stat.msgpack                    file hashes by (size, mtime_ns, inode)    identity/hashing.py
      code.msgpack                    code fingerprint → closure, unit by unit  state/codetable.py
      store/runs/<key>/<name>         the run cache: a successful run's record  runcache/content.py
      store/objects/<xx>/<digest>     ... and its output files, by content
      pipelines/<p>/traces.log        each step's last successful run (append-only msgpack log)
      pipelines/<p>/failures.msgpack  each step's last failure, for status and report
      pipelines/<p>/plan.msgpack      the validated plan and the files it was made from
      pipelines/<p>/clean.msgpack     proof that every step was up to date  uptodate/clean.py
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

from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from tipi.config.variant import Variant

CACHE_DIR = ".tipi_cache"
RUNS_DIR = "runs"  # under CACHE_DIR: one folder of run records per pipeline


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
