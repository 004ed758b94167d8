"""The digits training under tipi vs the same loop written as a plain PyTorch script.

Same data split, model, seed, optimizer, scheduler, epochs and batch size; measured in one
process, alternating tipi and plain runs after one discarded warm-up pair. It prints the ratio
of medians and the median of per-pair ratios (robust to the machine's drift during the run).
tipi's time is a whole `Engine.make(["train"], force=["train"])` (planning, permanences, resume
checkpoints every 30 s, per-epoch validation, logging to files, progress, writing the
artifacts); the plain script does the same training and validation and saves the final weights.

Usage:
    .venv/bin/python benchmarks/digits_overhead.py [--repeat 5] [--epochs 12]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import torch

from tipi.engine import Engine
from tipi.permanences.zoo import small_cnn
from tipi.processes.data import load_splits, make_loader

PIPELINE = """
[permanences.device]
type = "Device"
params = {{ device = "cpu" }}
[permanences.progress]
type = "ProgressManager"
[permanences.files]
type = "BasicLogger"
params = {{ log_dir = "logs" }}
[permanences.net]
type = "Network"
params = {{ model = "small_cnn", params = {{ width = 16 }} }}
[processes.prepare]
type = "PrepareDigits"
[processes.train]
type = "Train"
inputs = {{ data = "data/bench/splits.pt" }}
[processes.train.params]
epochs = {epochs}
lr = 0.003
batch_size = 64
loggers = "files"
progress = "progress"
optimizer = {{ name = "AdamW", weight_decay = 0.0001 }}
scheduler = {{ name = "CosineAnnealingLR", T_max = {epochs} }}
"""


def plain(splits_file: Path, epochs: int, out: Path) -> float:
    """The script a researcher would write: the same training, no tipi."""
    started = time.perf_counter()
    torch.manual_seed(0)
    splits = load_splits(splits_file)
    torch.manual_seed(0)
    model = small_cnn(width=16)
    optimizer = torch.optim.AdamW(model.parameters(), lr=0.003, weight_decay=0.0001)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=epochs)
    for epoch in range(epochs):
        model.train()
        for x, y in make_loader(splits["train"], 64, shuffle=True, seed=epoch):
            optimizer.zero_grad(set_to_none=True)
            loss = torch.nn.functional.cross_entropy(model(x), y)
            loss.backward()
            optimizer.step()
        model.eval()
        with torch.no_grad():
            for x, y in make_loader(splits["val"], 256, shuffle=False):
                torch.nn.functional.cross_entropy(model(x), y, reduction="sum")
        scheduler.step()
    torch.save(model.state_dict(), out)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--epochs", type=int, default=12)
    args = parser.parse_args()
    os.environ.setdefault("CI", "1")  # plain progress lines, no live display
    root = Path(tempfile.mkdtemp(prefix="tipi-digits-bench-", dir=Path(__file__).parent))
    try:
        (root / "pipelines/bench").mkdir(parents=True)
        (root / "pipelines/bench/pipeline.toml").write_text(PIPELINE.format(epochs=args.epochs))
        Engine("bench", root=root).make(["prepare"])
        splits = root / "data/bench/splits.pt"
        tipi_runs, plain_runs = [], []
        Engine("bench", root=root).make(["train"], force=["train"])  # warm-up pair, discarded:
        plain(splits, args.epochs, root / "plain.pt")  # first imports and plan building
        for _ in range(args.repeat):
            started = time.perf_counter()
            Engine("bench", root=root).make(["train"], force=["train"])
            tipi_runs.append(time.perf_counter() - started)
            plain_runs.append(plain(splits, args.epochs, root / "plain.pt"))
        tipi_s, plain_s = statistics.median(tipi_runs), statistics.median(plain_runs)
        shown = {
            name: ", ".join(f"{t:.2f}" for t in runs)
            for name, runs in (("plain", plain_runs), ("tipi", tipi_runs))
        }
        print(f"plain PyTorch loop : {plain_s:.3f} s  (runs: {shown['plain']})")
        print(f"tipi make train    : {tipi_s:.3f} s  (runs: {shown['tipi']})")
        paired = statistics.median(t / p for t, p in zip(tipi_runs, plain_runs, strict=True))
        print(f"overhead (medians) : {100 * (tipi_s / plain_s - 1):+.1f}%")
        note = "median of tipi/plain per pair; target: under 5%"
        print(f"overhead (paired)  : {100 * (paired - 1):+.1f}%  ({note})")
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
