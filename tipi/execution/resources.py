"""Declared resources and the pool that hands them out without ever oversubscribing.

A step may declare ``resources = { gpu = 1, cpu = 2, mem_gb = 8 }``. The local scheduler
starts it only when that much is free; GPUs are whole devices (or MIG instances), each given
to one step at a time through ``CUDA_VISIBLE_DEVICES``, the free ones with the most free
memory first. In a pipeline where some step declares GPUs, a step that declares none gets
none.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from tipi.errors import ConfigError
from tipi.execution.gpus import GpuInfo, detect_gpus


@dataclass(frozen=True)
class Resources:
    """What one step needs while it runs (cpu cores, memory in GiB, whole GPUs).

    Undeclared means none: then only ``-j`` limits how many steps run at once.
    """

    cpu: float = 0.0
    mem_gb: float = 0.0
    gpu: int = 0

    @classmethod
    def of(cls, declared: Mapping[str, float]) -> Resources:
        return cls(
            cpu=float(declared.get("cpu", 0.0)),
            mem_gb=float(declared.get("mem_gb", 0.0)),
            gpu=int(declared.get("gpu", 0)),
        )


@dataclass
class Inventory:
    """What the machine offers. `query_gpus` is asked again at each GPU assignment, so the
    choice follows free memory as it is now; tests pass a fake one."""

    cpu: float
    mem_gb: float
    gpus: Sequence[str] = ()  # as CUDA_VISIBLE_DEVICES names them (GpuInfo.ident)
    query_gpus: Callable[[], list[GpuInfo]] = field(default=lambda: [])

    @classmethod
    def detect(cls) -> Inventory:
        """This machine: its cores, its memory and the GPUs NVML shows (none without it)."""
        gpus = detect_gpus()
        return cls(
            cpu=float(os.cpu_count() or 1),
            mem_gb=_memory_gb(),
            gpus=[g.ident for g in gpus],
            query_gpus=detect_gpus,
        )

    @classmethod
    def fake(cls, cpu: float, mem_gb: float, gpus: Sequence[GpuInfo]) -> Inventory:
        """A fixed inventory (tests, or a user who wants to lend tipi part of a machine)."""
        return cls(cpu, mem_gb, [g.ident for g in gpus], lambda: list(gpus))


class ResourcePool:
    """Hands out resources; `take` returns None when the step must wait for others to end."""

    def __init__(self, inventory: Inventory, gpu_steps: bool = False) -> None:
        """`gpu_steps`: some step of the pipeline declares GPUs (see `devices`)."""
        self.inventory = inventory
        self.cpu = inventory.cpu
        self.mem_gb = inventory.mem_gb
        self.free_gpus = list(inventory.gpus)
        self.gpu_steps = gpu_steps

    def check(self, step: str, need: Resources) -> None:
        """Refuse, before anything runs, a step that could never fit on this machine.

        GPUs and memory are strict; cores are capped at the machine's (as Snakemake does with
        threads), so a pipeline written on a big machine still runs on a laptop or in CI.
        """
        inv = self.inventory
        for what, wanted, total in (
            ("gpu", need.gpu, len(inv.gpus)),
            ("mem_gb", need.mem_gb, inv.mem_gb),
        ):
            if wanted > total:
                raise ConfigError(
                    f"step '{step}' needs {what} = {wanted:g} but this machine has {total:g}",
                    hint="lower the step's resources, or run it with --executor dask on a "
                    "cluster that has them",
                )

    def take(self, need: Resources) -> list[str] | None:
        """Reserve `need`; the GPUs given (CUDA_VISIBLE_DEVICES entries), or None when it
        does not fit."""
        if need.gpu > len(self.free_gpus) or need.mem_gb > self.mem_gb + 1e-9:
            return None
        cpu = min(need.cpu, self.inventory.cpu)
        if cpu > self.cpu + 1e-9:
            return None
        gpus = self._choose(need.gpu)
        self.cpu -= cpu
        self.mem_gb -= need.mem_gb
        for index in gpus:
            self.free_gpus.remove(index)
        return gpus

    def devices(self, gpus: Sequence[str]) -> str | None:
        """CUDA_VISIBLE_DEVICES for a step given `gpus`, or None to leave it as it is.

        A step that declares no GPU gets none ("") when other steps of the pipeline reserve
        GPUs: otherwise its Device would pick the freest card, which may be the one just
        reserved (memory is used only once the step runs), or be reserved a moment later.
        Decided for the whole pipeline, so where a step runs depends neither on what else
        happens to be running nor on the targets of the make.
        """
        if gpus:
            return ",".join(gpus)
        return "" if self.gpu_steps and self.inventory.gpus else None

    def give_back(self, need: Resources, gpus: Sequence[str]) -> None:
        self.cpu += min(need.cpu, self.inventory.cpu)
        self.mem_gb += need.mem_gb
        self.free_gpus.extend(gpus)

    def _choose(self, count: int) -> list[str]:
        if count == 0:
            return []
        try:
            free = {g.ident: g.free for g in self.inventory.query_gpus()}
        except Exception:  # NVML went away: any free device will do
            free = {}
        ranked = sorted(self.free_gpus, key=lambda ident: -free.get(ident, 0))
        order = {ident: i for i, ident in enumerate(self.inventory.gpus)}
        return sorted(ranked[:count], key=order.__getitem__)  # as the machine lists them


def _memory_gb() -> float:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    except (ValueError, OSError, AttributeError):
        return float("inf")
