"""Loader order that depends only on a seed: an epoch's order from any sample on (resume
skips batches without reading them), the same with or without worker processes, and per-sample
random seeds for datasets that augment."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any


def epoch_order(
    size: int, shuffle: bool, seed: int, shard: tuple[int, int] | None = None
) -> list[int]:
    """The sample order of one epoch.

    Shuffled, it is the order `DataLoader(shuffle=True, generator=Generator().manual_seed(seed))`
    gives (its first draw seeds the workers; the permutation comes after it), so a plain loop
    written that way sees the same batches. `shard=(rank, world)` keeps this rank's part, as
    DistributedSampler does (padded with the first samples to a multiple of `world`).
    """
    import torch

    if shuffle:
        generator = torch.Generator().manual_seed(seed)
        torch.empty((), dtype=torch.int64).random_(generator=generator)
        order = torch.randperm(size, generator=generator).tolist()
    else:
        order = list(range(size))
    if shard is not None:
        rank, world = shard
        total = -(-size // world) * world
        order += order[: total - size]
        order = order[rank:total:world]
    return order


class EpochSampler:
    """A torch Sampler over `size` samples whose order is `epoch_order(seed)`, starting at
    sample `start`: `set_epoch(seed, start)` before each pass.

    `generator` (give it to the DataLoader) is reseeded with the same seed, so worker
    processes get the same seeds in every run of an epoch, resumed or not. With `tag`, it
    yields `(seed, index)` for `SeededSamples`.
    """

    def __init__(
        self,
        size: int,
        shuffle: bool = True,
        seed: int = 0,
        shard: tuple[int, int] | None = None,
        tag: bool = False,
    ) -> None:
        import torch

        self.size, self.shuffle, self.shard, self.tag = size, shuffle, shard, tag
        self.generator = torch.Generator()
        self.seed, self.start = seed, 0
        self.set_epoch(seed)

    def set_epoch(self, seed: int, start: int = 0) -> None:
        self.seed, self.start = seed, start
        self.generator.manual_seed(seed)

    def __len__(self) -> int:
        per_rank = self.size if self.shard is None else -(-self.size // self.shard[1])
        return max(per_rank - self.start, 0)

    def __iter__(self) -> Iterator[Any]:
        order = epoch_order(self.size, self.shuffle, self.seed, self.shard)[self.start :]
        if self.tag:
            return iter([(self.seed, i) for i in order])
        return iter(order)


class SeededSamples:
    """A dataset whose item `(seed, index)` is `dataset[index]` drawn with torch, `random`
    and numpy seeded from (seed, index): random augmentation then depends on the epoch and
    the sample only, never on which worker loads it or whether the run was resumed.

    In the main process (no workers) the global generators are put back afterwards.
    """

    def __init__(self, dataset: Any) -> None:
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, key: Any) -> Any:
        import random

        import numpy
        import torch
        from torch.utils.data import get_worker_info

        seed, index = key
        mixed = (seed * 1_000_003 + index * 7_919 + 12_345) % 2**32
        if get_worker_info() is not None:  # a worker process: its generators are its own
            _seed_all(mixed, torch, random, numpy)
            return self.dataset[index]
        saved = (torch.get_rng_state(), random.getstate(), numpy.random.get_state())
        try:
            _seed_all(mixed, torch, random, numpy)
            return self.dataset[index]
        finally:
            torch.set_rng_state(saved[0])
            random.setstate(saved[1])
            numpy.random.set_state(saved[2])


def _seed_all(seed: int, torch: Any, random: Any, numpy: Any) -> None:
    torch.manual_seed(seed)
    random.seed(seed)
    numpy.random.seed(seed)


def build_loader(
    dataset: Any,
    batch_size: int,
    sampler: EpochSampler | None = None,
    *,
    num_workers: int = 0,
    persistent_workers: bool = False,
    pin_memory: bool = False,
    collate_fn: Any = None,
    prefetch_factor: int | None = None,
) -> Any:
    """A DataLoader over `dataset` in `sampler`'s order (the dataset's own order without
    one); with a tagging sampler the dataset is wrapped in SeededSamples."""
    from torch.utils.data import DataLoader

    if sampler is not None and sampler.tag:
        dataset = SeededSamples(dataset)
    extra: dict[str, Any] = {}
    if num_workers > 0:
        extra["persistent_workers"] = persistent_workers
        if prefetch_factor is not None:
            extra["prefetch_factor"] = prefetch_factor
    return DataLoader(
        dataset,
        batch_size=batch_size,
        sampler=sampler,
        num_workers=num_workers,
        pin_memory=pin_memory,
        collate_fn=collate_fn,
        generator=sampler.generator if sampler is not None else None,
        **extra,
    )
