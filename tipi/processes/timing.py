"""Measuring one inference call: latency percentiles and throughput with torch.utils.benchmark,
and the peak memory it takes (resident set growth on the CPU, peak allocated on CUDA)."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

_STATUS = Path("/proc/self/status")
_CLEAR_REFS = Path("/proc/self/clear_refs")


def measure(
    call: Callable[[], Any],
    batch: int,
    *,
    repeats: int,
    warmup: int,
    threads: int,
    min_run_time: float,
    cuda: bool = False,
) -> dict[str, float | None]:
    """Latency (p50/p95/p99/mean ms), throughput (samples/s) and peak memory (MiB) of `call`.

    `warmup` calls first, then `repeats` calls timed one by one with torch.utils.benchmark's
    timer (which synchronizes CUDA) for the percentiles, then torch.utils.benchmark's
    `blocked_autorange` for at least `min_run_time` seconds, whose median time per call
    gives the throughput. Memory counts from before the warm-up: the growth of the process's
    resident set at its peak (`peak_rss_mb`) and, on CUDA, of the allocated memory
    (`cuda_peak_mb`). Torch runs on `threads` threads (0: its current number).
    """
    import numpy as np
    import torch
    from torch.utils.benchmark import Timer, timer

    threads = threads or torch.get_num_threads()
    with _torch_threads(threads), _peak_memory(cuda) as memory:
        for _ in range(warmup):
            call()
        samples = []
        for _ in range(repeats):
            started = timer()
            call()
            samples.append(timer() - started)
        blocked = Timer("call()", globals={"call": call}, num_threads=threads)
        median = blocked.blocked_autorange(min_run_time=min_run_time).median
    p50, p95, p99 = (float(v) * 1000 for v in np.percentile(samples, [50, 95, 99]))
    return {
        "p50_ms": round(p50, 4),
        "p95_ms": round(p95, 4),
        "p99_ms": round(p99, 4),
        "mean_ms": round(float(np.mean(samples)) * 1000, 4),
        "throughput_per_s": round(batch / median, 1),
        **memory,
    }


@contextmanager
def _torch_threads(threads: int) -> Iterator[None]:
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)


@contextmanager
def _peak_memory(cuda: bool) -> Iterator[dict[str, float | None]]:
    """Fills the dict with `peak_rss_mb` and `cuda_peak_mb` (None off CUDA) on exit."""
    import torch

    found: dict[str, float | None] = {"peak_rss_mb": None, "cuda_peak_mb": None}
    baseline = _rss_bytes()
    resettable = _reset_peak_rss()
    before_peak = _peak_rss_bytes()
    if cuda:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        allocated = torch.cuda.memory_allocated()
    yield found
    peak = _peak_rss_bytes()
    # Without a reset (not Linux), the lifetime peak only shows growth past earlier peaks.
    grown = peak - baseline if resettable else max(0, peak - before_peak)
    found["peak_rss_mb"] = round(max(0, grown) / 2**20, 3)
    if cuda:
        torch.cuda.synchronize()
        found["cuda_peak_mb"] = round((torch.cuda.max_memory_allocated() - allocated) / 2**20, 3)


def _reset_peak_rss() -> bool:
    """Linux: reset the process's peak resident set (VmHWM) to its current size."""
    try:
        _CLEAR_REFS.write_text("5")
    except OSError:
        return False
    return True


def _rss_bytes() -> int:
    return _status_kib("VmRSS") * 1024 if _STATUS.exists() else _peak_rss_bytes()


def _peak_rss_bytes() -> int:
    if _STATUS.exists():
        return _status_kib("VmHWM") * 1024
    import resource  # POSIX only

    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak if sys.platform == "darwin" else peak * 1024  # macOS counts bytes, Linux KiB


def _status_kib(key: str) -> int:
    for line in _STATUS.read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    return 0
