"""Train and evaluate; `python train.py` here runs both, `tipi make` runs them as steps."""

import os
from pathlib import Path

import torch
from models import Net, load_data  # the sibling models.py, imported the plain-script way
from torch import nn

from tipi.decorators import pipeline_process
from tipi.helpers import progress_bar

EPOCHS = int(os.environ.get("EPOCHS", "3"))


@pipeline_process(outputs={"model": "out/model.pt"})
def train_model(epochs: int = EPOCHS, lr: float = 0.01, model: Path = Path("out/model.pt")) -> None:
    torch.manual_seed(0)
    loader = torch.utils.data.DataLoader(load_data("train"), batch_size=64, shuffle=True)
    net = Net()
    optimizer = torch.optim.Adam(net.parameters(), lr=lr)
    for epoch in range(epochs):
        for images, labels in progress_bar(loader, desc=f"epoch {epoch}"):
            loss = nn.functional.cross_entropy(net(images), labels)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    model.parent.mkdir(parents=True, exist_ok=True)
    torch.save(net.state_dict(), model)


@pipeline_process(inputs={"model": "out/model.pt"}, outputs={"accuracy": "out/accuracy.txt"})
def evaluate_model(
    model: Path = Path("out/model.pt"), accuracy: Path = Path("out/accuracy.txt")
) -> float:
    net = Net()
    net.load_state_dict(torch.load(model))
    images, labels = load_data("test").tensors
    with torch.no_grad():
        correct = (net(images).argmax(dim=1) == labels).float().mean().item()
    accuracy.write_text(f"{correct:.3f}\n")
    return correct


if __name__ == "__main__":
    train_model()
    print(f"test accuracy: {evaluate_model():.3f}")
