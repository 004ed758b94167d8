"""WandBLogger: a W&B run per step, grouped by the tipi run; and W&B's sweeps."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from tipi.context import RunInfo
from tipi.errors import ConfigError
from tipi.permanences.loggers.base import BaseLoggerManager, redact, run_config
from tipi.redact import redact_command

SWEEP_RUN_VARIABLE = "TIPI_WANDB_SWEEP_RUN"
MODES = ("auto", "online", "offline", "disabled")

# Offline folders already announced in this process ("says once where metrics went").
_announced: set[str] = set()


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

    In a make, every step that logs gets a W&B run of its own: name `pipeline/step run-id`,
    group the tipi run id (the steps of one make share it), job_type the step's type, tags
    the pipeline's name and `tags`, config the step's params, the params of the steps
    upstream of it (`train.lr` in Evaluate's) and permanence configs (secrets never). In a
    script (`logger.init`), one run with the given name, group and config.

    Args:
        project: the W&B project.
        log_dir: where W&B writes its `wandb/` folder.
        mode: "auto" (online with a key, else offline), "online", "offline" or "disabled".
        run_name: the run's display name (in a make, it replaces the pipeline's name).
        entity: the W&B team or user.
        tags: more tags.
        notes: the runs' description.
        group: the W&B group (default: the tipi run id in a make, none in a script).
        job_type: the W&B job type (default: the step's type).
        config: more config, merged under the step's.
        init_options: anything else `wandb.init` takes (`id`, `resume`, `save_code`...).
    """

    def __init__(
        self,
        project: str = "tipi",
        log_dir: Path = Path("logs"),
        mode: str = "auto",
        run_name: str | None = None,
        entity: str | None = None,
        tags: list[str] | None = None,
        notes: str | None = None,
        group: str | None = None,
        job_type: str | None = None,
        config: Mapping[str, Any] | None = None,
        init_options: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__()
        if mode not in MODES:
            raise ConfigError(f"mode must be auto, online, offline or disabled, not {mode!r}")
        self.project, self.log_dir, self.mode = project, Path(log_dir), mode
        self.run_name, self.entity, self.tags, self.notes = run_name, entity, tags or [], notes
        self.group, self.job_type = group, job_type
        self.config, self.init_options = dict(config or {}), dict(init_options or {})
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

    def init_arguments(self, run: RunInfo) -> dict[str, Any]:
        """What `wandb.init` gets for (the step of) `run`."""
        stepped = bool(run.step)
        prefix = self.run_name or run.pipeline
        tags = [*self.tags, *([run.pipeline] if stepped and run.pipeline else [])]
        arguments = {
            "project": self.project,
            "entity": self.entity,
            "dir": str(self.log_dir),
            "mode": self.resolved_mode,
            "name": _name(prefix, run) if stepped else self.run_name,
            "group": self.group or (run.id if stepped else None),
            "job_type": self.job_type or run.step_type or None,
            "tags": list(dict.fromkeys(tags)) or None,
            "notes": self.notes,
            "config": {**redact(self.config), **run_config(run)},
        }
        return {k: v for k, v in arguments.items() if v is not None} | self.init_options

    def _begin(self, run: RunInfo) -> None:
        if not self._owns_run:
            return  # a sweep trial: everything goes to the agent's run
        import wandb

        self._announce()
        # W&B keeps the command line in the run's metadata (offline files, then its servers):
        # the one it reads, sys.argv, shows no `--set api_key=...` value.
        argv = sys.argv
        sys.argv = redact_command(argv)
        try:
            self.run = wandb.init(
                **{
                    "reinit": "finish_previous",
                    "settings": wandb.Settings(silent=True, console="off"),
                    **self.init_arguments(run),
                }
            )
        finally:
            sys.argv = argv

    def _announce(self) -> None:
        if self.mode != "auto" or self.resolved_mode != "offline":
            return
        where = self.log_dir / "wandb"
        if str(where.resolve()) in _announced:
            return
        _announced.add(str(where.resolve()))
        self.notify(
            f"W&B is not set up here (no WANDB_API_KEY, no `wandb login`): metrics go to "
            f"offline runs in {where}/; `wandb sync {where}/offline-run-*` uploads them later"
        )

    def _end(self, run: RunInfo) -> None:
        if self.run is not None and self._owns_run:
            self.run.finish()
            self.run = None

    def _log_metrics(self, metrics: dict[str, float], step: int) -> None:
        self.run.log(metrics, step=step)

    def _log_figure(self, name: str, figure: Any, step: int) -> None:
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
        sweep_id = wandb.sweep(sweep=wandb_config, project=self.project, entity=self.entity)

        def trial() -> None:
            self.log_dir.mkdir(parents=True, exist_ok=True)
            with wandb.init(dir=str(self.log_dir)) as run:
                os.environ[SWEEP_RUN_VARIABLE] = run.id
                try:
                    metrics = run_once(flat_parameters(dict(run.config)))
                finally:
                    os.environ.pop(SWEEP_RUN_VARIABLE, None)
                run.log(metrics)

        wandb.agent(
            sweep_id,
            function=trial,
            project=self.project,
            entity=self.entity,
            count=config.get("run_cap"),
        )


def _name(prefix: str, run: RunInfo) -> str:
    """`pipeline/step run-id`: each make's run of a step is told apart from the others'."""
    return f"{'/'.join(p for p in (prefix, run.step) if p)} {run.id}"


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
