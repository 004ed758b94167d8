"""Export: ONNX, fp16, int8 and TorchScript, each checked against the eager model, with accuracy,
size and parity in export.json."""

from __future__ import annotations

import json
import warnings
from typing import Any, Literal

from rich.table import Table

from tipi.errors import ConfigError, ProcessFailure
from tipi.permanences.network import read_weights
from tipi.process import PipelineProcess
from tipi.processes.checks import param_error
from tipi.processes.formats import export_onnx, onnx_parity, to_fp16, torchscript_bytes
from tipi.processes.onnx_tools import (
    OptLevel,
    Parity,
    compare_outputs,
    onnx_predictor,
    ort_session,
    outputs,
    quantize_onnx,
    torch_predictor,
)
from tipi.report.live import console

ARTIFACTS = ("onnx", "onnx_fp16", "onnx_int8", "torchscript")
__all__ = ["Export", "export_onnx", "onnx_parity", "to_fp16", "torchscript_bytes"]


class Export(PipelineProcess):
    """Writes `onnx`, `onnx_fp16`, `torchscript` and `report` (export.json); with `quantize`
    also `onnx_int8` (declare its path in `outputs`); checks `tensorrt` when asked for.

    The ONNX model is validated with `onnx.checker`. Every artifact (ONNX in onnxruntime at
    `graph_optimization_level`, TorchScript as saved) is run on the samples of `part` of the
    `data` input (without one, 64 seeded random inputs of `input_shape`) next to the eager
    model, and fails the step when its relative error (the largest absolute difference over
    the largest absolute eager output, see `Parity`) is above its tolerance: `tolerance` for
    ONNX and TorchScript, `fp16_tolerance` and `int8_tolerance`, or when the share of samples
    whose top-1 class agrees with the eager model's is below `min_agreement`. The failure
    shows the worst sample's two numbers. `quantize = "dynamic"` quantizes weights to int8
    (activations at run time); `"static"` weights and activations, calibrated on the first
    `calibration_batches` training batches of the `data` input. With a `data` input, every
    artifact's accuracy on `part` is written to the report next to the eager accuracy, with
    its size on disk and its parity; an artifact more than `max_accuracy_drop` below the eager
    accuracy fails the step, with the figures.
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
        fp16_tolerance: float = 1e-2,
        int8_tolerance: float = 0.1,
        min_agreement: float = 0.9,
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
        self.opset, self.tensorrt = opset, tensorrt
        # Relative tolerances (see Parity), measured on the digits CNN at learning rates from
        # 0.001 to 0.1: fp32 ONNX ~3e-7 (1e-4 leaves room for other kernels' summation
        # order); fp16 2e-4 to 6e-4, its unit roundoff being 4.9e-4 (1e-2 leaves room for
        # deeper networks' accumulated rounding, a wrong conversion is off by 1e-1 or more);
        # int8 1e-2 to 2e-2, one step being 1/127 of a tensor's range (0.1 is five steps'
        # worth, and min_agreement keeps a loose tolerance from hiding flipped classes).
        self.tolerances = {
            "onnx": tolerance,
            "onnx_fp16": fp16_tolerance,
            "onnx_int8": int8_tolerance,
            "torchscript": tolerance,
        }
        self.min_agreement = min_agreement
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
        to_fp16(self.outputs["onnx"], self.outputs["onnx_fp16"])
        splits = self._splits()
        if self.quantize:
            batches = [x.numpy() for x, _ in splits.get("train", [])][: self.calibration_batches]
            quantize_onnx(self.outputs["onnx"], self.outputs["onnx_int8"], self.quantize, batches)
        self.outputs["torchscript"].write_bytes(torchscript_bytes(model, example))
        report, parities = self._report(model, self._samples(splits.get(self.part)))
        self.outputs["report"].write_text(json.dumps(report, indent=2))
        console().print(_report_table(self.name, report))
        for name, parity in parities.items():
            self._check_parity(name, parity, report["parity_on"])
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
        keys = {"onnx": "tolerance", "onnx_fp16": "fp16_tolerance", "onnx_int8": "int8_tolerance"}
        for name, key in keys.items():
            if not self.tolerances[name] > 0:  # also NaN
                message = f"must be above 0, not {self.tolerances[name]}"
                raise param_error(self.name, key, message)
        if not 0 <= self.min_agreement <= 1:
            message = f"must be between 0 and 1, not {self.min_agreement}"
            raise param_error(self.name, "min_agreement", message)

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

    def _samples(self, batches: list[Any] | None) -> tuple[list[Any], Any, str]:
        """The input batches every artifact is compared on, their labels (None without data)
        and what they are, for the report and the failures."""
        import numpy as np
        import torch

        if batches and sum(len(y) for _, y in batches):
            labels = np.concatenate([np.asarray(y) for _, y in batches])
            return [x for x, _ in batches], labels, f"{self.part} ({len(labels)} samples)"
        seeded = torch.Generator().manual_seed(1)
        random = torch.randn(64, *self.input_shape, generator=seeded)
        return [random], None, "64 seeded random inputs"

    def _report(
        self, model: Any, samples: tuple[list[Any], Any, str]
    ) -> tuple[dict[str, Any], dict[str, Parity]]:
        """export.json (per artifact its size, accuracy and drop (None without data), and its
        parity with the eager model), and each artifact's Parity."""
        inputs, labels, on = samples
        eager = outputs(torch_predictor(model), inputs)
        eager_accuracy = _accuracy(eager, labels)
        artifacts: dict[str, Any] = {
            "eager": {"size_bytes": self.inputs["model"].stat().st_size, "accuracy": eager_accuracy}
        }
        parities: dict[str, Parity] = {}
        for name in (a for a in ARTIFACTS if a in self.outputs):
            found = outputs(self._predictor(name), inputs)
            parity = parities[name] = compare(name, eager, found, self.name)
            accuracy = _accuracy(found, labels)
            artifacts[name] = {
                "size_bytes": self.outputs[name].stat().st_size,
                "accuracy": accuracy,
                "accuracy_drop": None
                if eager_accuracy is None or accuracy is None
                else round(eager_accuracy - accuracy, 6),
                # Three digits: a figure to read, and the same bytes for the same inputs.
                "relative_error": float(f"{parity.relative_error:.3g}"),
                "top1_agreement": None if parity.agreement is None else round(parity.agreement, 6),
            }
        report = {
            "part": self.part if labels is not None else None,
            "samples": 0 if labels is None else len(labels),
            "parity_on": on,
            "quantize": self.quantize or None,
            "graph_optimization_level": self.level,
            "max_accuracy_drop": self.max_accuracy_drop,
            "min_agreement": self.min_agreement,
            "artifacts": artifacts,
        }
        return report, parities

    def _predictor(self, name: str) -> Any:
        """Logits of artifact `name` as written: TorchScript loaded back from its file, ONNX
        in a one-thread session (the figures in export.json must not depend on the core
        count of the machine or worker that made them)."""
        import torch

        if name == "torchscript":
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", DeprecationWarning)  # see torchscript_bytes
                loaded = torch.jit.load(str(self.outputs[name]), map_location="cpu")
            return torch_predictor(loaded)
        return onnx_predictor(ort_session(self.outputs[name], self.level, threads=1))

    def _check_parity(self, name: str, parity: Parity, on: str) -> None:
        """Fail when artifact `name` is further from the eager model than its tolerance, or
        agrees on the top-1 class on fewer samples than min_agreement, with the worst sample."""
        limit = self.tolerances[name]
        key = {"onnx_fp16": "fp16_tolerance", "onnx_int8": "int8_tolerance"}.get(name, "tolerance")
        agreement = "" if parity.agreement is None else f"top-1 agreement {parity.agreement:.1%}"
        if parity.relative_error > limit:
            reason = f"relative error {parity.relative_error:.2e} > {key} {limit:g}"
        elif parity.agreement is not None and parity.agreement < self.min_agreement:
            reason = f"{agreement} < min_agreement {self.min_agreement:g}"
            agreement = f"relative error {parity.relative_error:.2e}"
        else:
            return
        message = (
            f"{LABELS[name]} differs from the eager model at {parity.where()} ({reason}; "
            f"errors relative to the largest |eager output| {parity.scale:.4g}"
            + (f"; {agreement}" if agreement else "")
            + f"; on {on})"
        )
        hint = f"if this is the format's own rounding, raise {key}; otherwise the export is wrong"
        raise ProcessFailure(self.name, ValueError(message), hint=hint)

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


LABELS = {
    "onnx": "ONNX",
    "onnx_fp16": "fp16 ONNX",
    "onnx_int8": "int8 ONNX",
    "torchscript": "TorchScript",
}


def compare(name: str, eager: Any, found: Any, step: str) -> Parity:
    """`compare_outputs`, a shape mismatch being the step's failure rather than a crash."""
    try:
        return compare_outputs(eager, found)
    except ValueError as error:
        raise ProcessFailure(step, ValueError(f"{LABELS[name]}: {error}")) from None


def _accuracy(logits: Any, labels: Any) -> float | None:
    """Share of samples whose argmax is the label (None without labels)."""
    if labels is None:
        return None
    return round(float((logits.argmax(1) == labels).mean()), 6)


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
    """Each artifact's size, accuracy and drop from the eager model's, and its error relative
    to the eager outputs' scale and top-1 agreement with them."""
    part = report["part"]
    table = Table(title=f"{step}: artifacts" + (f" (accuracy on {part})" if part else ""))
    for column in ("artifact", "size", "accuracy", "drop", "rel. error", "top-1"):
        table.add_column(column, justify="left" if column == "artifact" else "right")
    for name, found in report["artifacts"].items():
        value, drop = found["accuracy"], found.get("accuracy_drop")
        error, agreement = found.get("relative_error"), found.get("top1_agreement")
        table.add_row(
            name,
            f"{found['size_bytes'] / 1024:,.1f} KiB",
            "-" if value is None else f"{value:.4f}",
            "-" if drop is None else f"{drop:+.4f}",
            "-" if error is None else f"{error:.1e}",
            "-" if agreement is None else f"{agreement:.1%}",
        )
    return table
