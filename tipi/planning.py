"""The plan: a pipeline resolved, validated and fingerprinted, cached so that a no-op make
neither imports the user's modules (nor torch through them) nor networkx."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePath
from typing import TYPE_CHECKING, Any

from tipi.config.planned import check_unchanged, load_resolved, stat_dep
from tipi.errors import ConfigError, DefinitionError, Location
from tipi.paths import RealPaths, nesting_problem, output_problem, relative, self_input_problem
from tipi.uptodate.planfile import (
    PLAN_FIELDS,
    is_current,
    plan_key,
    read_plan_file,
    warn_once,
    write_plan_file,
)
from tipi.uptodate.stale import warn_stale_inputs

if TYPE_CHECKING:
    from tipi.config.resolve import ResolvedPipeline
    from tipi.config.variant import Variant


@dataclass(frozen=True)
class PlannedStep:
    """A step as the engine decides on it: canonical params, project-relative paths.

    Attributes:
        metrics: name → path of its outputs that are metrics files (recorded with each run,
            tipi/runs/; config/metrics.py).
        inert: keys of `params` that only name permanences which do not change results
            (`_inert_params`): kept with the run's params, left out of the fingerprint.
    """

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
    announces_resume: bool = False
    env: str = ""
    metrics: Mapping[str, str] = field(default_factory=dict)
    inert: Sequence[str] = ()
    base: str = ""
    values: Mapping[str, Any] = field(default_factory=dict)

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
    source: str = ""
    deps: Sequence[Sequence[Any]] = ()
    environments: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    rerun_on_env: bool = False
    code_files: Mapping[str, Sequence[str]] = field(default_factory=dict)
    globs: Sequence[Sequence[Any]] = ()

    def to_data(self) -> dict[str, Any]:
        return {
            "pipeline": self.pipeline,
            "steps": [dict(vars(s)) for s in self.steps.values()],
            "order": list(self.order),
            "predecessors": dict(self.predecessors),
            "producers": dict(self.producers),
            "permanences": dict(self.permanences),
            "source": self.source,
            "deps": [list(d) for d in self.deps],
            "environments": dict(self.environments),
            "rerun_on_env": self.rerun_on_env,
            "code_files": {k: list(v) for k, v in self.code_files.items()},
            "globs": [list(g) for g in self.globs],
        }

    @classmethod
    def from_data(cls, data: Mapping[str, Any]) -> Plan:
        steps = {s["name"]: PlannedStep(**s) for s in data["steps"]}
        return cls(**{key: data[key] for key in PLAN_FIELDS} | {"steps": steps})


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
        code_table: the project's code table (stepcode.py), updated when a plan is saved.
        code_units: code fingerprint → closure, for the plan built in this process.
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
    code_table: Path | None = None
    code_units: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    absent: set[str] = field(default_factory=set)
    resolved: ResolvedPipeline | None = None
    planned: Plan | None = None
    from_cache: bool = False
    _memo: Any = None  # the code memo of the plan built in this process (identity/memo.py)
    _said: set[Any] = field(default_factory=set)  # warnings given (planfile.warn_once)

    @property
    def folder(self) -> Path:
        return self.root / "pipelines" / self.name

    def plan(self, save: bool = True, fresh: bool = False) -> Plan:
        """The plan, from the cache when valid (never when `fresh`); a new one is saved when
        `save`."""
        if self.planned is not None:
            # Asked again (an Engine that makes more than once): all that was the last make's.
            self.planned, self.resolved, self.from_cache = None, None, False
        warn = warn_once(self.cache_file, self.warn, self._said)
        cached = None if fresh else read_plan_file(self.cache_file, warn)
        if cached is not None:
            try:
                if self.is_current(cached):
                    plan = Plan.from_data(cached["plan"])
                    self.from_cache = True
                    self.planned = plan
                    return plan
            except (KeyError, TypeError, ValueError, AttributeError, IndexError):
                warn(f"{self.cache_file} is malformed; rebuilding the plan")
        plan = self.planned = self._build_settled()
        if self.variant is None:  # a variant reads the base's outputs, made by its traces
            warn_stale_inputs(plan, self.root, warn)
        if save and self.code_table is not None:
            from tipi.state.codetable import save_code_table

            save_code_table(self.code_table, self.code_units, self.warn)
            if self._memo is not None:
                self._memo.save()
        from tipi.identity.hashing import is_racy

        if save and not any(is_racy(d[1]) for d in plan.deps):
            write_plan_file(self.cache_file, self.key(), self.absent, plan)
        return plan

    def resolve(self) -> ResolvedPipeline:
        """The pipeline with its classes imported (needed only when a step runs).

        After a plan, from the pipeline file's text the plan was made from, and only while
        every file the plan read is unchanged: a step runs with exactly the params and code
        its fingerprint was computed from.
        """
        if self.resolved is None:
            plan = self.planned
            self.resolved = load_resolved(
                self.root,
                self.name,
                self.file,
                self.overrides,
                self.variant,
                source=plan.source if plan is not None else None,
            )
            if plan is not None:
                check_unchanged(plan.deps, self.file, plan.globs)
        return self.resolved

    def key(self) -> list[Any]:
        """What a cached plan must have been made for (uptodate/planfile.py `plan_key`): this
        pipeline file, overrides, tipi, project root, sweep variant and Python."""
        variant = self.variant.to_data() if self.variant is not None else None
        return plan_key(self.file, self.overrides, self.root, variant)

    def is_current(self, cached: Mapping[str, Any]) -> bool:
        """Whether a plan file's data (read_document of `cache_file`) may be used as this
        make's plan: made for this key, from files that are all unchanged (uptodate/planfile.py
        `is_current`; the no-op fast path checks it there without a Planner).

        Raises:
            KeyError, TypeError, ValueError, AttributeError, IndexError: the data is
                malformed.
        """
        return is_current(cached, self.key(), self.folder)

    def _build_settled(self, tries: int = 3) -> Plan:
        """A plan whose code files did not change while it was made: the modules are
        imported first and read again for their closures, so an edit in between would give
        the steps a fingerprint of code other than what they run. Such a plan is made again."""
        for attempt in range(tries):
            started = time.time_ns()
            plan = self._build()
            moved = [d[0] for d in plan.deps if d[0].endswith(".py") and d[1] >= started]
            if not moved:
                return plan
            if attempt < tries - 1:
                self.warn(f"{moved[0]} changed while the plan was made; planning again")
                self.resolved = None
        raise ConfigError(
            f"{moved[0]} keeps changing while the plan is made",
            hint="make again once your editor or tool has finished writing it",
        )

    def _build(self) -> Plan:
        from tipi.graph.dag import StepNode, build_graph
        from tipi.identity.fingerprint import canonical
        from tipi.identity.modules import module_refs
        from tipi.identity.stepcode import PipelineCode

        resolved = self.resolve()
        graph = build_graph(
            {
                name: StepNode(name, s.inputs, s.outputs, s.spec.after, s.spec.location)
                for name, s in resolved.steps.items()
            }
        )
        self._check_outputs(resolved)
        from tipi.state.codetable import code_memo

        self._memo = code_memo(self.code_table, self.warn) if self.code_table else None
        code = PipelineCode(self.root, self.folder, self._memo)
        permanences = {
            name: {
                "type": p.spec.type,
                "params": canonical(self._portable(p.params)),
                "code": code.fingerprint(p.cls, p.cls.code_refs(p.params)),
            }
            if p.cls.affects_results
            else None
            for name, p in resolved.permanences.items()
        }
        shared = [c["code"] for c in permanences.values() if c is not None]
        quiet = {name for name, config in permanences.items() if config is None}
        steps = {}
        for name, step in resolved.steps.items():
            location = step.spec.location
            refs = module_refs(step.spec.params.values())
            fingerprint = code.fingerprint(step.cls, refs, step=True)
            steps[name] = PlannedStep(
                name=name,
                type=step.spec.type,
                code=fingerprint,
                env=code.environment([fingerprint, *shared]),
                params=canonical(self._portable(step.params) | _launch_params(step.spec)),
                inputs={k: relative(p, self.root) for k, p in step.inputs.items()},
                outputs={k: relative(p, self.root) for k, p in step.outputs.items()},
                metrics={k: relative(p, self.root) for k, p in step.metrics.items()},
                after=list(step.spec.after),
                volatile=step.spec.volatile,
                force=step.spec.force,
                file=str(location.file or self.file),
                line=location.line,
                resources=dict(step.spec.resources),
                nproc=step.spec.nproc,
                launcher=step.spec.launcher,
                announces_resume=bool(getattr(step.cls, "announces_resume", False)),
                inert=_inert_params(step.cls, step.params, quiet),
                base=step.spec.base,
                values=dict(step.spec.values),
            )
        plan = Plan(
            pipeline=self.name,
            steps=steps,
            order=list(graph.order),
            predecessors=dict(graph.predecessors),
            producers={relative(p, self.root): s for p, s in graph.producers.items()},
            permanences=permanences,
            source=resolved.spec.source,
            deps=self._dependencies(resolved, [*code.files, *resolved.spec.matrix_files]),
            code_files={fp: sorted(files) for fp, files in code.files_of.items()},
            environments=code.environments,
            rerun_on_env=resolved.spec.rerun_on_env,
            globs=resolved.spec.matrix_globs,
        )
        self.code_units = code.units
        self.absent = code.absent
        if self._memo is not None:
            self._memo.forget_trees()
        return plan

    def _check_outputs(self, resolved: ResolvedPipeline) -> None:
        """Every output lies strictly inside the project, outside `.tipi_cache/` and `pipelines/`,
        around no input of its step and no other output (paths.py; one RealPaths for all)."""
        real = RealPaths()
        for step in resolved.steps.values():
            for key, path in step.outputs.items():
                problem = output_problem(path, self.root, real)
                if problem:
                    raise DefinitionError(
                        f"output '{key}' of step '{step.name}' ({relative(path, self.root)}) "
                        f"is not allowed: {problem}",
                        hint="write outputs to their own files or folders under the project "
                        "(e.g. out/...); read other files as inputs",
                        location=step.spec.location,
                    )
            problem = self_input_problem(step.name, step.inputs, step.outputs, self.root, real)
            if problem:
                hint = "write the output to a path of its own (e.g. out/...)"
                raise DefinitionError(problem, hint=hint, location=step.spec.location)
        outputs = {n: s.outputs.values() for n, s in resolved.steps.items()}
        found = nesting_problem(outputs, self.root, real)
        if found is not None:
            name, message = found
            raise DefinitionError(
                message,
                hint="give each output a path of its own, not one inside another",
                location=resolved.steps[name].spec.location,
            )

    def _portable(self, params: Mapping[str, Any]) -> dict[str, Any]:
        """Params with paths under the project root made relative: fingerprints must not
        depend on where the project is checked out."""
        return {
            k: relative(Path(v), self.root) if isinstance(v, PurePath) else v
            for k, v in params.items()
        }

    def _dependencies(self, resolved: ResolvedPipeline, code: Iterable[str]) -> list[list[Any]]:
        """Every file the plan was made from: the pipeline file, the modules beside it, the
        source files of every class and of the code they reach, and the package metadata
        their environment was read from."""
        import inspect

        files = {str(self.file), *(str(p) for p in self.folder.glob("*.py")), *code}
        classes = {s.cls for s in resolved.steps.values()}
        classes |= {p.cls for p in resolved.permanences.values()}
        for cls in classes:
            for klass in cls.__mro__:
                try:
                    files.add(inspect.getsourcefile(klass) or "")
                except TypeError:
                    continue
        return [dep for f in sorted(files) if f and (dep := stat_dep(f)) is not None]


def _launch_params(spec: Any) -> dict[str, Any]:
    """How many ranks train together changes the result (the effective batch size), so it
    enters the fingerprint like a param; one process, the usual case, adds nothing."""
    return {"(nproc)": spec.nproc} if spec.launcher != "none" else {}


def _inert_params(cls: type, params: Mapping[str, Any], quiet: set[str]) -> list[str]:
    """The params of a step that only name permanences which do not change results: those
    its class declares in `permanence_params` (loggers, progress, device) whose every name
    is one of `quiet`. Choosing another logger must not rerun a step (ARCHITECTURE.md);
    a param that names any other permanence, or anything else, stays in the fingerprint.
    Declared, not guessed from values: a param that merely equals a logger's name (a mode,
    a phase) is still a param."""
    declared = getattr(cls, "permanence_params", ())
    if isinstance(declared, str):
        declared = (declared,)
    return sorted(k for k in declared if k in params and _names_only(params[k], quiet))


def _names_only(value: Any, quiet: set[str]) -> bool:
    """Whether `value` (a name, a list of names; "" or None for none) names only permanences
    of `quiet`."""
    if value is None or isinstance(value, str):
        names = [value] if value else []
    elif isinstance(value, list | tuple) and all(isinstance(v, str) for v in value):
        names = [v for v in value if v]
    else:
        return False
    return all(name in quiet for name in names)
