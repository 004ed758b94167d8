"""Device: picks the CUDA device with the most free memory (NVML), or falls back to CPU."""

from __future__ import annotations

import os
from typing import Any

from tipi.errors import ConfigError
from tipi.execution.gpus import GpuInfo, import_nvml, query_gpus, visible
from tipi.permanence import Permanence


def choose(candidates: list[tuple[int, GpuInfo]], max_usage: float) -> int:
    """The logical index of the candidate with the most free memory under `max_usage`.

    Raises:
        ConfigError: every candidate is above the threshold (the message lists them all).
    """
    usable = [(logical, g) for logical, g in candidates if g.usage <= max_usage]
    if not usable:
        listed = ", ".join(
            f"cuda:{logical} ({g.name}) {g.usage:.0%} used, {g.free / 2**30:.1f} GiB free"
            for logical, g in candidates
        )
        raise ConfigError(
            f"every GPU is above max_usage {max_usage:.0%}: {listed}",
            hint='wait for memory to free up, raise max_usage, or set device = "cpu"',
        )
    return max(usable, key=lambda pair: pair[1].free)[0]


class Device(Permanence):
    """The torch device the pipeline computes on.

    Args:
        device: "auto" (the CUDA device with the most free memory, else CPU), "cpu", "cuda"
            or "cuda:N".
        max_usage: with "auto", devices whose memory is used above this fraction are refused.
        nvml: the NVML module (pynvml); injectable for tests. Default: imported on use.
    """

    affects_results = False

    def __init__(self, device: str = "auto", max_usage: float = 0.9, nvml: Any = None) -> None:
        if device != "auto" and device != "cpu" and not device.startswith("cuda"):
            raise ConfigError(f"device must be auto, cpu, cuda or cuda:N, not {device!r}")
        if not 0 < max_usage <= 1:
            raise ConfigError(f"max_usage must be in (0, 1], not {max_usage}")
        self.requested = device
        self.max_usage = max_usage
        self._nvml = nvml
        self.message = ""
        self.name = "cpu"

    def initialize(self) -> None:
        self.name, self.message = self._pick()
        if self.message and self.controller is not None and hasattr(self.controller, "notice"):
            self.controller.notice(self.message)

    @property
    def device(self) -> Any:
        """The chosen `torch.device`."""
        import torch

        return torch.device(self.name)

    @property
    def is_cuda(self) -> bool:
        return self.name.startswith("cuda")

    def get_state(self) -> dict[str, Any]:
        return {"device": self.name, "requested": self.requested}

    def cleanup(self) -> None:
        if self.is_cuda:
            import torch

            torch.cuda.empty_cache()

    def _pick(self) -> tuple[str, str]:
        import torch

        cuda = torch.cuda.is_available()
        if self.requested == "cpu":
            return "cpu", ""
        if not cuda:
            return "cpu", f"no CUDA device available (torch {torch.__version__}); using the CPU"
        local_rank = os.environ.get("LOCAL_RANK")
        if self.requested != "auto":
            return self.requested, ""
        if local_rank is not None:  # one process per GPU under torch.distributed
            return f"cuda:{int(local_rank)}", ""
        try:
            gpus = query_gpus(self._nvml or import_nvml())
        except Exception as exc:  # no NVML library, driver mismatch, ...
            return "cuda:0", f"NVML unavailable ({exc}); using cuda:0 without checking its memory"
        candidates = visible(gpus, os.environ.get("CUDA_VISIBLE_DEVICES"))
        if not candidates:
            return "cpu", "CUDA_VISIBLE_DEVICES hides every GPU; using the CPU"
        return f"cuda:{choose(candidates, self.max_usage)}", ""


__all__ = ["Device", "GpuInfo", "choose", "query_gpus", "visible"]
