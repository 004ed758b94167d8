"""TensorBoardLogger: event files, a folder per run and step, the hparams plugin filled."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tipi.context import RunInfo
from tipi.errors import ConfigError
from tipi.permanences.loggers.base import BaseLoggerManager, flatten, run_config, run_folder


class TensorBoardLogger(BaseLoggerManager):
    """Real TensorBoard event files (torch.utils.tensorboard). Needs the `tensorboard` extra.

    Each step of a run writes to `log_dir/<pipeline>/<run id>/<step>` (a script's:
    `log_dir/<project>/<run id>`), so runs never merge into one series. When the step ends,
    the hparams plugin gets its params and permanence configs (secrets hidden, nested keys
    dotted: `permanences.net.params.hidden`) and, as its metrics, every scalar it logged
    (the plugin shows their last values).

    Args:
        log_dir: the folder that holds the runs' folders.
    """

    def __init__(self, log_dir: Path = Path("logs/tensorboard")) -> None:
        super().__init__()
        self.log_dir = Path(log_dir)
        self.folder: Path | None = None  # the current step's
        self._writer: Any = None
        self._writer_class: Any = None

    def initialize(self) -> None:
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError as exc:
            raise ConfigError(
                f"TensorBoardLogger needs tensorboard: {exc}",
                hint="pip install 'tipi[tensorboard]'",
            ) from exc
        self._writer_class = SummaryWriter

    def _begin(self, run: RunInfo) -> None:
        self.folder = run_folder(self.log_dir, run, with_step=True)
        self._writer = self._writer_class(log_dir=str(self.folder))

    def _end(self, run: RunInfo) -> None:
        if self._writer is None:
            return
        from torch.utils.tensorboard.summary import hparams

        config = flatten({**run_config(run), **self.hparams})
        values = {
            k: v for k, v in ((k, _hparam_value(v)) for k, v in config.items()) if v is not None
        }
        writer = self._writer._get_file_writer()
        for summary in hparams(values, dict(self.final_metrics)):
            writer.add_summary(summary, self._last_step)
        self._writer.close()
        self._writer = None

    def _log_metrics(self, metrics: dict[str, float], step: int) -> None:
        for name, value in metrics.items():
            self._writer.add_scalar(name, value, step)
        self._writer.flush()

    def _log_figure(self, name: str, figure: Any, step: int) -> None:
        self._writer.add_figure(name, figure, global_step=step)

    def _log_hparams(self, hparams: dict[str, Any], metrics: dict[str, float]) -> None:
        for name, value in metrics.items():  # the plugin reads final metrics from scalars
            self._writer.add_scalar(name, value, self._last_step)
        self._writer.flush()

    def _finish(self) -> None:
        if self._writer is not None:
            self._writer.close()


def _hparam_value(value: Any) -> bool | int | float | str | None:
    if value is None or isinstance(value, bool | int | float | str):
        return value
    return json.dumps(value, default=str)
