"""The shipped hypothesis pipeline (pipelines/hypothesis): the OFF model's weights start both
arms, arm A with the branch off and arm B with it on (loaded non-strictly: the OFF weights
have no branch), each trained frozen then unfrozen for the same budget, the last phase a gate;
one Compare over the three seeds, paired by seed (issue 30: the seed-004 workflow in TOML
alone)."""

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


def test_the_hypothesis_pipeline_trains_equal_budgets_gates_and_compares_over_seeds(project, cli):
    shutil.copytree(REPO / "pipelines/hypothesis", project.root / "pipelines/hypothesis")
    started = time.monotonic()
    result = cli("make", "-p", "hypothesis")
    assert result.exit_code == 0, result.stderr
    assert time.monotonic() - started < 60  # the README promises seconds (one torch thread)
    out = project.root / "out/hypothesis"
    for seed in (0, 1, 2):
        for step in ("pretrain", "a_frozen", "a", "b_frozen", "b"):
            assert f"✔ {step}[seed={seed}] ran" in result.stderr
        # equal budgets: a gate trains all its epochs, in both arms
        for arm in ("a", "b"):
            history = json.loads((out / f"{arm}/{seed}/history.json").read_text())
            assert len(history["history"]) == 2 and history["gate_passed"] is not None
            frozen = json.loads((out / f"{arm}_frozen/{seed}/history.json").read_text())
            assert len(frozen["history"]) == 2
            assert set(frozen["frozen"]) >= {"features.0.weight", "features.3.weight"}
    # arm B started from the OFF weights, non-strictly: the branch was missing, kept its zeros
    _, metadata = read_checkpoint(out / "b/1/best.pt")
    assert [p["name"] for p in metadata["phases"]] == [
        "pretrain: branch off",
        "B: frozen",
        "B: unfrozen",
    ]
    init = metadata["phases"][1]["init"]
    assert init["strict"] is False and "spade.shared.0.weight" in init["missing"]
    assert init["unexpected"] == []
    b_frozen = json.loads((out / "b_frozen/0/history.json").read_text())
    assert {"lr/spade", "lr/classifier", "val_f1"} <= set(b_frozen["final"])
    # the seeds differ: each arm started from its own seed's pretraining
    histories = [json.loads((out / f"pretrain/{s}/history.json").read_text()) for s in (0, 1, 2)]
    assert len({json.dumps(h["history"][0]) for h in histories}) == 3
    # one Compare over the seeds, paired by seed, each seed's comparison kept
    comparison = json.loads((out / "compare/comparison.json").read_text())
    assert comparison["paired_by"] == ["seed"] and list(comparison["seeds"]) == ["0", "1", "2"]
    (pair,) = [p for p in comparison["pairs"] if p["metric"] == "accuracy"]
    assert (pair["a"], pair["b"], pair["n"], pair["df"]) == ("A: branch off", "B: branch on", 3, 2)
    for seed, rows in comparison["seeds"].items():
        a, b = rows["models"]["A: branch off"], rows["models"]["B: branch on"]
        assert pair["differences"][seed] == pytest.approx(b["accuracy"] - a["accuracy"], abs=2e-6)
    assert pair["ci95"][0] <= pair["difference"] <= pair["ci95"][1]
    assert 0 <= pair["p"] <= 1 and pair["wilcoxon_min_p"] == 0.25
    assert pair["pooled"]["samples"] == 3 * comparison["samples"]
    assert "B: branch on - A: branch off over 3 seeds" in result.stderr
    assert "compare: B: branch on vs A: branch off, accuracy: " in result.stderr
    # a gate arm B cannot pass: it trains its epochs, fails with its best value, compare waits
    gate = "b.until={ metric = 'train_loss', below = 0.0001, mode = 'gate' }"
    failed = cli("make", "-p", "hypothesis", "--set", gate, "--set", "b.epochs=1")
    assert failed.exit_code == 1
    assert "phase 'B: unfrozen' did not pass its gate: train_loss never went below 0.0001" in (
        failed.stderr
    )
    assert "(best " in failed.stderr
    assert "✔ a[" not in failed.stderr and "✔ pretrain[" not in failed.stderr  # cached
    assert "✔ compare" not in failed.stderr
