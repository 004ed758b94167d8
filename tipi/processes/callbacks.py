"""Training callbacks: the hooks Train calls, the built-ins (EarlyStopping, ModelCheckpoint,
LearningRateMonitor, the phase Transition) and user classes named by `module:Class`."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from tipi.errors import ConfigError
from tipi.processes.training.settings import Named, UntilRule, param_error
from tipi.suggest import did_you_mean


def _mode_of(metric: str, mode: str | None) -> str:
    if mode is not None:
        if mode not in ("min", "max"):
            raise ConfigError(f"mode must be min or max, not {mode!r}")
        return mode
    return "min" if "loss" in metric else "max"


def better(value: float, best: float | None, mode: str) -> bool:
    if math.isnan(value):
        return False
    if best is None or math.isnan(best):
        return True
    return value < best if mode == "min" else value > best


class Callback:
    """Hooks Train calls, in this order: `on_train_start`, then per epoch `on_epoch_start`,
    `on_batch_end` after each batch, `on_validation_end`, `on_epoch_end`; `on_train_end` last.

    `trainer` is Train's loop: `trainer.model`, `trainer.optimizers`, `trainer.schedulers`,
    `trainer.epoch` (0-based), `trainer.global_step` (optimizer steps, across phases),
    `trainer.state` (saved in resume checkpoints), `trainer.metrics` (the last epoch's),
    `trainer.loggers` (or None), `trainer.step_name`, and `trainer.stop(reason)`.

    A callback that keeps counters across epochs returns them from `state_dict()` (plain
    numbers, strings, lists, dicts, tensors): they go into the resume checkpoint and come
    back through `load_state_dict()`, so a resumed run decides as an uninterrupted one.
    """

    def on_train_start(self, trainer: Any) -> None:
        """Before the first epoch (also when resuming)."""

    def on_epoch_start(self, trainer: Any, epoch: int) -> None:
        """Before epoch `epoch` (1-based) trains."""

    def on_batch_end(self, trainer: Any, batch: int, loss: Any) -> None:
        """After batch `batch` (1-based within the epoch); `loss` is a detached tensor."""

    def on_validation_end(self, trainer: Any, metrics: dict[str, float]) -> None:
        """After validation; `metrics` may still be added to (they are logged after)."""

    def on_epoch_end(self, trainer: Any, epoch: int, metrics: dict[str, float]) -> bool | None:
        """After epoch `epoch` (1-based); return True to stop training after it."""
        return None

    def on_train_end(self, trainer: Any) -> None:
        """After the last epoch, before the outputs are written."""

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Take back what `state_dict` returned."""


class EarlyStopping(Callback):
    """Stop when `metric` has not improved by `min_delta` for `patience` epochs."""

    def __init__(
        self,
        metric: str = "val_loss",
        patience: int = 3,
        mode: str | None = None,
        min_delta: float = 0.0,
    ):
        self.metric, self.patience, self.min_delta = metric, patience, min_delta
        self.mode = _mode_of(metric, mode)
        self.best: float | None = None
        self.bad = 0

    def on_epoch_end(self, trainer: Any, epoch: int, metrics: dict[str, float]) -> bool:
        value = metric_value(metrics, self.metric)
        delta = self.min_delta if self.mode == "max" else -self.min_delta
        if self.best is None or better(value, self.best + delta, self.mode):
            self.best, self.bad = value, 0
        else:
            self.bad += 1
        if self.bad >= self.patience:
            trainer.stop(
                f"early stopping: {self.metric} did not improve for {self.patience} epochs"
            )
            return True
        return False

    def state_dict(self) -> dict[str, Any]:
        return {"best": self.best, "bad": self.bad}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.best, self.bad = state["best"], state["bad"]


class ModelCheckpoint(Callback):
    """Keeps the best weights by `monitor` (Train writes them as `best.pt`) and, with
    `save_top_k` > 1, the k best as files (the `top_k` output).

    `monitor = ""` watches val_accuracy when there is one, else val_loss.
    """

    def __init__(self, monitor: str = "", mode: str | None = None, save_top_k: int = 1) -> None:
        if save_top_k < 1:
            raise ConfigError(f"save_top_k must be at least 1, not {save_top_k}")
        self.monitor, self.given_mode, self.save_top_k = monitor, mode, save_top_k

    def resolve(self, metrics: dict[str, float]) -> str:
        if not self.monitor:
            self.monitor = "val_accuracy" if "val_accuracy" in metrics else "val_loss"
        return self.monitor

    @property
    def mode(self) -> str:
        return _mode_of(self.monitor, self.given_mode)

    def on_epoch_end(self, trainer: Any, epoch: int, metrics: dict[str, float]) -> bool:
        value = metric_value(metrics, self.resolve(metrics), "monitor")
        state = trainer.state
        if better(value, state.get("best_score"), self.mode):
            state["best_score"], state["best_epoch"] = value, epoch
            state["best_metrics"] = dict(metrics)
            state["best_weights"] = {
                k: v.detach().clone() for k, v in trainer.model.state_dict().items()
            }
        if self.save_top_k > 1:
            self._keep(trainer, epoch, value, metrics)
        return False

    def state_dict(self) -> dict[str, Any]:
        return {"monitor": self.monitor}  # as resolved by the first epoch

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.monitor = state["monitor"]

    def _keep(self, trainer: Any, epoch: int, value: float, metrics: dict[str, float]) -> None:
        kept: list[dict[str, Any]] = trainer.state.setdefault("top_k", [])
        worst = kept[-1]["score"] if len(kept) >= self.save_top_k else None
        if len(kept) >= self.save_top_k and not better(value, worst, self.mode):
            return
        name = f"epoch={epoch:03d}-{self.monitor}={value:.4f}.pt"
        trainer.write_checkpoint(Path(trainer.top_k_dir) / name, "top_k", metrics, epoch)
        kept.append({"epoch": epoch, "score": value, "file": name})
        kept.sort(key=lambda e: e["score"], reverse=self.mode == "max")
        del kept[self.save_top_k :]


class LearningRateMonitor(Callback):
    """Adds each optimizer group's learning rate to the epoch's metrics as `lr/<group>`
    (history and loggers); `lr` alone is always there (the first group's)."""

    def on_validation_end(self, trainer: Any, metrics: dict[str, float]) -> None:
        for label, optimizer in zip(trainer.group_labels, trainer.optimizers, strict=True):
            for index, group in enumerate(optimizer.param_groups):
                suffix = f".{index}" if len(optimizer.param_groups) > 1 else ""
                metrics[f"lr/{label}{suffix}"] = float(group["lr"])


class Transition(Callback):
    """The phase's `until` rule: `mode = "stop"` ends the phase once `metric` crosses
    `above`/`below` (epochs cap the rest); `mode = "gate"` records the first crossing and
    trains on to the cap; a gate, or a stop with `required`, fails the phase that never
    crossed (Train raises)."""

    def __init__(
        self,
        metric: str,
        above: float | None = None,
        below: float | None = None,
        mode: str = "stop",
        required: bool = False,
    ) -> None:
        if (above is None) == (below is None):
            raise ConfigError("a transition rule needs exactly one of `above` or `below`")
        self.rule = UntilRule(metric, above, below, mode, required)
        self.best: float | None = None
        self.best_epoch = 0
        self.reached = False

    def on_epoch_end(self, trainer: Any, epoch: int, metrics: dict[str, float]) -> bool:
        rule = self.rule
        value = metric_value(metrics, rule.metric, "until")
        if better(value, self.best, "max" if rule.above is not None else "min"):
            self.best, self.best_epoch = value, epoch
        if not rule.crossed(value):
            return False
        first = not self.reached
        self.reached = True
        if rule.stops:
            kind = "gate" if rule.required else "transition"
            trainer.stop(f"{kind}: {rule.metric} {value:.4f} is {rule.side}")
            return True
        if first:  # a gate trains its whole budget: say once that it has passed
            trainer.state["gate_passed"] = {"epoch": epoch, "value": value}
            notice = getattr(getattr(trainer, "step", None), "controller", None)
            shard = getattr(getattr(trainer, "parts", None), "shard", None)
            if notice is not None and (shard is None or shard[0] == 0):  # rank 0 says it
                notice.notice(
                    f"{trainer.step_name}: gate passed at epoch {epoch} ({rule.metric} "
                    f"{value:.4f} is {rule.side}); training on to the budget of "
                    f"{trainer.step.epochs} epochs"
                )
        return False

    def state_dict(self) -> dict[str, Any]:
        return {"best": self.best, "best_epoch": self.best_epoch, "reached": self.reached}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.best, self.best_epoch = state["best"], state["best_epoch"]
        self.reached = state["reached"]


BUILTINS: dict[str, type[Callback]] = {
    "EarlyStopping": EarlyStopping,
    "ModelCheckpoint": ModelCheckpoint,
    "LearningRateMonitor": LearningRateMonitor,
}


def build_callback(step: str, spec: Named) -> Callback:
    """A callback from its TOML entry: a built-in name or `module:Class`, with its options."""
    from tipi.processes.optim import load_attr

    if ":" in spec.name:
        try:
            cls = load_attr(spec.name, "callback")
        except ConfigError as error:
            raise param_error(step, spec.key, error.message, error.hint) from None
    elif spec.name in BUILTINS:
        cls = BUILTINS[spec.name]
    else:
        close = did_you_mean(spec.name, BUILTINS)
        raise param_error(
            step,
            spec.key,
            f"unknown callback '{spec.name}'",
            (f"{close} " if close else "")
            + f"built-in: {', '.join(BUILTINS)}; or give 'package.module:Class'",
        )
    try:
        made = cls(**spec.options)
    except (TypeError, ConfigError) as exc:
        raise param_error(
            step, spec.key, f"callback {spec.name} rejected {dict(spec.options)}: {exc}"
        ) from None
    missing = [hook for hook in HOOKS if not callable(getattr(made, hook, None))]
    if missing and not isinstance(made, Callback):
        for hook in missing:  # duck-typed classes need only the hooks they use
            setattr(made, hook, getattr(Callback(), hook))
    return made


HOOKS = (
    "on_train_start",
    "on_epoch_start",
    "on_batch_end",
    "on_validation_end",
    "on_epoch_end",
    "on_train_end",
    "state_dict",
    "load_state_dict",
)


def overrides(callback: Any, hook: str) -> bool:
    """True when `callback` does something in `hook` (the loop skips the others per batch)."""
    method = getattr(type(callback), hook, None)
    return method is not None and method is not getattr(Callback, hook)


def metric_value(metrics: dict[str, float], name: str, role: str = "metric") -> float:
    """metrics[name], or a ConfigError naming the metrics there are (Train adds the key)."""
    try:
        return metrics[name]
    except KeyError:
        close = did_you_mean(name, metrics)
        raise ConfigError(
            f"{role} '{name}' is not a metric of this step",
            hint=(f"{close} " if close else "") + f"metrics: {', '.join(metrics)}",
        ) from None
