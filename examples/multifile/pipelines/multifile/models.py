"""The network and the data of train.py, in a file of their own."""

import torch
from sklearn.datasets import load_digits
from torch import nn

TEST_SIZE = 297  # the last digits are held out


class Net(nn.Module):
    def __init__(self, hidden: int = 64) -> None:
        super().__init__()
        self.layers = nn.Sequential(
            nn.Flatten(), nn.Linear(64, hidden), nn.ReLU(), nn.Linear(hidden, 10)
        )

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.layers(images)


def load_data(split: str) -> torch.utils.data.TensorDataset:
    digits = load_digits()  # ships with scikit-learn: no download
    images = torch.tensor(digits.images, dtype=torch.float32).unsqueeze(1) / 16.0
    labels = torch.tensor(digits.target)
    part = slice(None, -TEST_SIZE) if split == "train" else slice(-TEST_SIZE, None)
    return torch.utils.data.TensorDataset(images[part], labels[part])
