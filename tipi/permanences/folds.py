"""K-fold cross-validation splits: stratified, seeded, with the test part held out."""

from __future__ import annotations

import random
from collections import defaultdict
from collections.abc import Sequence
from typing import Any

from tipi.errors import ConfigError


def stratified_folds(labels: Sequence[int], k: int, seed: int) -> list[list[int]]:
    """Positions 0..n-1 dealt into `k` folds with every class spread evenly.

    Class by class (in sorted order), the positions of a class are shuffled with
    `random.Random(seed)` and dealt round-robin, the dealing continuing where the previous
    class stopped: each fold gets within one of n/k samples, and of each class within one
    of its count/k. The folds are disjoint and cover every position.
    """
    rng = random.Random(seed)
    by_class: dict[int, list[int]] = defaultdict(list)
    for position, label in enumerate(labels):
        by_class[label].append(position)
    folds: list[list[int]] = [[] for _ in range(k)]
    turn = 0
    for label in sorted(by_class):
        members = by_class[label]
        rng.shuffle(members)
        for position in members:
            folds[turn % k].append(position)
            turn += 1
    return [sorted(fold) for fold in folds]


def split_sizes(n: int, split: Sequence[float]) -> list[int]:
    """How many of `n` samples train, val and test get: `int(n * fraction)` for train and
    val, the rest for test. PrepareDigits, the Data permanence and its folds all cut this
    way (with one seed, one permutation), so their test parts are the same samples."""
    train, val = int(n * split[0]), int(n * split[1])
    return [train, val, n - train - val]


def fold_indices(
    labels: Sequence[int], split: Sequence[float], seed: int, folds: int, fold: int
) -> dict[str, list[int]]:
    """Sample indices of train, val and test for fold `fold` of `folds`.

    The test part is the one the plain split makes (the last part of a permutation seeded
    with `seed`, as `random_split` draws it, sized by `split_sizes`), so every fold, the run
    without folds and PrepareDigits (same seed and split) hold out the same test samples.
    The rest is cut into `folds` stratified folds: fold `fold` is val, the others are train.
    """
    import torch

    n = len(labels)
    sizes = split_sizes(n, split)
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed)).tolist()
    pool, test = order[: sizes[0] + sizes[1]], order[sizes[0] + sizes[1] :]
    dealt = stratified_folds([labels[i] for i in pool], folds, seed)
    val = [pool[p] for p in dealt[fold]]
    held = set(dealt[fold])
    train = [pool[p] for p in range(len(pool)) if p not in held]
    return {"train": train, "val": val, "test": test}


def class_labels(dataset: Any) -> list[int]:
    """The integer class label of every sample: a TensorDataset's second tensor, a
    `targets` attribute (torchvision), else the second item of each sample."""
    tensors = getattr(dataset, "tensors", None)
    if tensors is not None and len(tensors) >= 2:
        raw: Any = tensors[1]
    elif getattr(dataset, "targets", None) is not None:
        raw = dataset.targets
    else:
        raw = [dataset[i][1] for i in range(len(dataset))]
    try:
        return [int(label) for label in (raw.tolist() if hasattr(raw, "tolist") else raw)]
    except (TypeError, ValueError) as exc:
        raise ConfigError(
            f"stratified folds need one integer class label per sample ({exc})",
            hint="leave `folds` out for datasets without class labels",
        ) from exc


def check_folds(folds: int, fold: int) -> None:
    """`folds` is 0 (no cross-validation) or at least 2, and `fold` one of 0..folds-1."""
    if folds == 1 or folds < 0:
        raise ConfigError(
            f"params.folds must be 0 (no cross-validation) or at least 2, not {folds}"
        )
    if folds and not 0 <= fold < folds:
        raise ConfigError(
            f"params.fold = {fold} is out of range for folds = {folds} (0 to {folds - 1})"
        )
    if not folds and fold:
        raise ConfigError(f"params.fold = {fold} without folds", hint="set folds = K too")
