"""Train: one training phase (per-group optimizers and schedulers, your loss or step hook,
accumulation, precision, EMA, callbacks, a transition rule), resumable mid-epoch after a
crash, writing weights with the pipeline's metadata."""

from __future__ import annotations

import random
import tempfile
import time
from pathlib import Path
from typing import Any, Literal

from tipi.errors import TipiError
from tipi.process import PipelineProcess
from tipi.processes.callbacks import Callback
from tipi.processes.training.settings import (
    check_numbers,
    groups_of,
    init_map_of,
    named,
    named_list,
    param_error,
    precision_of,
    until_rule,
)
from tipi.processes.training.step import TrainingModule

__all__ = ["Callback", "GateNotPassed", "Train", "TrainingModule"]

RESUME_FILE = "resume.pt"
DEFAULT_OUTPUTS = {"ema": "ema.pt", "top_k": "top_k"}


class GateNotPassed(TipiError):
    """A phase with `until.mode = "gate"` (or `required = true`) reached its epoch cap (or
    early stopping) without crossing its threshold: the phase fails (exit 1) and no later
    phase starts from it."""

    exit_code = 1


class Train(PipelineProcess):
    """Trains the Network permanence `model` for one phase.

    A multi-phase run is several Train steps: phase B's `init` input is phase A's `model`
    output, so changing phase B reruns phase B only. Each phase trains the parameters its
    `optimizers` entries name (each group its own optimizer and scheduler; the rest frozen,
    and frozen modules kept in eval mode), or everything but `freeze` with the single
    `optimizer`/`lr`, and ends after `epochs`, when the `until` rule fires, or by early
    stopping. docs/training.md describes every param.

    Inputs: `data` (splits written by a prepare step; else the Data permanence `data`),
    optional `init` (weights to start from). Outputs: `model` (last weights), `best` (best
    by `monitor`), `history` (JSON, one row per epoch); declare `ema` (with `ema = 0.999`) and
    `top_k` (a folder, with `save_top_k` > 1) to get those. Weights files hold
    `{"state_dict", "metadata"}` (tipi.processes.training.checkpoints).

    Every `checkpoint_seconds` and, if set, every `checkpoint_every` batches (at the next
    optimizer step), everything a run depends on goes to the step's scratch folder; a killed
    run resumes from it and ends with the same weights as an uninterrupted run (on CPU).

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
        batch_size: int | None = None,
        lr: float = 1e-3,
        optimizer: dict[str, Any] | None = None,
        scheduler: dict[str, Any] | None = None,
        optimizers: list[dict[str, Any]] | None = None,
        freeze: list[str] | None = None,
        freeze_bn: bool = True,
        loss: str | dict[str, Any] = "cross_entropy",
        module: str | dict[str, Any] | None = None,
        input_key: str = "input",
        target_key: str = "target",
        metrics: list[str | dict[str, Any]] | None = None,
        accumulate: int = 1,
        precision: Literal["32", "16-mixed", "bf16-mixed"] | None = None,
        mixed_precision: bool = True,
        ema: float | None = None,
        save_top_k: int = 1,
        callbacks: list[str | dict[str, Any]] | None = None,
        until: dict[str, Any] | None = None,
        early_stopping: dict[str, Any] | None = None,
        monitor: str = "",
        grad_clip: float | None = None,
        deterministic: bool = False,
        checkpoint_every: int = 0,
        checkpoint_seconds: float = 30.0,
        seed: int = 0,
        phase: str = "",
        init_strict: bool = True,
        init_map: dict[str, str] | None = None,
        ema_warmup: bool = True,
        num_workers: int | None = None,
        persistent_workers: bool | None = None,
        pin_memory: bool | None = None,
        val_every_n_steps: int | None = None,
        log_every_n_steps: int | None = None,
    ) -> None:
        params = {k: v for k, v in locals().items() if k not in ("self", "controller", "force")}
        params.pop("__class__", None)
        super().__init__(controller, force)
        self.params = params
        self.model_name, self.device_name, self.data_name = model, device, data
        self.loggers_name, self.progress_name = loggers, progress
        self.epochs, self.batch_size, self.lr = epochs, batch_size, lr
        self.freeze, self.freeze_bn = list(freeze or []), freeze_bn
        self.input_key, self.target_key = input_key, target_key
        self.accumulate, self.mixed_precision, self.ema = accumulate, mixed_precision, ema
        self.save_top_k, self.monitor, self.grad_clip = save_top_k, monitor, grad_clip
        self.early_stopping = early_stopping
        self.deterministic = deterministic
        self.checkpoint_every, self.checkpoint_seconds = checkpoint_every, checkpoint_seconds
        self.seed, self.phase = seed, phase
        self._settled = False

    def bind_paths(self, *args: Any, **kwargs: Any) -> None:
        super().bind_paths(*args, **kwargs)
        self._settle()  # the step's name is known now: errors can name it

    def _settle(self) -> None:
        """Check the nested params and normalize them (ConfigError at the step and key)."""
        if self._settled:
            return
        name, p = getattr(self, "name", type(self).__name__), self.params
        check_numbers(name, p)
        self.groups = groups_of(name, p["optimizers"], p["optimizer"], p["scheduler"], p["lr"])
        self.loss_spec = named(name, "loss", p["loss"], default="cross_entropy")
        self.module_spec = named(name, "module", p["module"]) if p["module"] else None
        self.metric_specs = named_list(name, "metrics", p["metrics"])
        self.callback_specs = named_list(name, "callbacks", p["callbacks"])
        self.until_rule = until_rule(name, p["until"])
        self.init_map = init_map_of(name, p["init_map"])
        self.precision = precision_of(name, p["precision"])
        bound = "outputs" in vars(self)  # outside the engine nothing is written anyway
        for output, wanted in (("ema", bool(self.ema)), ("top_k", self.save_top_k > 1)):
            if wanted and bound and output not in self.outputs:
                key = "ema" if output == "ema" else "save_top_k"
                raise param_error(
                    name,
                    key,
                    f"writes the output '{output}', which this step does not declare",
                    f"add to [processes.{name}]: outputs = {{ {output} = "
                    f'"out/{{pipeline}}/{{name}}/{DEFAULT_OUTPUTS[output]}" }}',
                )
        self._settled = True

    def execute(self) -> None:
        from tipi.processes.data import distributed_rank
        from tipi.processes.training.numerics import deterministic

        self._settle()
        shard = distributed_rank()
        device = self.controller.get_permanence(self.device_name).device
        with deterministic(self.deterministic, device.type == "cuda"):
            self._train(device, shard)

    def _train(self, device: Any, shard: tuple[int, int] | None) -> None:
        from tipi.processes.training.build import build_loaders, build_parts
        from tipi.processes.training.loop import Trainer
        from tipi.processes.training.outputs import PhaseWriter

        _seed_everything(self.seed)
        network = self.controller.get_permanence(self.model_name)
        start = self._start_weights(network)
        model = network.model
        train_set, val_set, data = self._datasets()
        parts = build_parts(self, model, device, shard)
        on_cuda = device.type == "cuda"
        loaders = build_loaders(self, train_set, val_set, data, shard, on_cuda)
        network.optimizer = parts.optimizers[0]
        state: dict[str, Any] = {
            "epoch": 0,
            "batch": 0,
            "history": [],
            "frozen": parts.frozen,
            "global_step": int(start.get("global_step") or 0),
        }
        if "init" in start:
            state["init"] = start["init"]
        # The scratch folder is made (with its fsynced binding) only when a checkpoint goes in.
        scratch: Path | None = getattr(self, "_scratch_dir", None)
        resume = scratch / RESUME_FILE if scratch else None
        top_k_dir = (scratch or Path(tempfile.mkdtemp(prefix="tipi-top-k-"))) / "top_k"
        self.parts = parts
        writer = PhaseWriter(self, start)
        trainer = Trainer(self, parts, loaders, state, resume, writer.checkpoint, top_k_dir)
        writer.trainer = trainer
        self.trainer = trainer
        self._resume(trainer, resume, shard)
        if shard is not None and shard[0] == 0:
            self._notice_ddp(shard, device)
        try:
            trainer.fit()
        finally:
            loaders.close()
        network.trained_by = self.name
        self._check_gate(state)
        if shard is None or shard[0] == 0:
            writer.outputs(state, self._monitor(), parts.ema)

    def _start_weights(self, network: Any) -> dict[str, Any]:
        """Load `init` (returns its metadata, with under `"init"` what a non-strict or mapped
        load left out), or make sure the model is as built."""
        from tipi.permanences.network import (
            WeightsMismatch,
            describe_load,
            load_weights,
            read_checkpoint,
        )

        if "init" not in self.inputs:
            if getattr(network, "trained_by", None):
                network.reset()
            return {}
        weights, metadata = read_checkpoint(self.inputs["init"])
        strict = self.params["init_strict"]
        try:
            report = load_weights(network.model, weights, strict, self.init_map)
        except WeightsMismatch as error:
            raise param_error(
                self.name,
                "init_strict",
                f"the weights of {_shown(self.inputs['init'])} do not fit the model: "
                f"{describe_load(error.report)}",
                "set init_strict = false to load the keys that fit (the rest keep their "
                'built values), or init_map = { "old.prefix." = "new.prefix." } to rename',
            ) from None
        metadata = {k: v for k, v in metadata.items() if k != "init"}  # the init's own load
        if strict and not self.init_map:
            return metadata
        self.controller.notice(f"{self.name}: init loaded non-strictly: {describe_load(report)}")
        return {**metadata, "init": report}

    def _datasets(self) -> tuple[Any, Any, Any]:
        from tipi.processes.training.outputs import input_preprocessing

        if "data" in self.inputs:
            from tipi.processes.data import read_splits

            splits, recorded = read_splits(self.inputs["data"])
            self.preprocessing = input_preprocessing(splits["train"], recorded)
            return splits["train"], splits["val"], None
        data = self.controller.get_permanence(self.data_name)
        self.preprocessing = input_preprocessing(data.parts["train"], {})
        return data.parts["train"], data.parts["val"], data

    def _resume(self, trainer: Any, resume: Path | None, shard: tuple[int, int] | None) -> None:
        from tipi.processes.training.checkpoints import load_resume, restore_rng

        if resume is None or not resume.exists():
            return
        saved = load_resume(resume)
        primary = shard is None or shard[0] == 0
        if saved is None:
            if primary:
                self.controller.notice(
                    f"{self.name}: the resume checkpoint is of another layout; starting over"
                )
            return
        trainer.restore(saved)
        note = restore_rng(saved)  # last: nothing built after it may draw
        if primary:
            at = time.strftime("%H:%M", time.localtime(resume.stat().st_mtime))
            state = trainer.state
            self.controller.notice(
                f"resuming {self.name} at epoch {state['epoch'] + 1}, batch "
                f"{state['batch']} (checkpoint of {at})"
            )
            if note:
                self.controller.notice(f"{self.name}: {note}; the GPUs draw anew")

    def _notice_ddp(self, shard: tuple[int, int], device: Any) -> None:
        import torch.distributed as dist

        per_rank = self.trainer.loaders.batch_size
        self.controller.notice(
            f"{self.name}: DistributedDataParallel over {shard[1]} ranks "
            f"({dist.get_backend()}, {device}), batch_size {per_rank} per rank"
        )

    def _check_gate(self, state: dict[str, Any]) -> None:
        from tipi.processes.training.build import transition
        from tipi.processes.training.outputs import epochs_text

        gate = transition(self.parts)
        if gate is None or not gate.rule.must_cross or gate.reached:
            return
        rule, label = gate.rule, self.phase or self.name
        best = (
            "no value" if gate.best is None else f"best {gate.best:.4f} at epoch {gate.best_epoch}"
        )
        how = state.get("stopped_by") or f"the cap of {epochs_text(self.epochs)}"
        raise GateNotPassed(
            f"phase '{label}' did not pass its gate: {rule.metric} never went {rule.side} in "
            f"{epochs_text(state['epoch'])} ({best}; ended by {how})",
            hint="raise epochs or change until, then make again; later phases did not start",
        )

    def _monitor(self) -> str:
        from tipi.processes.training.build import model_checkpoint

        return model_checkpoint(self.parts).monitor


def _shown(path: Path) -> str:
    """`path` relative to the working directory (the project) where it lies inside it."""
    try:
        return Path(path).resolve().relative_to(Path.cwd().resolve()).as_posix()
    except ValueError:
        return str(path)


def _seed_everything(seed: int) -> None:
    import numpy
    import torch

    torch.manual_seed(seed)
    random.seed(seed)
    numpy.random.seed(seed % 2**32)
