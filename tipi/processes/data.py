"""Dataset splits as an artifact (tensors in one file) and deterministic loaders over them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

PREPROCESSING = "preprocessing"  # the splits file's key that is no part


def save_splits(
    path: Path, splits: dict[str, tuple[Any, Any]], preprocessing: dict[str, Any] | None = None
) -> None:
    """Write {"train": (x, y), "val": ..., "test": ...} tensors to `path`, with how the
    images were made from the raw data (`preprocessing`: size, channels, mean, std, resize),
    which Train records in its checkpoints and Predict applies to image files."""
    import torch

    payload: dict[str, Any] = {name: (x, y) for name, (x, y) in splits.items()}
    if preprocessing:
        payload[PREPROCESSING] = preprocessing
    torch.save(payload, path)


def read_splits(path: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """TensorDatasets per part and the recorded preprocessing ({} if none), from a file
    written by `save_splits` (tensors only)."""
    import torch
    from torch.utils.data import TensorDataset

    raw = torch.load(path, map_location="cpu", weights_only=True)
    preprocessing = raw.pop(PREPROCESSING, None)
    parts = {name: TensorDataset(x, y) for name, (x, y) in raw.items()}
    return parts, dict(preprocessing) if isinstance(preprocessing, dict) else {}


def load_splits(path: Path) -> dict[str, Any]:
    """TensorDatasets per part, from a file written by `save_splits` (tensors only)."""
    return read_splits(path)[0]


def make_loader(
    dataset: Any,
    batch_size: int,
    shuffle: bool,
    seed: int = 0,
    shard: tuple[int, int] | None = None,
) -> Any:
    """A single-process DataLoader whose order depends only on `seed` (resumable).

    `shard=(rank, world_size)` gives this rank its part of each epoch (DistributedSampler,
    seeded the same way, so resuming mid-epoch still replays the same order).
    """
    import torch
    from torch.utils.data import DataLoader

    if shard is not None:
        from torch.utils.data import DistributedSampler

        rank, world = shard
        sampler = DistributedSampler(
            dataset, num_replicas=world, rank=rank, shuffle=shuffle, seed=seed
        )
        return DataLoader(dataset, batch_size=batch_size, sampler=sampler)
    generator = torch.Generator().manual_seed(seed) if shuffle else None
    return DataLoader(dataset, batch_size=batch_size, shuffle=shuffle, generator=generator)


def distributed_rank() -> tuple[int, int] | None:
    """(rank, world size) when this process is one of several under torch.distributed."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
        return dist.get_rank(), dist.get_world_size()
    return None
