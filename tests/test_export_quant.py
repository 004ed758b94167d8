"""Export's int8 quantization (dynamic and static), each artifact's accuracy and size in
export.json, max_accuracy_drop, and the graph optimization level, on the digits."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from analysis_helpers import EXPORT_PIPELINE as PIPELINE
from analysis_helpers import exported_digits, train_weights, write_digits_splits

from tipi.errors import ProcessFailure
from tipi.processes.data import load_splits, make_loader
from tipi.processes.export import Export
from tipi.processes.onnx_tools import (
    OPT_LEVELS,
    accuracy,
    onnx_predictor,
    ort_session,
    quantize_onnx,
)

REPO = Path(__file__).parent.parent


@pytest.fixture(scope="module")
def exported():
    """A make of an Export with dynamic int8 on the digits (the exporter takes seconds)."""
    return exported_digits()


def test_dynamic_int8_is_smaller_and_within_the_drop_of_the_eager_model(exported):
    report = json.loads((exported / "out/x/export/export.json").read_text())
    assert report["part"] == "val" and report["samples"] == 269
    assert report["quantize"] == "dynamic"
    assert report["graph_optimization_level"] == "extended"
    artifacts = report["artifacts"]
    assert list(artifacts) == ["eager", "onnx", "onnx_fp16", "onnx_int8", "torchscript"]
    eager = artifacts["eager"]["accuracy"]
    assert eager > 0.85
    for name in ("onnx", "onnx_fp16", "onnx_int8", "torchscript"):
        found = artifacts[name]
        assert (
            found["size_bytes"]
            == (exported / "out/x/export")
            .joinpath(
                {"onnx": "model.onnx", "onnx_fp16": "model.fp16.onnx"}.get(name)
                or {"onnx_int8": "model.int8.onnx", "torchscript": "model.ts"}[name]
            )
            .stat()
            .st_size
        )
        assert found["accuracy_drop"] == pytest.approx(eager - found["accuracy"], abs=1e-6)
        assert found["accuracy_drop"] <= report["max_accuracy_drop"]
    assert artifacts["onnx"]["accuracy"] == pytest.approx(eager, abs=1e-9)
    assert artifacts["onnx_int8"]["size_bytes"] < 0.5 * artifacts["onnx"]["size_bytes"]


def test_static_int8_calibrates_on_training_batches(exported, tmp_path):
    splits = load_splits(exported / "data/splits.pt")
    calibration = [x.numpy() for x, _ in make_loader(splits["train"], 64, False)][:4]
    target = tmp_path / "static.onnx"
    quantize_onnx(exported / "out/x/export/model.onnx", target, "static", calibration)
    val = list(make_loader(splits["val"], 64, False))
    fp32 = accuracy(onnx_predictor(ort_session(exported / "out/x/export/model.onnx")), val)
    int8 = accuracy(onnx_predictor(ort_session(target, "basic")), val)
    assert abs(fp32 - int8) <= 0.02
    assert "QuantizeLinear" in target.read_bytes().decode("latin-1")  # QDQ format


def test_every_graph_optimization_level_gives_the_same_outputs(exported):
    import torch

    x = torch.randn(3, 1, 8, 8)
    outputs = [
        onnx_predictor(ort_session(exported / "out/x/export/model.onnx", level))(x)
        for level in OPT_LEVELS
    ]
    for other in outputs[1:]:
        assert abs(other - outputs[0]).max() < 1e-5


def test_an_accuracy_drop_above_the_threshold_fails_with_the_figures():
    export = Export(None, max_accuracy_drop=0.01)
    export.name = "export"
    report = {
        "part": "val",
        "artifacts": {
            "eager": {"accuracy": 0.95},
            "onnx": {"accuracy": 0.95, "accuracy_drop": 0.0},
            "onnx_int8": {"accuracy": 0.90, "accuracy_drop": 0.05},
        },
    }
    with pytest.raises(ProcessFailure) as info:
        export._check_accuracy(report)
    assert str(info.value) == (
        "step 'export' failed: ValueError: accuracy on val drops more than max_accuracy_drop "
        "0.01: onnx_int8 by 0.0500 (eager 0.9500, onnx 0.9500, onnx_int8 0.9000)"
    )
    assert "for int8 try quantize = 'dynamic'" in info.value.hint
    report["artifacts"]["onnx_int8"]["accuracy_drop"] = 0.01
    export._check_accuracy(report)  # at the threshold: passes


def test_quantize_param_errors_are_one_line_with_step_and_key(project, cli):
    write_digits_splits(project.root / "data/splits.pt")
    train_weights(project.root / "out/train/model.pt", steps=1)
    project.pipeline("x", PIPELINE.replace('quantize = "dynamic"', 'quantize = "int4"'))
    result = cli("make", "-p", "x")
    assert result.exit_code == 2
    assert "processes.export.params.quantize: expected '' | 'dynamic' | 'static', found 'int4'" in (
        result.stderr
    )
    project.pipeline("x", PIPELINE.replace("outputs = {", "# outputs = {"))
    result = cli("make", "-p", "x")
    assert result.exit_code == 2
    assert (
        "error: processes.export.outputs.onnx_int8: quantize = 'dynamic' writes onnx_int8: "
        "declare its path"
    ) in result.stderr
    toml = PIPELINE.replace('"dynamic"', '"static"').replace(', data = "data/splits.pt"', "")
    project.pipeline("x", toml)
    result = cli("make", "-p", "x")
    assert result.exit_code == 2
    assert "processes.export.inputs.data: static quantization calibrates" in result.stderr


def test_a_conversion_step_of_ones_own_after_export(project, cli):
    """examples/conversion: its ToOrtFormat converts Export's ONNX model, checked; the
    example's pipeline plans as written."""
    import torch

    example = REPO / "examples/conversion/pipelines/conversion"
    shutil.copytree(example, project.root / "pipelines/conversion")
    planned = cli("make", "-p", "conversion", "-n")
    assert planned.exit_code == 0, planned.stderr
    assert "to_ort" in planned.stderr
    shutil.copytree(exported_digits() / "out/x/export", project.root / "out/x/export")
    project.pipeline(
        "mine",
        """
        [processes.to_ort]
        type = "ToOrtFormat"
        inputs = { onnx = "out/x/export/model.onnx" }
        """,
    )
    shutil.copy(example / "convert.py", project.root / "pipelines/mine/convert.py")
    result = cli("make", "-p", "mine")
    assert result.exit_code == 0, result.stderr
    converted = project.root / "out/mine/to_ort/model.ort"
    assert converted.stat().st_size > 0
    session = ort_session(converted)
    x = torch.randn(2, 1, 8, 8)
    onnx = onnx_predictor(ort_session(exported_digits() / "out/x/export/model.onnx"))(x)
    assert abs(onnx_predictor(session)(x) - onnx).max() < 1e-4
