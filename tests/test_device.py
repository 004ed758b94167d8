"""Device: CPU fallback here, and the multi-GPU choice with a fake NVML."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from tipi.errors import ConfigError
from tipi.permanences.device import Device, GpuInfo, choose, query_gpus, visible

GiB = 2**30


class FakeNvml:
    """The subset of pynvml that Device uses, over a fixed inventory."""

    def __init__(self, gpus: list[tuple[str, int, int]]) -> None:
        self.gpus = gpus
        self.open = False

    def nvmlInit(self) -> None:
        self.open = True

    def nvmlShutdown(self) -> None:
        self.open = False

    def nvmlDeviceGetCount(self) -> int:
        return len(self.gpus)

    def nvmlDeviceGetHandleByIndex(self, index: int) -> int:
        return index

    def nvmlDeviceGetName(self, handle: int) -> bytes:
        return self.gpus[handle][0].encode()

    def nvmlDeviceGetMemoryInfo(self, handle: int) -> SimpleNamespace:
        _, total, used = self.gpus[handle]
        return SimpleNamespace(total=total, used=used, free=total - used)


INVENTORY = [("A100", 40 * GiB, 30 * GiB), ("A100", 40 * GiB, 5 * GiB), ("T4", 16 * GiB, 1 * GiB)]


def test_without_cuda_it_falls_back_to_cpu_with_one_message():
    import torch

    device = Device()
    device.initialize()
    assert device.name == "cpu"
    assert device.device == torch.device("cpu")
    assert "no CUDA device available" in device.message
    device.cleanup()


def test_nvml_is_queried_for_device_memory_and_closed():
    nvml = FakeNvml(INVENTORY)
    gpus = query_gpus(nvml)
    assert [g.free // GiB for g in gpus] == [10, 35, 15]
    assert not nvml.open


def test_the_gpu_with_most_free_memory_wins():
    gpus = query_gpus(FakeNvml(INVENTORY))
    assert choose(visible(gpus, None), max_usage=0.9) == 1


def test_cuda_visible_devices_maps_physical_to_logical_indices():
    gpus = query_gpus(FakeNvml(INVENTORY))
    assert [(logical, g.index) for logical, g in visible(gpus, "2,0")] == [(0, 2), (1, 0)]
    # physical 2 (15 GiB free) beats physical 0 (10 GiB free); it is cuda:0 for this process
    assert choose(visible(gpus, "2,0"), max_usage=0.9) == 0
    assert visible(gpus, "") == []


def test_devices_above_max_usage_are_refused_with_a_clear_error():
    busy = [GpuInfo(0, "A100", 40 * GiB, 39 * GiB), GpuInfo(1, "T4", 16 * GiB, 15 * GiB)]
    with pytest.raises(ConfigError) as info:
        choose(list(enumerate(busy)), max_usage=0.8)
    message = str(info.value)
    assert "above max_usage 80%" in message
    assert "cuda:0 (A100) 98% used" in message and "cuda:1 (T4) 94% used" in message


def test_auto_uses_nvml_when_cuda_is_there(monkeypatch):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0,2")
    device = Device(nvml=FakeNvml(INVENTORY))
    device.initialize()
    assert device.name == "cuda:1"  # physical 2
    assert device.message == ""


def test_local_rank_wins_under_torch_distributed(monkeypatch):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.setenv("LOCAL_RANK", "1")
    device = Device(nvml=FakeNvml(INVENTORY))
    device.initialize()
    assert device.name == "cuda:1"


def test_broken_nvml_falls_back_to_cuda0_with_a_message(monkeypatch):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)

    class Broken(FakeNvml):
        def nvmlInit(self) -> None:
            raise RuntimeError("NVML Shared Library Not Found")

    device = Device(nvml=Broken([]))
    device.initialize()
    assert device.name == "cuda:0"
    assert "NVML unavailable" in device.message


def test_bad_settings_are_config_errors():
    with pytest.raises(ConfigError, match="device must be"):
        Device(device="tpu")
    with pytest.raises(ConfigError, match="max_usage"):
        Device(max_usage=1.5)


def test_real_nvml_without_a_driver_falls_back_with_a_message(monkeypatch):
    import pynvml
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)  # pretend CUDA, no driver
    device = Device(nvml=pynvml)
    device.initialize()
    assert device.name == "cuda:0"
    assert device.message.startswith("NVML unavailable")
