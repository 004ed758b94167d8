"""Compare over seeds (issue 30): the paired statistics against scipy and by hand, the report
of arms over seeds, and the step over arms that are step matrices over `seed` (real training
on the digits, one epoch per seed)."""

from __future__ import annotations

import json
from math import sqrt

import numpy as np
import pytest

from tests.training_helpers import one_thread  # noqa: F401 - one_thread is autouse
from tipi.processes.compare_seeds import compare_seeds
from tipi.processes.stats import paired_t, t_quantile, t_within, wilcoxon_exact


def test_t_distribution_against_scipy():
    stats = pytest.importorskip("scipy.stats")
    for df in (1, 2, 3, 4, 5, 9, 30, 101):
        for t in (0.0, 0.3, 1.0, 2.5, 8.0):
            assert t_within(t, df) == pytest.approx(1 - 2 * stats.t.sf(t, df), abs=1e-12)
        assert t_quantile(0.95, df) == pytest.approx(stats.t.ppf(0.975, df), rel=1e-10)
    assert t_quantile(0.95, 2) == pytest.approx(4.302652729911275)  # the textbook table's 4.303


def test_paired_t_by_hand_and_against_scipy():
    # 0.01, 0.02, 0.03: mean 0.02, sd 0.01, error 0.01 / sqrt(3), t = 2 sqrt(3), df 2.
    found = paired_t([0.01, 0.02, 0.03])
    assert found["mean"] == pytest.approx(0.02) and found["sd"] == pytest.approx(0.01)
    assert found["t"] == pytest.approx(2 * sqrt(3)) and found["df"] == 2
    half = 4.302652729911275 * 0.01 / sqrt(3)
    assert found["ci"] == pytest.approx((0.02 - half, 0.02 + half))
    # df 2 has a closed form: P(|T| <= t) = t / sqrt(t^2 + 2), so p = 1 - sqrt(12 / 14).
    assert found["p"] == pytest.approx(1 - sqrt(12 / 14))
    assert paired_t([0.01])["ci"] is None and paired_t([0.01])["p"] is None
    assert paired_t([0.02, 0.02, 0.02])["p"] == 0.0  # no spread: the interval is the mean
    assert paired_t([0.0, 0.0])["p"] == 1.0
    stats = pytest.importorskip("scipy.stats")
    rng = np.random.default_rng(0)
    for n in (2, 3, 5, 10):
        d = rng.normal(0.01, 0.02, n)
        expected = stats.ttest_1samp(d, 0.0)
        found = paired_t(list(d))
        assert found["p"] == pytest.approx(expected.pvalue, rel=1e-9)
        ci = expected.confidence_interval(0.95)
        assert found["ci"] == pytest.approx((ci.low, ci.high), rel=1e-9)


def test_wilcoxon_exact_by_hand_and_against_scipy():
    # Three positive differences: W+ = 6 is the largest of 8 equally likely sign patterns.
    assert wilcoxon_exact([0.01, 0.02, 0.03]) == (0.25, 0.25)
    # ranks 1, 2, 3 with 2 negative: W+ = 4; P(W+ >= 4) = 3/8 (4, 5, 6): p = 0.75.
    assert wilcoxon_exact([0.01, -0.02, 0.03]) == (0.75, 0.25)
    assert wilcoxon_exact([0.0, 0.0]) == (1.0, 1.0)
    stats = pytest.importorskip("scipy.stats")
    rng = np.random.default_rng(1)
    for n in (4, 6, 9):
        d = list(rng.normal(0.01, 0.02, n))
        p, floor = wilcoxon_exact(d)
        assert p == pytest.approx(stats.wilcoxon(d, method="exact").pvalue)
        assert floor == 2 / 2**n


def test_compare_seeds_report():
    rng = np.random.default_rng(0)
    labels = {str(s): rng.integers(0, 3, 50) for s in range(3)}
    a = {s: np.where(rng.random(50) < 0.7, y, (y + 1) % 3) for s, y in labels.items()}
    b = {s: np.where(rng.random(50) < 0.9, y, (y + 1) % 3) for s, y in labels.items()}
    report = compare_seeds(labels, {"A": a, "B": b}, 3, "f1_macro", n_boot=200)
    assert list(report["seeds"]) == ["0", "1", "2"]
    accuracy = report["pairs"][0]
    assert (accuracy["a"], accuracy["b"], accuracy["metric"], accuracy["n"]) == (
        "A",
        "B",
        "accuracy",
        3,
    )
    per_seed = [(b[s] == y).mean() - (a[s] == y).mean() for s, y in labels.items()]
    assert list(accuracy["differences"].values()) == pytest.approx(per_seed, abs=1e-6)
    assert accuracy["difference"] == pytest.approx(np.mean(per_seed), abs=1e-6)
    assert accuracy["df"] == 2 and accuracy["wilcoxon_min_p"] == 0.25
    low, high = accuracy["ci95"]
    assert low < accuracy["difference"] < high
    # pooled over the 150 predictions: for accuracy, the mean of the seeds' differences
    assert accuracy["pooled"]["samples"] == 150
    assert accuracy["pooled"]["difference"] == pytest.approx(np.mean(per_seed), abs=1e-6)
    assert report["models"]["B"]["accuracy"] == pytest.approx(
        np.mean([(b[s] == y).mean() for s, y in labels.items()]), abs=1e-6
    )


PIPELINE = """
[permanences.device]
type = "Device"

[permanences.net]
type = "Network"
params = { model = "mlp" }

[processes.prepare]
type = "PrepareDigits"

[processes.a]
type = "Train"
matrix = { seed = [0, 1, 2] }
inputs = { data = "data/s/splits.pt" }
params = { seed = "{seed}", epochs = 1, lr = 0.0005, batch_size = 64 }

[processes.b]
type = "Train"
matrix = { seed = SEEDS }
inputs = { data = "data/s/splits.pt" }
params = { seed = "{seed}", epochs = 1, lr = 0.01, batch_size = 64 }

[processes.compare]
type = "Compare"
inputs = { data = "data/s/splits.pt", a = "out/s/a/{seed}/model.pt", b = "out/s/b/{seed}/model.pt" }
params = { names = ["slow", "fast"], n_boot = 200 }
"""


def test_compare_over_seeds_of_two_matrix_arms(project, cli):
    """Two arms trained over three seeds each, paired by seed: one verdict over the seeds,
    each seed's comparison kept; an arm lacking a seed is refused, naming it."""
    project.pipeline("s", PIPELINE.replace("SEEDS", "[0, 1, 2]"))
    result = cli("make", "-p", "s")
    assert result.exit_code == 0, result.stderr
    report = json.loads((project.root / "out/s/compare/comparison.json").read_text())
    assert report["paired_by"] == ["seed"] and report["samples"] == 271
    assert list(report["seeds"]) == ["0", "1", "2"] and list(report["models"]) == ["slow", "fast"]
    accuracy = report["pairs"][0]
    assert (accuracy["a"], accuracy["b"], accuracy["metric"]) == ("slow", "fast", "accuracy")
    for seed in ("0", "1", "2"):  # each seed's difference is that seed's own comparison
        (own,) = [p for p in report["seeds"][seed]["pairs"] if p["metric"] == "accuracy"]
        assert accuracy["differences"][seed] == pytest.approx(own["difference"], abs=1e-6)
    assert accuracy["ci95"][0] > 0  # lr 0.01 beats lr 0.0005 after one epoch on every seed
    assert accuracy["p"] < 0.05 and accuracy["pooled"]["samples"] == 3 * 271
    assert "fast - slow over 3 seeds" in result.stderr
    assert "compare: fast vs slow, accuracy: +" in result.stderr
    assert "fast is better (the interval excludes 0)" in result.stderr

    # a model given once beside the arms is refused; `data` may be gathered too (a split
    # per seed: the models of seed S are scored on split S)
    once = 'a = "out/s/a/{seed}/model.pt", c = "out/s/a/0/history.json",'
    project.pipeline(
        "s", PIPELINE.replace("SEEDS", "[0, 1, 2]").replace('a = "out/s/a/{seed}/model.pt",', once)
    )
    result = cli("make", "-p", "s")
    assert result.exit_code == 2
    assert "processes.compare.inputs: c names one model, a, b a model per matrix value" in (
        result.stderr
    )
    splits = (
        '[processes.split]\ntype = "PrepareDigits"\nmatrix = { seed = [0, 1, 2] }\n'
        'params = { seed = "{seed}" }\noutputs = { splits = "data/s/{seed}/splits.pt" }\n'
    )
    gathered = PIPELINE.replace("SEEDS", "[0, 1, 2]").replace(
        '[processes.compare]\ntype = "Compare"\ninputs = { data = "data/s/splits.pt",',
        '[processes.compare]\ntype = "Compare"\ninputs = { data = "data/s/{seed}/splits.pt",',
    )
    project.pipeline("s", gathered + splits)
    result = cli("make", "-p", "s")
    assert result.exit_code == 0, result.stderr
    assert "✔ a[" not in result.stderr  # the arms were not trained again
    again = json.loads((project.root / "out/s/compare/comparison.json").read_text())
    assert again["samples"] == 271
    scores = [again["seeds"][s]["models"]["fast"]["accuracy"] for s in ("0", "1", "2")]
    assert scores != [report["seeds"][s]["models"]["fast"]["accuracy"] for s in ("0", "1", "2")]

    project.pipeline("s", PIPELINE.replace("SEEDS", "[0, 1]"))
    result = cli("make", "-p", "s")
    assert result.exit_code == 2
    assert "cannot pair the arms by seed: 'a' has no model for" not in result.stderr
    assert "cannot pair the arms by seed: 'b' has no model for seed=2 (it has seed=0, seed=1)" in (
        result.stderr
    )
