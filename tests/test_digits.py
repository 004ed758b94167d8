"""The digits main job end to end, its cache behaviour, and export checks."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import pytest

from tipi.engine import Engine
from tipi.errors import ConfigError
from tipi.permanences.zoo import small_cnn
from tipi.processes.export import export_onnx, onnx_parity

REPO = Path(__file__).parent.parent


@pytest.fixture(scope="module")
def digits(tmp_path_factory):
    """A project holding the shipped digits pipeline, built once for this module."""
    root = tmp_path_factory.mktemp("digits")
    shutil.copytree(REPO / "pipelines/digits", root / "pipelines/digits")
    first = Engine("digits", root=root).make()
    return root, first


@pytest.mark.slow
def test_a_cold_make_trains_evaluates_exports_and_profiles(digits):
    root, first = digits
    assert [r.outcome for r in first.results] == ["ran"] * 6
    metrics = json.loads((root / "out/digits/evaluate/metrics.json").read_text())
    assert metrics["accuracy"] >= 0.95
    assert set(metrics) >= {"precision_macro", "recall_macro", "f1_macro", "confusion_matrix"}
    assert sum(map(sum, metrics["confusion_matrix"])) == metrics["samples"]
    rows = list(csv.DictReader((root / "out/digits/predict/predictions.csv").open()))
    assert len(rows) == metrics["samples"]
    for name in ("model.onnx", "model.fp16.onnx", "model.ts"):
        assert (root / "out/digits/export" / name).stat().st_size > 0
    profile = json.loads((root / "out/digits/profile/profile.json").read_text())
    assert {(r["runtime"], r["batch_size"]) for r in profile} == {
        (runtime, batch)
        for runtime in ("eager", "torchscript", "onnxruntime")
        for batch in (1, 32, 256)
    }
    assert list((root / "logs/digits").glob("**/figures/confusion_matrix_*.png"))


@pytest.mark.slow
def test_a_second_make_runs_nothing_and_lr_reruns_only_what_depends_on_train(digits):
    root, _ = digits
    again = Engine("digits", root=root).make()
    assert {r.outcome for r in again.results} == {"skipped"}
    changed = Engine("digits", root=root, overrides=["train.lr=0.004"]).make()
    ran = {r.name for r in changed.results if r.outcome == "ran"}
    assert "prepare" not in ran
    assert "train" in ran
    train = next(r for r in changed.results if r.name == "train")
    assert train.reasons == ("params changed: lr 0.003 → 0.004",)


@pytest.mark.slow
def test_onnx_parity_catches_a_model_that_does_not_match(tmp_path):
    import torch

    torch.manual_seed(0)
    model, other = small_cnn(width=4).eval(), small_cnn(width=4).eval()
    example = torch.randn(3, 1, 8, 8)
    export_onnx(model, example, tmp_path / "m.onnx", opset=18)
    assert onnx_parity(model, tmp_path / "m.onnx", example) < 1e-4
    assert onnx_parity(other, tmp_path / "m.onnx", example) > 1e-3


def test_tensorrt_without_a_gpu_is_a_clear_error(project):
    import torch

    project.pipeline(
        "x",
        """
        [permanences.device]
        type = "Device"
        [permanences.net]
        type = "Network"
        params = { model = "small_cnn", params = { width = 4 } }
        [processes.export]
        type = "Export"
        params = { tensorrt = true }
        inputs = { model = "weights.pt" }
        """,
    )
    torch.manual_seed(0)
    torch.save(small_cnn(width=4).state_dict(), project.root / "weights.pt")
    with pytest.raises(ConfigError, match="a TensorRT engine needs .*a CUDA GPU") as info:
        Engine("x").make()
    assert "tensorrt = false" in info.value.hint
