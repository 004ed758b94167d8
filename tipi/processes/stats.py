"""Paired statistics for comparing classifiers: on one test set, metrics from predictions, a
seeded paired bootstrap confidence interval, McNemar's exact test and `compare` (every pair of
models); across seeds, the t-interval and paired t-test, and Wilcoxon's exact signed-rank test
(numpy and the standard library only)."""

from __future__ import annotations

from collections.abc import Callable
from fractions import Fraction
from itertools import combinations
from math import comb
from typing import Any

METRICS = ("accuracy", "precision_macro", "recall_macro", "f1_macro")
BLOCK = 256  # bootstrap resamples evaluated at once (bounds memory on large test sets)
ALPHA = 0.05  # the level at which the interval and the p-value are read together


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


def t_within(t: float, df: int) -> float:
    """P(|T| <= t) for Student's t with `df` (a positive integer) degrees of freedom.

    The closed form for integer df (Abramowitz & Stegun 26.7.3-4), with θ = atan(t / √df):
    odd df, 2/π (θ + sin θ (cos θ + 2/3 cos³θ + ... up to cos^(df-2) θ)); even df, sin θ
    (1 + 1/2 cos²θ + 1·3/(2·4) cos⁴θ + ... up to cos^(df-2) θ). No scipy needed.
    """
    from math import atan, cos, pi, sin, sqrt

    if df < 1:
        raise ValueError(f"degrees of freedom must be at least 1, not {df}")
    theta = atan(abs(t) / sqrt(df))
    c2 = cos(theta) ** 2
    if df % 2:
        term = total = cos(theta) if df > 1 else 0.0
        for k in range(1, (df - 1) // 2):
            term *= c2 * (2 * k) / (2 * k + 1)
            total += term
        return min(1.0, 2 / pi * (theta + sin(theta) * total))
    term = total = 1.0
    for k in range(1, df // 2):
        term *= c2 * (2 * k - 1) / (2 * k)
        total += term
    return min(1.0, sin(theta) * total)


def t_quantile(level: float, df: int) -> float:
    """The t with P(|T| <= t) = `level` (0.95 gives the 97.5th percentile), by bisection."""
    high = 1.0
    while t_within(high, df) < level:
        high *= 2
    low = 0.0
    for _ in range(200):  # far past float precision
        middle = (low + high) / 2
        low, high = (middle, high) if t_within(middle, df) < level else (low, middle)
    return (low + high) / 2


def paired_t(differences: list[float], level: float = 0.95) -> dict[str, Any]:
    """The mean of per-seed paired differences, its t-interval at `level` and the paired
    t-test's two-sided p (H0: mean difference 0), with n - 1 degrees of freedom.

    Fewer than two differences give no interval and no p (None). Differences that are all
    equal (sd 0) give the interval [mean, mean] and p 0 (1 when they are all 0).
    """
    from math import inf, sqrt

    n = len(differences)
    mean = sum(differences) / n if n else float("nan")
    found: dict[str, Any] = {"n": n, "mean": mean, "sd": None, "df": n - 1, "t": None}
    if n < 2:
        return {**found, "ci": None, "p": None}
    sd = sqrt(sum((d - mean) ** 2 for d in differences) / (n - 1))
    error = sd / sqrt(n)
    if error == 0:
        t = 0.0 if mean == 0 else (inf if mean > 0 else -inf)
        return {**found, "sd": 0.0, "t": t, "ci": (mean, mean), "p": 1.0 if mean == 0 else 0.0}
    t = mean / error
    half = t_quantile(level, n - 1) * error
    p = max(0.0, 1.0 - t_within(t, n - 1))
    return {**found, "sd": sd, "t": t, "ci": (mean - half, mean + half), "p": p}


def wilcoxon_exact(differences: list[float]) -> tuple[float, float]:
    """(two-sided p, smallest p possible) of Wilcoxon's signed-rank test, exact.

    Zero differences are dropped; ties share their average rank. Every assignment of signs
    to the ranks is equally likely under H0 (2^n of them, counted by dynamic programming), so
    the p is exact with ties too: p = min(1, 2 · min(P(W+ <= w), P(W+ >= w))). The smallest
    p is 2 / 2^n: 0.25 with 3 seeds, 0.0625 with 5; below 6 seeds it never reaches 0.05.
    """
    nonzero = [d for d in differences if d != 0]
    n = len(nonzero)
    if n == 0:
        return 1.0, 1.0
    ordered = sorted(range(n), key=lambda i: abs(nonzero[i]))
    doubled = [0] * n  # twice each rank: average ranks of ties are then integers
    start = 0
    while start < n:
        end = start
        while end + 1 < n and abs(nonzero[ordered[end + 1]]) == abs(nonzero[ordered[start]]):
            end += 1
        for i in range(start, end + 1):
            doubled[ordered[i]] = start + end + 2
        start = end + 1
    counts = {0: 1}
    for rank in doubled:
        shifted = dict(counts)
        for total, count in counts.items():
            shifted[total + rank] = shifted.get(total + rank, 0) + count
        counts = shifted
    observed = sum(r for r, d in zip(doubled, nonzero, strict=True) if d > 0)
    below = sum(c for total, c in counts.items() if total <= observed)
    above = sum(c for total, c in counts.items() if total >= observed)
    p = min(Fraction(1), 2 * Fraction(min(below, above), 2**n))
    return float(p), float(min(Fraction(1), Fraction(2, 2**n)))


def compare(
    labels: Any,
    predictions: dict[str, Any],
    num_classes: int,
    metric: str = "f1_macro",
    n_boot: int = 1000,
    seed: int = 0,
) -> dict[str, Any]:
    """The comparison of models' predictions on the same labels (one call, no files).

    Returns {"models": {label: metrics}, "pairs": [{"a", "b", "metric", "difference",
    "ci95", "tests", ...}]} with `difference` = metric(b) - metric(a); pairs are taken in the
    order of `predictions`, for accuracy and for `metric`. `tests` names what applies to the
    row: the paired bootstrap to every metric, McNemar's test (on right/wrong outcomes) to
    accuracy alone, whose row also has `mcnemar_p` and `agree` (whether "the interval
    excludes 0" and "p < 0.05" say the same thing).
    """
    models = {
        label: _rounded(classifier_metrics(labels, predicted, num_classes))
        for label, predicted in predictions.items()
    }
    pairs = []
    for a, b in combinations(predictions, 2):
        p = mcnemar_exact(predictions[a] == labels, predictions[b] == labels)
        for name in dict.fromkeys(("accuracy", metric)):
            difference, (low, high) = paired_bootstrap(
                labels, predictions[a], predictions[b], num_classes, name, n_boot, seed
            )
            row: dict[str, Any] = {
                "a": a,
                "b": b,
                "metric": name,
                "difference": round(difference, 6),
                "ci95": [round(low, 6), round(high, 6)],
                "tests": ["bootstrap"],
            }
            if name == "accuracy":  # McNemar's test compares right/wrong: accuracy only
                row["tests"].append("mcnemar")
                row["mcnemar_p"] = float(f"{p:.6g}")  # small p-values keep their digits
                row["agree"] = (low > 0 or high < 0) == (p < ALPHA)
            pairs.append(row)
    return {"models": models, "pairs": pairs}


def _rounded(found: dict[str, Any]) -> dict[str, Any]:
    return {
        k: round(v, 6) if isinstance(v, float) else [None if x is None else round(x, 6) for x in v]
        for k, v in found.items()
    }
