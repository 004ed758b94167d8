"""make(): plan → for each needed step: rebuilder → executor → staging → store → reporter."""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tipi.build import Build, BuildOptions, MakeContext
from tipi.config.project import locate_pipeline, require_project_root
from tipi.graph.select import needed, resolve_targets
from tipi.planning import Plan, Planner, absolute
from tipi.report import NullReporter, Reporter, RunSummary
from tipi.state.layout import Layout

if TYPE_CHECKING:
    from tipi.config.variant import Variant
    from tipi.execution.resources import Inventory


@dataclass(frozen=True)
class StepStatus:
    """One row of `tipi status`: whether a step is up to date, and why not."""

    name: str
    status: str
    reasons: tuple[str, ...]

    def to_json(self) -> dict[str, object]:
        return {"name": self.name, "status": self.status, "reasons": list(self.reasons)}


@dataclass(frozen=True)
class MakeOptions:
    """How to make: the options of `tipi make` (and of run, status, graph, sweep), once.

    Attributes:
        dry_run: decide and report, but run and write nothing.
        force: steps (or outputs) to run even when up to date.
        force_all: run every needed step.
        keep_going: after a failure, go on with steps that do not depend on it.
        jobs: run up to this many independent steps at once, each in a worker process
            (default 1: in this process, permanences shared between steps).
        executor: "local" (worker processes on this machine) or "dask".
        scheduler: the Dask scheduler's address (default: a LocalCluster for this make).
        inventory: the cores, memory and GPUs the local executor may hand out (default:
            this machine's).
        remote: a remote run cache (fsspec URL): runs found there are restored, and the runs
            of this make are pushed to it.
        run_cache: keep successful runs' outputs and restore them when a fingerprint matches
            again (default: on, unless the environment sets TIPI_RUN_CACHE=0).
        rehash: trust no stat signature: re-read every input, output and code file (for
            files restored with old timestamps on purpose).
    """

    dry_run: bool = False
    force: Sequence[str] = ()
    force_all: bool = False
    keep_going: bool = False
    jobs: int | None = None
    executor: str = "local"
    scheduler: str | None = None
    inventory: Inventory | None = None
    remote: str | None = None
    run_cache: bool | None = None
    rehash: bool = False

    def check(self) -> None:
        """Raise UsageError for options that cannot go together."""
        _check_execution(self.jobs, self.executor, self.scheduler)


class Engine:
    """Builds a pipeline's targets incrementally: the configurable class behind `tipi make`.

    Args:
        pipeline: the pipeline's name (its folder under `pipelines/`); None for the only one.
        root: the project root; default: the nearest ancestor of the cwd holding `pipelines/`.
        config: another TOML file instead of `pipeline.toml` in the pipeline folder.
        overrides: `step.param=value` strings, values parsed as TOML.
        reporter: receives the run's events; default: none shown.
        variant: a sweep variant: the steps it names write under its own folder and keep
            their own traces (see `tipi sweep`).
    """

    def __init__(
        self,
        pipeline: str | None = None,
        *,
        root: Path | str | None = None,
        config: Path | str | None = None,
        overrides: Iterable[str] = (),
        reporter: Reporter | None = None,
        variant: Variant | None = None,
    ) -> None:
        self.root = Path(root).resolve() if root is not None else require_project_root()
        self.name, self.file = locate_pipeline(
            self.root, pipeline, Path(config) if config is not None else None
        )
        self.overrides = tuple(overrides)
        self.reporter = reporter or NullReporter()
        self.variant = variant
        self.layout = Layout(self.root, self.name, variant)
        self.cache_dir = self.layout.cache
        self.planner = Planner(
            root=self.root,
            name=self.name,
            file=self.file,
            overrides=self.overrides,
            cache_file=self.layout.plan_file,
            warn=self.reporter.warning,
            variant=variant,
            code_table=self.layout.code_file,
        )
        self._explicit_pipeline = pipeline is not None

    def load(self, save: bool = True, fresh: bool = False) -> Plan:
        """Parse, validate and fingerprint the pipeline (from the plan cache when valid,
        unless `fresh`)."""
        return self.planner.plan(save=save, fresh=fresh)

    def make(
        self,
        targets: Sequence[str] = (),
        options: MakeOptions | None = None,
        **changes: Any,
    ) -> RunSummary:
        """Bring `targets` (step names or output paths; default: every step) up to date.

        Args:
            targets: what to build; their ancestors are built first as needed.
            options: how (MakeOptions); its fields may also be given as keywords:
                `engine.make(["train"], jobs=2)`.

        Raises:
            ProcessFailure: a step failed (BuildFailed when several did, with keep_going).
            PipelineInterrupted: Ctrl-C; permanences were cleaned up, no partial output left.
            ConfigError, DefinitionError, UsageError: nothing ran.
        """
        return self.build(targets, options, **changes).run()

    def build(
        self, targets: Sequence[str] = (), options: MakeOptions | None = None, **changes: Any
    ) -> Build:
        """The make of `targets`, planned and ready to `run()` (as `make` does); a sweep
        running variants side by side sets it up before it runs."""
        options = replace(options or MakeOptions(), **changes)
        options.check()
        plan = self.load(save=not options.dry_run, fresh=options.rehash)
        goal = [n for t in targets for n in self._target(t, plan)] or list(plan.order)
        forced = {n for f in options.force for n in self._target(f, plan)}
        selected = needed([*goal, *forced], plan.predecessors)
        order = [name for name in plan.order if name in selected]
        self._check_sources(plan, order)
        build = BuildOptions(
            dry_run=options.dry_run,
            forced=frozenset(order) if options.force_all else frozenset(forced),
            keep_going=options.keep_going,
            resume_command=self.resume_command(targets),
            jobs=options.jobs,
            executor=options.executor,
            scheduler=options.scheduler,
            inventory=options.inventory,
            remote=options.remote,
            run_cache=options.run_cache if options.run_cache is not None else _run_cache_default(),
            rehash=options.rehash,
        )
        context = MakeContext(
            layout=self.layout,
            file=self.file,
            overrides=self.overrides,
            reporter=self.reporter,
            resolve=self.planner.resolve,
            plan_from_cache=self.planner.from_cache,
            code_units=self.planner.code_units,
        )
        return Build(context, plan, order, build)

    def status(
        self, targets: Sequence[str] = (), options: MakeOptions | None = None, **changes: Any
    ) -> list[StepStatus]:
        """Each needed step, "up-to-date" or "will-run", with reasons; nothing is written."""
        summary = self.make(targets, options, **{**changes, "dry_run": True})
        return [
            StepStatus(r.name, "will-run" if r.outcome == "would run" else "up-to-date", r.reasons)
            for r in summary.results
        ]

    def resume_command(self, targets: Sequence[str]) -> str:
        """The command that continues this make (finished steps are skipped by then)."""
        parts = ["tipi", "make", *targets]
        if self._explicit_pipeline:
            parts += ["-p", self.name]
        return " ".join(parts)

    def _target(self, target: str, plan: Plan) -> list[str]:
        return resolve_targets(target, list(plan.steps), plan.producers, self.root)

    def _check_sources(self, plan: Plan, order: Sequence[str]) -> None:
        """Every input nobody produces must exist before anything runs."""
        from tipi.errors import DefinitionError

        for name in order:
            step = plan.steps[name]
            for key, path in step.inputs.items():
                if path not in plan.producers and not os.path.exists(absolute(path, self.root)):
                    raise DefinitionError(
                        f"input '{key}' of step '{name}' ({path}) does not exist "
                        "and no step produces it",
                        hint="create the file, fix the path, or add a step that outputs it",
                        location=step.location,
                    )


EXECUTORS = ("local", "dask")


def _run_cache_default() -> bool:
    return os.environ.get("TIPI_RUN_CACHE", "1").strip().lower() not in ("0", "false", "no")


def _check_execution(jobs: int | None, executor: str, scheduler: str | None) -> None:
    from tipi.errors import UsageError

    if jobs is not None and jobs < 1:
        raise UsageError(f"-j must be at least 1, not {jobs}")
    if executor not in EXECUTORS:
        raise UsageError(
            f"unknown executor {executor!r}", hint=f"use one of: {', '.join(EXECUTORS)}"
        )
    if scheduler and executor != "dask":
        raise UsageError("--scheduler needs --executor dask")


class PipelineRunner(Engine):
    """Runs a whole pipeline (every step, incrementally): `PipelineRunner("name").run()`."""

    def run(self, *, force: bool = False) -> RunSummary:
        """Make every step; `force=True` runs them all even when up to date."""
        return self.make(force_all=force)


def make(
    pipeline: str | None = None,
    targets: Sequence[str] = (),
    *,
    overrides: Iterable[str] = (),
    reporter: Reporter | None = None,
    **options: object,
) -> RunSummary:
    """One call: `tipi.make("digits", ["train"])`; options are those of Engine.make."""
    engine = Engine(pipeline, overrides=overrides, reporter=reporter)
    return engine.make(targets, **options)  # type: ignore[arg-type]


__all__ = ["Engine", "MakeOptions", "PipelineRunner", "StepStatus", "make"]
