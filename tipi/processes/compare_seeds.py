"""Compare over seeds: arms as lists of models, paired by a matrix value (seed, fold, ...).

Each arm is a gathered input of Compare (`a = "out/p/a/{seed}/best.pt"` in a step without
`seed` gathers every `a[seed=S]`). For each seed the models are scored as in one-seed Compare
(compare.py: metrics, bootstrap interval, McNemar's p); across seeds, per pair of arms and per
metric, the per-seed differences b - a give:

- their mean with a Student t-interval (df = seeds - 1) and the paired t-test's p: the
  answer, since it counts the seed-to-seed variation (what a rerun with another seed moves);
- Wilcoxon's exact signed-rank p beside it, free of the normality assumption but unable to
  reach 0.05 below 6 seeds (its smallest p is 2 / 2^n: 0.25 with 3), hence not the verdict;
- the pooled bootstrap: all seeds' test predictions resampled together, which measures
  test-sample noise only (not seed noise) and is shown as a second view, not the verdict.
"""

from __future__ import annotations

from collections.abc import Mapping
from itertools import combinations
from typing import Any

from rich.table import Table

from tipi.processes.stats import METRICS, compare, paired_bootstrap, paired_t, wilcoxon_exact

LEVEL = 0.95


def compare_seeds(
    labels: Mapping[str, Any],
    predictions: Mapping[str, Mapping[str, Any]],
    num_classes: int,
    metric: str = "f1_macro",
    n_boot: int = 1000,
    seed: int = 0,
) -> dict[str, Any]:
    """The comparison of arms over seeds (one call, no files).

    `labels` maps each seed (as text) to its test labels; `predictions` each arm's label to
    {seed: predictions}, every arm with the same seeds. Returns {"seeds": {seed: one-seed
    report}, "models": {arm: each metric's mean over the seeds}, "pairs": [{"a", "b",
    "metric", "n", "differences", "difference" (their mean), "sd", "ci95" (t-interval), "t",
    "df", "p" (paired t), "wilcoxon_p", "wilcoxon_min_p", "pooled": {"samples",
    "difference", "ci95"}, "tests"}]}.
    """
    import numpy as np

    per_seed = {
        value: compare(
            labels[value],
            {arm: found[value] for arm, found in predictions.items()},
            num_classes,
            metric,
            n_boot,
            seed,
        )
        for value in labels
    }
    models = {
        arm: {
            m: round(float(np.mean([per_seed[v]["models"][arm][m] for v in labels])), 6)
            for m in METRICS
        }
        for arm in predictions
    }
    pooled_labels = np.concatenate([np.asarray(labels[v]) for v in labels])
    pairs = []
    for a, b in combinations(predictions, 2):
        pooled_a, pooled_b = (
            np.concatenate([np.asarray(predictions[arm][v]) for v in labels]) for arm in (a, b)
        )
        for name in dict.fromkeys(("accuracy", metric)):
            differences = {  # each seed's own comparison's difference
                v: next(
                    row["difference"]
                    for row in per_seed[v]["pairs"]
                    if (row["a"], row["b"], row["metric"]) == (a, b, name)
                )
                for v in labels
            }
            t = paired_t(list(differences.values()), LEVEL)
            p_w, floor = wilcoxon_exact(list(differences.values()))
            difference, (low, high) = paired_bootstrap(
                pooled_labels, pooled_a, pooled_b, num_classes, name, n_boot, seed, LEVEL
            )
            pairs.append(
                {
                    "a": a,
                    "b": b,
                    "metric": name,
                    "n": t["n"],
                    "differences": {v: round(d, 6) for v, d in differences.items()},
                    "difference": round(t["mean"], 6),
                    "sd": _round(t["sd"]),
                    "ci95": None if t["ci"] is None else [round(x, 6) for x in t["ci"]],
                    "t": _round(t["t"]),
                    "df": t["df"],
                    "p": None if t["p"] is None else float(f"{t['p']:.6g}"),
                    "wilcoxon_p": round(p_w, 6),
                    "wilcoxon_min_p": round(floor, 6),
                    "pooled": {
                        "samples": len(pooled_labels),
                        "difference": round(difference, 6),
                        "ci95": [round(low, 6), round(high, 6)],
                    },
                    "tests": ["paired t", "wilcoxon", "pooled bootstrap"],
                }
            )
    return {"seeds": per_seed, "models": models, "pairs": pairs}


def seeds_table(report: dict[str, Any]) -> Table:
    """Per seed, each arm's score and b - a; then per pair the verdict over the seeds."""
    key = ",".join(report.get("paired_by", ["seed"]))
    pairs = report["pairs"]
    arms = list(report["models"])
    per_seed = Table(
        title=f"per {key} on {report.get('part', 'test')} ({report.get('samples', '')} samples"
        " each): b - a, bootstrap 95% CI, McNemar's p"
    )
    for column in (key, "metric", *arms, "b - a", "95% CI", "McNemar p"):
        per_seed.add_column(column, justify="left" if column in (key, "metric") else "right")
    for value, found in report["seeds"].items():
        for row in found["pairs"]:
            if (row["a"], row["b"]) != (arms[0], arms[-1]) and len(arms) > 2:
                continue
            low, high = row["ci95"]
            p = row.get("mcnemar_p")
            per_seed.add_row(
                value,
                row["metric"],
                *(f"{found['models'][arm][row['metric']]:.4f}" for arm in arms),
                f"{row['difference']:+.4f}",
                f"[{low:+.4f}, {high:+.4f}]",
                "-" if p is None else f"{p:.3g}",
            )
    n = pairs[0]["n"] if pairs else 0
    floor = pairs[0]["wilcoxon_min_p"] if pairs else 1
    samples = pairs[0]["pooled"]["samples"] if pairs else 0
    one = len({(p["a"], p["b"]) for p in pairs}) == 1
    verdict = Table(
        title=(f"{pairs[0]['b']} - {pairs[0]['a']}" if one and pairs else "b - a")
        + f" over {n} {key}s: mean, 95% t-interval, paired t-test",
        caption=f"t: the per-{key} differences' mean, df {n - 1}; Wilcoxon: exact signed-rank p"
        f" (its smallest possible with {n} {key}s is {floor:.3g}); pooled: a paired bootstrap"
        f" over all {samples} test predictions (test-sample noise only, not {key} noise)",
        caption_justify="left",
    )
    columns = ("metric", "mean", "95% CI (t)", "p (t)", "Wilcoxon p", "pooled, 95% CI")
    for column in columns if one else ("b vs a", *columns):
        verdict.add_column(
            column, justify="left" if column in ("b vs a", "metric") else "right", no_wrap=True
        )
    for pair in pairs:
        ci, pooled = pair["ci95"], pair["pooled"]
        low, high = pooled["ci95"]
        verdict.add_row(
            *(() if one else (f"{pair['b']} vs {pair['a']}",)),
            pair["metric"],
            f"{pair['difference']:+.4f}",
            "-" if ci is None else f"[{ci[0]:+.4f}, {ci[1]:+.4f}]",
            "-" if pair["p"] is None else f"{pair['p']:.3g}",
            f"{pair['wilcoxon_p']:.3g}",
            f"{pooled['difference']:+.4f} [{low:+.4f}, {high:+.4f}]",
        )
    outer = Table.grid()
    outer.add_row(per_seed)
    outer.add_row(verdict)
    return outer


def verdicts(report: dict[str, Any]) -> list[str]:
    """One line per pair and metric: what the t-interval over the seeds says."""
    key = ",".join(report.get("paired_by", ["seed"]))
    lines = []
    for pair in report["pairs"]:
        ci = pair["ci95"]
        if ci is None:
            says = f"one {key}: no interval across {key}s"
        elif ci[0] > 0 or ci[1] < 0:
            says = f"{pair['b'] if ci[0] > 0 else pair['a']} is better (the interval excludes 0)"
        else:
            says = "no difference shown (the interval includes 0)"
            low, high = pair["pooled"]["ci95"]
            if low > 0 or high < 0:  # the test samples alone would have called it
                says += (
                    f"; the pooled bootstrap excludes 0, but it leaves out the {key}-to-{key}"
                    " variation"
                )
        interval = "" if ci is None else f", 95% CI [{ci[0]:+.4f}, {ci[1]:+.4f}], p {pair['p']:.3g}"
        lines.append(
            f"{pair['b']} vs {pair['a']}, {pair['metric']}: {pair['difference']:+.4f} over "
            f"{pair['n']} {key}s{interval}: {says}"
        )
    return lines


def _round(value: float | None) -> float | None:
    """Six decimals; None for none, and for an infinite t (JSON has no infinity)."""
    from math import isfinite

    return None if value is None or not isfinite(value) else round(value, 6)
