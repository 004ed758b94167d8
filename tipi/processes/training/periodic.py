"""What Train does every N optimizer steps, within an epoch: `log_every_n_steps` logs the
batch's training loss, `val_every_n_steps` validates the model (and the EMA copy).

Each event is a row of `state["steps"]` (`history.json`'s `steps`: `step`, `epoch`, and
`train_loss_step` or the `*_step` validation metrics) and goes to the loggers at the global
step. The epoch's own validation still drives callbacks, schedulers, `until` and checkpoints.
"""

from __future__ import annotations

from typing import Any


class StepEvents:
    """The per-step logging and validation of one Trainer (None when neither is set)."""

    def __init__(self, log_every: int | None, val_every: int | None) -> None:
        self.log_every, self.val_every = log_every or 0, val_every or 0

    @classmethod
    def of(cls, step: Any) -> StepEvents | None:
        params = getattr(step, "params", {})
        log_every, val_every = params.get("log_every_n_steps"), params.get("val_every_n_steps")
        return cls(log_every, val_every) if log_every or val_every else None

    def after_step(self, trainer: Any, loss: Any) -> None:
        """Called after each optimizer step, with the last batch's loss."""
        step = trainer.global_step
        row: dict[str, Any] = {}
        if self.log_every and step % self.log_every == 0:
            row["train_loss_step"] = float(loss.detach())
        if self.val_every and step % self.val_every == 0:
            row.update(self._validate(trainer))
        if not row:
            return
        trainer.state.setdefault("steps", []).append(
            {"step": step, "epoch": trainer.epoch + 1, **row}
        )
        if trainer.loggers is not None:
            trainer.loggers.log_metrics(row, step=step)

    @staticmethod
    def _validate(trainer: Any) -> dict[str, float]:
        parts = trainer.parts
        metrics = trainer._validate(trainer.model, "val_")
        if parts.ema is not None:
            metrics.update(trainer._validate(parts.ema.module, "ema_val_"))
        trainer.model.train()  # back to training, as the epoch left it
        for module in parts.frozen_modules:
            module.eval()
        parts.hook.model = parts.forward
        return {f"{name}_step": value for name, value in metrics.items()}
