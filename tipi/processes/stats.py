"""Paired statistics for comparing classifiers on one test set: metrics from predictions, a
seeded paired bootstrap confidence interval and McNemar's exact test (numpy only)."""

from __future__ import annotations

from collections.abc import Callable
from fractions import Fraction
from math import comb
from typing import Any

METRICS = ("accuracy", "precision_macro", "recall_macro", "f1_macro")
BLOCK = 256  # bootstrap resamples evaluated at once (bounds memory on large test sets)


def confusion(labels: Any, predicted: Any, num_classes: int) -> Any:
    """Confusion matrices, rows true and columns predicted. Leading axes are kept: labels
    of shape (B, n) give (B, k, k)."""
    import numpy as np

    labels, predicted = np.asarray(labels), np.asarray(predicted)
    lead = labels.shape[:-1]
    flat = labels.reshape(-1, labels.shape[-1]) * num_classes + predicted.reshape(
        -1, labels.shape[-1]
    )
    offsets = np.arange(flat.shape[0])[:, None] * num_classes * num_classes
    counts = np.bincount((flat + offsets).ravel(), minlength=flat.shape[0] * num_classes**2)
    return counts.reshape(*lead, num_classes, num_classes)


def metrics_from_confusion(matrix: Any) -> dict[str, Any]:
    """Accuracy and macro precision, recall and F1 of confusion matrices (..., k, k).

    Macro averages run over the classes that occur in the labels or the predictions (those
    with TP + FP + FN > 0), as torchmetrics and scikit-learn average them.
    """
    import numpy as np

    matrix = np.asarray(matrix, dtype=np.float64)
    tp = np.diagonal(matrix, axis1=-2, axis2=-1)
    support, predicted = matrix.sum(-1), matrix.sum(-2)
    total = support.sum(-1)
    present = (support + predicted) > 0
    with np.errstate(divide="ignore", invalid="ignore"):
        precision = np.where(predicted > 0, tp / predicted, 0.0)
        recall = np.where(support > 0, tp / support, 0.0)
        f1 = np.where(support + predicted > 0, 2 * tp / (support + predicted), 0.0)
    count = np.maximum(present.sum(-1), 1)
    return {
        "accuracy": tp.sum(-1) / np.maximum(total, 1),
        "precision_macro": (precision * present).sum(-1) / count,
        "recall_macro": (recall * present).sum(-1) / count,
        "f1_macro": (f1 * present).sum(-1) / count,
    }


def classifier_metrics(labels: Any, predicted: Any, num_classes: int) -> dict[str, Any]:
    """Accuracy, macro precision/recall/F1 and per-class accuracy (recall) of one model."""
    import numpy as np

    matrix = confusion(labels, predicted, num_classes)
    found = {k: float(v) for k, v in metrics_from_confusion(matrix).items()}
    support = matrix.sum(1)
    with np.errstate(divide="ignore", invalid="ignore"):
        per_class = np.where(support > 0, np.diagonal(matrix) / np.maximum(support, 1), np.nan)
    found["per_class_accuracy"] = [None if np.isnan(v) else float(v) for v in per_class]
    return found


def bootstrap_indices(n: int, n_boot: int, seed: int) -> Any:
    """The resamples of a paired bootstrap: (n_boot, n) indices drawn with replacement by
    numpy's default generator seeded with `seed`. The same indices serve both models."""
    import numpy as np

    return np.random.default_rng(seed).integers(0, n, size=(n_boot, n))


def paired_bootstrap(
    labels: Any,
    predicted_a: Any,
    predicted_b: Any,
    num_classes: int,
    metric: str,
    n_boot: int,
    seed: int,
    level: float = 0.95,
) -> tuple[float, tuple[float, float]]:
    """metric(b) - metric(a) and its percentile bootstrap interval at `level`.

    Each resample draws n test samples with replacement and scores both models on the same
    draw (paired), so the interval reflects the difference, not each model's own noise.
    """
    import numpy as np

    labels, a, b = (np.asarray(v) for v in (labels, predicted_a, predicted_b))
    score = _scorer(metric, num_classes)
    difference = float(score(labels[None], b[None])[0] - score(labels[None], a[None])[0])
    indices = bootstrap_indices(len(labels), n_boot, seed)
    diffs = []
    for start in range(0, n_boot, BLOCK):
        block = indices[start : start + BLOCK]
        diffs.append(score(labels[block], b[block]) - score(labels[block], a[block]))
    tail = (1 - level) / 2 * 100
    low, high = np.percentile(np.concatenate(diffs), [tail, 100 - tail])
    return difference, (float(low), float(high))


def _scorer(metric: str, num_classes: int) -> Callable[[Any, Any], Any]:
    if metric not in METRICS:
        raise ValueError(f"unknown metric {metric!r}; known: {', '.join(METRICS)}")

    def score(labels: Any, predicted: Any) -> Any:
        return metrics_from_confusion(confusion(labels, predicted, num_classes))[metric]

    return score


def mcnemar_exact(correct_a: Any, correct_b: Any) -> float:
    """McNemar's exact (binomial) two-sided p-value on paired right/wrong outcomes.

    With b samples only model a gets right and c only model b gets right, p = min(1, 2 *
    P(X <= min(b, c))) for X ~ Binomial(b + c, 1/2); 1.0 when the models never disagree.
    """
    import numpy as np

    a, b = np.asarray(correct_a, dtype=bool), np.asarray(correct_b, dtype=bool)
    only_a, only_b = int((a & ~b).sum()), int((~a & b).sum())
    n = only_a + only_b
    if n == 0:
        return 1.0
    tail = Fraction(sum(comb(n, i) for i in range(min(only_a, only_b) + 1)), 2**n)
    return float(min(Fraction(1), 2 * tail))
