"""The typed, frozen form of a pipeline file: what the loader produces and the engine reads."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tipi.errors import Location

PIPELINE_KEYS = ("pipeline", "permanences", "processes")
PIPELINE_META_KEYS = ("description", "rerun_on_env")
PERMANENCE_KEYS = ("type", "params", "description")
PROCESS_KEYS = (
    "type",
    "params",
    "inputs",
    "outputs",
    "metrics",
    "after",
    "volatile",
    "force",
    "resources",
    "nproc",
    "launcher",
    "description",
    "matrix",
)
RESOURCE_KEYS = ("gpu", "cpu", "mem_gb", "retries")
LAUNCHERS = ("none", "torchrun")


@dataclass(frozen=True)
class PermanenceSpec:
    """One `[permanences.NAME]` table."""

    name: str
    type: str
    params: Mapping[str, Any]
    location: Location
    description: str = ""


@dataclass(frozen=True)
class ProcessSpec:
    """One `[processes.NAME]` table; path values are still templates (`{params.x}` etc.).

    Attributes:
        metrics: the names of the outputs that are metrics files (`metrics = {...}`, which
            the loader adds to `outputs`; config/metrics.py).
        base: for an instance of a `matrix` process, that process's name (`train` for
            `train[seed=0]`); "" for a plain step (config/instances.py).
        values: an instance's matrix values, typed, in the matrix's declaration order.
    """

    name: str
    type: str
    params: Mapping[str, Any]
    location: Location
    inputs: Mapping[str, str] = field(default_factory=dict)
    outputs: Mapping[str, str] = field(default_factory=dict)
    metrics: tuple[str, ...] = ()
    after: tuple[str, ...] = ()
    volatile: bool = False
    force: bool = False
    resources: Mapping[str, float] = field(default_factory=dict)
    nproc: int = 1
    launcher: str = "none"
    description: str = ""
    base: str = ""
    values: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class PipelineSpec:
    """A whole pipeline file, with where each key was written (for error messages).

    Attributes:
        source: the file's text as parsed (a make runs steps with exactly this text).
        rerun_on_env: `[pipeline] rerun_on_env`: a changed environment (package versions)
            reruns steps instead of only being reported.
        matrix_domains: each matrix key's values across the processes that have it (what an
            input gathers over; config/matrix.py).
        matrix_globs: `[[absolute pattern, [matched files]], ...]` of the glob matrices:
            a cached plan holds only while each pattern matches the same files.
        matrix_files: the files lines matrices were read from (dependencies of the plan).
    """

    name: str
    file: Path
    root: Path
    permanences: Mapping[str, PermanenceSpec]
    processes: Mapping[str, ProcessSpec]
    key_lines: Mapping[tuple[str, ...], int] = field(default_factory=dict, repr=False)
    overridden: frozenset[tuple[str, ...]] = frozenset()
    description: str = ""
    folder: Path | None = None
    source: str = field(default="", repr=False)
    rerun_on_env: bool = False
    matrix_domains: Mapping[str, tuple[Any, ...]] = field(default_factory=dict)
    matrix_globs: tuple[Any, ...] = ()
    matrix_files: tuple[str, ...] = ()

    @property
    def directory(self) -> Path:
        """The pipeline folder (its `*.py` files define local types)."""
        return self.folder or self.file.parent

    def locate(self, *key: str) -> Location:
        """Where `key` (a path of table keys) was written: the line, or the nearest table's."""
        if len(key) > 1 and key[0] == "processes" and "[" in key[1]:
            key = (key[0], key[1].partition("[")[0], *key[2:])  # an instance: its process's
        dotted = ".".join(key)
        if key in self.overridden or any(key[:n] in self.overridden for n in range(len(key))):
            # ("processes", "train", "params", "lr") was written as --set train.lr
            shown = key[1:2] + key[3:] if key[2:3] == ("params",) else key[1:]
            return Location(key=f"--set {'.'.join(shown)}")
        for n in range(len(key), 0, -1):
            line = self.key_lines.get(key[:n])
            if line is not None:
                return Location(file=self.file, key=dotted, line=line)
        return Location(file=self.file, key=dotted)
