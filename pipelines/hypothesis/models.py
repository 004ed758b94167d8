"""The hypothesis model: a small digits CNN whose second block is normalized, then modulated
by an optional conditioning branch (SPADE-style: scale and shift predicted per pixel from a
conditioning map, here the input image itself). With the branch off, the model has no branch
at all (its weights have no `spade.shared`, `spade.gamma`, `spade.beta`: loading them into the
model with the branch takes `init_strict = false`); switching it on adds what the branch
predicts, starting from zero (its output convolutions are zero-initialized), so the model
with the branch starts from exactly the function of the weights without it."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn
from torch.nn import functional


class SpadeNorm(nn.Module):
    """Batch norm without its own affine; the conditioning map predicts scale and shift."""

    def __init__(
        self, channels: int, branch: bool = True, cond_channels: int = 1, hidden: int = 16
    ) -> None:
        super().__init__()
        self.norm = nn.BatchNorm2d(channels, affine=False)
        if not branch:  # off: plain normalization, no branch weights at all
            return
        self.shared = nn.Sequential(nn.Conv2d(cond_channels, hidden, 3, padding=1), nn.ReLU())
        self.gamma = nn.Conv2d(hidden, channels, 3, padding=1)
        self.beta = nn.Conv2d(hidden, channels, 3, padding=1)
        for head in (self.gamma, self.beta):  # switched on, the branch changes nothing yet
            nn.init.zeros_(head.weight)
            nn.init.zeros_(head.bias)

    def forward(self, x: torch.Tensor, cond: torch.Tensor | None) -> torch.Tensor:
        h = self.norm(x)
        if cond is None or not hasattr(self, "shared"):
            return h
        c = self.shared(functional.interpolate(cond, size=h.shape[-2:], mode="nearest"))
        return h * (1 + self.gamma(c)) + self.beta(c)


class ConditionedCNN(nn.Module):
    """`features` (conv, BN, ReLU, conv) → `spade` (the switchable branch) → `classifier`."""

    def __init__(self, width: int, num_classes: int, branch: bool) -> None:
        super().__init__()
        self.branch = branch
        self.features = nn.Sequential(
            nn.Conv2d(1, width, 3, padding=1),
            nn.BatchNorm2d(width),
            nn.ReLU(),
            nn.Conv2d(width, 2 * width, 3, padding=1),
        )
        self.spade = SpadeNorm(2 * width, branch)
        self.classifier = nn.Sequential(
            nn.ReLU(), nn.AdaptiveAvgPool2d(2), nn.Flatten(), nn.Linear(8 * width, num_classes)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.spade(self.features(x), x if self.branch else None)
        return self.classifier(h)


def conditioned_cnn(width: int = 16, num_classes: int = 10, branch: bool = False) -> Any:
    """The factory the Network permanences name: `model = "models:conditioned_cnn"`."""
    return ConditionedCNN(width, num_classes, branch)
