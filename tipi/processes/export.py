"""Export: ONNX (checked, and compared with the eager model in onnxruntime), ONNX fp16, int8
(ONNX Runtime's quantization), TorchScript, each artifact's accuracy and size in export.json,
and a TensorRT engine where tensorrt and a GPU are present."""

from __future__ import annotations

import json
import logging
import warnings
from typing import Any, Literal

from rich.table import Table

from tipi.errors import ConfigError, ProcessFailure
from tipi.permanences.network import read_weights
from tipi.process import PipelineProcess
from tipi.processes.checks import param_error
from tipi.processes.onnx_tools import (
    OptLevel,
    accuracy,
    onnx_predictor,
    ort_session,
    quantize_onnx,
    torch_predictor,
)
from tipi.report.live import console

ARTIFACTS = ("onnx", "onnx_fp16", "onnx_int8", "torchscript")


class Export(PipelineProcess):
    """Writes `onnx`, `onnx_fp16`, `torchscript` and `report` (export.json); with `quantize`
    also `onnx_int8` (declare its path in `outputs`); checks `tensorrt` when asked for.

    The ONNX model is validated with `onnx.checker` and must match the eager model on a random
    batch within `tolerance` (max absolute difference) in onnxruntime, or the step fails.
    `quantize = "dynamic"` quantizes weights to int8 (activations at run time); `"static"`
    weights and activations, calibrated on the first `calibration_batches` training batches
    of the `data` input. With a `data` input, every artifact's accuracy on `part` is measured
    next to the eager model's (ONNX in onnxruntime at `graph_optimization_level`) and written
    to the report with its size on disk; an artifact more than `max_accuracy_drop` below the
    eager accuracy fails the step, with the figures.
    """

    outputs = {
        "onnx": "out/{pipeline}/{name}/model.onnx",
        "onnx_fp16": "out/{pipeline}/{name}/model.fp16.onnx",
        "torchscript": "out/{pipeline}/{name}/model.ts",
        "report": "out/{pipeline}/{name}/export.json",
    }
    metrics_outputs = ("report",)

    def __init__(
        self,
        controller: Any,
        force: bool = False,
        model: str = "net",
        input_shape: list[int] | None = None,
        opset: int = 18,
        tolerance: float = 1e-4,
        tensorrt: bool = False,
        quantize: Literal["", "dynamic", "static"] = "",
        calibration_batches: int = 8,
        batch_size: int = 64,
        part: str = "val",
        max_accuracy_drop: float = 0.02,
        graph_optimization_level: OptLevel = "all",
    ) -> None:
        super().__init__(controller, force)
        self.model_name = model
        self.input_shape = list(input_shape or [1, 8, 8])
        self.opset, self.tolerance, self.tensorrt = opset, tolerance, tensorrt
        self.quantize, self.calibration_batches = quantize, calibration_batches
        self.batch_size, self.part, self.max_accuracy_drop = batch_size, part, max_accuracy_drop
        self.level = graph_optimization_level

    def execute(self) -> None:
        import torch

        from tipi.permanences.factory import require

        require("onnx", "onnx", "Export")
        require("onnxruntime", "onnx", "Export")
        self._check_params()
        if self.tensorrt:
            _check_tensorrt()
        model = self.controller.get_permanence(self.model_name).model.cpu().eval()
        model.load_state_dict(read_weights(self.inputs["model"]))
        example = torch.randn(4, *self.input_shape, generator=torch.Generator().manual_seed(0))
        export_onnx(model, example, self.outputs["onnx"], self.opset)
        parity = onnx_parity(model, self.outputs["onnx"], example, self.level)
        self._check("ONNX", parity, self.tolerance)
        to_fp16(self.outputs["onnx"], self.outputs["onnx_fp16"])
        fp16 = onnx_parity(model, self.outputs["onnx_fp16"], example, self.level)
        self._check("fp16 ONNX", fp16, max(1e-2, 100 * self.tolerance))
        splits = self._splits()
        if self.quantize:
            batches = [x.numpy() for x, _ in splits.get("train", [])][: self.calibration_batches]
            quantize_onnx(self.outputs["onnx"], self.outputs["onnx_int8"], self.quantize, batches)
        with warnings.catch_warnings():
            # TorchScript is deprecated upstream in favour of torch.export, but deployment
            # targets still load it; it is exported on purpose.
            warnings.simplefilter("ignore", DeprecationWarning)
            traced = torch.jit.trace(model, example)
        traced.save(str(self.outputs["torchscript"]))
        report = self._report(model, traced, splits.get(self.part))
        self.outputs["report"].write_text(json.dumps(report, indent=2))
        console().print(_report_table(self.name, report))
        self._check_accuracy(report)

    def _check_params(self) -> None:
        """What the type hints cannot say, before anything is exported (exit 2)."""
        declared = "onnx_int8" in self.outputs
        if self.quantize and not declared:
            message = f"quantize = {self.quantize!r} writes onnx_int8: declare its path"
            error = param_error(self.name, "onnx_int8", message, section="outputs")
            error.hint = 'e.g. outputs = { onnx_int8 = "out/PIPELINE/STEP/model.int8.onnx" }'
            raise error
        if declared and not self.quantize:
            message = 'outputs.onnx_int8 is written only with quantize = "dynamic" or "static"'
            raise param_error(self.name, "quantize", message)
        if self.quantize == "static" and "data" not in self.inputs:
            message = "static quantization calibrates on training batches: declare inputs.data"
            raise param_error(self.name, "data", message, section="inputs")
        for key in ("calibration_batches", "batch_size"):
            if getattr(self, key) < 1:
                raise param_error(self.name, key, f"must be 1 or more, not {getattr(self, key)}")
        if self.max_accuracy_drop < 0:
            message = f"must be 0 or more, not {self.max_accuracy_drop}"
            raise param_error(self.name, "max_accuracy_drop", message)

    def _splits(self) -> dict[str, list[Any]]:
        """Batches of each part of the `data` input ({} without one)."""
        from tipi.processes.data import load_splits, make_loader

        if "data" not in self.inputs:
            return {}
        splits = load_splits(self.inputs["data"])
        if self.part not in splits:
            raise param_error(self.name, "part", f"no part {self.part!r} in {sorted(splits)}")
        return {
            name: list(make_loader(dataset, self.batch_size, shuffle=False))
            for name, dataset in splits.items()
            if name in (self.part, "train")
        }

    def _report(self, model: Any, traced: Any, batches: list[Any] | None) -> dict[str, Any]:
        """export.json: per artifact its size and accuracy (None without data) and drop."""
        eager = round(accuracy(torch_predictor(model), batches), 6) if batches else None
        artifacts: dict[str, Any] = {
            "eager": {"size_bytes": self.inputs["model"].stat().st_size, "accuracy": eager}
        }
        for name in (a for a in ARTIFACTS if a in self.outputs):
            found: float | None = None
            if batches:
                predict = (
                    torch_predictor(traced)
                    if name == "torchscript"
                    else onnx_predictor(ort_session(self.outputs[name], self.level))
                )
                found = round(accuracy(predict, batches), 6)
            artifacts[name] = {
                "size_bytes": self.outputs[name].stat().st_size,
                "accuracy": found,
                "accuracy_drop": None if found is None else round(eager - found, 6),  # type: ignore[operator]
            }
        return {
            "part": self.part if batches else None,
            "samples": sum(len(y) for _, y in batches) if batches else 0,
            "quantize": self.quantize or None,
            "graph_optimization_level": self.level,
            "max_accuracy_drop": self.max_accuracy_drop,
            "artifacts": artifacts,
        }

    def _check_accuracy(self, report: dict[str, Any]) -> None:
        """Fail, with every artifact's figure, when one is too far below the eager model."""
        artifacts = report["artifacts"]
        worse = {
            name: found["accuracy_drop"]
            for name, found in artifacts.items()
            if (found.get("accuracy_drop") or 0) > self.max_accuracy_drop
        }
        if not worse:
            return
        drops = ", ".join(f"{name} by {drop:.4f}" for name, drop in worse.items())
        figures = ", ".join(f"{name} {found['accuracy']:.4f}" for name, found in artifacts.items())
        message = (
            f"accuracy on {report['part']} drops more than max_accuracy_drop "
            f"{self.max_accuracy_drop}: {drops} ({figures})"
        )
        hint = "raise max_accuracy_drop, or leave that artifact out"
        if "onnx_int8" in worse:
            other = "static" if self.quantize == "dynamic" else "dynamic"
            hint += f"; for int8 try quantize = {other!r} or more calibration_batches"
        raise ProcessFailure(self.name, ValueError(message), hint=hint)

    def _check(self, what: str, difference: float, limit: float) -> None:
        if difference > limit:
            message = (
                f"{what} output differs from the eager model by {difference:.2e} (> {limit:.0e})"
            )
            raise ProcessFailure(self.name, ValueError(message))


def export_onnx(model: Any, example: Any, path: Any, opset: int) -> None:
    """torch.onnx.export (the torch.export-based exporter) with a dynamic batch axis, then
    `onnx.checker`."""
    import onnx

    onnx_logger = logging.getLogger("torch.onnx")
    level = onnx_logger.level
    with warnings.catch_warnings():
        # torch's exporter warns about its own internals (pytree, TorchScript helpers) and
        # logs that optional torchvision ops are skipped; none of it concerns the user.
        warnings.simplefilter("ignore", FutureWarning)
        warnings.simplefilter("ignore", DeprecationWarning)
        onnx_logger.setLevel(logging.ERROR)
        try:
            _export(model, example, path, opset)
        finally:
            onnx_logger.setLevel(level)
    onnx.checker.check_model(onnx.load(str(path)), full_check=True)


def _export(model: Any, example: Any, path: Any, opset: int) -> None:
    import torch

    torch.onnx.export(
        model,
        (example,),
        str(path),
        input_names=["input"],
        output_names=["logits"],
        dynamic_shapes=({0: torch.export.Dim("batch", min=1, max=65536)},),
        opset_version=opset,
        dynamo=True,
        external_data=False,
        verbose=False,
    )


def onnx_parity(model: Any, path: Any, example: Any, level: str = "all") -> float:
    """Max absolute difference between onnxruntime (at graph optimization `level`) and eager
    outputs on `example`."""
    import torch

    session = ort_session(path, level)
    (onnx_out,) = session.run(None, {"input": example.numpy()})
    with torch.no_grad():
        eager = model(example).numpy()
    return float(abs(onnx_out - eager).max())


def to_fp16(source: Any, target: Any) -> None:
    """Convert weights and activations to float16, keeping float32 inputs and outputs."""
    import onnx
    from onnxruntime.transformers.float16 import convert_float_to_float16

    converted = convert_float_to_float16(onnx.load(str(source)), keep_io_types=True)
    _sort_nodes(converted.graph)  # the converter appends its input casts at the end
    onnx.checker.check_model(converted)
    onnx.save(converted, str(target))


def _sort_nodes(graph: Any) -> None:
    """Reorder graph nodes topologically (each node after the producers of its inputs)."""
    available = {i.name for i in graph.input} | {t.name for t in graph.initializer} | {""}
    pending = list(graph.node)
    ordered = []
    while pending:
        ready = [n for n in pending if all(i in available for i in n.input)]
        if not ready:
            raise ValueError("the ONNX graph has a cycle or a dangling input")
        for node in ready:
            ordered.append(node)
            available.update(node.output)
        pending = [n for n in pending if n not in ready]
    del graph.node[:]
    graph.node.extend(ordered)


def _check_tensorrt() -> None:
    import torch

    missing = []
    try:
        import tensorrt  # noqa: F401
    except ImportError:
        missing.append("the tensorrt package (pip install tensorrt)")
    if not torch.cuda.is_available():
        missing.append("a CUDA GPU")
    if missing:
        raise ConfigError(
            "a TensorRT engine needs " + " and ".join(missing),
            hint="set tensorrt = false to export ONNX and TorchScript only",
        )


def _report_table(step: str, report: dict[str, Any]) -> Table:
    """Each artifact's size, accuracy and drop from the eager model's."""
    part = report["part"]
    table = Table(title=f"{step}: artifacts" + (f" (accuracy on {part})" if part else ""))
    for column in ("artifact", "size", "accuracy", "drop"):
        table.add_column(column, justify="left" if column == "artifact" else "right")
    for name, found in report["artifacts"].items():
        value, drop = found["accuracy"], found.get("accuracy_drop")
        table.add_row(
            name,
            f"{found['size_bytes'] / 1024:,.1f} KiB",
            "-" if value is None else f"{value:.4f}",
            "-" if drop is None else f"{drop:+.4f}",
        )
    return table
