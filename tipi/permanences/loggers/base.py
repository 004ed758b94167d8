"""What every logger shares: input checks, the run and step it is logging for, the global
step that continues across the steps of one run, and configs with their secrets hidden."""

from __future__ import annotations

import json
import re
import sys
from abc import abstractmethod
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from tipi import context
from tipi.context import RunInfo
from tipi.errors import UsageError
from tipi.permanence import Permanence
from tipi.redact import HIDDEN as HIDDEN  # re-exported: loggers found it here before
from tipi.redact import is_secret_name as is_secret_name
from tipi.redact import redact
from tipi.runid import new_run_id

Metrics = Mapping[str, float]


def flatten(config: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested tables as dotted keys: `{"net": {"hidden": 16}}` → `{"net.hidden": 16}`."""
    flat: dict[str, Any] = {}
    for key, value in config.items():
        if isinstance(value, Mapping) and value:
            flat |= flatten(value, f"{prefix}{key}.")
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def run_config(run: RunInfo) -> dict[str, Any]:
    """What a run's step ran with, secrets hidden: its params, the params of the steps
    upstream of it under their names (an Evaluate's `train.lr`), and under `permanences`
    the config of every permanence the pipeline declares."""
    params = redact(dict(run.params))
    upstream = redact({name: dict(p) for name, p in run.upstream.items()})
    permanences = redact({name: dict(p) for name, p in run.permanences.items()})
    added = {**upstream, **({"permanences": permanences} if permanences else {})}
    if params.keys() & added.keys():  # a param named like a step: each under its own key
        return {"params": params, **added}
    return {**params, **added}


def run_folder(log_dir: Path, run: RunInfo, with_step: bool = False) -> Path:
    """`log_dir/<pipeline>/<run id>` (and `/<step>`), leaving out the parts a run lacks."""
    parts = [run.pipeline, run.id, run.step if with_step else ""]
    return log_dir.joinpath(*(_safe(p) for p in parts if p))


def _safe(name: str) -> str:
    return re.sub(r"[^\w.-]+", "_", name).strip("_") or "_"


class BaseLoggerManager(Permanence):
    """What every logger offers. Loggers do not change results (`affects_results = False`).

    A logger is shared by every step of a make: at each call it reads the running step
    (`tipi.context`) and, when the step changed, ends the previous one (`_end`) and begins the
    next (`_begin`): W&B opens a run per step, TensorBoard a folder per step. Outside a
    pipeline it logs for `script_run` (`logger.init` makes one), else for a run of its own.

    Steps: a step passed to `log_metrics` counts within the running step; the logger adds
    an offset so that the steps of one run continue (phase A's epochs 1-5 are steps 1-5,
    phase B's epochs 1-3 then steps 6-8). With no step, the next one after the last.

    Subclasses write `_log_metrics`, `_log_figure`, `_log_hparams` and optionally `_begin`,
    `_end` and `_finish`; they receive global steps.
    """

    affects_results = False

    def __init__(self) -> None:
        self._finished = False
        self._figures = 0
        self.script_run: RunInfo | None = None
        self.run_info: RunInfo | None = None  # the run and step being logged now
        self.final_metrics: dict[str, float] = {}  # the running step's last value of each
        self.hparams: dict[str, Any] = {}  # what the running step passed to log_hparams
        self._own_id: str | None = None
        self._last_step = 0  # the highest global step logged in this run
        self._logged = False  # anything logged in this run yet
        self._offset: int | None = None  # the running step's, fixed by its first step

    def use_run(self, run: RunInfo) -> None:
        """Log for `run` when no pipeline step is running (script mode)."""
        self.script_run = run

    def current_run(self) -> RunInfo:
        """The run and step to log for now: the running step's, else the script's, else a
        run of this logger's own."""
        running = context.current()
        if running is not None and running.run is not None:
            return running.run
        if running is None and self.script_run is not None:
            return self.script_run
        if self._own_id is None:
            self._own_id = new_run_id()
        return RunInfo(self._own_id, "", running.step if running is not None else "", "")

    def log_metrics(
        self, metrics: Metrics, step: int | None = None, *, epoch: int | None = None
    ) -> None:
        """Log scalar metrics (name → number) at `step` of the running step (default: the
        next); `epoch`, when given, is logged as the scalar `epoch`."""
        bad = {
            k: v
            for k, v in metrics.items()
            if not isinstance(v, int | float) or isinstance(v, bool)
        }
        if bad:
            raise TypeError(f"metrics must be numbers; not: {bad}")
        values = {k: float(v) for k, v in metrics.items()}
        if epoch is not None:
            values["epoch"] = epoch
        self._track()
        at = self._global_step(step, advance=True)
        self.final_metrics.update(values)
        context.note_logged(values)  # the make keeps the last values in its run
        self._log_metrics(values, at)

    def log_figure(self, name: str, figure: Any, step: int | None = None) -> None:
        """Log a matplotlib figure (default step: the last one logged)."""
        self._figures += 1
        self._track()
        self._log_figure(name, figure, self._global_step(step, advance=False))

    def log_seaborn_graph(self, name: str, graph: Any, step: int | None = None) -> None:
        """Log a seaborn plot (an Axes, FacetGrid or anything with `.figure`/`.fig`)."""
        figure = (
            getattr(graph, "figure", None)
            or getattr(graph, "fig", None)
            or getattr(graph, "get_figure", lambda: None)()
        )
        if figure is None:
            raise TypeError(f"cannot find a matplotlib figure in {type(graph).__name__}")
        self.log_figure(name, figure, step)

    def log_hparams(self, hparams: Mapping[str, Any], metrics: Metrics | None = None) -> None:
        """Log hyperparameters (secrets hidden) and the final metrics they led to; the
        running step's params and permanence configs are logged without asking."""
        self._track()
        clean, final = redact(dict(hparams)), {k: float(v) for k, v in (metrics or {}).items()}
        self.hparams.update(clean)
        self.final_metrics.update(final)
        self._log_hparams(clean, final)

    def supports_sweep(self) -> bool:
        """True when this backend runs sweeps itself (`tipi sweep --logger NAME`)."""
        return False

    def run_sweep(
        self, run_once: Callable[[Mapping[str, Any]], dict[str, float]], config: Mapping[str, Any]
    ) -> None:
        """Run a sweep: choose params (`config` is in W&B's sweep format, parameter names
        `STEP.PARAM`), call `run_once(params)` for each variant (it makes the variant and
        returns its metrics; it raises when the variant failed) and stop when done."""
        raise UsageError(
            f"{type(self).__name__} does not run sweeps (its supports_sweep() is false)",
            hint="leave --logger/--wandb out: tipi runs grid and random sweeps itself",
        )

    def finish(self) -> None:
        """End the running step's logging, flush and close; safe to call more than once."""
        if not self._finished:
            self._finished = True
            if self.run_info is not None:
                self._end(self.run_info)
            self._finish()

    def cleanup(self) -> None:
        self.finish()

    def notify(self, message: str) -> None:
        """Tell the user something: through the pipeline's reporter, or on stderr."""
        if self.controller is not None and hasattr(self.controller, "notice"):
            self.controller.notice(message)
        else:
            sys.stderr.write(f"tipi: {message}\n")

    def _track(self) -> RunInfo:
        run = self.current_run()
        now = self.run_info
        if now is not None and (now.id, now.step) == (run.id, run.step):
            return now
        if now is not None:
            self._end(now)
        if now is None or now.id != run.id:
            self._last_step, self._logged = 0, False
        self.run_info, self._offset = run, None
        self.final_metrics, self.hparams = {}, {}
        self._begin(run)
        return run

    def _global_step(self, step: int | None, advance: bool) -> int:
        if step is None:
            at = self._last_step + 1 if advance else self._last_step
        else:
            if self._offset is None:
                self._offset = max(0, self._last_step + 1 - step) if self._logged else 0
            at = self._offset + step
        self._last_step, self._logged = max(self._last_step, at), True
        return at

    def _begin(self, run: RunInfo) -> None:
        """A step of `run` starts logging (the first call since the step changed)."""

    def _end(self, run: RunInfo) -> None:
        """The step of `run` logged its last (another step logs, or the logger finishes)."""

    @abstractmethod
    def _log_metrics(self, metrics: dict[str, float], step: int) -> None: ...

    @abstractmethod
    def _log_figure(self, name: str, figure: Any, step: int) -> None: ...

    @abstractmethod
    def _log_hparams(self, hparams: dict[str, Any], metrics: dict[str, float]) -> None: ...

    def _finish(self) -> None:
        """Nothing to close by default."""


def json_safe(metrics: Mapping[str, float]) -> dict[str, Any]:
    """Metrics for a JSON file: NaN and infinities as strings."""
    return {k: v if v == v and abs(v) != float("inf") else str(v) for k, v in metrics.items()}


def dumps(data: Any) -> str:
    return json.dumps(data, indent=2, default=str)
