"""MultiLogger: one logger permanence that forwards to several."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from tipi.errors import ConfigError
from tipi.permanences.loggers.base import BaseLoggerManager, Metrics


class MultiLogger(BaseLoggerManager):
    """Sends everything to several logger permanences, by name: `loggers = ["files", "tb"]`.

    Each of them follows the run and step and counts the global step itself.
    """

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

    def log_metrics(
        self, metrics: Metrics, step: int | None = None, *, epoch: int | None = None
    ) -> None:
        for logger in self.loggers:
            logger.log_metrics(metrics, step, epoch=epoch)

    def log_figure(self, name: str, figure: Any, step: int | None = None) -> None:
        for logger in self.loggers:
            logger.log_figure(name, figure, step)

    def log_hparams(self, hparams: Mapping[str, Any], metrics: Metrics | None = None) -> None:
        for logger in self.loggers:
            logger.log_hparams(hparams, metrics)

    def _log_metrics(self, metrics: dict[str, float], step: int) -> None:
        raise AssertionError("MultiLogger forwards log_metrics")  # pragma: no cover

    def _log_figure(self, name: str, figure: Any, step: int) -> None:
        raise AssertionError("MultiLogger forwards log_figure")  # pragma: no cover

    def _log_hparams(self, hparams: dict[str, Any], metrics: dict[str, float]) -> None:
        raise AssertionError("MultiLogger forwards log_hparams")  # pragma: no cover
