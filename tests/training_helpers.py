"""Shared pieces of the Train tests: one CPU thread (fast and stable on shared runners), tiny
pipelines on the synthetic dataset, and a stand-in for the loop callbacks see."""

from __future__ import annotations

import pytest

TINY = """
[permanences.device]
type = "Device"

[permanences.net]
type = "Network"
params = {{ model = "{model}", params = {model_params} }}

[permanences.data]
type = "Data"
params = {{ dataset = "synthetic_images", params = {{ n = {n} }}{data} }}

[processes.fit]
type = "Train"
{extra}
[processes.fit.params]
{params}
"""


def tiny(
    params: str,
    *,
    model: str = "small_cnn",
    model_params: str = "{ width = 4 }",
    n: int = 96,
    data: str = "",
    extra: str = "",
) -> str:
    """A pipeline `fit` training the `net` permanence on `data` (synthetic images)."""
    return TINY.format(
        model=model,
        model_params=model_params,
        n=n,
        data=f", {data}" if data else "",
        extra=extra,
        params=params,
    )


@pytest.fixture(autouse=True)
def one_thread(monkeypatch):
    """One intra-op thread here and in `tipi` subprocesses: on two shared cores more threads
    only wait on each other, and every run of a test computes in the same order."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    monkeypatch.setenv("CI", "1")  # plain progress lines, no live display
    yield
    torch.set_num_threads(before)


class FakeTrainer:
    """What a callback sees of Train's loop, for callbacks tested alone."""

    def __init__(self, model=None) -> None:
        self.state: dict = {}
        self.model = model
        self.reason = ""

    def stop(self, reason: str) -> None:
        self.reason = reason


# A pipeline-folder module (parts.py) with what the hook, batch and callback tests name.
PARTS = '''
import dataclasses
import json
import os

import numpy
import torch
from torch.nn import functional

from tipi.processes.training import Callback, TrainingModule


class Images(torch.utils.data.Dataset):
    """Images as dicts; `noise` adds numpy-drawn noise to each read (augmentation)."""

    def __init__(self, n, noise):
        self.x = torch.randn(n, 1, 8, 8, generator=torch.Generator().manual_seed(0))
        self.noise = noise

    def __len__(self):
        return len(self.x)

    def __getitem__(self, i):
        x = self.x[i]
        if self.noise:
            x = x + self.noise * torch.from_numpy(numpy.random.randn(1, 8, 8).astype("float32"))
        return {"image": x, "label": x.mean().reshape(1)}


def images(n: int = 64, noise: float = 0.0):
    return Images(n, noise)


@dataclasses.dataclass
class Batch:
    image: torch.Tensor
    label: torch.Tensor


def collate(samples):
    return Batch(torch.stack([s["image"] for s in samples]), torch.stack([s["label"] for s in samples]))


class Reconstruct(TrainingModule):
    """An autoencoder's step: the loss, and its MSE and a scaled copy as extra scalars."""

    def __init__(self, model, scale: float = 2.0):
        super().__init__(model)
        self.scale = scale

    def training_step(self, batch):
        loss = functional.mse_loss(self.model(batch["image"]), batch["image"].flatten(1))
        return {"loss": loss, "scaled": self.scale * loss.detach()}

    def validation_step(self, batch):
        out = self.model(batch["image"])
        return {"loss": functional.mse_loss(out, batch["image"].flatten(1)), "peak": out.abs().max()}


class Record(Callback):
    """Writes every hook call to hooks.jsonl; stops after `stop_at` batches of epoch 2."""

    def __init__(self, stop_at: int = 0):
        self.stop_at = stop_at

    def _write(self, *event):
        with open("hooks.jsonl", "a") as f:
            f.write(json.dumps(event) + "\\n")

    def on_train_start(self, trainer):
        self._write("train_start", trainer.epoch)

    def on_epoch_start(self, trainer, epoch):
        self._write("epoch_start", epoch)

    def on_batch_end(self, trainer, batch, loss):
        self._write("batch_end", batch)
        if self.stop_at and trainer.epoch == 1 and batch == self.stop_at:
            trainer.stop("Record stopped it")

    def on_validation_end(self, trainer, metrics):
        metrics["recorded"] = 1.0
        self._write("validation_end", sorted(metrics))

    def on_epoch_end(self, trainer, epoch, metrics):
        self._write("epoch_end", epoch)

    def on_train_end(self, trainer):
        self._write("train_end", trainer.global_step)


class CrashOnce(Callback):
    """Raises after batch `at` of epoch `epoch` while crash.flag exists (removing it first):
    a run dies mid-epoch, the next one resumes under the same fingerprint."""

    def __init__(self, epoch: int = 2, at: int = 3):
        self.epoch, self.at = epoch, at

    def on_batch_end(self, trainer, batch, loss):
        if trainer.epoch + 1 == self.epoch and batch == self.at and os.path.exists("crash.flag"):
            os.remove("crash.flag")
            raise RuntimeError("crashed on purpose")
'''
