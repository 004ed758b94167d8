"""logger.init / log / finish: experiment logging for scripts; inside a pipeline it writes to
the pipeline's logger permanences."""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from tipi import context
from tipi.context import RunInfo
from tipi.permanences.loggers import BaseLoggerManager, BasicLogger, MultiLogger, WandBLogger
from tipi.runid import new_run_id

# The logger a plain script opened; a pipeline's loggers are never kept here.
_active: BaseLoggerManager | None = None

# WandBLogger's own arguments among `init`'s **options; the others go to wandb.init.
_WANDB_LOGGER_OPTIONS = ("run_name", "job_type", "init_options")


def init(
    project: str = "tipi",
    backend: str = "auto",
    log_dir: str | Path = "logs",
    *,
    entity: str | None = None,
    name: str | None = None,
    group: str | None = None,
    tags: Sequence[str] | None = None,
    notes: str | None = None,
    config: Mapping[str, Any] | None = None,
    dir: str | Path | None = None,  # wandb.init's name for it
    mode: str | None = None,
    **options: Any,
) -> BaseLoggerManager:
    """Start logging a run (its id: `logger.init(...).script_run.id`). Inside a pipeline this
    attaches to its loggers and ignores the arguments.

    Args:
        project: the W&B project; for files and TensorBoard, the folder under `log_dir`.
        backend: "auto" (W&B when installed, offline without an API key; else JSONL files),
            "wandb", "tensorboard" or "files".
        log_dir: where local files go (`dir` is W&B's name for it and wins).
        entity, name, group, tags, notes, mode: W&B's; the other backends ignore them.
        config: the run's config: W&B's config, the files' `hparams.json`, TensorBoard's
            hparams (secrets hidden in all three).
        options: more `wandb.init` arguments (`job_type`, `id`, `resume`...), W&B only.
    """
    global _active
    pipeline = _pipeline_logger()
    if pipeline is not None:
        return pipeline  # looked up on every call: the pipeline owns and closes it
    finish()
    run = RunInfo(new_run_id(), pipeline=project, step="", step_type="", params=config or {})
    wandb_only = {
        "entity": entity,
        "name": name,
        "group": group,
        "tags": list(tags) if tags is not None else None,
        "notes": notes,
        "mode": mode,
    }
    folder = Path(dir) if dir is not None else Path(log_dir)
    _active = _standalone(backend, folder, run, wandb_only, options)
    _active.use_run(run)
    _active.initialize()
    return _active


def log(metrics: Mapping[str, float], step: int | None = None, *, epoch: int | None = None) -> None:
    """Log scalar metrics; starts a default logger on first use if `init` was not called."""
    target = _pipeline_logger() or _active or init()
    target.log_metrics(metrics, step, epoch=epoch)


def finish() -> None:
    """Close the logger this script opened (a pipeline's loggers are closed by the pipeline)."""
    global _active
    if _active is not None:
        _active.finish()
    _active = None


def _pipeline_logger() -> BaseLoggerManager | None:
    run = context.current()
    if run is None:
        return None
    return run.find(MultiLogger) or run.find(BaseLoggerManager)


def _standalone(
    backend: str,
    log_dir: Path,
    run: RunInfo,
    wandb_only: dict[str, Any],
    options: dict[str, Any],
) -> BaseLoggerManager:
    if backend == "auto":
        if importlib.util.find_spec("wandb") is not None:
            backend = "wandb"
        else:
            target = log_dir / run.pipeline / run.id / "metrics.jsonl"
            sys.stderr.write(f"tipi: wandb is not installed; logging metrics to {target}\n")
            backend = "files"
    if backend == "wandb":
        given = {
            "run_name" if k == "name" else k: v for k, v in wandb_only.items() if v is not None
        }
        own = {k: options.pop(k) for k in _WANDB_LOGGER_OPTIONS if k in options}
        own["init_options"] = {**own.get("init_options", {}), **options}
        return WandBLogger(project=run.pipeline, log_dir=log_dir, **given, **own)
    if backend not in ("tensorboard", "files"):
        raise ValueError(f"backend must be auto, wandb, tensorboard or files, not {backend!r}")
    ignored = [k for k, v in wandb_only.items() if v is not None] + list(options)
    if ignored:
        sys.stderr.write(f"tipi: the {backend} logger ignores {', '.join(ignored)} (W&B's)\n")
    if backend == "tensorboard":
        from tipi.permanences.loggers import TensorBoardLogger

        return TensorBoardLogger(log_dir=log_dir)
    return BasicLogger(log_dir=log_dir)
