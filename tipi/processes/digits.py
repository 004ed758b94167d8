"""PrepareDigits: scikit-learn's 8x8 handwritten digits (shipped with the package, no download)
split into train/val/test with a seed."""

from __future__ import annotations

from typing import Any

from tipi.errors import ConfigError
from tipi.permanences.folds import split_sizes
from tipi.process import PipelineProcess
from tipi.processes.data import save_splits

# How scikit-learn made the digits (32x32 bitmaps, the pixels of each 4x4 block counted:
# an area, "box", downscale) and how they are scaled here: what a picture of a digit needs
# to become this data (Predict on image files applies it).
DIGITS_PREPROCESSING = {
    "size": [8, 8],
    "channels": 1,
    "mean": [0.0],
    "std": [1.0],
    "resize": "box",
}


class PrepareDigits(PipelineProcess):
    """Writes `splits`: images as float tensors (N, 1, 8, 8) scaled to [0, 1], and labels."""

    outputs = {"splits": "data/{pipeline}/splits.pt"}

    def __init__(
        self, controller: Any, force: bool = False, split: list[float] | None = None, seed: int = 0
    ) -> None:
        super().__init__(controller, force)
        self.split = list(split or [0.7, 0.15, 0.15])
        if len(self.split) != 3 or abs(sum(self.split) - 1) > 1e-6:
            raise ConfigError(f"split must be three fractions adding up to 1, not {self.split}")
        self.seed = seed

    def execute(self) -> None:
        import torch

        from tipi.permanences.factory import require

        digits = require("sklearn.datasets", "examples", "PrepareDigits").load_digits()
        images = torch.tensor(digits.images, dtype=torch.float32).unsqueeze(1) / 16.0
        labels = torch.tensor(digits.target, dtype=torch.int64)
        order = torch.randperm(len(labels), generator=torch.Generator().manual_seed(self.seed))
        # the Data permanence's cut (its folds too): one seed, one test part for both
        n_train, n_val, _ = split_sizes(len(order), self.split)
        parts = {
            "train": order[:n_train],
            "val": order[n_train : n_train + n_val],
            "test": order[n_train + n_val :],
        }
        save_splits(
            self.outputs["splits"],
            {k: (images[i], labels[i]) for k, i in parts.items()},
            DIGITS_PREPROCESSING,
        )
