"""logger.init / log / finish: experiment logging for scripts; inside a pipeline it writes to
the pipeline's logger permanences."""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from tipi import context
from tipi.permanences.loggers import BaseLoggerManager, BasicLogger, MultiLogger, WandBLogger

# The logger a plain script opened; a pipeline's loggers are never kept here.
_active: BaseLoggerManager | None = None


def init(
    project: str = "tipi", backend: str = "auto", log_dir: str | Path = "logs", **options: Any
) -> BaseLoggerManager:
    """Start logging. Inside a pipeline this attaches to its loggers and ignores the arguments.

    Args:
        project: the W&B project (or folder name under `log_dir` for files).
        backend: "auto" (W&B when installed, offline without an API key; else JSONL files),
            "wandb", "tensorboard" or "files".
        log_dir: where local files go.
    """
    global _active
    pipeline = _pipeline_logger()
    if pipeline is not None:
        return pipeline  # looked up on every call: the pipeline owns and closes it
    finish()
    _active = _standalone(project, backend, Path(log_dir), options)
    _active.initialize()
    return _active


def log(metrics: Mapping[str, float], step: int | None = None) -> None:
    """Log scalar metrics; starts a default logger on first use if `init` was not called."""
    target = _pipeline_logger() or _active or init()
    target.log_metrics(metrics, step)


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
    project: str, backend: str, log_dir: Path, options: dict[str, Any]
) -> BaseLoggerManager:
    if backend == "auto":
        if importlib.util.find_spec("wandb") is not None:
            backend = "wandb"
        else:
            target = log_dir / project / "metrics.jsonl"
            sys.stderr.write(f"tipi: wandb is not installed; logging metrics to {target}\n")
            backend = "files"
    if backend == "wandb":
        return WandBLogger(project=project, log_dir=log_dir, **options)
    if backend == "tensorboard":
        from tipi.permanences.loggers import TensorBoardLogger

        return TensorBoardLogger(log_dir=log_dir / project)
    if backend == "files":
        return BasicLogger(log_dir=log_dir / project)
    raise ValueError(f"backend must be auto, wandb, tensorboard or files, not {backend!r}")
