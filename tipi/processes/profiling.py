"""Profile: per runtime (eager, TorchScript, ONNX Runtime fp32/fp16/int8) and batch size, the
p50/p95/p99 latency, throughput and peak memory, as JSON rows, a Rich table and a figure."""

from __future__ import annotations

import json
import warnings
from collections.abc import Callable
from typing import Any

from rich.table import Table

from tipi.permanences.network import read_weights
from tipi.process import PipelineProcess
from tipi.processes.checks import param_error
from tipi.processes.onnx_tools import OptLevel, ort_session
from tipi.processes.timing import measure
from tipi.report.live import console

# Input name → runtime name in the rows (`onnxruntime` is the fp32 model, as it always was).
ONNX_INPUTS = {
    "onnx": "onnxruntime",
    "onnx_fp16": "onnxruntime_fp16",
    "onnx_int8": "onnxruntime_int8",
}


class Profile(PipelineProcess):
    """How fast, and how big, is inference with each exported artifact?

    Inputs: `model` (weights; the eager runtime), and whichever of `torchscript`, `onnx`,
    `onnx_fp16`, `onnx_int8` are declared (Export's outputs). Outputs: `table` (JSON, one
    row per runtime and batch size) and `figure` (latency against batch size, PNG; also
    logged to `loggers` when named).

    Each measurement: `warmup` calls, `repeats` timed calls for the percentiles, then
    torch.utils.benchmark's blocked_autorange for `min_run_time` seconds for the throughput
    (tipi/processes/timing.py). Torch runs on `threads` threads and ONNX Runtime with as many
    intra-op threads (0: each library's default), at `graph_optimization_level`. With
    `device` naming a Device permanence on CUDA, eager and TorchScript run there and report
    CUDA peak allocated memory; ONNX Runtime runs on the CPU.
    """

    outputs = {
        "table": "out/{pipeline}/{name}/profile.json",
        "figure": "out/{pipeline}/{name}/latency.png",
    }

    def __init__(
        self,
        controller: Any,
        force: bool = False,
        model: str = "net",
        input_shape: list[int] | None = None,
        batch_sizes: list[int] | None = None,
        repeats: int = 20,
        warmup: int = 3,
        threads: int = 0,
        min_run_time: float = 0.05,
        graph_optimization_level: OptLevel = "all",
        device: str = "",
        loggers: str = "",
    ) -> None:
        super().__init__(controller, force)
        self.model_name, self.device_name, self.loggers_name = model, device, loggers
        self.input_shape = list(input_shape or [1, 8, 8])
        self.batch_sizes = list(batch_sizes or [1, 32, 256])
        self.repeats, self.warmup, self.threads = repeats, warmup, threads
        self.min_run_time, self.level = min_run_time, graph_optimization_level

    def execute(self) -> None:
        self._check_params()
        device = self._device()
        rows = []
        for name, run in self._runtimes(device).items():
            on_cuda = device.type == "cuda" and not name.startswith("onnxruntime")
            for batch in self.batch_sizes:
                found = measure(
                    lambda run=run, batch=batch: run(batch),
                    batch,
                    repeats=self.repeats,
                    warmup=self.warmup,
                    threads=self.threads,
                    min_run_time=self.min_run_time,
                    cuda=on_cuda,
                )
                rows.append(
                    {
                        "runtime": name,
                        "batch_size": batch,
                        "device": "cuda" if on_cuda else "cpu",
                        "threads": self.threads,
                        "latency_ms": found["p50_ms"],
                        **found,
                    }
                )
        self.outputs["table"].write_text(json.dumps(rows, indent=2))
        console().print(_table(rows))
        figure = latency_figure(rows)
        figure.savefig(self.outputs["figure"], dpi=100, format="png")
        if self.loggers_name:
            self.controller.get_permanence(self.loggers_name).log_figure("latency", figure)

    def _check_params(self) -> None:
        for key in ("repeats", "warmup", "threads"):
            value = getattr(self, key)
            if value < (1 if key == "repeats" else 0):
                raise param_error(self.name, key, f"must be {int(key == 'repeats')} or more")
        if not self.batch_sizes or min(self.batch_sizes) < 1:
            message = f"must be positive batch sizes, not {self.batch_sizes}"
            raise param_error(self.name, "batch_sizes", message)
        if self.min_run_time <= 0:
            raise param_error(self.name, "min_run_time", "must be above 0 seconds")

    def _device(self) -> Any:
        import torch

        if not self.device_name:
            return torch.device("cpu")
        return torch.device(self.controller.get_permanence(self.device_name).device)

    def _runtimes(self, device: Any) -> dict[str, Callable[[int], Any]]:
        """Runtime name → a call on a batch of that size (inputs made once, seeded)."""
        import torch

        from tipi.permanences.factory import require

        model = self.controller.get_permanence(self.model_name).model.eval()
        model.load_state_dict(read_weights(self.inputs["model"]))
        model.to(device)
        generator = torch.Generator().manual_seed(0)
        inputs = {
            b: torch.randn(b, *self.input_shape, generator=generator) for b in self.batch_sizes
        }
        on_device = {b: x.to(device) for b, x in inputs.items()}
        runtimes: dict[str, Callable[[int], Any]] = {"eager": _torch_call(model, on_device)}
        if "torchscript" in self.inputs:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", DeprecationWarning)  # see export.py
                scripted = torch.jit.load(str(self.inputs["torchscript"]), map_location=device)
            runtimes["torchscript"] = _torch_call(scripted, on_device)
        arrays = {b: x.numpy() for b, x in inputs.items()}
        for key, name in ONNX_INPUTS.items():
            if key in self.inputs:
                require("onnxruntime", "onnx", "Profile")
                session = ort_session(self.inputs[key], self.level, self.threads)
                runtimes[name] = lambda b, s=session: s.run(None, {"input": arrays[b]})
        return runtimes


def _torch_call(module: Any, inputs: dict[int, Any]) -> Callable[[int], Any]:
    import torch

    def call(batch: int) -> Any:
        with torch.no_grad():
            return module(inputs[batch])

    return call


def _table(rows: list[dict[str, Any]]) -> Table:
    device = ", ".join(sorted({r["device"] for r in rows}))
    table = Table(title=f"inference profile ({device.upper()})", header_style="bold")
    columns = ("runtime", "batch", "p50 ms", "p95 ms", "p99 ms", "samples/s", "peak MiB")
    for column in columns:
        table.add_column(column, justify="right" if column != "runtime" else "left")
    for row in rows:
        memory = row["cuda_peak_mb"] if row["cuda_peak_mb"] is not None else row["peak_rss_mb"]
        table.add_row(
            row["runtime"],
            str(row["batch_size"]),
            f"{row['p50_ms']:.3f}",
            f"{row['p95_ms']:.3f}",
            f"{row['p99_ms']:.3f}",
            f"{row['throughput_per_s']:,.0f}",
            "-" if memory is None else f"{memory:.1f}",
        )
    return table


def latency_figure(rows: list[dict[str, Any]]) -> Any:
    """p50 latency against batch size per runtime (log-log), the p95 as a band."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(6, 4))
    for runtime in dict.fromkeys(r["runtime"] for r in rows):
        mine = [r for r in rows if r["runtime"] == runtime]
        batches = [r["batch_size"] for r in mine]
        axes.plot(batches, [r["p50_ms"] for r in mine], marker="o", label=runtime)
        low, high = [r["p50_ms"] for r in mine], [r["p95_ms"] for r in mine]
        axes.fill_between(batches, low, high, alpha=0.15)
    axes.set_xscale("log", base=2)
    sizes = sorted({r["batch_size"] for r in rows})
    axes.set_xticks(sizes, [str(b) for b in sizes])
    axes.set_yscale("log")
    axes.set_xlabel("batch size")
    axes.set_ylabel("latency, ms (p50; band to p95)")
    axes.legend(fontsize=8)
    axes.grid(True, which="both", alpha=0.3)
    axes.set_title(f"inference latency ({', '.join(sorted({r['device'] for r in rows}))})")
    figure.tight_layout()
    return figure
