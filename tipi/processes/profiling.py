"""Profile: latency and throughput per batch size for eager PyTorch, TorchScript and
onnxruntime, as a JSON table artifact and a Rich table."""

from __future__ import annotations

import json
import statistics
import time
import warnings
from collections.abc import Callable
from typing import Any

from rich.table import Table

from tipi.permanences.network import read_weights
from tipi.process import PipelineProcess
from tipi.report.live import console


def time_call(call: Callable[[], Any], repeats: int, warmup: int) -> float:
    """Median seconds of `call()` over `repeats` runs after `warmup` runs."""
    for _ in range(warmup):
        call()
    runs = []
    for _ in range(repeats):
        started = time.perf_counter()
        call()
        runs.append(time.perf_counter() - started)
    return statistics.median(runs)


class Profile(PipelineProcess):
    """Inputs: `model` (weights), `onnx`, `torchscript`. Output: `table` (JSON rows)."""

    outputs = {"table": "out/{pipeline}/{name}/profile.json"}

    def __init__(
        self,
        controller: Any,
        force: bool = False,
        model: str = "net",
        input_shape: list[int] | None = None,
        batch_sizes: list[int] | None = None,
        repeats: int = 20,
        warmup: int = 3,
    ) -> None:
        super().__init__(controller, force)
        self.model_name = model
        self.input_shape = list(input_shape or [1, 8, 8])
        self.batch_sizes = list(batch_sizes or [1, 32, 256])
        self.repeats, self.warmup = repeats, warmup

    def execute(self) -> None:
        rows = []
        for name, run in self._runtimes().items():
            for batch in self.batch_sizes:
                seconds = time_call(
                    lambda run=run, batch=batch: run(batch), self.repeats, self.warmup
                )
                rows.append(
                    {
                        "runtime": name,
                        "batch_size": batch,
                        "latency_ms": round(seconds * 1000, 4),
                        "throughput_per_s": round(batch / seconds, 1),
                    }
                )
        self.outputs["table"].write_text(json.dumps(rows, indent=2))
        console().print(_table(rows))

    def _runtimes(self) -> dict[str, Callable[[int], Any]]:
        import torch

        from tipi.permanences.factory import require

        onnxruntime = require("onnxruntime", "onnx", "Profile")
        model = self.controller.get_permanence(self.model_name).model.cpu().eval()
        model.load_state_dict(read_weights(self.inputs["model"]))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # see export.py
            scripted = torch.jit.load(str(self.inputs["torchscript"]))
        session = onnxruntime.InferenceSession(
            str(self.inputs["onnx"]), providers=["CPUExecutionProvider"]
        )
        inputs = {b: torch.randn(b, *self.input_shape) for b in self.batch_sizes}

        def eager(batch: int) -> Any:
            with torch.no_grad():
                return model(inputs[batch])

        def torchscript(batch: int) -> Any:
            with torch.no_grad():
                return scripted(inputs[batch])

        def onnx(batch: int) -> Any:
            return session.run(None, {"input": inputs[batch].numpy()})

        return {"eager": eager, "torchscript": torchscript, "onnxruntime": onnx}


def _table(rows: list[dict[str, Any]]) -> Table:
    table = Table(title="inference profile (CPU)", header_style="bold")
    for column in ("runtime", "batch", "latency ms", "throughput /s"):
        table.add_column(column, justify="right" if column != "runtime" else "left")
    for row in rows:
        table.add_row(
            row["runtime"],
            str(row["batch_size"]),
            f"{row['latency_ms']:.3f}",
            f"{row['throughput_per_s']:,.0f}",
        )
    return table
