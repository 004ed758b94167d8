"""The digits training under tipi vs the same training written as a plain PyTorch loop.

Two plain loops: the bare one (trains, validates, saves the final weights) and the equivalent
one, which also writes what Train writes (the best epoch's weights by validation accuracy as
`best.pt`, the per-epoch history, a metrics line and a progress line per epoch) and seeds
`random` and numpy too. The 3% target is held against the equivalent loop (the same job done
by hand); the figure against the bare loop is printed beside it (what those outputs cost
added to what tipi costs).

Two variants: the default (AdamW, a cosine schedule, 12 epochs of batch 64) and the same with
`accumulate = 2` and `ema = 0.999` (the plain loops accumulate and keep the EMA copy, and
validate it, exactly as Train does). Each variant runs tipi and the two loops in turns in one
process after one discarded warm-up turn (the order rotates and reverses from turn to turn), on
one CPU thread (all sides), and asserts after every turn that all ended with bit-identical
weights (`model.pt`, `ema.pt`, and `best.pt` against the equivalent loop's). It prints each
side's median and the median of the per-turn ratios (turns cancel the machine's drift during
the run) with a 95% bootstrap interval of that median, for the CPU time of this process
(`time.process_time`: what the work costs, the figure held to the target) and for wall time
(which, on a machine other jobs share, moves by tens of percent from run to run on its own),
and the ratio of each side's fastest run (its least disturbed one).

tipi's time is a whole `Engine.make(["train"], force=["train"])`: planning, permanences,
resume checkpoints every 30 s, per-epoch validation, logging to files, progress lines,
writing the weights with their metadata and the history, recording the run.

Usage:
    .venv/bin/python benchmarks/digits_overhead.py [--repeat 40] [--epochs 12] [--parts]
        [--loop WIDTH] [--variant default|"accumulate + EMA"|all]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import numpy
import torch
from torch.nn import functional
from torch.utils.data import DataLoader, TensorDataset

from tipi.engine import Engine
from tipi.permanences.network import read_weights
from tipi.permanences.zoo import small_cnn

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
params = {{ model = "small_cnn", params = {{ width = {width} }} }}
[processes.prepare]
type = "PrepareDigits"
[processes.train]
type = "Train"
inputs = {{ data = "data/bench/splits.pt" }}
{outputs}
[processes.train.params]
epochs = {epochs}
lr = 0.003
batch_size = {batch}
loggers = "files"
progress = "progress"
optimizer = {{ name = "AdamW", weight_decay = 0.0001 }}
scheduler = {{ name = "CosineAnnealingLR", T_max = {epochs} }}
{extra}
"""

VARIANTS = {
    "default": ("", "", 1, None),
    "accumulate + EMA": (
        'outputs = { ema = "out/bench/train/ema.pt" }',
        "accumulate = 2\nema = 0.999\nema_warmup = false",
        2,
        0.999,
    ),
}


def plain(
    splits_file: Path,
    epochs: int,
    accumulate: int,
    decay: float | None,
    out: Path,
    outputs: Path | None = None,
    width: int = 16,
    batch: int = 64,
) -> float:
    """The script a researcher would write: the same training, no tipi.

    With `outputs` (a folder), it also writes what Train writes: the best epoch's weights
    by validation accuracy (`best.pt`, kept in memory until the end), the per-epoch history
    (`history.json`), a metrics line per epoch (`metrics.jsonl`) and a progress line per epoch
    on stderr, and it seeds `random` and numpy as well as torch: the equivalent loop.
    """
    started = time.perf_counter()
    raw = torch.load(splits_file, weights_only=True)
    train_set, val_set = TensorDataset(*raw["train"]), TensorDataset(*raw["val"])
    torch.manual_seed(0)
    if outputs is not None:
        random.seed(0)
        numpy.random.seed(0)
    model = small_cnn(width=width)
    optimizer = torch.optim.AdamW(model.parameters(), lr=0.003, weight_decay=0.0001)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=epochs)
    ema = EmaCopy(model, decay) if decay else None
    history: list[dict[str, float]] = []
    best: tuple[float, dict[str, torch.Tensor]] | None = None
    log = open(outputs / "metrics.jsonl", "w") if outputs is not None else None  # noqa: SIM115
    for epoch in range(epochs):
        model.train()
        loader = DataLoader(
            train_set, batch, shuffle=True, generator=torch.Generator().manual_seed(epoch)
        )
        train_loss = 0.0
        for index, (x, y) in enumerate(loader, start=1):
            loss = functional.cross_entropy(model(x), y)
            (loss / accumulate if accumulate > 1 else loss).backward()
            if outputs is not None:
                train_loss += loss.item() * len(y)
            if index % accumulate == 0 or index == len(loader):
                optimizer.step()
                optimizer.zero_grad(set_to_none=True)
                if ema is not None:
                    ema.update()
        metrics = {"epoch": epoch + 1, "train_loss": train_loss / len(train_set)}
        for prefix, evaluated in (
            (("val_", model), ("ema_val_", ema.module)) if ema is not None else (("val_", model),)
        ):
            evaluated.eval()
            losses, accuracies, sizes = [], [], []
            with torch.no_grad():
                for x, y in DataLoader(val_set, 256):
                    scores = evaluated(x)
                    losses.append(functional.cross_entropy(scores, y))
                    accuracies.append((scores.argmax(1) == y).float().mean())
                    sizes.append(len(y))
            if outputs is not None:  # sample-weighted means, summed as Train sums them
                for name, values in (("loss", losses), ("accuracy", accuracies)):
                    as_floats = torch.stack(values).double().tolist()
                    total = sum(v * n for v, n in zip(as_floats, sizes, strict=True))
                    metrics[prefix + name] = total / sum(sizes)
        scheduler.step()
        if outputs is not None and log is not None:
            history.append(metrics)
            if best is None or metrics["val_accuracy"] > best[0]:
                weights = {k: v.detach().clone() for k, v in model.state_dict().items()}
                best = (metrics["val_accuracy"], weights)
            log.write(json.dumps(metrics) + "\n")
            log.flush()
            print(
                f"epoch {epoch + 1}/{epochs} val_accuracy {metrics['val_accuracy']:.3f}",
                file=sys.stderr,
            )
    torch.save(model.state_dict(), out)
    if ema is not None:
        torch.save(ema.module.state_dict(), out.with_suffix(".ema.pt"))
    if outputs is not None and log is not None and best is not None:
        log.close()
        torch.save(best[1], outputs / "best.pt")
        (outputs / "history.json").write_text(json.dumps({"history": history}, indent=2))
    return time.perf_counter() - started


class EmaCopy:
    """timm-style EMA: a copy of the model, lerped toward the weights after each step."""

    def __init__(self, model: torch.nn.Module, decay: float) -> None:
        import copy

        self.module = copy.deepcopy(model).eval()
        mine, theirs = dict(self.module.named_parameters()), dict(model.named_parameters())
        buffers, their_buffers = dict(self.module.named_buffers()), dict(model.named_buffers())
        floats = [n for n, b in their_buffers.items() if b.is_floating_point()]
        self.targets = [mine[n] for n in theirs] + [buffers[n] for n in floats]
        self.sources = list(theirs.values()) + [their_buffers[n] for n in floats]
        self.copies = [(buffers[n], b) for n, b in their_buffers.items() if n not in floats]
        self.weight = 1.0 - decay

    def update(self) -> None:
        with torch.no_grad():
            torch._foreach_lerp_(self.targets, self.sources, self.weight)
            for mine, theirs in self.copies:
                mine.copy_(theirs)


@contextlib.contextmanager
def quiet_stderr() -> Iterator[None]:
    """tipi's progress lines go to /dev/null while timing (the figures stay readable)."""
    saved = os.dup(2)
    with open(os.devnull, "w") as devnull:
        os.dup2(devnull.fileno(), 2)
        try:
            yield
        finally:
            os.dup2(saved, 2)
            os.close(saved)


def same(a: Path, b: Path) -> None:
    mine, theirs = read_weights(a), read_weights(b)
    assert mine.keys() == theirs.keys(), "different state dict keys"
    for name in mine:
        assert torch.equal(mine[name], theirs[name]), f"weights differ: {name}"


SIDES = ("tipi", "bare", "equivalent")
CLOCKS = ("cpu", "wall")


def measure(root: Path, name: str, epochs: int, repeat: int) -> dict[str, list[float]]:
    """CPU and wall seconds of each tipi run and each run of the two plain loops (bare, and
    equivalent: writing what Train writes) of variant `name`."""
    outputs, extra, accumulate, decay = VARIANTS[name]
    text = PIPELINE.format(epochs=epochs, outputs=outputs, extra=extra, width=16, batch=64)
    (root / "pipelines/bench/pipeline.toml").write_text(text)
    splits, mine, theirs = root / "data/bench/splits.pt", root / "plain.pt", root / "equivalent"
    theirs.mkdir(exist_ok=True)
    runs: dict[str, list[float]] = {f"{side} {clock}": [] for side in SIDES for clock in CLOCKS}

    def run(side: str) -> tuple[float, float]:
        wall, cpu = time.perf_counter(), time.process_time()
        if side == "tipi":
            with quiet_stderr():
                Engine("bench", root=root).make(["train"], force=["train"], run_cache=False)
        elif side == "bare":
            plain(splits, epochs, accumulate, decay, mine)
        else:
            with quiet_stderr():
                plain(splits, epochs, accumulate, decay, theirs / "model.pt", outputs=theirs)
        return time.process_time() - cpu, time.perf_counter() - wall

    for turn in range(repeat + 1):  # the first turn warms up and is not counted
        # The order rotates, and reverses every other round of three: the run after another
        # finds the caches and the allocator warmed by it, which would favour one side.
        order = SIDES[turn % 3 :] + SIDES[: turn % 3]
        timed = {side: run(side) for side in (order if (turn // 3) % 2 else order[::-1])}
        built = root / "out/bench/train"
        same(built / "model.pt", mine)
        same(built / "model.pt", theirs / "model.pt")
        same(built / "best.pt", theirs / "best.pt")
        if decay:
            same(built / "ema.pt", mine.with_suffix(".ema.pt"))
        if turn:
            for side, (cpu, wall) in timed.items():
                runs[f"{side} cpu"].append(cpu)
                runs[f"{side} wall"].append(wall)
    return runs


def parts(root: Path, turns: int, variant: str = "default") -> None:
    """What tipi adds, in parts measured where they stand out of the noise: the fixed cost of
    a make (one epoch of a width-1 model in batches of 512: three batches) and the cost per
    batch (the same epoch in batches of 4, less the fixed cost), each the median of the
    per-turn differences to the bare loop doing the same (`variant`: with accumulation and
    EMA, both sides accumulate and keep the EMA copy)."""
    splits = root / "data/bench/splits.pt"
    outputs, extra, accumulate, decay = VARIANTS[variant]
    figures = {}
    for batch in (512, 4):
        text = PIPELINE.format(epochs=1, outputs=outputs, extra=extra, width=1, batch=batch)
        (root / "pipelines/bench/pipeline.toml").write_text(text)
        differences = []
        for turn in range(turns + 1):
            order = ("tipi", "bare") if turn % 2 else ("bare", "tipi")
            cpu = {}
            for side in order:
                started = time.process_time()
                if side == "tipi":
                    with quiet_stderr():
                        Engine("bench", root=root).make(["train"], force=["train"], run_cache=False)
                else:
                    plain(splits, 1, accumulate, decay, root / "plain.pt", width=1, batch=batch)
                cpu[side] = time.process_time() - started
            if turn:
                differences.append(cpu["tipi"] - cpu["bare"])
        figures[batch] = (statistics.median(differences), *median_interval(differences))
    batches = -(-len(torch.load(splits, weights_only=True)["train"][0]) // 4)
    fixed, low, high = figures[512]
    print(f"{variant}:")
    print(
        f"fixed cost of a make: {1000 * fixed:.1f} ms CPU "
        f"(95% interval {1000 * low:.1f} to {1000 * high:.1f} ms; {turns} turns)"
    )
    per_batch = (figures[4][0] - fixed) / batches
    print(
        f"cost per batch: {1e6 * per_batch:.0f} us CPU "
        f"({batches} batches of 4, less the fixed cost)"
    )


def loop(turns: int, variant: str, width: int, batch: int) -> None:
    """Train's batch loop alone against the plain loop's, in this process, on 20 batches
    collated beforehand (no DataLoader, no make, no validation): each turn one epoch of each,
    in alternating order; the median per-batch difference of CPU time. On a trivial model
    (`width` 0: a linear layer and a BatchNorm) it is the loop's own Python; the weights and
    EMA weights are asserted bit-identical at the end."""
    import types

    from tipi.processes.training.loop import Loaders, Parts, Trainer
    from tipi.processes.training.metrics import TorchMetrics
    from tipi.processes.training.numerics import EMA, Precision
    from tipi.processes.training.step import SupervisedStep

    _, _, accumulate, decay = VARIANTS[variant]
    draw = torch.Generator().manual_seed(0)
    batches = [
        (
            torch.randn(batch, 1, 8, 8, generator=draw),
            torch.randint(0, 10, (batch,), generator=draw),
        )
        for _ in range(20)
    ]

    def built() -> tuple[torch.nn.Module, torch.optim.Optimizer]:
        torch.manual_seed(0)
        nn = torch.nn
        model = (
            nn.Sequential(nn.Flatten(), nn.Linear(64, 10), nn.BatchNorm1d(10))
            if width == 0
            else small_cnn(width=width)
        )
        return model, torch.optim.AdamW(model.parameters(), lr=0.003, weight_decay=0.0001)

    model, optimizer = built()
    cpu = torch.device("cpu")
    ema = EMA(model, decay) if decay else None
    trainer = Trainer(
        types.SimpleNamespace(
            name="bench",
            controller=types.SimpleNamespace(get_permanence=None),
            loggers_name=None,
            progress_name=None,
            accumulate=accumulate,
            seed=0,
            grad_clip=None,
            checkpoint_every=0,
            checkpoint_seconds=float("inf"),
            epochs=turns + 2,
        ),
        Parts(
            model,
            model,
            cpu,
            [optimizer],
            [None],
            [None],
            ["all"],
            list(model.parameters()),
            [],
            [],
            Precision("32", cpu),
            ema,
            SupervisedStep(model, functional.cross_entropy, "input", "target"),
            TorchMetrics("bench", []),
            [],
        ),
        Loaders(batches, types.SimpleNamespace(set_epoch=lambda *_: None), [], batch),
        {"epoch": 0, "global_step": 0, "batch": 0, "history": []},
        None,
        lambda *_: None,
        Path(tempfile.gettempdir()),
    )

    def tipi_epoch() -> None:
        trainer.state["batch"] = 0
        trainer._train_epoch(0)

    theirs, their_optimizer = built()
    their_ema = EmaCopy(theirs, decay) if decay else None

    def plain_epoch() -> None:  # the equivalent loop's batches (it reads each loss)
        theirs.train()
        train_loss = 0.0
        for index, (x, y) in enumerate(batches, start=1):
            loss = functional.cross_entropy(theirs(x), y)
            (loss / accumulate if accumulate > 1 else loss).backward()
            train_loss += loss.item() * len(y)
            if index % accumulate == 0 or index == len(batches):
                their_optimizer.step()
                their_optimizer.zero_grad(set_to_none=True)
                if their_ema is not None:
                    their_ema.update()

    times: dict[str, list[float]] = {"tipi": [], "plain": []}
    for turn in range(turns + 1):  # the first turn warms up and is not counted
        for side, epoch in (
            (("tipi", tipi_epoch), ("plain", plain_epoch))
            if turn % 2
            else (("plain", plain_epoch), ("tipi", tipi_epoch))
        ):
            started = time.process_time()
            epoch()
            if turn:
                times[side].append(time.process_time() - started)
    pairs = [(model, theirs)]
    if ema is not None and their_ema is not None:
        pairs.append((ema.module, their_ema.module))
    for mine, reference in pairs:
        expected = reference.state_dict()
        for name, value in mine.state_dict().items():
            assert torch.equal(value, expected[name]), f"weights differ: {name}"
    per_batch = [(a - b) / len(batches) for a, b in zip(times["tipi"], times["plain"], strict=True)]
    low, high = median_interval(per_batch)
    print(
        f"{variant}, width {width}, batches of {batch}: plain "
        f"{1e6 * statistics.median(times['plain']) / len(batches):.1f} us a batch, Train's loop "
        f"{1e6 * statistics.median(per_batch):+.1f} us (95% interval {1e6 * low:+.1f} to "
        f"{1e6 * high:+.1f} us; {turns} turns), weights bit-identical"
    )


def median_interval(values: list[float], rounds: int = 2000) -> tuple[float, float]:
    """A 95% bootstrap interval of the median of `values` (seeded: the same figures give the
    same interval): how far the paired median could move on a machine this noisy."""
    draw = random.Random(0)
    medians = sorted(statistics.median(draw.choices(values, k=len(values))) for _ in range(rounds))
    return medians[int(0.025 * rounds)], medians[int(0.975 * rounds) - 1]


def report(name: str, runs: dict[str, list[float]]) -> dict[str, float]:
    """Print the variant's figures; returns the paired CPU ratio against each plain loop."""
    print(
        f"{name}: model.pt bit-identical in all {len(runs['tipi cpu']) + 1} turns "
        "(and best.pt to the equivalent loop's)"
    )
    ratios = {}
    for clock in CLOCKS:
        for side, label in (
            ("bare", "bare PyTorch loop"),
            ("equivalent", "equivalent loop"),
            ("tipi", "tipi make train"),
        ):
            values = runs[f"{side} {clock}"]
            shown = ", ".join(f"{t:.2f}" for t in values)
            print(f"  {clock:<4} {label:<18}: {statistics.median(values):.3f} s  (runs: {shown})")
        for side in ("equivalent", "bare"):
            tipi_runs, plain_runs = runs[f"tipi {clock}"], runs[f"{side} {clock}"]
            pairs = [t / p for t, p in zip(tipi_runs, plain_runs, strict=True)]
            paired = statistics.median(pairs)
            low, high = median_interval(pairs)
            if clock == "cpu":
                ratios[side] = paired
            verdict = (
                ""
                if clock == "wall"
                else ("  within the 3% target" if paired <= 1.03 else "  OVER the 3% target")
            )
            fastest = min(tipi_runs) / min(plain_runs)  # each side's least disturbed run
            print(
                f"  {clock:<4} overhead vs {side:<10}: paired median {100 * (paired - 1):+.1f}% "
                f"(95% interval {100 * (low - 1):+.1f}% to {100 * (high - 1):+.1f}%), "
                f"fastest runs {100 * (fastest - 1):+.1f}%{verdict}"
            )
    return ratios


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--repeat", type=int, default=40)
    parser.add_argument("--epochs", type=int, default=12)
    parser.add_argument(
        "--parts", action="store_true", help="measure the fixed cost and the cost per batch instead"
    )
    parser.add_argument(
        "--loop",
        metavar="WIDTH",
        type=int,
        help="time Train's batch loop alone against the plain loop's (WIDTH 0: a trivial model)",
    )
    parser.add_argument(
        "--variant", choices=[*VARIANTS, "all"], default="all", help="the variant(s) to measure"
    )
    args = parser.parse_args()
    os.environ.setdefault("CI", "1")  # plain progress lines, no live display
    torch.set_num_threads(1)  # both sides; two shared cores only add noise with more
    names = list(VARIANTS) if args.variant == "all" else [args.variant]
    if args.loop is not None:
        for name in names:
            loop(args.repeat, name, args.loop, 4 if args.loop == 0 else 64)
        return
    root = Path(tempfile.mkdtemp(prefix="tipi-digits-bench-", dir=Path(__file__).parent))
    try:
        (root / "pipelines/bench").mkdir(parents=True)
        (root / "pipelines/bench/pipeline.toml").write_text(
            PIPELINE.format(epochs=args.epochs, outputs="", extra="", width=16, batch=64)
        )
        with quiet_stderr():
            Engine("bench", root=root).make(["prepare"])
        for name in names:
            if args.parts:
                parts(root, args.repeat, name)
            else:
                report(name, measure(root, name, args.epochs, args.repeat))
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
