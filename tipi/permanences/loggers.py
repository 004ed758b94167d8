"""Experiment loggers behind one interface: files, TensorBoard, W&B, or several at once."""

from __future__ import annotations

import json
import math
import os
import re
import time
from abc import abstractmethod
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from tipi.errors import ConfigError, UsageError
from tipi.permanence import Permanence

Metrics = Mapping[str, float]


class BaseLoggerManager(Permanence):
    """What every logger offers. Loggers do not change results (`affects_results = False`).

    Subclasses write `_log_metrics`, `_log_figure`, `_log_hparams` and `_finish`; this class
    checks inputs and makes `finish()` idempotent and part of `cleanup()`.
    """

    affects_results = False

    def __init__(self) -> None:
        self._finished = False
        self._figures = 0

    def log_metrics(self, metrics: Metrics, step: int | None = None) -> None:
        """Log scalar metrics (name → number) at `step` (default: the logger's own count)."""
        bad = {
            k: v
            for k, v in metrics.items()
            if not isinstance(v, int | float) or isinstance(v, bool)
        }
        if bad:
            raise TypeError(f"metrics must be numbers; not: {bad}")
        self._log_metrics({k: float(v) for k, v in metrics.items()}, step)

    def log_figure(self, name: str, figure: Any, step: int | None = None) -> None:
        """Log a matplotlib figure."""
        self._figures += 1
        self._log_figure(name, figure, step)

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
        """Log the run's hyperparameters (and the final metrics they led to)."""
        self._log_hparams(dict(hparams), dict(metrics or {}))

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
        """Flush and close; safe to call more than once."""
        if not self._finished:
            self._finished = True
            self._finish()

    def cleanup(self) -> None:
        self.finish()

    @abstractmethod
    def _log_metrics(self, metrics: dict[str, float], step: int | None) -> None: ...

    @abstractmethod
    def _log_figure(self, name: str, figure: Any, step: int | None) -> None: ...

    @abstractmethod
    def _log_hparams(self, hparams: dict[str, Any], metrics: dict[str, float]) -> None: ...

    def _finish(self) -> None:
        """Nothing to close by default."""


def _safe(name: str) -> str:
    return re.sub(r"[^\w.-]+", "_", name).strip("_") or "figure"


class BasicLogger(BaseLoggerManager):
    """Metrics as JSON lines (`metrics.jsonl`), figures as PNG files, hparams as JSON.

    Args:
        log_dir: the folder (created on initialize).
    """

    def __init__(self, log_dir: Path = Path("logs")) -> None:
        super().__init__()
        self.log_dir = Path(log_dir)
        self._step = 0
        self._file: Any = None

    def initialize(self) -> None:
        (self.log_dir / "figures").mkdir(parents=True, exist_ok=True)
        self._file = open(self.log_dir / "metrics.jsonl", "a", encoding="utf-8")  # noqa: SIM115

    def _log_metrics(self, metrics: dict[str, float], step: int | None) -> None:
        self._step = self._step + 1 if step is None else step
        record = {"step": self._step, "time": time.time()}
        record.update({k: (v if math.isfinite(v) else str(v)) for k, v in metrics.items()})
        self._file.write(json.dumps(record) + "\n")
        self._file.flush()

    def _log_figure(self, name: str, figure: Any, step: int | None) -> None:
        suffix = f"_{step}" if step is not None else f"_{self._figures}"
        figure.savefig(self.log_dir / "figures" / f"{_safe(name)}{suffix}.png")

    def _log_hparams(self, hparams: dict[str, Any], metrics: dict[str, float]) -> None:
        text = json.dumps({"hparams": hparams, "metrics": metrics}, indent=2, default=str)
        (self.log_dir / "hparams.json").write_text(text)

    def _finish(self) -> None:
        if self._file is not None:
            self._file.close()


class TensorBoardLogger(BaseLoggerManager):
    """Real TensorBoard event files (torch.utils.tensorboard). Needs the `tensorboard` extra."""

    def __init__(self, log_dir: Path = Path("logs/tensorboard")) -> None:
        super().__init__()
        self.log_dir = Path(log_dir)
        self._writer: Any = None
        self._step = 0

    def initialize(self) -> None:
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError as exc:
            raise ConfigError(
                f"TensorBoardLogger needs tensorboard: {exc}",
                hint="pip install 'tipi[tensorboard]'",
            ) from exc
        self._writer = SummaryWriter(log_dir=str(self.log_dir))

    def _log_metrics(self, metrics: dict[str, float], step: int | None) -> None:
        self._step = self._step + 1 if step is None else step
        for name, value in metrics.items():
            self._writer.add_scalar(name, value, self._step)
        self._writer.flush()

    def _log_figure(self, name: str, figure: Any, step: int | None) -> None:
        self._writer.add_figure(name, figure, global_step=step if step is not None else self._step)

    def _log_hparams(self, hparams: dict[str, Any], metrics: dict[str, float]) -> None:
        flat = {
            k: v if isinstance(v, int | float | str | bool) else str(v) for k, v in hparams.items()
        }
        self._writer.add_hparams(flat, metrics, run_name=".")

    def _finish(self) -> None:
        if self._writer is not None:
            self._writer.close()


def wandb_key_configured() -> bool:
    """True when W&B could log online: an API key in the environment or in ~/.netrc.

    Only presence is checked; the key itself is never read into tipi, logged or stored.
    """
    if os.environ.get("WANDB_API_KEY"):
        return True
    netrc = Path(os.environ.get("NETRC", Path.home() / ".netrc"))
    try:
        return "api.wandb.ai" in netrc.read_text()
    except OSError:
        return False


class WandBLogger(BaseLoggerManager):
    """Weights & Biases. Offline (local run files, sync later) unless an API key is configured.

    Args:
        project: the W&B project.
        log_dir: where W&B writes its `wandb/` folder.
        mode: "auto" (online with a key, else offline), "online", "offline" or "disabled".
        run_name: the run's display name.
    """

    def __init__(
        self,
        project: str = "tipi",
        log_dir: Path = Path("logs"),
        mode: str = "auto",
        run_name: str | None = None,
    ) -> None:
        super().__init__()
        if mode not in ("auto", "online", "offline", "disabled"):
            raise ConfigError(f"mode must be auto, online, offline or disabled, not {mode!r}")
        self.project = project
        self.log_dir = Path(log_dir)
        self.mode = mode
        self.run_name = run_name
        self.run: Any = None
        self._owns_run = True

    @property
    def resolved_mode(self) -> str:
        if self.mode != "auto":
            return self.mode
        return "online" if wandb_key_configured() else "offline"

    def initialize(self) -> None:
        try:
            import wandb
        except ImportError as exc:
            raise ConfigError(
                f"WandBLogger needs wandb: {exc}", hint="pip install 'tipi[wandb]'"
            ) from exc
        self.log_dir.mkdir(parents=True, exist_ok=True)
        active = wandb.run
        if active is not None and os.environ.get(SWEEP_RUN_VARIABLE) == active.id:
            self.run, self._owns_run = active, False  # the sweep agent's run: log into it
            return
        self.run = wandb.init(
            project=self.project,
            dir=str(self.log_dir),
            mode=self.resolved_mode,
            name=self.run_name,
            reinit="finish_previous",
            settings=wandb.Settings(silent=True, console="off"),
        )

    def _log_metrics(self, metrics: dict[str, float], step: int | None) -> None:
        self.run.log(metrics, step=step)

    def _log_figure(self, name: str, figure: Any, step: int | None) -> None:
        import wandb

        self.run.log({name: wandb.Image(figure)}, step=step)

    def _log_hparams(self, hparams: dict[str, Any], metrics: dict[str, float]) -> None:
        self.run.config.update(hparams, allow_val_change=True)
        for name, value in metrics.items():
            self.run.summary[name] = value

    def _finish(self) -> None:
        if self.run is not None and self._owns_run:
            self.run.finish()

    def supports_sweep(self) -> bool:
        return True

    def run_sweep(
        self, run_once: Callable[[Mapping[str, Any]], dict[str, float]], config: Mapping[str, Any]
    ) -> None:
        """A W&B sweep: W&B's controller chooses the params (grid, random or bayes), its
        agent runs each variant here; the pipeline's W&B logging goes to the agent's run."""
        if self.resolved_mode != "online":
            raise ConfigError(
                "a W&B sweep needs W&B online; this logger is "
                f"{self.resolved_mode} (mode = {self.mode!r})",
                hint="set WANDB_API_KEY or run `wandb login` (and mode auto or online), "
                "or run the sweep without --wandb: tipi runs grid and random sweeps itself",
            )
        import wandb

        wandb_config = {**config, "parameters": nested_parameters(config["parameters"])}
        sweep_id = wandb.sweep(sweep=wandb_config, project=self.project)

        def trial() -> None:
            self.log_dir.mkdir(parents=True, exist_ok=True)
            with wandb.init(dir=str(self.log_dir)) as run:
                os.environ[SWEEP_RUN_VARIABLE] = run.id
                try:
                    metrics = run_once(flat_parameters(dict(run.config)))
                finally:
                    os.environ.pop(SWEEP_RUN_VARIABLE, None)
                run.log(metrics)

        wandb.agent(sweep_id, function=trial, project=self.project, count=config.get("run_cap"))


SWEEP_RUN_VARIABLE = "TIPI_WANDB_SWEEP_RUN"


def nested_parameters(parameters: Mapping[str, Any]) -> dict[str, Any]:
    """`{"train.lr": {...}}` in W&B's nested form: `{"train": {"parameters": {"lr": ...}}}`."""
    nested: dict[str, Any] = {}
    for key, table in parameters.items():
        *tables, leaf = key.split(".")
        target = nested
        for name in tables:
            target = target.setdefault(name, {"parameters": {}})["parameters"]
        target[leaf] = dict(table)
    return nested


def flat_parameters(config: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """The inverse of `nested_parameters` for a run's config: `{"train": {"lr": 0.1}}` →
    `{"train.lr": 0.1}`."""
    flat: dict[str, Any] = {}
    for key, value in config.items():
        if isinstance(value, Mapping):
            flat |= flat_parameters(value, f"{prefix}{key}.")
        else:
            flat[f"{prefix}{key}"] = value
    return flat


class MultiLogger(BaseLoggerManager):
    """Sends everything to several logger permanences, by name: `loggers = ["files", "tb"]`."""

    def __init__(self, loggers: list[str]) -> None:
        super().__init__()
        self.names = loggers
        self.loggers: list[BaseLoggerManager] = []

    def initialize(self) -> None:
        for name in self.names:
            logger = self.controller.get_permanence(name)
            if not isinstance(logger, BaseLoggerManager):
                raise ConfigError(f"'{name}' is a {type(logger).__name__}, not a logger")
            self.loggers.append(logger)

    def _log_metrics(self, metrics: dict[str, float], step: int | None) -> None:
        for logger in self.loggers:
            logger.log_metrics(metrics, step)

    def _log_figure(self, name: str, figure: Any, step: int | None) -> None:
        for logger in self.loggers:
            logger.log_figure(name, figure, step)

    def _log_hparams(self, hparams: dict[str, Any], metrics: dict[str, float]) -> None:
        for logger in self.loggers:
            logger.log_hparams(hparams, metrics)
