"""Profile: per runtime and batch size the latency percentiles, throughput and peak memory,
as JSON, a table and a figure; the measurement itself on a known allocation."""

from __future__ import annotations

import json
import shutil
import time

import numpy as np
import pytest
from analysis_helpers import exported_digits

from tipi.engine import Engine
from tipi.processes.timing import measure

PIPELINE = """
[permanences.device]
type = "Device"
[permanences.net]
type = "Network"
params = { model = "mlp" }
[permanences.files]
type = "BasicLogger"
params = { log_dir = "logs" }

[processes.profile]
type = "Profile"
inputs = { model = "out/train/model.pt", torchscript = "out/x/export/model.ts", onnx = "out/x/export/model.onnx", onnx_fp16 = "out/x/export/model.fp16.onnx", onnx_int8 = "out/x/export/model.int8.onnx" }
params = { batch_sizes = [1, 16], repeats = 5, warmup = 1, threads = 1, min_run_time = 0.01, loggers = "files" }
"""


@pytest.fixture
def profiled(project):
    exported = exported_digits()
    shutil.copytree(exported / "out", project.root / "out")
    project.pipeline("x", PIPELINE)
    return project


def test_every_runtime_and_batch_size_gets_percentiles_throughput_and_memory(profiled):
    Engine("x").make()
    rows = json.loads((profiled.root / "out/x/profile/profile.json").read_text())
    runtimes = ["eager", "torchscript", "onnxruntime", "onnxruntime_fp16", "onnxruntime_int8"]
    assert [(r["runtime"], r["batch_size"]) for r in rows] == [
        (runtime, batch) for runtime in runtimes for batch in (1, 16)
    ]
    for row in rows:
        assert 0 < row["p50_ms"] <= row["p95_ms"] <= row["p99_ms"]
        assert row["latency_ms"] == row["p50_ms"]
        assert row["throughput_per_s"] > 0
        assert row["peak_rss_mb"] >= 0
        assert row["cuda_peak_mb"] is None and row["device"] == "cpu"
        assert row["threads"] == 1
    figure = profiled.root / "out/x/profile/latency.png"
    assert figure.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert list((profiled.root / "logs").glob("**/latency*.png"))


def test_measure_sees_an_allocation_and_a_delay():
    found = measure(
        lambda: np.ones(8 * 2**20).sum(),  # 64 MiB, allocated and freed by each call
        1,
        repeats=3,
        warmup=1,
        threads=1,
        min_run_time=0.01,
    )
    assert found["peak_rss_mb"] >= 48
    slow = measure(lambda: time.sleep(0.002), 4, repeats=5, warmup=0, threads=1, min_run_time=0.01)
    assert 2 <= slow["p50_ms"] <= slow["p99_ms"]
    assert slow["throughput_per_s"] <= 4 / 0.002


def test_profile_param_errors_name_the_step_and_key(profiled, cli):
    profiled.pipeline("x", PIPELINE.replace("[1, 16]", "[0, 16]"))
    result = cli("make", "-p", "x")
    assert result.exit_code == 2
    assert "processes.profile.params.batch_sizes: must be positive batch sizes" in result.stderr
    profiled.pipeline("x", PIPELINE.replace("threads = 1", "threads = -1"))
    result = cli("make", "-p", "x")
    assert result.exit_code == 2
    assert "processes.profile.params.threads: must be 0 or more" in result.stderr


def test_on_cuda_eager_and_torchscript_report_peak_allocated_memory(profiled):
    import torch

    if not torch.cuda.is_available():  # asked here, not at collection: torch is imported lazily
        pytest.skip("needs a CUDA GPU (none here)")
    profiled.pipeline("x", PIPELINE.replace("loggers = ", 'device = "device", loggers = '))
    Engine("x").make()
    rows = json.loads((profiled.root / "out/x/profile/profile.json").read_text())
    for row in rows:
        on_gpu = row["runtime"] in ("eager", "torchscript")
        assert row["device"] == ("cuda" if on_gpu else "cpu")
        assert (row["cuda_peak_mb"] is not None) == on_gpu
