"""A small zoo of models and datasets, built by name (torch is imported only when called)."""

from __future__ import annotations

from typing import Any


def mlp(in_features: int = 64, hidden: int = 64, num_classes: int = 10) -> Any:
    """A two-layer perceptron over flattened inputs."""
    from torch import nn

    return nn.Sequential(
        nn.Flatten(),
        nn.Linear(in_features, hidden),
        nn.ReLU(),
        nn.Linear(hidden, num_classes),
    )


def small_cnn(in_channels: int = 1, num_classes: int = 10, width: int = 16) -> Any:
    """A small CNN for 8x8 to 32x32 images: two conv blocks (`features`), then `classifier`."""
    from torch import nn

    class SmallCNN(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.features = nn.Sequential(
                nn.Conv2d(in_channels, width, 3, padding=1),
                nn.BatchNorm2d(width),
                nn.ReLU(),
                nn.Conv2d(width, 2 * width, 3, padding=1),
                nn.BatchNorm2d(2 * width),
                nn.ReLU(),
                nn.AdaptiveAvgPool2d(2),
            )
            self.classifier = nn.Sequential(nn.Flatten(), nn.Linear(8 * width, num_classes))

        def forward(self, x: Any) -> Any:
            return self.classifier(self.features(x))

    return SmallCNN()


def synthetic_images(
    n: int = 512, channels: int = 1, size: int = 8, num_classes: int = 10, seed: int = 0
) -> Any:
    """A learnable toy dataset: each class is a noisy fixed pattern (no download, no files)."""
    import torch
    from torch.utils.data import TensorDataset

    generator = torch.Generator().manual_seed(seed)
    patterns = torch.randn(num_classes, channels, size, size, generator=generator)
    labels = torch.randint(0, num_classes, (n,), generator=generator)
    images = patterns[labels] + 0.5 * torch.randn(n, channels, size, size, generator=generator)
    return TensorDataset(images, labels)


def digits() -> Any:
    """scikit-learn's 8x8 handwritten digits (1797 images, shipped with it: no download) as
    float images (N, 1, 8, 8) in [0, 1] and labels, as PrepareDigits prepares them."""
    import torch
    from torch.utils.data import TensorDataset

    from tipi.permanences.factory import require

    loaded = require("sklearn.datasets", "examples", "the digits dataset").load_digits()
    images = torch.tensor(loaded.images, dtype=torch.float32).unsqueeze(1) / 16.0
    return TensorDataset(images, torch.tensor(loaded.target, dtype=torch.int64))


MODELS = {"mlp": mlp, "small_cnn": small_cnn}
DATASETS = {"synthetic_images": synthetic_images, "digits": digits}
