"""The shipped hypothesis pipeline (pipelines/hypothesis): phase A with the branch off, phase B
with it on (its own optimizers and schedulers, gated), both evaluated side by side, each arm a
step matrix over three seeds paired by seed."""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import pytest

from tests.training_helpers import one_thread  # noqa: F401 - one_thread is autouse
from tipi.permanences.network import read_checkpoint

# one end-to-end training of seconds: not in the fast tier
pytestmark = pytest.mark.slow

REPO = Path(__file__).parent.parent


def test_the_hypothesis_pipeline_trains_gates_and_compares(project, cli):
    shutil.copytree(REPO / "pipelines/hypothesis", project.root / "pipelines/hypothesis")
    started = time.monotonic()
    result = cli("make", "-p", "hypothesis")
    assert result.exit_code == 0, result.stderr
    assert time.monotonic() - started < 60  # the README promises a CPU minute
    out = project.root / "out/hypothesis"
    for seed in (0, 1, 2):  # both arms trained, evaluated and compared per seed
        b = json.loads((out / f"b/{seed}/history.json").read_text())
        assert b["stopped_by"].startswith("gate: train_loss")
        assert f"✔ a[seed={seed}] ran" in result.stderr
        assert f"✔ stats[seed={seed}] ran" in result.stderr
    b = json.loads((out / "b/0/history.json").read_text())
    assert b["phase"] == {"index": 1, "name": "B: branch on"}
    assert set(b["frozen"]) >= {"features.0.weight", "features.1.weight", "features.3.weight"}
    assert {"lr/spade", "lr/classifier", "val_f1", "ema_val_loss"} <= set(b["final"])
    _, metadata = read_checkpoint(out / "b/1/best.pt")
    assert [p["name"] for p in metadata["phases"]] == ["A: branch off", "B: branch on"]
    assert "phases so far:" in result.stderr and "gate: train_loss" in result.stderr
    # the seeds differ: each b started from its own seed's a
    histories = [json.loads((out / f"a/{s}/history.json").read_text()) for s in (0, 1, 2)]
    assert len({json.dumps(h["history"][0]) for h in histories}) == 3
    comparison = json.loads((out / "compare/comparison.json").read_text())  # gathered, by seed
    assert set(comparison["seeds"]) == {"0", "1", "2"}
    for rows in comparison["seeds"].values():
        assert set(rows) == {"accuracy", "precision_macro", "recall_macro", "f1_macro"}
        assert rows["accuracy"]["b_minus_a"] == rows["accuracy"]["b"] - rows["accuracy"]["a"]
    a0 = json.loads((out / "evaluate_a/0/metrics.json").read_text())
    assert comparison["seeds"]["0"]["accuracy"]["a"] == a0["accuracy"]  # paired by seed
    assert "B - A" in result.stdout and result.stdout.count("accuracy") == 3
    stats = json.loads((out / "stats/2/comparison.json").read_text())  # Compare, seed 2
    (pair,) = [p for p in stats["pairs"] if p["metric"] == "accuracy"]
    assert pair["a"] == "A: branch off" and pair["b"] == "B: branch on"
    assert pair["ci95"][0] <= pair["difference"] <= pair["ci95"][1]
    assert 0 <= pair["mcnemar_p"] <= 1
    # a gate phase B cannot pass: it fails with its best value, nothing after it runs
    gate = "b.until={ metric = 'train_loss', below = 0.0001, mode = 'gate' }"
    failed = cli("make", "-p", "hypothesis", "--set", gate, "--set", "b.epochs=1")
    assert failed.exit_code == 1
    assert "phase 'B: branch on' did not pass its gate: train_loss never went below 0.0001" in (
        failed.stderr
    )
    assert "(best " in failed.stderr
    assert "✔ a[" not in failed.stderr  # phase A came from the cache
