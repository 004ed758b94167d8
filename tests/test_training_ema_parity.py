"""Train's accumulate + EMA path computes what a hand-written loop computes, bit for bit: the
EMA update (one `_foreach_lerp_` and one `_foreach_copy_`) against a per-tensor loop and the
formula (with warm-up, timm's `min(decay, (1 + n) / (10 + n))` at the n-th update; without,
`decay`), and the Trainer's batch loop (accumulation over an odd number of batches, a
per-step scheduler, EMA with and without warm-up) against the plain PyTorch loop
benchmarks/digits_overhead.py times."""

from __future__ import annotations

import types
from typing import Any

import pytest

from tests.training_helpers import one_thread  # noqa: F401 - one_thread is autouse
from tipi.processes.training.loop import Loaders, Parts, Trainer
from tipi.processes.training.metrics import TorchMetrics
from tipi.processes.training.numerics import EMA, Precision
from tipi.processes.training.step import SupervisedStep


def _model(seed: int = 0) -> Any:
    import torch
    from torch import nn

    torch.manual_seed(seed)
    model = nn.Sequential(
        nn.Conv2d(1, 4, 3, padding=1),
        nn.BatchNorm2d(4),
        nn.ReLU(),
        nn.Flatten(),
        nn.Linear(4 * 8 * 8, 10),
        nn.BatchNorm1d(10),
    )
    model[0].bias.requires_grad_(False)  # a frozen parameter is not averaged
    return model


def _batches(count: int, size: int = 8) -> list[tuple[Any, Any]]:
    import torch

    draw = torch.Generator().manual_seed(1)
    return [
        (torch.randn(size, 1, 8, 8, generator=draw), torch.randint(0, 10, (size,), generator=draw))
        for _ in range(count)
    ]


def _decay(n: int, decay: float, warmup: bool) -> float:
    """The decay of the n-th update (from 0), as timm's ModelEma warm-up computes it."""
    return min(decay, (1 + n) / (10 + n)) if warmup else decay


@pytest.mark.parametrize("warmup", [False, True])
def test_ema_update_is_the_per_tensor_update_bit_for_bit_and_the_formula(warmup):
    """The foreach kernels give bitwise the per-tensor `lerp_` / `copy_` of the previous
    implementation's loop, and the formula `ema + (1 - d) * (w - ema)` within float
    rounding, `d` the decay of that update (warm-up: 0.1, 0.18, 0.25, ... up to `decay`)."""
    import torch

    model = _model()
    ema = EMA(model, 0.9, warmup)
    reference = {k: v.clone() for k, v in ema.module.state_dict().items()}
    frozen_before = ema.module[0].bias.clone()
    optimizer = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.1)
    for n, (x, y) in enumerate(_batches(5)):
        weight = 1 - _decay(n, 0.9, warmup)
        torch.nn.functional.cross_entropy(model(x), y).backward()
        optimizer.step()
        optimizer.zero_grad()
        previous = {k: v.clone() for k, v in reference.items()}
        weights = model.state_dict()
        with torch.no_grad():
            for name, value in reference.items():
                if name == "0.bias":
                    continue
                if value.is_floating_point():
                    value.lerp_(weights[name], weight)
                else:
                    value.copy_(weights[name])
        ema.update()
        mine = ema.module.state_dict()
        for name, value in reference.items():
            assert torch.equal(mine[name], value), name
            if value.is_floating_point() and name != "0.bias":
                formula = previous[name] + weight * (weights[name] - previous[name])
                assert torch.allclose(mine[name], formula, rtol=1e-6, atol=1e-7), name
    assert torch.equal(ema.module[0].bias, frozen_before)
    assert int(ema.module[1].num_batches_tracked) == 5  # integer buffers copied
    assert not any(p.requires_grad for p in ema.module.parameters())
    assert ema.updates == 5


def test_ema_update_follows_weights_loaded_in_place():
    """The update reads the model's own tensors: weights a resume loads (`load_state_dict`
    copies in place) are what the next update averages toward."""
    import torch

    model = _model()
    ema = EMA(model, 0.5)
    model.load_state_dict({k: torch.ones_like(v) for k, v in model.state_dict().items()})
    before = ema.module[4].weight.clone()
    ema.update()
    assert torch.equal(ema.module[4].weight, before.lerp(torch.ones_like(before), 0.5))


@pytest.mark.parametrize(
    ("accumulate", "warmup"), [(1, False), (2, False), (3, False), (1, True), (3, True)]
)
def test_trainer_batches_match_a_plain_loop_bit_for_bit(accumulate, warmup):
    import torch
    from torch.nn import functional

    batches = _batches(7)  # 7 batches: the last accumulation is a short one when accumulate > 1

    def optimizer_and_scheduler(model: Any) -> tuple[Any, Any]:
        params = [p for p in model.parameters() if p.requires_grad]
        optimizer = torch.optim.AdamW(params, lr=0.003, weight_decay=0.0001)
        return optimizer, torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=50)

    mine = _model()
    optimizer, scheduler = optimizer_and_scheduler(mine)
    cpu = torch.device("cpu")
    parts = Parts(
        model=mine,
        forward=mine,
        device=cpu,
        optimizers=[optimizer],
        schedulers=[scheduler],
        scheduler_specs=[types.SimpleNamespace(interval="step")],  # type: ignore[list-item]
        group_labels=["all"],
        params=[p for p in mine.parameters() if p.requires_grad],
        frozen=[],
        frozen_modules=[],
        precision=Precision("32", cpu),
        ema=EMA(mine, 0.99, warmup),
        hook=SupervisedStep(mine, functional.cross_entropy, "input", "target"),
        val_metrics=TorchMetrics("s", []),
        callbacks=[],
    )
    step = types.SimpleNamespace(
        name="s",
        controller=types.SimpleNamespace(get_permanence=None),
        loggers_name=None,
        progress_name=None,
        accumulate=accumulate,
        seed=0,
        grad_clip=None,
        checkpoint_every=0,
        checkpoint_seconds=1e9,
        epochs=2,
    )
    sampler = types.SimpleNamespace(set_epoch=lambda *args: None)
    state = {"epoch": 0, "global_step": 0, "batch": 0, "history": []}
    trainer = Trainer(step, parts, Loaders(batches, sampler, [], 8), state, None, print, None)
    losses = []
    for epoch in range(2):
        state["batch"] = 0
        losses.append(trainer._train_epoch(epoch)["train_loss"])

    theirs = _model()
    optimizer, scheduler = optimizer_and_scheduler(theirs)
    ema = _model()
    ema.load_state_dict(theirs.state_dict())
    sources = [p for p in theirs.parameters() if p.requires_grad]
    sources += [b for b in theirs.buffers() if b.is_floating_point()]
    targets = [dict(ema.named_parameters()).get(n) for n, p in theirs.named_parameters()]
    targets = [t for t, p in zip(targets, theirs.parameters(), strict=True) if p.requires_grad]
    targets += [b for b in ema.buffers() if b.is_floating_point()]
    counters = [(e, t) for e, t in zip(ema.buffers(), theirs.buffers(), strict=True) if e.ndim == 0]
    theirs.train()
    expected, steps = [], 0
    for _ in range(2):
        total = 0.0
        for index, (x, y) in enumerate(batches, start=1):
            loss = functional.cross_entropy(theirs(x), y)
            (loss / accumulate if accumulate > 1 else loss).backward()
            total += loss.item() * len(y)
            if index % accumulate == 0 or index == len(batches):
                optimizer.step()
                optimizer.zero_grad(set_to_none=True)
                with torch.no_grad():
                    for target, source in zip(targets, sources, strict=True):
                        target.lerp_(source, 1 - _decay(steps, 0.99, warmup))
                    for counter, source in counters:  # num_batches_tracked
                        counter.copy_(source)
                scheduler.step()
                steps += 1
        expected.append(total / sum(len(y) for _, y in batches))

    for built, reference in ((mine, theirs), (parts.ema.module, ema)):
        a, b = built.state_dict(), reference.state_dict()
        assert a.keys() == b.keys()
        for name in a:
            assert torch.equal(a[name], b[name]), name
    assert trainer.global_step == steps
    assert losses == pytest.approx(expected, rel=1e-12)
