"""Data: a dataset split into train/val/test with a seed, and DataLoaders over each part
(worker processes, pinned memory on CUDA, a seeded order that resumes mid-epoch)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from tipi.errors import ConfigError
from tipi.permanence import Permanence
from tipi.permanences.factory import build
from tipi.permanences.folds import check_folds, class_labels, fold_indices, split_sizes
from tipi.permanences.sampling import EpochSampler, build_loader
from tipi.permanences.zoo import DATASETS


class Data(Permanence):
    """A dataset and its loaders.

    Args:
        dataset: a built-in name ("synthetic_images") or "package.module:factory" returning a
            torch Dataset.
        params: keyword arguments of the factory.
        split: fractions for train, val and test (they must add up to 1).
        seed: seeds the split and the training loader's shuffling.
        batch_size: loader batch size (Train uses it when its own `batch_size` is unset).
        num_workers: loader worker processes.
        persistent_workers: keep the workers alive from one epoch to the next.
        pin_memory: page-locked batches for faster copies to the GPU; None: on CUDA only.
        prefetch_factor: batches each worker loads ahead (None: torch's default).
        collate: a `module:function` that makes a batch of samples (None: torch's default).
        seed_samples: draw each sample with torch, `random` and numpy seeded from (epoch,
            index): random augmentation is then the same with any `num_workers` and after a
            resume; costs a reseed per sample.
        device: the Device permanence's name; pinned memory only when it is a CUDA device.
        folds: K for K-fold cross-validation (0: none). The test part stays the plain
            split's; the rest is cut into K stratified, seeded folds (tipi/permanences/folds.py).
        fold: which fold is `val` (0..K-1); the other folds are `train`.
    """

    @classmethod
    def code_refs(cls, params: Mapping[str, Any]) -> list[str]:
        """The dataset factory (a `module:function` path, or a built-in of the zoo) and the
        collate function."""
        spec = str(params.get("dataset", ""))
        refs = [spec if ":" in spec else f"tipi.permanences.zoo:{spec}"]
        collate = params.get("collate")
        return [*refs, str(collate)] if collate else refs

    def __init__(
        self,
        dataset: str,
        params: dict[str, Any] | None = None,
        split: list[float] | None = None,
        seed: int = 0,
        batch_size: int = 32,
        num_workers: int = 0,
        persistent_workers: bool = False,
        pin_memory: bool | None = None,
        prefetch_factor: int | None = None,
        collate: str | None = None,
        seed_samples: bool = False,
        device: str = "device",
        folds: int = 0,
        fold: int = 0,
    ) -> None:
        check_folds(folds, fold)
        self.folds, self.fold = folds, fold
        self.split = list(split or [0.8, 0.1, 0.1])
        if len(self.split) != 3 or abs(sum(self.split) - 1) > 1e-6 or min(self.split) < 0:
            raise ConfigError(f"split must be three fractions adding up to 1, not {self.split}")
        self.spec = dataset
        self.params = dict(params or {})
        self.seed = seed
        self.batch_size = batch_size
        if num_workers < 0:
            raise ConfigError(f"num_workers must be 0 or more, not {num_workers}")
        self.num_workers = num_workers
        self.persistent_workers = persistent_workers
        self.pin_memory = pin_memory
        self.prefetch_factor = prefetch_factor
        self.collate = collate
        self.seed_samples = seed_samples
        self.device_name = device
        self.dataset: Any = None
        self.parts: dict[str, Any] = {}

    def initialize(self) -> None:
        import torch
        from torch.utils.data import random_split

        self.dataset = build(self.spec, DATASETS, self.params, "dataset")
        if self.folds:
            self.parts = self._fold_parts()
            return
        sizes = split_sizes(len(self.dataset), self.split)
        generator = torch.Generator().manual_seed(self.seed)
        train, val, test = random_split(self.dataset, sizes, generator=generator)
        self.parts = {"train": train, "val": val, "test": test}

    def _fold_parts(self) -> dict[str, Any]:
        from torch.utils.data import Subset

        indices = fold_indices(
            class_labels(self.dataset), self.split, self.seed, self.folds, self.fold
        )
        return {part: Subset(self.dataset, chosen) for part, chosen in indices.items()}

    def validate(self) -> None:
        if len(self.parts["train"]) == 0:
            raise ConfigError(f"dataset '{self.spec}' left no training samples after the split")

    def loader(
        self,
        part: str,
        shuffle: bool | None = None,
        batch_size: int | None = None,
        sampler: EpochSampler | None = None,
        num_workers: int | None = None,
        persistent_workers: bool | None = None,
        pin_memory: bool | None = None,
    ) -> Any:
        """A DataLoader over "train", "val" or "test" with this permanence's settings
        (`num_workers`, `persistent_workers`, `pin_memory`: the caller's when given).

        Without `sampler`, the order is `EpochSampler(seed=self.seed)`'s: shuffled for
        train, unless `shuffle` says otherwise. Train passes its own sampler (its seed per
        epoch, and the sample to resume at).
        """
        if pin_memory is None:
            pin_memory = self._on_cuda() if self.pin_memory is None else self.pin_memory
        if part not in self.parts:
            raise KeyError(f"no data part '{part}' (parts: train, val, test)")
        dataset = self.parts[part]
        if sampler is None:
            shuffle = part == "train" if shuffle is None else shuffle
            sampler = EpochSampler(len(dataset), shuffle, self.seed, tag=self.seed_samples)
        return build_loader(
            dataset,
            batch_size or self.batch_size,
            sampler,
            num_workers=self.num_workers if num_workers is None else num_workers,
            persistent_workers=(
                self.persistent_workers if persistent_workers is None else persistent_workers
            ),
            pin_memory=pin_memory,
            collate_fn=self.collate_fn(),
            prefetch_factor=self.prefetch_factor,
        )

    def collate_fn(self) -> Any:
        """The `collate` function (None: torch's default)."""
        if not self.collate:
            return None
        module_name, _, attr = self.collate.partition(":")
        try:
            import importlib

            return getattr(importlib.import_module(module_name), attr)
        except (ImportError, AttributeError, ValueError) as exc:
            raise ConfigError(
                f"cannot load the collate function '{self.collate}': {exc}",
                hint="give it as 'package.module:function'",
            ) from exc

    @property
    def train_loader(self) -> Any:
        return self.loader("train")

    @property
    def val_loader(self) -> Any:
        return self.loader("val")

    @property
    def test_loader(self) -> Any:
        return self.loader("test")

    def get_state(self) -> dict[str, Any]:
        return {part: len(ds) for part, ds in self.parts.items()}

    def cleanup(self) -> None:
        self.dataset = None
        self.parts = {}

    def _on_cuda(self) -> bool:
        if not self.device_name or self.controller is None:
            return False
        device = self.controller.get_permanence(self.device_name)
        return bool(getattr(device, "is_cuda", False))
