"""Small real inputs for the analysis and deployment tests: digits splits and weights of the
zoo's MLP trained for a few dozen steps (a fraction of a second on a CPU)."""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING

from tipi.permanences.zoo import mlp
from tipi.processes.data import save_splits

if TYPE_CHECKING:
    import torch


@cache
def digits_tensors() -> tuple[torch.Tensor, torch.Tensor]:
    import torch
    from sklearn.datasets import load_digits

    digits = load_digits()
    images = torch.tensor(digits.images, dtype=torch.float32).unsqueeze(1) / 16.0
    return images, torch.tensor(digits.target, dtype=torch.int64)


def write_digits_splits(path: Path) -> Path:
    """The digits in train/val/test (70/15/15, seed 0), as PrepareDigits writes them."""
    import torch

    images, labels = digits_tensors()
    order = torch.randperm(len(labels), generator=torch.Generator().manual_seed(0))
    n_train, n_val = int(len(order) * 0.7), int(len(order) * 0.15)
    parts = {
        "train": order[:n_train],
        "val": order[n_train : n_train + n_val],
        "test": order[n_train + n_val :],
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    save_splits(path, {k: (images[i], labels[i]) for k, i in parts.items()})
    return path


def train_weights(path: Path, steps: int = 40, seed: int = 0) -> Path:
    """`mlp()` (Network model "mlp") trained for `steps` batches of 64 on the digits' first
    1200 images; a bare state dict."""
    import torch

    images, labels = digits_tensors()
    torch.manual_seed(seed)
    model = mlp()
    optimizer = torch.optim.Adam(model.parameters(), lr=0.01)
    generator = torch.Generator().manual_seed(seed)
    for _ in range(steps):
        batch = torch.randint(0, 1200, (64,), generator=generator)
        optimizer.zero_grad()
        torch.nn.functional.cross_entropy(model(images[batch]), labels[batch]).backward()
        optimizer.step()
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(model.eval().state_dict(), path)
    return path


EXPORT_PIPELINE = """
[permanences.device]
type = "Device"
[permanences.net]
type = "Network"
params = { model = "mlp" }

[processes.export]
type = "Export"
inputs = { model = "out/train/model.pt", data = "data/splits.pt" }
outputs = { onnx_int8 = "out/x/export/model.int8.onnx" }
params = { quantize = "dynamic", graph_optimization_level = "extended" }
"""


@cache
def exported_digits() -> Path:
    """A project (made once per test process, read only) whose Export step wrote the ONNX,
    fp16, dynamic int8 and TorchScript models of digits weights: the exporter takes seconds."""
    import atexit
    import shutil
    import tempfile

    from tipi.engine import Engine

    root = Path(tempfile.mkdtemp(prefix="tipi-exported-"))
    atexit.register(shutil.rmtree, root, ignore_errors=True)
    (root / "pipelines/x").mkdir(parents=True)
    (root / "pipelines/x/pipeline.toml").write_text(EXPORT_PIPELINE)
    write_digits_splits(root / "data/splits.pt")
    train_weights(root / "out/train/model.pt", steps=80)
    Engine("x", root=root).make()
    return root
