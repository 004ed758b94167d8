"""Level 3: + device choice (the GPU with the most free memory, or the CPU)."""

import os

import torch
from sklearn.datasets import load_digits
from torch import nn

from tipi.helpers import device_manager, logger, progress_bar

EPOCHS = int(os.environ.get("EPOCHS", "3"))


def load_data() -> torch.utils.data.TensorDataset:
    digits = load_digits()  # ships with scikit-learn: no download
    images = torch.tensor(digits.images, dtype=torch.float32).unsqueeze(1) / 16.0
    return torch.utils.data.TensorDataset(images, torch.tensor(digits.target))


def train_model(epochs: int = EPOCHS, lr: float = 0.01, batch_size: int = 64) -> float:
    torch.manual_seed(0)
    device = device_manager.get_device()
    loader = torch.utils.data.DataLoader(load_data(), batch_size=batch_size, shuffle=True)
    model = nn.Sequential(nn.Flatten(), nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 10)).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    for epoch in range(epochs):
        for images, labels in progress_bar(loader, desc=f"epoch {epoch}"):
            images, labels = images.to(device), labels.to(device)
            loss = nn.functional.cross_entropy(model(images), labels)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        logger.log({"loss": loss.item()}, step=epoch)
    return loss.item()


if __name__ == "__main__":
    logger.init(project="progressive")
    train_model()
    logger.finish()
