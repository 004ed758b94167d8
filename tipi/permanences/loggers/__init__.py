"""Experiment loggers behind one interface: files, TensorBoard, W&B, or several at once.

Every logger follows the run (`tipi.context.RunInfo`: one per make, or per `logger.init` in a
script) and the step: files get a folder per run, TensorBoard a folder per run and step, W&B
a run per step grouped by the tipi run. base.py holds what they share.
"""

from __future__ import annotations

from tipi.permanences.loggers.base import BaseLoggerManager, Metrics, redact, run_config
from tipi.permanences.loggers.files import BasicLogger, read_metrics
from tipi.permanences.loggers.multi import MultiLogger
from tipi.permanences.loggers.tboard import TensorBoardLogger
from tipi.permanences.loggers.wandb_run import (
    SWEEP_RUN_VARIABLE,
    WandBLogger,
    flat_parameters,
    nested_parameters,
    wandb_key_configured,
)

__all__ = [
    "SWEEP_RUN_VARIABLE",
    "BaseLoggerManager",
    "BasicLogger",
    "Metrics",
    "MultiLogger",
    "TensorBoardLogger",
    "WandBLogger",
    "flat_parameters",
    "nested_parameters",
    "read_metrics",
    "redact",
    "run_config",
    "wandb_key_configured",
]
