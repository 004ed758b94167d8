"""Train: one training phase, resumable mid-epoch after a crash, with callbacks and logging."""

from __future__ import annotations

import json
import random
import time
from pathlib import Path
from typing import Any

from tipi.atomic import atomic_path
from tipi.errors import ConfigError
from tipi.process import PipelineProcess
from tipi.processes.callbacks import Callback, EarlyStopping, ModelCheckpoint, Transition
from tipi.processes.data import distributed_rank, load_splits, make_loader
from tipi.processes.optim import apply_freeze, build_optimizer, build_scheduler

RESUME_FILE = "resume.pt"


class Train(PipelineProcess):
    """Trains the Network permanence `model` for one phase.

    A multi-phase run is several Train steps: phase B's `init` input is phase A's `model`
    output, so changing phase B reruns phase B only. Each phase freezes what matches `freeze`,
    builds its own optimizer and scheduler, and ends after `epochs` or when the `until` rule
    fires (whichever comes first), or by early stopping.

    Inputs: `data` (splits written by a prepare step; else the Data permanence `data`),
    optional `init` (weights to start from). Outputs: `model` (last weights), `best` (best
    weights by `monitor`), `history` (JSON, one row per epoch).

    Every `checkpoint_seconds` (checked after each batch and epoch) and, if set, every
    `checkpoint_every` batches, model, optimizer, scheduler, RNG states and position go to the
    step's scratch folder; a killed run resumes from the last one and ends with the same
    weights as an uninterrupted run (on CPU with a fixed seed).

    Under torch.distributed (the step declares `nproc = N`), the model is wrapped in
    DistributedDataParallel and each rank trains on its shard of every epoch (`batch_size`
    is per rank); rank 0 alone logs and draws progress, and its outputs are the step's.
    """

    announces_resume = True
    metrics_outputs = ("history",)  # runs record its numbers: best_score, final.val_loss...
    inputs = {}
    outputs = {
        "model": "out/{pipeline}/{name}/model.pt",
        "best": "out/{pipeline}/{name}/best.pt",
        "history": "out/{pipeline}/{name}/history.json",
    }

    def __init__(
        self,
        controller: Any,
        force: bool = False,
        model: str = "net",
        device: str = "device",
        data: str = "data",
        loggers: str = "",
        progress: str = "",
        epochs: int = 10,
        batch_size: int = 64,
        lr: float = 1e-3,
        optimizer: dict[str, Any] | None = None,
        scheduler: dict[str, Any] | None = None,
        freeze: list[str] | None = None,
        until: dict[str, Any] | None = None,
        early_stopping: dict[str, Any] | None = None,
        monitor: str = "val_accuracy",
        grad_clip: float | None = None,
        mixed_precision: bool = True,
        checkpoint_every: int = 0,
        checkpoint_seconds: float = 30.0,
        seed: int = 0,
    ) -> None:
        super().__init__(controller, force)
        if epochs < 1:
            raise ConfigError(f"epochs must be at least 1, not {epochs}")
        self.model_name, self.device_name, self.data_name = model, device, data
        self.loggers_name, self.progress_name = loggers, progress
        self.epochs, self.batch_size, self.lr = epochs, batch_size, lr
        self.optimizer_spec = optimizer or {"name": "Adam"}
        self.scheduler_spec = scheduler
        self.freeze = freeze or []
        self.grad_clip = grad_clip
        self.mixed_precision = mixed_precision
        self.checkpoint_every = checkpoint_every
        self.checkpoint_seconds = checkpoint_seconds
        self.seed = seed
        self.callbacks: list[Callback] = [ModelCheckpoint(monitor)]
        if early_stopping:
            self.callbacks.append(EarlyStopping(**early_stopping))
        if until:
            self.callbacks.append(Transition(**until))

    def execute(self) -> None:
        import torch

        torch.manual_seed(self.seed)
        random.seed(self.seed)
        get = self.controller.get_permanence
        network = get(self.model_name)
        device = get(self.device_name).device
        model = network.model
        if "init" in self.inputs:
            model.load_state_dict(
                torch.load(self.inputs["init"], map_location="cpu", weights_only=True)
            )
        frozen = apply_freeze(model, self.freeze)
        optimizer = build_optimizer(model.parameters(), self.optimizer_spec, self.lr)
        scheduler = build_scheduler(optimizer, self.scheduler_spec)
        network.optimizer = optimizer
        train_set, val_set = self._datasets()
        state: dict[str, Any] = {"epoch": 0, "batch": 0, "history": [], "frozen": frozen}
        resume = self.scratch_dir / RESUME_FILE if self.scratch_dir else None
        if resume is not None and resume.exists():
            state = self._restore(resume, model, optimizer, scheduler)
            rank = distributed_rank()
            if rank is None or rank[0] == 0:
                at = time.strftime("%H:%M", time.localtime(resume.stat().st_mtime))
                self.controller.notice(
                    f"resuming {self.name} at epoch {state['epoch'] + 1}, batch "
                    f"{state['batch']} (checkpoint of {at})"
                )
        state["model"] = model
        run = _Loop(self, model, optimizer, scheduler, device, resume)
        run.fit(train_set, val_set, state)
        self._write_outputs(model, state)

    def _datasets(self) -> tuple[Any, Any]:
        if "data" in self.inputs:
            splits = load_splits(self.inputs["data"])
            return splits["train"], splits["val"]
        data = self.controller.get_permanence(self.data_name)
        return data.parts["train"], data.parts["val"]

    def _restore(self, path: Path, model: Any, optimizer: Any, scheduler: Any) -> dict[str, Any]:
        import torch

        saved = torch.load(path, map_location="cpu", weights_only=True)
        model.load_state_dict(saved["model"])
        optimizer.load_state_dict(saved["optimizer"])
        if scheduler is not None and saved.get("scheduler") is not None:
            scheduler.load_state_dict(saved["scheduler"])
        torch.set_rng_state(saved["torch_rng"])
        random.setstate(_as_random_state(saved["python_rng"]))
        return saved["state"]

    def _write_outputs(self, model: Any, state: dict[str, Any]) -> None:
        import torch

        torch.save(model.state_dict(), self.outputs["model"])
        torch.save(state.get("best_weights") or model.state_dict(), self.outputs["best"])
        summary = {
            "epochs": state["epoch"],
            "stopped_by": state.get("stopped_by", f"{self.epochs} epochs"),
            "best_epoch": state.get("best_epoch"),
            "best_score": state.get("best_score"),
            "frozen": state.get("frozen", []),
            "final": state["history"][-1] if state["history"] else {},
            "history": state["history"],
        }
        self.outputs["history"].write_text(json.dumps(summary, indent=2))


class _Loop:
    """The epoch/batch loop of one Train step (kept apart so each piece stays small)."""

    def __init__(
        self,
        step: Train,
        model: Any,
        optimizer: Any,
        scheduler: Any,
        device: Any,
        resume: Path | None,
    ):
        import torch

        self.step, self.model, self.optimizer, self.scheduler = step, model, optimizer, scheduler
        self.device, self.resume = device, resume
        self.amp = step.mixed_precision and device.type == "cuda"
        self.last_save = time.monotonic()
        self.scaler = torch.amp.GradScaler("cuda") if self.amp else None
        self.shard = distributed_rank()
        self.forward = model
        if self.shard is not None:
            import torch.distributed as dist
            from torch.nn.parallel import DistributedDataParallel

            ids = [device.index] if device.type == "cuda" else None
            self.forward = DistributedDataParallel(model, device_ids=ids)
            if self.shard[0] == 0:
                step.controller.notice(
                    f"{step.name}: DistributedDataParallel over {self.shard[1]} ranks "
                    f"({dist.get_backend()}, {device}), batch_size {step.batch_size} per rank"
                )
        primary = self.shard is None or self.shard[0] == 0
        get = step.controller.get_permanence
        self.loggers = get(step.loggers_name) if step.loggers_name and primary else None
        self.progress = get(step.progress_name) if step.progress_name and primary else None

    def fit(self, train_set: Any, val_set: Any, state: dict[str, Any]) -> None:
        self.epochs_task = f"{self.step.name}: epochs"
        if self.progress is None:
            self._fit(train_set, val_set, state)
            return
        with self.progress.task(self.epochs_task, total=self.step.epochs):
            self.progress.update(self.epochs_task, completed=state["epoch"])
            self._fit(train_set, val_set, state)

    def _fit(self, train_set: Any, val_set: Any, state: dict[str, Any]) -> None:
        step = self.step
        for epoch in range(state["epoch"], step.epochs):
            loader = make_loader(
                train_set, step.batch_size, shuffle=True, seed=step.seed + epoch, shard=self.shard
            )
            train_loss = self._epoch(loader, epoch, state)
            metrics = {
                "train_loss": train_loss,
                **self._validate(val_set),
                "lr": self.optimizer.param_groups[0]["lr"],
            }
            self._schedule(metrics)
            state["history"].append({"epoch": epoch + 1, **metrics})
            state["epoch"], state["batch"] = epoch + 1, 0
            stop = any([cb.on_epoch_end(epoch + 1, metrics, state) for cb in step.callbacks])
            if self.loggers is not None:
                self.loggers.log_metrics(metrics, step=epoch + 1, epoch=epoch + 1)
            if self.progress is not None:
                status = f"val_acc {metrics['val_accuracy']:.3f} loss {metrics['val_loss']:.3f}"
                self.progress.update(self.epochs_task, completed=epoch + 1, status=status)
            if self._due():
                self._save(state)
            if stop:
                break

    def _epoch(self, loader: Any, epoch: int, state: dict[str, Any]) -> float:
        import torch

        self.model.train()
        total, count = state.get("epoch_loss", 0.0), state.get("epoch_count", 0)
        batches = iter(loader)
        for _ in range(state["batch"]):  # resuming mid-epoch: the same order, skipped
            next(batches)
        name = f"{self.step.name}: batches"
        left = len(loader) - state["batch"]
        tracked = (
            self.progress.track(batches, name, total=left, parent=self.epochs_task)
            if self.progress
            else batches
        )
        for x, y in tracked:
            x, y = x.to(self.device), y.to(self.device)
            self.optimizer.zero_grad(set_to_none=True)
            with torch.autocast(self.device.type, enabled=self.amp):
                loss = torch.nn.functional.cross_entropy(self.forward(x), y)
            self._backward(loss)
            total, count = total + loss.item() * len(y), count + len(y)
            state["batch"] += 1
            state["epoch_loss"], state["epoch_count"] = total, count
            every = self.step.checkpoint_every
            if (every and state["batch"] % every == 0) or self._due():
                self._save(state)
        state["epoch_loss"], state["epoch_count"] = 0.0, 0
        if self.shard is not None:  # the loss over every rank's shard
            import torch.distributed as dist

            sums = torch.tensor([total, float(count)])
            dist.all_reduce(sums)
            total, count = sums.tolist()
        return total / max(count, 1)

    def _backward(self, loss: Any) -> None:
        import torch

        if self.scaler is not None:
            self.scaler.scale(loss).backward()
            self.scaler.unscale_(self.optimizer)
        else:
            loss.backward()
        if self.step.grad_clip:
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.step.grad_clip)
        if self.scaler is not None:
            self.scaler.step(self.optimizer)
            self.scaler.update()
        else:
            self.optimizer.step()

    def _validate(self, val_set: Any) -> dict[str, float]:
        import torch

        self.model.eval()
        loss, correct, count = 0.0, 0, 0
        with torch.no_grad():
            for x, y in make_loader(val_set, 256, shuffle=False):
                x, y = x.to(self.device), y.to(self.device)
                logits = self.model(x)
                loss += torch.nn.functional.cross_entropy(logits, y, reduction="sum").item()
                correct += (logits.argmax(1) == y).sum().item()
                count += len(y)
        return {"val_loss": loss / max(count, 1), "val_accuracy": correct / max(count, 1)}

    def _schedule(self, metrics: dict[str, float]) -> None:
        from torch.optim.lr_scheduler import ReduceLROnPlateau

        if isinstance(self.scheduler, ReduceLROnPlateau):
            self.scheduler.step(metrics["val_loss"])
        elif self.scheduler is not None:
            self.scheduler.step()

    def _due(self) -> bool:
        return time.monotonic() - self.last_save >= self.step.checkpoint_seconds

    def _save(self, state: dict[str, Any]) -> None:
        import torch

        self.last_save = time.monotonic()
        if self.resume is None or (self.shard is not None and self.shard[0] != 0):
            return  # under torch.distributed every rank holds the same state: rank 0 keeps it
        kept = {k: v for k, v in state.items() if k != "model"}
        payload = {
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict() if self.scheduler is not None else None,
            "torch_rng": torch.get_rng_state(),
            "python_rng": random.getstate(),
            "state": kept,
        }
        with atomic_path(self.resume) as tmp:  # fsynced: a power cut keeps a whole checkpoint
            torch.save(payload, tmp)


def _as_random_state(saved: Any) -> tuple:
    version, internal, gauss = saved
    return (version, tuple(internal), gauss)
