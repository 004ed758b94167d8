"""Dataset splits as an artifact (tensors in one file) and deterministic loaders over them."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def save_splits(path: Path, splits: dict[str, tuple[Any, Any]]) -> None:
    """Write {"train": (x, y), "val": ..., "test": ...} tensors to `path`."""
    import torch

    torch.save({name: (x, y) for name, (x, y) in splits.items()}, path)


def load_splits(path: Path) -> dict[str, Any]:
    """TensorDatasets per part, from a file written by `save_splits` (tensors only)."""
    import torch
    from torch.utils.data import TensorDataset

    raw = torch.load(path, map_location="cpu", weights_only=True)
    return {name: TensorDataset(x, y) for name, (x, y) in raw.items()}


def make_loader(dataset: Any, batch_size: int, shuffle: bool, seed: int = 0) -> Any:
    """A single-process DataLoader whose order depends only on `seed` (resumable)."""
    import torch
    from torch.utils.data import DataLoader

    generator = torch.Generator().manual_seed(seed) if shuffle else None
    return DataLoader(dataset, batch_size=batch_size, shuffle=shuffle, generator=generator)
