"""Training callbacks: early stopping, best/last checkpoints, and the phase transition rule."""

from __future__ import annotations

import math
from typing import Any

from tipi.errors import ConfigError


def _mode_of(metric: str, mode: str | None) -> str:
    if mode is not None:
        if mode not in ("min", "max"):
            raise ConfigError(f"mode must be min or max, not {mode!r}")
        return mode
    return "min" if "loss" in metric else "max"


def better(value: float, best: float | None, mode: str) -> bool:
    if best is None or math.isnan(best):
        return True
    return value < best if mode == "min" else value > best


class Callback:
    """Hooks called by Train; `state` is the training state dict (kept in resume checkpoints)."""

    def on_epoch_end(self, epoch: int, metrics: dict[str, float], state: dict[str, Any]) -> bool:
        """Return True to stop training after this epoch."""
        return False


class EarlyStopping(Callback):
    """Stop when `metric` has not improved for `patience` epochs."""

    def __init__(
        self,
        metric: str = "val_loss",
        patience: int = 3,
        mode: str | None = None,
        min_delta: float = 0.0,
    ):
        self.metric, self.patience, self.min_delta = metric, patience, min_delta
        self.mode = _mode_of(metric, mode)

    def on_epoch_end(self, epoch: int, metrics: dict[str, float], state: dict[str, Any]) -> bool:
        value = _metric(metrics, self.metric)
        best = state.get("es_best")
        improved = best is None or (
            value < best - self.min_delta if self.mode == "min" else value > best + self.min_delta
        )
        if improved:
            state["es_best"], state["es_bad"] = value, 0
        else:
            state["es_bad"] = state.get("es_bad", 0) + 1
        if state["es_bad"] >= self.patience:
            state["stopped_by"] = (
                f"early stopping: {self.metric} did not improve for {self.patience} epochs"
            )
            return True
        return False


class ModelCheckpoint(Callback):
    """Keeps the best weights by `metric` (the last ones are the model at the end)."""

    def __init__(self, metric: str = "val_accuracy", mode: str | None = None) -> None:
        self.metric = metric
        self.mode = _mode_of(metric, mode)

    def on_epoch_end(self, epoch: int, metrics: dict[str, float], state: dict[str, Any]) -> bool:
        value = _metric(metrics, self.metric)
        if better(value, state.get("best_score"), self.mode):
            state["best_score"] = value
            state["best_epoch"] = epoch
            state["best_weights"] = {
                k: v.detach().clone() for k, v in state["model"].state_dict().items()
            }
        return False


class Transition(Callback):
    """The phase transition rule: stop once `metric` crosses a threshold (epochs cap the rest).

    `{"metric": "val_accuracy", "above": 0.9}` or `{"metric": "val_loss", "below": 0.2}`.
    """

    def __init__(self, metric: str, above: float | None = None, below: float | None = None) -> None:
        if (above is None) == (below is None):
            raise ConfigError("a transition rule needs exactly one of `above` or `below`")
        self.metric, self.above, self.below = metric, above, below

    def on_epoch_end(self, epoch: int, metrics: dict[str, float], state: dict[str, Any]) -> bool:
        value = _metric(metrics, self.metric)
        crossed = value > self.above if self.above is not None else value < self.below  # type: ignore[operator]
        if crossed:
            side = f"above {self.above}" if self.above is not None else f"below {self.below}"
            state["stopped_by"] = f"transition: {self.metric} {value:.4f} is {side}"
        return crossed


def _metric(metrics: dict[str, float], name: str) -> float:
    try:
        return metrics[name]
    except KeyError:
        raise ConfigError(f"no metric '{name}' to watch (metrics: {', '.join(metrics)})") from None
