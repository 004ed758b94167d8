"""Runs a pipeline: loads and validates it, orders its steps, executes them, always cleans up."""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from pathlib import Path

from tipi.config import (
    ResolvedPipeline,
    ResolvedStep,
    load_pipeline,
    locate_pipeline,
    resolve_pipeline,
)
from tipi.config.project import require_project_root
from tipi.errors import PipelineInterrupted, ProcessFailure, TipiError
from tipi.graph import StepGraph, build_graph
from tipi.graph.dag import StepNode
from tipi.lifecycle import Controller
from tipi.report import NullReporter, Reporter, RunSummary, StepResult


class PipelineRunner:
    """The programmatic way to run a pipeline; the CLI only wraps it.

    Example:
        >>> from tipi import PipelineRunner
        >>> summary = PipelineRunner("example").run()  # doctest: +SKIP

    Args:
        pipeline: the pipeline's name (its folder under `pipelines/`); None for the only one.
        root: the project root; default: the nearest ancestor of the cwd holding `pipelines/`.
        config: another TOML file instead of `pipeline.toml` in the pipeline folder.
        overrides: `step.param=value` strings, values parsed as TOML.
        reporter: receives the run's events; default: none shown.
    """

    def __init__(
        self,
        pipeline: str | None = None,
        *,
        root: Path | str | None = None,
        config: Path | str | None = None,
        overrides: Iterable[str] = (),
        reporter: Reporter | None = None,
    ) -> None:
        self.root = Path(root).resolve() if root is not None else require_project_root()
        self.name, self.file = locate_pipeline(
            self.root, pipeline, Path(config) if config is not None else None
        )
        self.overrides = tuple(overrides)
        self.reporter = reporter or NullReporter()
        self._resolved: ResolvedPipeline | None = None
        self._graph: StepGraph | None = None

    def load(self) -> ResolvedPipeline:
        """Parse and validate the pipeline (types, params, paths, graph); nothing runs."""
        if self._resolved is None:
            spec = load_pipeline(
                self.file,
                name=self.name,
                root=self.root,
                overrides=self.overrides,
                folder=self.root / "pipelines" / self.name,
            )
            self._resolved = resolve_pipeline(spec)
            self._graph = build_graph(
                {
                    name: StepNode(name, s.inputs, s.outputs, s.spec.after, s.spec.location)
                    for name, s in self._resolved.steps.items()
                }
            )
        return self._resolved

    @property
    def order(self) -> Sequence[str]:
        """The steps in the order they run (topological, ties in declaration order)."""
        self.load()
        assert self._graph is not None
        return self._graph.order

    def run(self, *, force: bool = False) -> RunSummary:
        """Run every step in order; permanences are always cleaned up.

        Args:
            force: run every step even when its `skip()` says the work is done.

        Returns:
            the summary of the run (also sent to the reporter).

        Raises:
            ProcessFailure: a step raised (exit code 1).
            PermanenceFailure: a permanence failed to build, initialize or validate.
            PipelineInterrupted: Ctrl-C; cleanup ran first.
            ConfigError, DefinitionError: the pipeline is invalid; nothing ran.
        """
        resolved = self.load()
        summary = RunSummary(self.name)
        started = time.perf_counter()
        self.reporter.run_started(self.name, list(self.order))
        current: str | None = None
        step_started = started
        try:
            with Controller(resolved.permanences, self.reporter) as controller:
                for name in self.order:
                    current, step_started = name, time.perf_counter()
                    summary.results.append(self._run_step(resolved.steps[name], controller, force))
                    current = None
        except KeyboardInterrupt:
            summary.interrupted = True
            raise PipelineInterrupted(
                f"pipeline '{self.name}' interrupted; every initialized permanence was cleaned up",
                hint="run the same command again to continue",
            ) from None
        except TipiError as error:
            if current is not None:
                seconds = time.perf_counter() - step_started
                failed = StepResult(current, "failed", seconds, error=str(error))
                summary.results.append(failed)
                self.reporter.step_finished(failed)
            raise
        finally:
            done = {r.name for r in summary.results}
            summary.results += [StepResult(n, "not run") for n in self.order if n not in done]
            summary.seconds = time.perf_counter() - started
            self.reporter.run_finished(summary)
        return summary

    def _run_step(self, step: ResolvedStep, controller: Controller, force: bool) -> StepResult:
        process = step.cls(controller, force=force or step.spec.force, **step.params)
        process.bind_paths(step.inputs, step.outputs)
        if not process.force and process.skip():
            result = StepResult(step.name, "skipped", reasons=("skip() said the work is done",))
            self.reporter.step_finished(result)
            return result
        for path in step.outputs.values():
            path.parent.mkdir(parents=True, exist_ok=True)
        self.reporter.step_started(step.name)
        started = time.perf_counter()
        with controller.recording() as used:
            try:
                process.execute()
            except (TipiError, KeyboardInterrupt):
                raise
            except Exception as exc:
                raise ProcessFailure(step.name, exc) from exc
        controller.checkpoint(used)
        result = StepResult(step.name, "ran", time.perf_counter() - started)
        self.reporter.step_finished(result)
        return result
