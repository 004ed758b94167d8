"""One variant of a sweep: the steps its overrides affect write under a folder of their own.

A sweep runs the same pipeline with different params. Steps the swept params reach (and
everything downstream of them) must not overwrite one another's outputs, so in a variant
their outputs move under `out/sweeps/<pipeline>/<sweep>/<variant>/` and the inputs that read them
follow; their traces are kept under `step@<sweep>/<variant>`. Steps the sweep does not reach
keep their paths and traces, so they run once for every variant (and for plain makes).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path, PurePath
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tipi.config.resolve import ResolvedPipeline

SWEEPS_DIR = "out/sweeps"


@dataclass(frozen=True)
class Variant:
    """Where one variant of a sweep keeps what it changes.

    Attributes:
        pipeline: the pipeline's name.
        sweep: the sweep's name (a folder under `out/sweeps/<pipeline>/`).
        name: the variant's name (a folder under the sweep's).
        steps: the steps whose outputs are the variant's own.
    """

    pipeline: str
    sweep: str
    name: str
    steps: frozenset[str]

    @property
    def folder(self) -> str:
        """Project-relative folder of this variant's outputs."""
        return f"{SWEEPS_DIR}/{self.pipeline}/{self.sweep}/{self.name}"

    @property
    def label(self) -> str:
        return f"{self.sweep}/{self.name}"

    def key(self, step: str) -> str:
        """The name `step`'s trace is kept under in this variant."""
        return f"{step}@{self.label}" if step in self.steps else step

    def relocate(self, path: Path, root: Path) -> Path:
        """`out/digits/train/best.pt` → `out/sweeps/digits/S/V/train/best.pt`; other paths
        under the project keep their whole relative path below the variant's folder."""
        try:
            relative = path.relative_to(root).as_posix()
        except ValueError:
            return path
        for prefix in (f"out/{self.pipeline}/", "out/"):
            if relative.startswith(prefix):
                relative = relative[len(prefix) :]
                break
        return root / self.folder / relative

    def to_data(self) -> dict[str, Any]:
        return {
            "pipeline": self.pipeline,
            "sweep": self.sweep,
            "name": self.name,
            "steps": sorted(self.steps),
        }

    @classmethod
    def from_data(cls, data: Mapping[str, Any] | None) -> Variant | None:
        if not data:
            return None
        return cls(
            str(data["pipeline"]), str(data["sweep"]), str(data["name"]), frozenset(data["steps"])
        )


def apply_variant(resolved: ResolvedPipeline, variant: Variant | None) -> ResolvedPipeline:
    """`resolved` with the variant's steps writing (and their consumers reading) under the
    variant's folder, and the folders of loggers (permanences that do not affect results)
    moved there too, so that each variant logs apart."""
    if variant is None:
        return resolved
    from tipi.config.resolve import ResolvedPipeline

    root = resolved.spec.root
    moved: dict[Path, Path] = {}
    for name in variant.steps:
        step = resolved.steps.get(name)
        if step is not None:
            for path in step.outputs.values():
                moved[path] = variant.relocate(path, root)
    steps = {
        name: replace(
            step,
            inputs={k: moved.get(p, p) for k, p in step.inputs.items()},
            outputs={k: moved.get(p, p) for k, p in step.outputs.items()},
        )
        for name, step in resolved.steps.items()
    }
    permanences = {
        name: perm
        if perm.cls.affects_results
        else replace(perm, params=_moved_paths(perm.params, variant, root))
        for name, perm in resolved.permanences.items()
    }
    return ResolvedPipeline(resolved.spec, permanences, steps, resolved.registry)


def _moved_paths(params: Mapping[str, Any], variant: Variant, root: Path) -> dict[str, Any]:
    return {
        key: variant.relocate(Path(value), root)
        if isinstance(value, PurePath) and Path(os.path.normpath(value)).is_relative_to(root)
        else value
        for key, value in params.items()
    }
