"""Cross-validation: stratified, seeded, disjoint folds with the test part held out, and
`tipi sweep --folds K` with mean ± std, sharing what did not change."""

from __future__ import annotations

import json
import statistics
from collections import Counter

import pytest

from tipi.errors import ConfigError
from tipi.permanences.data import Data
from tipi.permanences.folds import fold_indices, stratified_folds

LABELS = [0] * 10 + [1] * 7 + [2] * 5 + [3] * 3  # 25 samples, unbalanced classes


def test_stratified_folds_are_disjoint_cover_everything_and_spread_each_class():
    folds = stratified_folds(LABELS, 4, seed=0)
    flat = [p for fold in folds for p in fold]
    assert sorted(flat) == list(range(len(LABELS)))  # disjoint and complete
    assert max(map(len, folds)) - min(map(len, folds)) <= 1
    for label, count in Counter(LABELS).items():
        per_fold = [sum(LABELS[p] == label for p in fold) for fold in folds]
        assert max(per_fold) - min(per_fold) <= 1, (label, per_fold)
        assert sum(per_fold) == count
    assert stratified_folds(LABELS, 4, seed=0) == folds  # seeded
    assert stratified_folds(LABELS, 4, seed=1) != folds


def test_every_fold_holds_out_the_same_test_part_as_the_plain_split():
    data = Data("digits", split=[0.7, 0.15, 0.15], seed=3, device="")
    data.initialize()
    plain_test = data.parts["test"].indices
    labels = data.dataset.tensors[1].tolist()
    vals = []
    for fold in range(5):
        parts = fold_indices(labels, [0.7, 0.15, 0.15], 3, 5, fold)
        assert parts["test"] == list(plain_test)
        assert not set(parts["train"]) & set(parts["val"])
        assert not (set(parts["train"]) | set(parts["val"])) & set(parts["test"])
        assert len(parts["train"]) + len(parts["val"]) + len(parts["test"]) == len(labels)
        vals.append(parts["val"])
    pool = set(range(len(labels))) - set(plain_test)
    assert sorted(i for v in vals for i in v) == sorted(pool)  # each sample validated once
    # Stratified: each class's share of a val fold is within one sample of the pool's share.
    for val in vals:
        shares = Counter(labels[i] for i in val)
        for label, count in Counter(labels[i] for i in pool).items():
            assert abs(shares[label] - count / 5) <= 1


def test_the_data_permanence_takes_folds_and_fold():
    data = Data("synthetic_images", {"n": 100}, split=[0.6, 0.2, 0.2], folds=4, fold=1, device="")
    data.initialize()
    assert data.get_state() == {"train": 60, "val": 20, "test": 20}
    again = Data("synthetic_images", {"n": 100}, split=[0.6, 0.2, 0.2], folds=4, fold=1, device="")
    again.initialize()
    assert data.parts["val"].indices == again.parts["val"].indices
    with pytest.raises(ConfigError, match=r"params.fold = 4 is out of range for folds = 4"):
        Data("synthetic_images", folds=4, fold=4)
    with pytest.raises(ConfigError, match="params.folds must be 0 .* or at least 2, not 1"):
        Data("synthetic_images", folds=1)


STEPS = """
import json
from tipi import PipelineProcess


class Summary(PipelineProcess):
    def __init__(self, controller, force: bool = False, scale: float = 1.0) -> None:
        super().__init__(controller, force)
        self.scale = scale

    def execute(self) -> None:
        import torch

        saved = torch.load(self.inputs["model"], weights_only=True)
        weights = saved.get("state_dict", saved)  # Train's checkpoint or a bare state dict
        norm = sum(float(v.float().norm()) for v in weights.values())
        self.outputs["summary"].write_text(json.dumps({"norm": norm * self.scale}))
"""

PIPELINE = """
[permanences.device]
type = "Device"
[permanences.net]
type = "Network"
params = { model = "mlp", params = { hidden = 16 } }
[permanences.data]
type = "Data"
params = { dataset = "synthetic_images", params = { n = 240 }, split = [0.6, 0.2, 0.2] }

[processes.train]
type = "Train"
params = { epochs = 1, lr = 0.05, batch_size = 32 }

[processes.summary]
type = "Summary"
inputs = { model = "out/cv/train/model.pt" }
outputs = { summary = "out/cv/summary.json" }
"""


@pytest.mark.slow
def test_sweep_folds_runs_k_variants_with_mean_and_std_and_reruns_only_what_changed(project, cli):
    project.pipeline("cv", PIPELINE, steps=STEPS)
    result = cli("sweep", "-p", "cv", "--folds", "3", "--metric", "best_score")
    assert result.exit_code == 0, result.stderr
    assert result.stderr.count("✔ train ran") == 3
    assert "all folds: mean ± std" in result.stdout
    data = json.loads((project.root / "out/sweeps/cv/3-fold/results.json").read_text())
    assert [v["variant"] for v in data["variants"]] == ["fold=0", "fold=1", "fold=2"]
    assert [v["params"] for v in data["variants"]] == [
        {"data.folds": 3, "data.fold": i} for i in range(3)
    ]
    scores = [v["metrics"]["train.best_score"] for v in data["variants"]]
    assert len(set(scores)) > 1  # each fold validates on its own samples
    (group,) = data["folds"]["groups"]
    assert data["folds"]["key"] == "data.fold" and data["folds"]["k"] == 3
    assert group["metrics"]["train.best_score"] == {
        "mean": pytest.approx(statistics.fmean(scores)),
        "std": pytest.approx(statistics.stdev(scores)),
        "n": 3,
    }
    csv = (project.root / "out/sweeps/cv/3-fold/results.csv").read_text()
    assert "all folds mean,mean" in csv and "all folds std,std" in csv

    # One step changed: only it reruns, in every fold; train is up to date.
    again = cli("sweep", "-p", "cv", "--folds", "3", "--set", "summary.scale=2.0")
    assert again.exit_code == 0, again.stderr
    assert again.stderr.count("✔ summary ran") == 3
    assert "✔ train ran" not in again.stderr
    rerun = json.loads((project.root / "out/sweeps/cv/3-fold/results.json").read_text())
    for before, after in zip(data["variants"], rerun["variants"], strict=True):
        assert after["metrics"]["summary.norm"] == pytest.approx(
            2 * before["metrics"]["summary.norm"]
        )


@pytest.mark.slow
def test_a_sweep_file_with_method_folds_and_its_errors(project, cli):
    project.pipeline("cv", PIPELINE, steps=STEPS)
    sweep = project.root / "pipelines/cv/sweep.toml"
    sweep.write_text('method = "folds"\n')
    result = cli("sweep", "-p", "cv", "-n")
    assert result.exit_code == 2
    assert "sweep.toml:1: method: folds = K (2 or more)" in result.stderr
    sweep.write_text('method = "folds"\nfolds = 2\nfold_of = "net"\n')
    result = cli("sweep", "-p", "cv", "-n")
    assert result.exit_code == 2
    assert "'net' takes no `folds` and `fold` params" in result.stderr
    sweep.write_text('method = "folds"\nfolds = 2\n[parameters."train.lr"]\nvalues = [0.01, 0.1]\n')
    result = cli("sweep", "-p", "cv", "-n", "--json")
    assert result.exit_code == 0, result.stderr
    names = [v["variant"] for v in json.loads(result.stdout)["variants"]]
    assert names == ["lr=0.01,fold=0", "lr=0.01,fold=1", "lr=0.1,fold=0", "lr=0.1,fold=1"]


def test_folds_that_do_not_fit_are_a_config_error_naming_the_permanence(project, cli):
    project.pipeline("cv", PIPELINE, steps=STEPS)
    result = cli("make", "-p", "cv", "train", "--set", "data.folds=1")
    assert result.exit_code == 2, result.stderr
    assert "permanence 'data': params.folds must be 0" in result.stderr
    assert "pipeline.toml" in result.stderr  # where the permanence is declared
    assert "Traceback" not in result.stderr
