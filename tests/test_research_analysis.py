"""Analysis on real digits (issue 30): Predict on image files applies the training data's
preprocessing recorded in the checkpoint (and refuses params that contradict it); Compare's
table says which test applies to which row and flags an interval and a p-value that
disagree; the folds of a Data permanence hold out PrepareDigits' test part."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest

from tests.training_helpers import one_thread  # noqa: F401 - one_thread is autouse
from tipi.permanences.network import read_checkpoint

REPO = Path(__file__).parent.parent

PIPELINE = """
[permanences.device]
type = "Device"

[permanences.net]
type = "Network"
params = { model = "small_cnn", params = { in_channels = 1, num_classes = 10, width = 8 } }

[processes.prepare]
type = "PrepareDigits"

[processes.train]
type = "Train"
inputs = { data = "data/p/splits.pt" }
params = { epochs = 2, lr = 0.01, batch_size = 64 }

[processes.images]
type = "DigitImages"
inputs = { data = "data/p/splits.pt" }
outputs = { images = "out/p/images" }
params = { count = 50 }

[processes.files]
type = "Predict"
inputs = { model = "out/p/train/best.pt", images = "out/p/images" }

[processes.tensors]
type = "Predict"
inputs = { model = "out/p/train/best.pt", data = "data/p/splits.pt" }
"""


@pytest.mark.slow  # trains, writes and predicts 50 files: seconds
def test_predict_on_files_applies_the_training_preprocessing(project, cli):
    """Fifty test digits written as 32x32 PNG files (4x upscaled) get the predictions of
    the tensors themselves: the checkpoint records how the digits were made (8x8, an area
    downscale, [0, 1]) and Predict applies it; a param contradicting it is refused."""
    pytest.importorskip("PIL")
    steps = (REPO / "pipelines/analysis/steps.py").read_text()
    project.pipeline("p", PIPELINE, steps=steps)
    result = cli("make", "-p", "p")
    assert result.exit_code == 0, result.stderr
    _, metadata = read_checkpoint(project.root / "out/p/train/best.pt")
    assert metadata["preprocessing"] == {
        "size": [8, 8],
        "channels": 1,
        "mean": [0.0],
        "std": [1.0],
        "resize": "box",
    }
    with (project.root / "out/p/files/predictions.csv").open() as handle:
        from_files = [int(row["class"]) for row in csv.DictReader(handle)]
    with (project.root / "out/p/tensors/predictions.csv").open() as handle:
        from_tensors = [int(row["prediction"]) for row in csv.DictReader(handle)][:50]
    assert len(from_files) == 50 and from_files == from_tensors

    result = cli("make", "-p", "p", "files", "--set", "files.image_size=[16, 16]")
    assert result.exit_code == 2
    assert (
        "processes.files.params.image_size: [16, 16] is not what the model was trained on: "
        "its checkpoint records size = [8, 8]"
    ) in result.stderr
    assert "leave image_size out" in result.stderr
    result = cli("make", "-p", "p", "files", "--set", "files.channels=3")
    assert result.exit_code == 2 and "records channels = 1" in result.stderr


def test_the_folds_hold_out_prepare_digits_test_part(project, cli):
    import torch

    from tipi.permanences.data import Data

    project.pipeline("d", '[processes.prepare]\ntype = "PrepareDigits"\n')
    assert cli("make", "-p", "d").exit_code == 0
    splits = torch.load(project.root / "data/d/splits.pt", weights_only=True)
    images, labels = splits["test"]
    for folds, fold in ((0, 0), (5, 3)):
        data = Data("digits", split=[0.7, 0.15, 0.15], folds=folds, fold=fold, device="")
        data.initialize()
        test = data.parts["test"]
        assert len(test) == len(labels) == 271
        held = torch.stack([test[i][0] for i in range(len(test))])
        assert torch.equal(held, images)
        assert torch.equal(torch.tensor([int(test[i][1]) for i in range(len(test))]), labels)


def test_compare_marks_the_tests_of_each_row_and_flags_disagreement():
    """McNemar's p is on the accuracy row only; an interval excluding 0 with p > 0.05 is
    flagged in the JSON (`agree`) and under the table."""
    from rich.console import Console

    from tipi.processes.compare import compare, comparison_table

    labels = np.array([0] * 20 + [1] * 20)
    a, b = labels.copy(), labels.copy()
    a[:7] = 1  # a misses 7, b 1 of others: p = 0.07, the bootstrap interval excludes 0
    b[10] = 1
    report = compare(labels, {"A": a, "B": b}, 2, "f1_macro", n_boot=1000, seed=0)
    accuracy, f1 = report["pairs"]
    assert accuracy["tests"] == ["bootstrap", "mcnemar"] and f1["tests"] == ["bootstrap"]
    assert accuracy["mcnemar_p"] == pytest.approx(0.0703125) and "mcnemar_p" not in f1
    assert accuracy["ci95"][0] > 0 and accuracy["agree"] is False
    console = Console(width=100, record=True)
    console.print(comparison_table({"part": "test", "samples": 40, **report}))
    text = console.export_text()
    assert "0.0703 !" in text
    assert "McNemar p: accuracy only" in text
    assert "the CI excludes 0 but p = 0.0703 is above 0.05" in text
    f1_line = next(line for line in text.splitlines() if "f1_macro" in line and "[" in line)
    assert f1_line.rstrip(" │").endswith("-")
    same = compare(labels, {"A": a, "B": a}, 2, "accuracy", n_boot=200, seed=0)
    assert same["pairs"][0]["agree"] is True and len(same["pairs"]) == 1
    assert json.loads(json.dumps(report)) == report  # plain JSON
