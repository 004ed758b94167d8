"""Export: ONNX (checked, and compared with the eager model in onnxruntime), ONNX fp16,
TorchScript, and a TensorRT engine where tensorrt and a GPU are present."""

from __future__ import annotations

import logging
import warnings
from typing import Any

from tipi.errors import ConfigError, ProcessFailure
from tipi.permanences.network import read_weights
from tipi.process import PipelineProcess


class Export(PipelineProcess):
    """Writes `onnx`, `onnx_fp16` and `torchscript` (and `tensorrt` when asked for).

    The ONNX model is validated with `onnx.checker` and must match the eager model on a random
    batch within `tolerance` (max absolute difference) in onnxruntime, or the step fails.
    """

    outputs = {
        "onnx": "out/{pipeline}/{name}/model.onnx",
        "onnx_fp16": "out/{pipeline}/{name}/model.fp16.onnx",
        "torchscript": "out/{pipeline}/{name}/model.ts",
    }

    def __init__(
        self,
        controller: Any,
        force: bool = False,
        model: str = "net",
        input_shape: list[int] | None = None,
        opset: int = 18,
        tolerance: float = 1e-4,
        tensorrt: bool = False,
    ) -> None:
        super().__init__(controller, force)
        self.model_name = model
        self.input_shape = list(input_shape or [1, 8, 8])
        self.opset, self.tolerance, self.tensorrt = opset, tolerance, tensorrt

    def execute(self) -> None:
        import torch

        from tipi.permanences.factory import require

        require("onnx", "onnx", "Export")
        require("onnxruntime", "onnx", "Export")
        if self.tensorrt:
            _check_tensorrt()
        model = self.controller.get_permanence(self.model_name).model.cpu().eval()
        model.load_state_dict(read_weights(self.inputs["model"]))
        example = torch.randn(4, *self.input_shape, generator=torch.Generator().manual_seed(0))
        export_onnx(model, example, self.outputs["onnx"], self.opset)
        self._check("ONNX", onnx_parity(model, self.outputs["onnx"], example), self.tolerance)
        to_fp16(self.outputs["onnx"], self.outputs["onnx_fp16"])
        fp16 = onnx_parity(model, self.outputs["onnx_fp16"], example)
        self._check("fp16 ONNX", fp16, max(1e-2, 100 * self.tolerance))
        with warnings.catch_warnings():
            # TorchScript is deprecated upstream in favour of torch.export, but deployment
            # targets still load it; it is exported on purpose.
            warnings.simplefilter("ignore", DeprecationWarning)
            traced = torch.jit.trace(model, example)
        traced.save(str(self.outputs["torchscript"]))

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


def onnx_parity(model: Any, path: Any, example: Any) -> float:
    """Max absolute difference between onnxruntime and eager outputs on `example`."""
    import onnxruntime
    import torch

    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
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
