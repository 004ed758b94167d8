"""The plan: a pipeline resolved, validated and fingerprinted, cached so that a no-op make
neither imports the user's modules (nor torch through them) nor networkx."""

from __future__ import annotations

import inspect
import os
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePath
from typing import TYPE_CHECKING, Any

from tipi._version import __version__
from tipi.cache.fingerprint import canonical, code_fingerprint
from tipi.cache.store import read_document, write_document

if TYPE_CHECKING:
    from tipi.config.resolve import ResolvedPipeline
    from tipi.config.variant import Variant
from tipi.errors import DefinitionError, Location

PLAN_KIND = "plan"


@dataclass(frozen=True)
class PlannedStep:
    """A step as the engine decides on it: canonical params, project-relative paths."""

    name: str
    type: str
    code: str
    params: Mapping[str, Any]
    inputs: Mapping[str, str]
    outputs: Mapping[str, str]
    after: Sequence[str]
    volatile: bool
    force: bool
    file: str
    line: int | None
    resources: Mapping[str, float] = field(default_factory=dict)
    nproc: int = 1
    launcher: str = "none"

    @property
    def location(self) -> Location:
        return Location(file=Path(self.file), key=f"processes.{self.name}", line=self.line)


@dataclass(frozen=True)
class Plan:
    """Steps in declaration order, a topological order, edges and result-relevant configs.

    Attributes:
        permanences: name → canonical config ({type, params, code}) for permanences that
            affect results; None for the others (devices, progress, loggers).
    """

    pipeline: str
    steps: Mapping[str, PlannedStep]
    order: Sequence[str]
    predecessors: Mapping[str, Sequence[str]]
    producers: Mapping[str, str]
    permanences: Mapping[str, Any]

    def to_data(self) -> dict[str, Any]:
        return {
            "pipeline": self.pipeline,
            "steps": [dict(vars(s)) for s in self.steps.values()],
            "order": list(self.order),
            "predecessors": dict(self.predecessors),
            "producers": dict(self.producers),
            "permanences": dict(self.permanences),
        }

    @classmethod
    def from_data(cls, data: Mapping[str, Any]) -> Plan:
        steps = {s["name"]: PlannedStep(**s) for s in data["steps"]}
        return cls(
            data["pipeline"],
            steps,
            data["order"],
            data["predecessors"],
            data["producers"],
            data["permanences"],
        )


def relative(path: Path, root: Path) -> str:
    """Project-relative POSIX path when under `root`, else the absolute path."""
    try:
        return path.relative_to(root).as_posix()
    except ValueError:
        return str(path)


def absolute(path: str, root: Path | str) -> str:
    """Inverse of `relative`, as a string (this runs for every path of every make)."""
    return path if path.startswith("/") else f"{root}/{path}"


@dataclass
class Planner:
    """Loads a pipeline's plan from `.tipi_cache/` when its sources are unchanged, else builds it.

    Attributes:
        root: the project root.
        name: the pipeline's name.
        file: its TOML file.
        overrides: `--set` strings (part of the cache key).
        cache_file: where the plan is cached.
        warn: receives warnings about an unreadable cache.
        variant: the sweep variant whose outputs live apart (part of the cache key).
    """

    root: Path
    name: str
    file: Path
    overrides: Sequence[str]
    cache_file: Path
    warn: Callable[[str], None]
    variant: Variant | None = None
    resolved: ResolvedPipeline | None = None
    from_cache: bool = False

    @property
    def folder(self) -> Path:
        return self.root / "pipelines" / self.name

    def plan(self, save: bool = True) -> Plan:
        """The plan, from the cache when valid; a fresh one is saved when `save`."""
        cached = read_document(self.cache_file, PLAN_KIND, self.warn)
        if cached is not None and self._valid(cached):
            try:
                plan = Plan.from_data(cached["plan"])
                self.from_cache = True
                return plan
            except (KeyError, TypeError):
                self.warn(f"{self.cache_file} is malformed; rebuilding the plan")
        plan, deps = self._build()
        if save and not any(time.time_ns() - d[1] < 1e8 for d in deps):
            write_document(
                self.cache_file,
                PLAN_KIND,
                {"key": self._key(), "deps": deps, "plan": plan.to_data()},
            )
        return plan

    def resolve(self) -> ResolvedPipeline:
        """The pipeline with its classes imported (needed only when a step runs)."""
        if self.resolved is None:
            from tipi.config.loader import load_pipeline
            from tipi.config.resolve import resolve_pipeline
            from tipi.config.variant import apply_variant

            spec = load_pipeline(
                self.file,
                name=self.name,
                root=self.root,
                overrides=self.overrides,
                folder=self.folder,
            )
            self.resolved = apply_variant(resolve_pipeline(spec), self.variant)
        return self.resolved

    def _key(self) -> list[Any]:
        variant = self.variant.to_data() if self.variant is not None else None
        return [str(self.file), list(self.overrides), __version__, str(self.root), variant]

    def _valid(self, cached: Mapping[str, Any]) -> bool:
        if cached.get("key") != self._key():
            return False
        deps = cached.get("deps", [])
        if sorted(str(p) for p in self.folder.glob("*.py")) != sorted(
            d[0] for d in deps if d[0].endswith(".py") and Path(d[0]).parent == self.folder
        ):
            return False
        return all(_stat(path) == [path, *sig] for path, *sig in deps)

    def _build(self) -> tuple[Plan, list[list[Any]]]:
        from tipi.graph.dag import StepNode, build_graph

        resolved = self.resolve()
        graph = build_graph(
            {
                name: StepNode(name, s.inputs, s.outputs, s.spec.after, s.spec.location)
                for name, s in resolved.steps.items()
            }
        )
        for step in resolved.steps.values():
            for path in step.outputs.values():
                if not path.is_relative_to(self.root):
                    raise DefinitionError(
                        f"output {path} of step '{step.name}' is outside the project root "
                        f"{self.root}",
                        hint="write outputs under the project; read outside files as inputs",
                        location=step.spec.location,
                    )
        permanences = {
            name: {
                "type": p.spec.type,
                "params": canonical(self._portable(p.params)),
                "code": code_fingerprint(p.cls),
            }
            if p.cls.affects_results
            else None
            for name, p in resolved.permanences.items()
        }
        steps = {}
        for name, step in resolved.steps.items():
            location = step.spec.location
            steps[name] = PlannedStep(
                name=name,
                type=step.spec.type,
                code=code_fingerprint(step.cls),
                params=canonical(self._portable(step.params) | _launch_params(step.spec)),
                inputs={k: relative(p, self.root) for k, p in step.inputs.items()},
                outputs={k: relative(p, self.root) for k, p in step.outputs.items()},
                after=list(step.spec.after),
                volatile=step.spec.volatile,
                force=step.spec.force,
                file=str(location.file or self.file),
                line=location.line,
                resources=dict(step.spec.resources),
                nproc=step.spec.nproc,
                launcher=step.spec.launcher,
            )
        plan = Plan(
            pipeline=self.name,
            steps=steps,
            order=list(graph.order),
            predecessors={n: sorted(graph.graph.predecessors(n)) for n in graph.order},
            producers={relative(p, self.root): s for p, s in graph.producers.items()},
            permanences=permanences,
        )
        return plan, self._dependencies(resolved)

    def _portable(self, params: Mapping[str, Any]) -> dict[str, Any]:
        """Params with paths under the project root made relative: fingerprints must not
        depend on where the project is checked out."""
        return {
            k: relative(Path(v), self.root) if isinstance(v, PurePath) else v
            for k, v in params.items()
        }

    def _dependencies(self, resolved: ResolvedPipeline) -> list[list[Any]]:
        files = {str(self.file), *(str(p) for p in self.folder.glob("*.py"))}
        classes = {s.cls for s in resolved.steps.values()}
        classes |= {p.cls for p in resolved.permanences.values()}
        for cls in classes:
            for klass in cls.__mro__:
                try:
                    files.add(inspect.getsourcefile(klass) or "")
                except TypeError:
                    continue
        return [dep for f in sorted(files) if f and (dep := _stat(f)) is not None]


def _launch_params(spec: Any) -> dict[str, Any]:
    """How many ranks train together changes the result (the effective batch size), so it
    enters the fingerprint like a param; one process, the usual case, adds nothing."""
    return {"(nproc)": spec.nproc} if spec.launcher != "none" else {}


def _stat(path: str) -> list[Any] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return [path, st.st_mtime_ns, st.st_size, st.st_ino]
