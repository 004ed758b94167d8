"""The epoch/batch loop of one Train step (what callbacks see as `trainer`): accumulation,
precision, EMA, per-step and per-epoch schedulers, validation, callbacks, logging, progress,
and resume checkpoints written only between optimizer steps."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tipi.errors import ConfigError
from tipi.processes.callbacks import Callback, metric_value, overrides
from tipi.processes.training.checkpoints import rng_states, save_resume
from tipi.processes.training.metrics import Means, TorchMetrics
from tipi.processes.training.numerics import EMA, Precision
from tipi.processes.training.periodic import StepEvents
from tipi.processes.training.ranks import Ranks
from tipi.processes.training.settings import SchedulerSpec, param_error
from tipi.processes.training.step import batch_size, to_device, training_result


@dataclass
class Parts:
    """Everything one phase trains with, built from the step's params (build.py)."""

    model: Any
    forward: Any  # the model, or its DistributedDataParallel wrapper
    device: Any
    optimizers: list[Any]
    schedulers: list[Any]
    scheduler_specs: list[SchedulerSpec | None]
    group_labels: list[str]
    params: list[Any]  # the trainable ones (gradient clipping)
    frozen: list[str]
    frozen_modules: list[Any]
    precision: Precision
    ema: EMA | None
    hook: Any
    val_metrics: TorchMetrics
    callbacks: list[Callback]
    shard: tuple[int, int] | None = None
    callback_keys: list[str] = field(default_factory=list)


@dataclass
class Loaders:
    """The train loader (its EpochSampler moves from epoch to epoch) and the val loader."""

    train: Any
    sampler: Any
    val: Any
    batch_size: int
    pinned: bool = False

    def close(self) -> None:
        """Stop persistent worker processes now (left to the garbage collector, they can
        hold the interpreter's exit for a minute)."""
        for loader in (self.train, self.val):
            iterator = getattr(loader, "_iterator", None)
            if iterator is not None and hasattr(iterator, "_shutdown_workers"):
                iterator._shutdown_workers()
            if hasattr(loader, "_iterator"):
                loader._iterator = None


class Trainer:
    """Runs one phase's epochs over `state` (the resumable part: epoch, batch, history...).

    Public attributes, for callbacks: `model`, `optimizers`, `schedulers`, `group_labels`,
    `epoch` (0-based), `global_step`, `state`, `metrics` (the last epoch's), `loggers`,
    `step_name`, `top_k_dir`, `write_checkpoint(path, kind, metrics, epoch)`, `stop(reason)`.
    """

    def __init__(
        self,
        step: Any,
        parts: Parts,
        loaders: Loaders,
        state: dict[str, Any],
        resume: Path | None,
        write_checkpoint: Callable[..., None],
        top_k_dir: Path,
    ) -> None:
        self.step, self.parts, self.loaders, self.state = step, parts, loaders, state
        self.step_name = step.name
        self.model, self.device = parts.model, parts.device
        self.optimizers, self.schedulers = parts.optimizers, parts.schedulers
        self.group_labels = parts.group_labels
        self.resume, self.write_checkpoint, self.top_k_dir = resume, write_checkpoint, top_k_dir
        self.epoch = state["epoch"]
        self.global_step = state["global_step"]
        self.metrics: dict[str, float] = {}
        self.should_stop = False
        primary = parts.shard is None or parts.shard[0] == 0
        get = step.controller.get_permanence
        self.loggers = get(step.loggers_name) if step.loggers_name and primary else None
        self.progress = get(step.progress_name) if step.progress_name and primary else None
        self.last_save = time.monotonic()
        self.ranks = Ranks(*parts.shard) if parts.shard is not None else None
        self.move = self.device.type != "cpu"
        self.batch_callbacks = [c for c in parts.callbacks if overrides(c, "on_batch_end")]
        self.step_events = StepEvents.of(step)
        self.stepped_per_batch = [  # indices: a callback may replace a scheduler
            i
            for i, spec in enumerate(parts.scheduler_specs)
            if spec is not None and spec.interval == "step"
        ]

    def stop(self, reason: str) -> None:
        """End training after this epoch; `reason` is the history's `stopped_by`."""
        self.should_stop = True
        self.state["stopped_by"] = reason

    def fit(self) -> None:
        self._call("on_train_start")
        self.epochs_task = f"{self.step_name}: epochs"
        if self.progress is None:
            self._epochs()
        else:
            with self.progress.task(self.epochs_task, total=self.step.epochs):
                self.progress.update(self.epochs_task, completed=self.state["epoch"])
                self._epochs()
        self._call("on_train_end")

    def _epochs(self) -> None:
        if self.state.get("stopped"):  # killed after the stopping epoch was checkpointed
            return
        for epoch in range(self.state["epoch"], self.step.epochs):
            self.epoch = epoch
            self._call("on_epoch_start", epoch + 1)
            metrics = self._train_epoch(epoch)
            metrics.update(self._validate(self.model, "val_"))
            if self.parts.ema is not None:
                metrics.update(self._validate(self.parts.ema.module, "ema_val_"))
            metrics["lr"] = float(self.optimizers[0].param_groups[0]["lr"])
            self._call("on_validation_end", metrics)
            self._schedule_epoch(metrics)
            self.state["history"].append({"epoch": epoch + 1, **metrics})
            self.state["epoch"], self.state["batch"] = epoch + 1, 0
            self.metrics = metrics
            stop = self._epoch_end(epoch + 1, metrics) or self.should_stop
            due = time.monotonic() - self.last_save >= self.step.checkpoint_seconds
            due, stop = self._agree(due, stop)
            self.state["stopped"] = stop
            if self.loggers is not None:
                self.loggers.log_metrics(metrics, step=epoch + 1, epoch=epoch + 1)
            if self.progress is not None:
                self.progress.update(self.epochs_task, completed=epoch + 1, status=_status(metrics))
            if stop or due:
                self.save()
            if stop:
                break

    def _train_epoch(self, epoch: int) -> dict[str, float]:
        parts, step = self.parts, self.step
        self.model.train()
        for module in parts.frozen_modules:
            module.eval()
        parts.hook.model = parts.forward
        start = self.state["batch"]
        self.loaders.sampler.set_epoch(step.seed + epoch, start * self.loaders.batch_size)
        means = Means(self.state.pop("epoch_means", None) if start else None)
        count = len(self.loaders.train)
        if self.progress is None:
            self._batches(start, start + count, means, None)
        else:
            name = f"{self.step_name}: batches"
            with self.progress.task(name, total=count, parent=self.epochs_task) as bar:
                self._batches(start, start + count, means, bar)
                bar.update(completed=self.state["batch"] - start)
        if parts.shard is not None:
            means.all_reduce()
        return means.result("train_")

    def _batches(self, start: int, total: int, means: Means, bar: Any) -> None:
        """Batches `start + 1` to `total` of the epoch (fewer if a callback stops it).

        What does not change within an epoch (the step function, precision, accumulation,
        the schedulers stepped per batch) is decided before the loop: on a small model the
        loop's own work is a measurable part of each batch.
        """
        parts, state = self.parts, self.state
        device, pinned, move = self.device, self.loaders.pinned, self.move
        accumulate, index, previous = self.step.accumulate, start, start
        ddp = parts.shard is not None and accumulate > 1
        training_step = self._training_step()
        backward = parts.precision.backward
        batch_callbacks = self.batch_callbacks
        unsynced = contextlib.nullcontext()  # reusable; DDP's no_sync() is made per batch
        agree = self._agree if self.ranks is not None else None
        checkpoint_due = self._checkpoint_due
        events = self.step_events
        shown = time.monotonic()
        for batch in self.loaders.train:
            if move:
                batch = to_device(batch, device, pinned)
            index += 1
            boundary = index % accumulate == 0 or index == total
            sync = unsynced if not ddp or boundary else parts.forward.no_sync()
            with sync:  # under DDP, gradients are synchronized on the batch that steps
                out = training_step(batch)
                if hasattr(out, "backward"):
                    loss = out
                    means.add_loss(loss, batch_size(batch))
                else:
                    out = training_result(out, "training_step")
                    loss = out["loss"]
                    means.add(out, batch_size(batch))
                backward(loss / accumulate if accumulate > 1 else loss)
            state["batch"] = index
            if boundary:
                self._optimizer_step()
                if events is not None:
                    events.after_step(self, loss)
            for callback in batch_callbacks:
                callback.on_batch_end(self, index, loss.detach())
            now = time.monotonic()
            if bar is not None and now - shown >= 0.25:  # a bar needs no more than 4 a second
                # the batch loss read only when shown: at most 4 syncs a second on a GPU
                bar.update(completed=index - start, status=f"loss {float(loss.detach()):.3f}")
                shown = now
            if not boundary:
                continue
            due, stop = checkpoint_due(previous, index, now), self.should_stop
            if agree is not None:
                due, stop = agree(due, stop)
            if due:
                self.save(means)
            previous = index
            if stop:
                break

    def _training_step(self) -> Callable[[Any], Any]:
        """The hook's training_step, under the step's autocast when it has one."""
        parts = self.parts
        step = parts.hook.training_step
        if parts.precision.dtype is None:
            return step

        def autocast_step(batch: Any) -> Any:
            with parts.precision.autocast():
                return step(batch)

        return autocast_step

    def _optimizer_step(self) -> None:
        parts = self.parts
        parts.precision.step(self.optimizers, self.step.grad_clip, parts.params)
        for optimizer in self.optimizers:
            optimizer.zero_grad(set_to_none=True)
        if parts.ema is not None:
            parts.ema.update()
        self.global_step += 1
        self.state["global_step"] = self.global_step
        for i in self.stepped_per_batch:
            scheduler = self.schedulers[i]
            if scheduler is not None:
                scheduler.step()

    def _validate(self, model: Any, prefix: str) -> dict[str, float]:
        import torch

        parts = self.parts
        model.eval()
        parts.hook.model = model
        means = Means()
        with torch.no_grad(), parts.precision.autocast():
            for batch in self.loaders.val:
                if self.move:
                    batch = to_device(batch, self.device, self.loaders.pinned)
                out = parts.hook.validation_step(batch)
                if out is None:
                    continue
                out = training_result(out, "validation_step")
                if parts.val_metrics:
                    parts.val_metrics.update(out)
                means.add(out, batch_size(batch))
        return {**means.result(prefix), **parts.val_metrics.compute(prefix)}

    def _schedule_epoch(self, metrics: dict[str, float]) -> None:
        from torch.optim.lr_scheduler import ReduceLROnPlateau

        for scheduler, spec in zip(self.schedulers, self.parts.scheduler_specs, strict=True):
            if scheduler is None or spec is None or spec.interval != "epoch":
                continue
            if isinstance(scheduler, ReduceLROnPlateau):
                try:
                    scheduler.step(metric_value(metrics, spec.monitor, "monitor"))
                except ConfigError as error:
                    raise param_error(
                        self.step_name, f"{spec.named.key}.monitor", error.message, error.hint
                    ) from None
            else:
                scheduler.step()

    def _epoch_end(self, epoch: int, metrics: dict[str, float]) -> bool:
        stop = False
        for callback, key in zip(self.parts.callbacks, self.parts.callback_keys, strict=True):
            try:
                stop = bool(callback.on_epoch_end(self, epoch, metrics)) or stop
            except ConfigError as error:  # a metric it watches is not there
                raise param_error(self.step_name, key, error.message, error.hint) from None
        return stop

    def _call(self, hook: str, *args: Any) -> None:
        for callback in self.parts.callbacks:
            if overrides(callback, hook):
                getattr(callback, hook)(self, *args)

    def _checkpoint_due(self, previous: int, index: int, now: float) -> bool:
        """Every `checkpoint_every` batches of an epoch (at the optimizer step that passes
        a multiple of it), and every `checkpoint_seconds`."""
        every = self.step.checkpoint_every
        if every and index // every > previous // every:
            return True
        return now - self.last_save >= self.step.checkpoint_seconds

    def _agree(self, *flags: bool) -> tuple[bool, ...]:
        """`flags` as every rank of a DDP step takes them (any rank's true is true for all):
        they checkpoint at the same optimizer step and stop at the same batch."""
        if self.ranks is None:
            return flags
        agreed = self.ranks.agree(*flags)
        if agreed[-1] and not flags[-1]:  # the stop flag is always the last one
            self.should_stop = True
            self.state.setdefault("stopped_by", "another rank stopped")
        return agreed

    def save(self, means: Means | None = None) -> None:
        """Write the resume checkpoint. Under DDP every rank calls it at the same optimizer
        step (`_agree`): the model, optimizers and the rest are the same on every rank, but
        each rank has summed the losses of its own shard and drawn from its own generators,
        so rank 0 gathers those (`ranks`, in rank order) and writes the one file."""
        self.last_save = time.monotonic()
        if self.resume is None:
            return
        if self.parts.ema is not None:
            self.state["ema_updates"] = self.parts.ema.updates
        state = dict(self.state)
        ranks = None
        if self.ranks is not None:
            mine = {"epoch_means": means.state() if means is not None else None, **rng_states()}
            ranks = self.ranks.gather(mine)
            if ranks is None:  # not rank 0
                return
        elif means is not None:
            state["epoch_means"] = means.state()
        parts = self.parts
        self.step.scratch_dir  # noqa: B018 - makes the folder and its binding on first use
        save_resume(
            self.resume,
            {
                "model": self.model.state_dict(),
                "optimizers": [o.state_dict() for o in self.optimizers],
                "schedulers": [s.state_dict() if s is not None else None for s in self.schedulers],
                "scaler": parts.precision.state_dict(),
                "ema": parts.ema.state_dict() if parts.ema is not None else None,
                "callbacks": [c.state_dict() for c in parts.callbacks],
                "state": state,
                "ranks": ranks,
            },
        )

    def restore(self, saved: dict[str, Any]) -> None:
        """Take back a resume checkpoint (its RNG states are put back by the caller, last)."""
        parts = self.parts
        self.model.load_state_dict(saved["model"])
        for optimizer, state in zip(self.optimizers, saved["optimizers"], strict=True):
            optimizer.load_state_dict(state)
        for scheduler, state in zip(self.schedulers, saved["schedulers"], strict=True):
            if scheduler is not None and state is not None:
                scheduler.load_state_dict(state)
        parts.precision.load_state_dict(saved.get("scaler"))
        if parts.ema is not None and saved.get("ema") is not None:
            parts.ema.load_state_dict(saved["ema"])
            parts.ema.updates = int(saved["state"].get("ema_updates", 0))
        for callback, state in zip(parts.callbacks, saved.get("callbacks", []), strict=False):
            if state:
                callback.load_state_dict(state)
        self.state.update(saved["state"])
        self.epoch, self.global_step = self.state["epoch"], self.state["global_step"]


def _status(metrics: dict[str, float]) -> str:
    shown = [("val_acc", "val_accuracy"), ("loss", "val_loss")]
    parts = [f"{label} {metrics[key]:.3f}" for label, key in shown if key in metrics]
    return " ".join(parts) or f"train_loss {metrics.get('train_loss', float('nan')):.3f}"
