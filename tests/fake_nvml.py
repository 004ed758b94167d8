"""A fake pynvml over a fixed inventory: whole GPUs, UUIDs and MIG instances, real NVML errors."""

from __future__ import annotations

from dataclasses import dataclass, field
from types import SimpleNamespace

import pynvml

GiB = 2**30


@dataclass
class FakeMig:
    """A MIG instance: GPU instance and compute instance ids, memory, UUID."""

    gi: int
    ci: int
    total: int
    used: int
    uuid: str


@dataclass
class FakeGpu:
    name: str
    total: int
    used: int
    uuid: str = ""
    mig: list[FakeMig] | None = None  # None: no MIG support; a list: MIG mode on
    slots: int = 7  # nvmlDeviceGetMaxMigDeviceCount


@dataclass
class FakeNvml:
    """The pynvml calls tipi makes, answered from `gpus`; handles are tuples."""

    gpus: list[FakeGpu]
    open: bool = False
    calls: list[str] = field(default_factory=list)

    def nvmlInit(self) -> None:
        self.open = True

    def nvmlShutdown(self) -> None:
        self.open = False

    def nvmlDeviceGetCount(self) -> int:
        return len(self.gpus)

    def nvmlDeviceGetHandleByIndex(self, index: int) -> tuple[int]:
        return (index,)

    def _get(self, handle: tuple[int, ...]) -> FakeGpu | FakeMig:
        gpu = self.gpus[handle[0]]
        if len(handle) == 1:
            return gpu
        assert gpu.mig is not None
        return gpu.mig[handle[1]]

    def nvmlDeviceGetName(self, handle: tuple[int, ...]) -> bytes:
        gpu = self.gpus[handle[0]]
        return (gpu.name + (" MIG 1g.5gb" if len(handle) > 1 else "")).encode()

    def nvmlDeviceGetMemoryInfo(self, handle: tuple[int, ...]) -> SimpleNamespace:
        found = self._get(handle)
        return SimpleNamespace(total=found.total, used=found.used, free=found.total - found.used)

    def nvmlDeviceGetUUID(self, handle: tuple[int, ...]) -> str:
        return self._get(handle).uuid

    def nvmlDeviceGetMigMode(self, handle: tuple[int, ...]) -> list[int]:
        gpu = self.gpus[handle[0]]
        if gpu.mig is None:
            raise pynvml.NVMLError(pynvml.NVML_ERROR_NOT_SUPPORTED)
        return [pynvml.NVML_DEVICE_MIG_ENABLE] * 2

    def nvmlDeviceGetMaxMigDeviceCount(self, handle: tuple[int, ...]) -> int:
        return self.gpus[handle[0]].slots

    def nvmlDeviceGetMigDeviceHandleByIndex(self, handle: tuple[int, ...], slot: int) -> tuple:
        mig = self.gpus[handle[0]].mig or []
        if slot >= len(mig):
            raise pynvml.NVMLError(pynvml.NVML_ERROR_NOT_FOUND)
        return (handle[0], slot)

    def nvmlDeviceGetGpuInstanceId(self, handle: tuple[int, int]) -> int:
        found = self._get(handle)
        assert isinstance(found, FakeMig)
        return found.gi

    def nvmlDeviceGetComputeInstanceId(self, handle: tuple[int, int]) -> int:
        found = self._get(handle)
        assert isinstance(found, FakeMig)
        return found.ci


UUIDS = [
    "GPU-8f3c1a2b-0000-4000-8000-000000000000",
    "GPU-8f3d5e6f-1111-4111-8111-111111111111",
    "GPU-2b7e9c0d-2222-4222-8222-222222222222",
    "GPU-c4a1f0e9-3333-4333-8333-333333333333",
]


def four_gpus(free_gib: tuple[float, ...] = (10, 35, 15, 20)) -> FakeNvml:
    """Four 40 GiB GPUs, with UUIDs, free memory as given."""
    return FakeNvml(
        [
            FakeGpu("A100", 40 * GiB, int((40 - free) * GiB), uuid)
            for free, uuid in zip(free_gib, UUIDS, strict=True)
        ]
    )


MIG_PARENT = "GPU-5d1e0a00-4444-4444-8444-444444444444"
MIG_UUIDS = [
    "MIG-0b0fa0a1-5555-5555-8555-555555555555",
    "MIG-91c3d2e4-6666-5666-8666-666666666666",
]


def mig_machine() -> FakeNvml:
    """GPU 0 in MIG mode with two 1g.5gb instances (the second freer), GPU 1 a whole T4."""
    return FakeNvml(
        [
            FakeGpu(
                "A100",
                40 * GiB,
                0,
                MIG_PARENT,
                mig=[
                    FakeMig(1, 0, 5 * GiB, 4 * GiB, MIG_UUIDS[0]),
                    FakeMig(2, 0, 5 * GiB, 1 * GiB, MIG_UUIDS[1]),
                ],
            ),
            FakeGpu("T4", 16 * GiB, 1 * GiB, UUIDS[3]),
        ]
    )
