"""What GPUs this machine has, from NVML (pynvml): shared by Device and the scheduler."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class GpuInfo:
    """One GPU as NVML reports it: physical index, memory in bytes."""

    index: int
    name: str
    total: int
    used: int

    @property
    def free(self) -> int:
        return self.total - self.used

    @property
    def usage(self) -> float:
        return self.used / self.total if self.total else 1.0


def query_gpus(nvml: Any) -> list[GpuInfo]:
    """Every GPU NVML sees (free memory is the device's, not this process's reservations)."""
    nvml.nvmlInit()
    try:
        gpus = []
        for index in range(nvml.nvmlDeviceGetCount()):
            handle = nvml.nvmlDeviceGetHandleByIndex(index)
            memory = nvml.nvmlDeviceGetMemoryInfo(handle)
            name = nvml.nvmlDeviceGetName(handle)
            gpus.append(
                GpuInfo(
                    index,
                    name.decode() if isinstance(name, bytes) else str(name),
                    memory.total,
                    memory.used,
                )
            )
        return gpus
    finally:
        nvml.nvmlShutdown()


def visible(gpus: list[GpuInfo], cuda_visible_devices: str | None) -> list[tuple[int, GpuInfo]]:
    """(logical CUDA index, GPU) pairs this process may use under CUDA_VISIBLE_DEVICES."""
    if cuda_visible_devices is None:
        return list(enumerate(gpus))
    by_index = {g.index: g for g in gpus}
    chosen = []
    for logical, item in enumerate(x.strip() for x in cuda_visible_devices.split(",") if x.strip()):
        if not item.lstrip("-").isdigit() or int(item) < 0:
            break  # CUDA stops at the first invalid entry; UUIDs are not mapped here
        if int(item) in by_index:
            chosen.append((logical, by_index[int(item)]))
    return chosen


def import_nvml() -> Any:
    import pynvml

    return pynvml


def detect_gpus() -> list[GpuInfo]:
    """The GPUs this process may use (CUDA_VISIBLE_DEVICES applied); [] without NVML.

    The physical index is kept: it is what CUDA_VISIBLE_DEVICES names for a child process.
    """
    try:
        gpus = query_gpus(import_nvml())
    except Exception:  # no NVML library, no driver: no GPU to schedule
        return []
    return [gpu for _, gpu in visible(gpus, os.environ.get("CUDA_VISIBLE_DEVICES"))]
