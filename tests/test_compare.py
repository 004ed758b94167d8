"""Compare: the statistics against a hand computation, and the step on the digits."""

from __future__ import annotations

import json

import numpy as np
import pytest
from analysis_helpers import train_weights, write_digits_splits

from tipi.engine import Engine
from tipi.errors import ConfigError
from tipi.processes.compare import compare
from tipi.processes.stats import (
    bootstrap_indices,
    classifier_metrics,
    mcnemar_exact,
    paired_bootstrap,
)

# Eight test samples. Model a is right on 5 (wrong on 2, 4, 7), model b on 7 (wrong on 4).
LABELS = np.array([0, 1, 2, 0, 1, 2, 0, 1])
A = np.array([0, 1, 0, 0, 2, 2, 0, 0])
B = np.array([0, 1, 2, 0, 2, 2, 0, 1])


def test_mcnemar_exact_by_hand():
    # Only a right: none; only b right: samples 2 and 7. n = 2 discordant pairs:
    # p = 2 * P(X <= 0), X ~ Bin(2, 1/2) = 2 * 1/4 = 0.5.
    assert mcnemar_exact(A == LABELS, B == LABELS) == 0.5
    # b = 1, c = 6: p = 2 * (C(7,0) + C(7,1)) / 2**7 = 2 * 8 / 128 = 0.125.
    a = np.array([True] * 1 + [False] * 6 + [True] * 5)
    b = np.array([False] * 1 + [True] * 6 + [True] * 5)
    assert mcnemar_exact(a, b) == 0.125
    assert mcnemar_exact(b, a) == 0.125  # symmetric
    assert mcnemar_exact(a, a) == 1.0  # never disagree
    # b = 5, c = 5: 2 * P(X <= 5) for Bin(10, 1/2) > 1, capped at 1.
    assert mcnemar_exact([True] * 5 + [False] * 5, [False] * 5 + [True] * 5) == 1.0
    from scipy.stats import binomtest

    assert mcnemar_exact(a, b) == pytest.approx(binomtest(1, 7, 0.5).pvalue)


def test_paired_bootstrap_by_hand():
    difference, (low, high) = paired_bootstrap(LABELS, A, B, 3, "accuracy", n_boot=5, seed=7)
    assert difference == pytest.approx(7 / 8 - 5 / 8)
    # The resamples: five rows of eight indices from numpy's default generator, seed 7.
    rows = np.random.default_rng(7).integers(0, 8, size=(5, 8))
    assert (bootstrap_indices(8, 5, 7) == rows).all()
    diffs = []
    for row in rows.tolist():
        right_a = sum(A[i] == LABELS[i] for i in row)
        right_b = sum(B[i] == LABELS[i] for i in row)
        diffs.append((right_b - right_a) / 8)
    diffs.sort()

    # numpy's default percentile: linear between the order statistics at (n - 1) * q.
    def percentile(q):
        position = (len(diffs) - 1) * q
        below = int(position)
        above = min(below + 1, len(diffs) - 1)
        return diffs[below] + (diffs[above] - diffs[below]) * (position - below)

    assert low == pytest.approx(percentile(0.025))
    assert high == pytest.approx(percentile(0.975))
    # Seeded: the same call, the same interval; another seed, another draw.
    assert paired_bootstrap(LABELS, A, B, 3, "accuracy", 5, 7)[1] == (low, high)
    assert paired_bootstrap(LABELS, A, B, 3, "accuracy", 50, 8)[1] != (low, high)


def test_metrics_match_scikit_learn():
    from sklearn.metrics import f1_score, precision_score, recall_score  # here: slow to import

    rng = np.random.default_rng(0)
    labels, predicted = rng.integers(0, 5, 200), rng.integers(0, 6, 200)
    found = classifier_metrics(labels, predicted, 6)
    assert found["accuracy"] == pytest.approx((labels == predicted).mean())
    for name, score in (
        ("f1_macro", f1_score),
        ("precision_macro", precision_score),
        ("recall_macro", recall_score),
    ):
        assert found[name] == pytest.approx(
            score(labels, predicted, average="macro", zero_division=0)
        )
    assert found["per_class_accuracy"][0] == pytest.approx((predicted[labels == 0] == 0).mean())
    # Class 5 never occurs in the labels: no per-class accuracy for it.
    assert found["per_class_accuracy"][5] is None


def test_compare_report_shape_and_hand_figures():
    report = compare(LABELS, {"a": A, "b": B}, 3, "f1_macro", n_boot=200, seed=0)
    assert set(report) == {"models", "pairs"}
    assert report["models"]["a"]["accuracy"] == 0.625
    assert report["models"]["b"]["per_class_accuracy"] == [1.0, 0.666667, 1.0]
    assert [(p["a"], p["b"], p["metric"]) for p in report["pairs"]] == [
        ("a", "b", "accuracy"),
        ("a", "b", "f1_macro"),
    ]
    accuracy = report["pairs"][0]
    assert set(accuracy) == {
        "a",
        "b",
        "metric",
        "difference",
        "ci95",
        "tests",
        "mcnemar_p",
        "agree",
    }
    assert accuracy["difference"] == 0.25
    assert accuracy["mcnemar_p"] == 0.5
    low, high = accuracy["ci95"]
    assert low <= 0.25 <= high
    f1 = report["pairs"][1]
    from sklearn.metrics import f1_score

    expected = f1_score(LABELS, B, average="macro") - f1_score(LABELS, A, average="macro")
    assert f1["difference"] == pytest.approx(expected, abs=1e-6)


PIPELINE = """
[permanences.device]
type = "Device"
[permanences.net]
type = "Network"
params = { model = "mlp" }
[permanences.files]
type = "BasicLogger"
params = { log_dir = "logs" }
[processes.compare]
type = "Compare"
inputs = { data = "data/splits.pt", models = ["out/short/model.pt", "out/long/model.pt"] }
params = { loggers = "files", n_boot = 300, NBOOT }
"""


@pytest.mark.slow
def test_compare_step_on_the_digits(project):
    write_digits_splits(project.root / "data/splits.pt")
    train_weights(project.root / "out/short/model.pt", steps=5)
    train_weights(project.root / "out/long/model.pt", steps=60)
    project.pipeline("x", PIPELINE.replace(", NBOOT", ""))
    Engine("x").make()
    report = json.loads((project.root / "out/x/compare/comparison.json").read_text())
    assert list(report["models"]) == ["short", "long"]
    assert report["part"] == "test" and report["samples"] == 271
    assert report["models"]["long"]["accuracy"] > report["models"]["short"]["accuracy"]
    accuracy = report["pairs"][0]
    assert (accuracy["a"], accuracy["b"], accuracy["metric"]) == ("short", "long", "accuracy")
    assert accuracy["ci95"][0] > 0  # the longer training is better, and the interval says so
    assert accuracy["mcnemar_p"] < 0.001
    assert list((project.root / "logs").glob("**/per_class_accuracy*.png"))


def test_compare_param_errors_name_the_step_and_key(project, cli):
    write_digits_splits(project.root / "data/splits.pt")
    train_weights(project.root / "out/short/model.pt", steps=1)
    train_weights(project.root / "out/long/model.pt", steps=1)
    project.pipeline("x", PIPELINE.replace("NBOOT", 'metric = "auc"'))
    result = cli("make", "-p", "x")
    assert result.exit_code == 2
    assert "processes.compare.params.metric: expected 'accuracy' | " in result.stderr
    project.pipeline("x", PIPELINE.replace("n_boot = 300, NBOOT", "n_boot = 0"))
    result = cli("make", "-p", "x")
    assert result.exit_code == 2
    assert "processes.compare.params.n_boot: must be at least 1, not 0" in result.stderr
    with pytest.raises(ConfigError, match="needs two or more models"):
        project.pipeline("x", PIPELINE.replace(', "out/long/model.pt"', "").replace(", NBOOT", ""))
        Engine("x").make()
