"""Device: picks the CUDA device with the most free memory (NVML), or falls back to CPU."""

from __future__ import annotations

import os
from typing import Any

from tipi.errors import ConfigError
from tipi.execution.gpus import GpuInfo, agree_with_nvml, import_nvml, query_gpus, visible
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
        if self.requested == "cpu":
            return "cpu", ""
        agree_with_nvml()  # before CUDA starts in this process: NVML's index is then CUDA's
        import torch

        env = os.environ
        listed = env.get("CUDA_VISIBLE_DEVICES")
        if not torch.cuda.is_available():
            if listed is not None and not listed.strip():
                return "cpu", (
                    "CUDA_VISIBLE_DEVICES is empty; using the CPU (with -j, a step that "
                    "declares no resources.gpu gets no GPU when other steps reserve some)"
                )
            return "cpu", f"no CUDA device available (torch {torch.__version__}); using the CPU"
        if self.requested != "auto":
            return self.requested, ""
        local_rank = env.get("LOCAL_RANK")
        if local_rank is not None:  # one process per GPU under torch.distributed
            rank = int(local_rank)
            ranks = max(int(env.get("LOCAL_WORLD_SIZE", "1")), rank + 1)
            return rank_device(rank, ranks, torch.cuda.device_count())
        try:
            gpus = query_gpus(self._nvml or import_nvml())
        except Exception as exc:  # no NVML library, driver mismatch, ...
            return "cuda:0", f"NVML unavailable ({exc}); using cuda:0 without checking its memory"
        candidates = visible(gpus, listed, env.get("CUDA_DEVICE_ORDER"))
        if not candidates:
            if listed is not None and listed.strip():  # CUDA sees a device NVML cannot match
                return "cuda:0", (
                    f"NVML knows no device named by CUDA_VISIBLE_DEVICES={listed!r}; "
                    "using cuda:0 without checking its memory"
                )
            return "cpu", "CUDA_VISIBLE_DEVICES hides every GPU; using the CPU"
        return f"cuda:{choose(candidates, self.max_usage)}", ""


def rank_device(local_rank: int, ranks: int, count: int) -> tuple[str, str]:
    """A rank's device: its own GPU when every rank on the node has one (as NCCL needs, see
    rank.py), else the CPU for all, so no rank is sent to a cuda:N that does not exist."""
    if count >= ranks and local_rank < count:
        return f"cuda:{local_rank}", ""
    return "cpu", (
        f"{ranks} rank(s) on this node but {count} GPU(s) visible; rank {local_rank} uses the "
        f"CPU (give the step resources = {{ gpu = {ranks} }})"
    )


__all__ = ["Device", "GpuInfo", "choose", "query_gpus", "rank_device", "visible"]
