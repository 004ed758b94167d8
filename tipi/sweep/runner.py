"""Runs a sweep: each variant is a make with overrides, its swept steps kept apart.

Which steps a variant owns is decided from the swept keys alone (so that W&B, choosing
values one run at a time, gets the same layout): the steps the keys name, plus every step
downstream of them; all steps when a key names a permanence that affects results. The other
steps keep their paths and traces, so they run once for all variants.
"""

from __future__ import annotations

import copy
import json
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

from tipi.config.loader import apply_overrides
from tipi.config.toml import read_toml
from tipi.config.variant import Variant
from tipi.engine import Engine, MakeOptions
from tipi.errors import ConfigError, PipelineInterrupted, TipiError, UsageError
from tipi.planning import Plan, absolute
from tipi.redact import hide_secrets
from tipi.report import Reporter, StepResult
from tipi.sweep.failures import SWEEP_AGAIN, SweepFailed, VariantFailed
from tipi.sweep.folds import with_folds
from tipi.sweep.results import SweepResults, VariantResult, collect_metrics
from tipi.sweep.sample import overrides, variant_name, variants
from tipi.sweep.spec import SweepSpec, slug

RunOnce = Callable[[Mapping[str, Any]], dict[str, float]]


class SweepRunner(Protocol):
    """What a logger offers to run sweeps itself (W&B's agent, or another backend's)."""

    def supports_sweep(self) -> bool: ...

    def run_sweep(self, run_once: RunOnce, config: Mapping[str, Any]) -> None: ...


class Sweep:
    """One sweep of a pipeline: `Sweep("digits", spec).run()`.

    Args:
        pipeline: the pipeline's name (None for the only one).
        spec: what to sweep (`load_sweep` or `grid_from_options`).
        root, config, overrides, reporter: as for Engine; `overrides` apply to every variant.
        targets: what each variant builds (default: every step).
        make_options: how to make each variant (MakeOptions, or its fields as a mapping).
        announce: receives a line as each variant starts.
        on_failure: receives the error of each variant that fails (the sweep goes on).
    """

    def __init__(
        self,
        pipeline: str | None,
        spec: SweepSpec,
        *,
        root: Path | str | None = None,
        config: Path | str | None = None,
        overrides: Sequence[str] = (),
        reporter: Reporter | None = None,
        targets: Sequence[str] = (),
        make_options: MakeOptions | Mapping[str, Any] | None = None,
        announce: Callable[[str], None] = lambda line: None,
        on_failure: Callable[[TipiError], None] = lambda error: None,
    ) -> None:
        self.base = Engine(
            pipeline, root=root, config=config, overrides=overrides, reporter=reporter
        )
        self.spec = spec
        self.name = slug(spec.name)
        self.config = config
        self.reporter = reporter
        self._warned = False
        self.targets = list(targets)
        if isinstance(make_options, MakeOptions):
            self.options = make_options
        else:
            self.options = MakeOptions(**dict(make_options or {}))
        self.dry_run = self.options.dry_run
        self.announce = announce
        self.on_failure = on_failure
        self.total = 0  # variants planned, when known in advance (not with a sweep agent)
        plan = self.base.load(save=not self.dry_run)
        if spec.folds:  # cross-validation: one variant per fold (tipi/sweep/folds.py)
            self.spec = spec = with_folds(spec, self.base.planner.resolve())
        self.steps = frozenset(self._owned_steps(plan))
        self.results = SweepResults(self.base.name, self.name, spec.method, spec.metric, spec.goal)
        if spec.folds:
            self.results.fold_key = f"{spec.fold_of}.fold"

    @property
    def folder(self) -> Path:
        """Where this sweep's variants and results live."""
        return self.base.root / "out" / "sweeps" / self.base.name / self.name

    def run(self, count: int | None = None, seed: int = 0) -> SweepResults:
        """Run every variant here: one after another, or with `-j N` (N > 1) up to N steps of
        any variants at once (parallel.py); a failed variant does not stop the others (a
        config error does, before anything runs).

        Raises:
            SweepFailed: some variants failed (the results of all are written).
            PipelineInterrupted: Ctrl-C; the results of finished variants are written.
        """
        chosen = variants(self.spec, count, seed)
        self._check_names(chosen)
        for params in chosen:  # every variant's config is checked before anything runs
            self.engine(params).load(save=not self.dry_run)
        self.total = len(chosen)
        if self.side_by_side(chosen):
            from tipi.sweep.parallel import run_side_by_side

            run_side_by_side(self, chosen)
        else:
            self.run_each(chosen)
        return self._finish()

    def _check_names(self, chosen: Sequence[Mapping[str, Any]]) -> None:
        """Refuse two variants that would share a folder (and trace keys and logs): a
        string that reads like another value ("0.1" beside 0.1) names both alike."""
        named: dict[str, Mapping[str, Any]] = {}
        for params in chosen:
            name = variant_name(params, self.spec.swept)
            if name in named:
                both = " and ".join(
                    json.dumps(dict(p), sort_keys=True, default=str) for p in (named[name], params)
                )
                raise UsageError(
                    f"two variants of sweep {self.name} would share the folder '{name}': {both}",
                    hint="give each value a text of its own (a string that reads as a number "
                    "or true/false looks like that value in a folder name)",
                )
            named[name] = params

    def side_by_side(self, chosen: Sequence[Mapping[str, Any]]) -> bool:
        """Whether variants may run at once: `-j N` on the local executor, several variants,
        and a make that writes (a dry run is quick, and its lines are clearer in order)."""
        options = self.options
        return (
            (options.jobs or 1) > 1
            and options.executor == "local"
            and not self.dry_run
            and len(chosen) > 1
        )

    def run_each(self, chosen: Sequence[Mapping[str, Any]]) -> None:
        """Make each variant in turn (a failed one is in the results; the next one runs)."""
        for params in chosen:
            try:
                self.run_once(params)
            except VariantFailed:
                continue

    def run_with(self, runner: SweepRunner) -> SweepResults:
        """Hand the sweep to a logger's own runner (`--wandb`): it chooses the params and
        calls `run_once` for each variant."""
        if not runner.supports_sweep():
            raise UsageError(
                f"{type(runner).__name__} cannot run sweeps",
                hint="run the sweep without a logger (tipi runs grid and random itself)",
            )
        runner.run_sweep(self.run_once, self.spec.to_wandb())
        return self._finish()

    def engine(self, params: Mapping[str, Any], reporter: Reporter | None = None) -> Engine:
        """The make of one variant (its events to `reporter`, default the sweep's)."""
        return Engine(
            self.base.name,
            root=self.base.root,
            config=self.config,
            overrides=[*self.base.overrides, *overrides(params)],
            reporter=reporter or self.reporter,
            variant=Variant(
                self.base.name, self.name, variant_name(params, self.spec.swept), self.steps
            ),
        )

    def run_once(self, params: Mapping[str, Any]) -> dict[str, float]:
        """Make one variant and return its metrics (the function a sweep runner calls).

        Raises:
            VariantFailed: its make failed; the failure is in the results.
            ConfigError, UsageError: its params do not fit the pipeline.
        """
        engine = self.engine(params)
        result = self.begin(engine, params)
        started = time.perf_counter()
        try:
            summary = engine.make(self.targets, self.options)
        except BaseException as error:
            self.failed(result, error)
            raise
        finally:
            result.seconds = time.perf_counter() - started
            self._save()
        return self.conclude(engine, result, summary.results)

    def begin(self, engine: Engine, params: Mapping[str, Any]) -> VariantResult:
        """The variant's row in the results (in the order variants start), announced."""
        assert engine.variant is not None
        result = VariantResult(engine.variant.name, dict(params), folder=engine.variant.folder)
        self.results.variants.append(result)
        count = len(self.results.variants)
        of = f"/{self.total}" if self.total else ""
        self.announce(f"variant {count}{of}: {result.name}")
        return result

    def failed(self, result: VariantResult, error: BaseException) -> None:
        """Record why the variant's make ended early, then re-raise as the sweep does.

        Raises:
            VariantFailed: the make failed (exit 1); the failure is in the results.
            PipelineInterrupted, TipiError, ...: `error` itself (a config error leaves no row).
        """
        if isinstance(error, PipelineInterrupted):
            result.status = "interrupted"
            error.hint = SWEEP_AGAIN  # not the variant's `tipi make`: that makes no variant
        elif isinstance(error, TipiError):
            if error.exit_code != 1:
                self.results.variants.remove(result)
                return
            result.status, result.error = "failed", hide_secrets(str(error))  # results.json
            error.hint = "fix it, then run the sweep again: what finished will not run again"
            self.on_failure(error)
            raise VariantFailed(f"variant {result.name} failed: {error}") from error

    def conclude(
        self, engine: Engine, result: VariantResult, done: Sequence[StepResult]
    ) -> dict[str, float]:
        """The variant's status and metrics once its make (the steps in `done`) ended well."""
        outcomes = {r.name: r.outcome for r in done}
        if self.dry_run:
            result.status = "would run" if "would run" in outcomes.values() else "up to date"
            return {}
        seen = set(outcomes.values())
        result.status = next((o for o in ("ran", "restored") if o in seen), "up to date")
        plan = engine.load()
        tested: set[str] = set()
        result.metrics = collect_metrics(
            {
                name: [Path(absolute(p, engine.root)) for p in plan.steps[name].outputs.values()]
                for name in outcomes
                if name in self.steps
            },
            tested,
        )
        result.test_metrics = sorted(tested)
        self._warn_test_choice()
        self._save()
        return result.metrics

    def _warn_test_choice(self) -> None:
        """Once per sweep: choosing by a test-split metric lets the test set pick the model."""
        key = self.results.metric_key()
        if self._warned or not key or not self.results.on_test_split(key):
            return
        self._warned = True
        if self.reporter is not None:
            self.reporter.warning(
                f"the sweep chooses by {key}, measured on the test split: the test set then "
                "picks the model and no longer estimates new data; choose by a validation "
                "metric (e.g. train.best_score) and report the test figure of the chosen one"
            )

    def _finish(self) -> SweepResults:
        failed = [v for v in self.results.variants if v.status == "failed"]
        if failed:
            names = ", ".join(v.name for v in failed)
            raise SweepFailed(
                f"{len(failed)} of {len(self.results.variants)} variants failed: {names}",
                hint=f"see {self._where()}; fix, then run the sweep again: "
                "finished variants are up to date",
            )
        return self.results

    def _where(self) -> str:
        return str((self.folder / "results.json").relative_to(self.base.root))

    def _save(self) -> None:
        if not self.dry_run:
            self.results.write(self.folder)

    def _owned_steps(self, plan: Plan) -> set[str]:
        try:
            data, _ = read_toml(self.base.file)
        except ConfigError:
            return set(plan.order)  # load() read it a moment ago; keep every step apart
        keys = self.spec.swept or list(self.spec.parameters)  # only constants: one variant
        touched = apply_overrides(copy.deepcopy(data), [f"{key}=0" for key in keys])
        owned = {name for section, name, *_ in touched if section == "processes"}
        # A matrix process is its instances (config/instances.py): each one is swept.
        owned |= {n for n in plan.order if n.partition("[")[0] in owned}
        if any(
            section == "permanences" and plan.permanences.get(name) is not None
            for section, name, *_ in touched
        ):
            owned = set(plan.order)
        return descendants(owned, plan.predecessors)


def descendants(steps: set[str], predecessors: Mapping[str, Sequence[str]]) -> set[str]:
    """`steps` and every step that (transitively) depends on one of them."""
    result = set(steps)
    changed = True
    while changed:
        changed = False
        for name, before in predecessors.items():
            if name not in result and result.intersection(before):
                result.add(name)
                changed = True
    return result


def sweep_logger(sweep: Sweep, name: str | None = None, wandb: bool = False) -> SweepRunner:
    """The logger that runs the sweep: the permanence `name`, or with `wandb` the pipeline's
    W&B logger (a default one when the pipeline declares none). Constructed, not initialized:
    running a sweep needs no open run."""
    from tipi.permanences.loggers import WandBLogger

    resolved = sweep.base.planner.resolve()
    if wandb and name is None:
        found = [n for n, p in resolved.permanences.items() if issubclass(p.cls, WandBLogger)]
        if not found:
            return WandBLogger(project=f"tipi-{sweep.base.name}", log_dir=sweep.base.root / "logs")
        name = found[0]
    if name not in resolved.permanences:
        known = ", ".join(resolved.permanences) or "none"
        raise UsageError(f"no permanence '{name}' in '{sweep.base.name}'", hint=f"known: {known}")
    declared = resolved.permanences[name]
    logger = declared.cls(**declared.params)
    if not callable(getattr(logger, "supports_sweep", None)) or not logger.supports_sweep():
        raise UsageError(
            f"'{name}' ({declared.cls.__name__}) cannot run sweeps",
            hint="name a logger whose supports_sweep() is true (WandBLogger), or leave "
            "--logger out: tipi runs grid and random sweeps itself",
        )
    return logger  # type: ignore[return-value]
