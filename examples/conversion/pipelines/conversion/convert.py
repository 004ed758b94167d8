"""ToOrtFormat: a conversion step of one's own, after Export. It reads Export's ONNX model and
writes ONNX Runtime's ORT format (what ONNX Runtime Mobile and minimal builds load), then
checks the converted model against the ONNX one, as Export checks its own artifacts."""

from __future__ import annotations

from typing import Any

from tipi import PipelineProcess


class ToOrtFormat(PipelineProcess):
    """Input `onnx` (Export's output) → output `ort`; fails when the two differ by more than
    `tolerance` on a seeded random batch of `input_shape`."""

    outputs = {"ort": "out/{pipeline}/{name}/model.ort"}

    def __init__(
        self,
        controller: Any,
        force: bool = False,
        input_shape: list[int] | None = None,
        tolerance: float = 1e-4,
    ) -> None:
        super().__init__(controller, force)
        self.input_shape = list(input_shape or [1, 8, 8])
        self.tolerance = tolerance

    def execute(self) -> None:
        import numpy as np
        import onnxruntime

        options = onnxruntime.SessionOptions()
        options.optimized_model_filepath = str(self.outputs["ort"])
        options.add_session_config_entry("session.save_model_format", "ORT")
        cpu = ["CPUExecutionProvider"]
        original = onnxruntime.InferenceSession(str(self.inputs["onnx"]), options, providers=cpu)
        converted = onnxruntime.InferenceSession(str(self.outputs["ort"]), providers=cpu)
        x = np.random.default_rng(0).standard_normal((4, *self.input_shape), dtype=np.float32)
        difference = abs(original.run(None, {"input": x})[0] - converted.run(None, {"input": x})[0])
        if difference.max() > self.tolerance:
            raise ValueError(f"the ORT model differs by {difference.max():.2e}")
