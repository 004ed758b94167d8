"""What GPUs this machine has, from NVML (pynvml): shared by Device and the scheduler."""

from __future__ import annotations

import os
import re
from collections.abc import MutableMapping
from dataclasses import dataclass, replace
from typing import Any

# CUDA numbers devices fastest first unless told otherwise; NVML (and nvidia-smi) by PCI bus.
# tipi picks devices by NVML index, so every process it runs must number them the same way.
PCI_ORDER = "PCI_BUS_ID"
MIG_ENABLED = 1  # pynvml.NVML_DEVICE_MIG_ENABLE
_ORDINAL = re.compile(r"\+?([0-9]+)")  # not str.isdigit(): "²" is a digit to it


@dataclass(frozen=True)
class GpuInfo:
    """One device CUDA can use, as NVML reports it: a whole GPU or a MIG instance.

    `index` is the NVML index of the GPU (of the parent GPU for a MIG instance); `label` is
    how CUDA_VISIBLE_DEVICES names it for a step (the user's own entry when they set the
    variable); `mig` is (parent GPU UUID, GPU instance, compute instance) for a MIG instance.
    """

    index: int
    name: str
    total: int
    used: int
    uuid: str = ""
    label: str = ""
    mig: tuple[str, int, int] | None = None

    @property
    def free(self) -> int:
        return self.total - self.used

    @property
    def usage(self) -> float:
        return self.used / self.total if self.total else 1.0

    @property
    def ident(self) -> str:
        """The CUDA_VISIBLE_DEVICES entry that names this device for a child process."""
        if self.label:
            return self.label
        return self.uuid if self.mig is not None and self.uuid else str(self.index)


def agree_with_nvml(env: MutableMapping[str, str] | None = None) -> None:
    """Number CUDA devices by PCI bus, as NVML does, unless the user chose an order.

    Takes effect only before CUDA initializes in the process that reads `env`.
    """
    (os.environ if env is None else env).setdefault("CUDA_DEVICE_ORDER", PCI_ORDER)


def query_gpus(nvml: Any) -> list[GpuInfo]:
    """Every device NVML sees (free memory is the device's, not this process's reservations).

    A GPU in MIG mode is not usable whole by CUDA: its MIG instances are listed instead.
    """
    nvml.nvmlInit()
    try:
        gpus: list[GpuInfo] = []
        for index in range(nvml.nvmlDeviceGetCount()):
            handle = nvml.nvmlDeviceGetHandleByIndex(index)
            whole = _describe(nvml, handle, index)
            if _mig_enabled(nvml, handle):
                gpus.extend(_mig_devices(nvml, handle, whole))
            else:
                gpus.append(whole)
        return gpus
    finally:
        nvml.nvmlShutdown()


def _describe(nvml: Any, handle: Any, index: int) -> GpuInfo:
    memory = nvml.nvmlDeviceGetMemoryInfo(handle)
    return GpuInfo(
        index,
        _text(nvml.nvmlDeviceGetName(handle)),
        memory.total,
        memory.used,
        uuid=_uuid(nvml, handle),
    )


def _uuid(nvml: Any, handle: Any) -> str:
    try:
        return _text(nvml.nvmlDeviceGetUUID(handle))
    except Exception:  # an NVML too old to say: the device is still usable by index
        return ""


def _mig_enabled(nvml: Any, handle: Any) -> bool:
    try:
        return int(nvml.nvmlDeviceGetMigMode(handle)[0]) == MIG_ENABLED
    except Exception:  # NotSupported on GPUs without MIG, or an NVML without the call
        return False


def _mig_devices(nvml: Any, handle: Any, parent: GpuInfo) -> list[GpuInfo]:
    found = []
    for slot in range(nvml.nvmlDeviceGetMaxMigDeviceCount(handle)):
        try:
            mig = nvml.nvmlDeviceGetMigDeviceHandleByIndex(handle, slot)
        except Exception:  # NVML_ERROR_NOT_FOUND: no instance in this slot
            continue
        info = _describe(nvml, mig, parent.index)
        instance = (
            parent.uuid,
            int(nvml.nvmlDeviceGetGpuInstanceId(mig)),
            int(nvml.nvmlDeviceGetComputeInstanceId(mig)),
        )
        found.append(replace(info, mig=instance))
    return found


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def visible(
    gpus: list[GpuInfo], cuda_visible_devices: str | None, device_order: str | None = None
) -> list[tuple[int, GpuInfo]]:
    """(logical CUDA index, device) pairs this process may use under CUDA_VISIBLE_DEVICES.

    Entries are read as CUDA reads them: an NVML index (ASCII digits), a GPU UUID
    (`GPU-8f3c...`, a unique prefix will do), a MIG instance (`MIG-<uuid>`, or
    `MIG-GPU-<uuid>/<gi>/<ci>`); CUDA stops at the first entry that names no device. Each
    device keeps the user's entry as its label.
    Without the variable, a whole GPU is named by its index, or by its UUID when the user set
    a CUDA_DEVICE_ORDER other than PCI_BUS_ID (then indexes may not be NVML's).
    """
    if cuda_visible_devices is None:
        by_uuid = device_order not in (None, PCI_ORDER)
        return [
            (logical, replace(g, label=g.uuid) if by_uuid and g.uuid else g)
            for logical, g in enumerate(gpus)
        ]
    chosen: list[tuple[int, GpuInfo]] = []
    for item in (x.strip() for x in cuda_visible_devices.split(",")):
        # An empty entry ("0,,1") names no device: CUDA stops there, as at any other.
        found = find(gpus, item)
        if found is None or found in [replace(g, label="") for _, g in chosen]:
            break  # CUDA stops at the first entry that names no (new) device
        chosen.append((len(chosen), replace(found, label=item)))
    return chosen


def find(gpus: list[GpuInfo], entry: str) -> GpuInfo | None:
    """The device a CUDA_VISIBLE_DEVICES entry names, or None (unknown or ambiguous)."""
    number = _ORDINAL.match(entry)
    if number:  # read as strtoul reads it: ASCII digits, the rest ignored ("1gpu2" is 1)
        # A GPU in MIG mode named by index: CUDA enumerates one of its instances.
        return next((g for g in gpus if g.index == int(number[1])), None)
    if entry.startswith("MIG-GPU-"):  # the pre-R470 form: MIG-GPU-<uuid>/<gi>/<ci>
        parent, _, rest = entry[len("MIG-") :].partition("/")
        wanted = [parent, *rest.split("/")]
        matches = [g for g in gpus if g.mig and [g.mig[0], str(g.mig[1]), str(g.mig[2])] == wanted]
    elif entry.startswith(("GPU-", "MIG-")):
        kind_is_mig = entry.startswith("MIG-")
        matches = [
            g for g in gpus if g.uuid.startswith(entry) and (g.mig is not None) == kind_is_mig
        ]
    else:
        return None
    return matches[0] if len(matches) == 1 else None


def import_nvml() -> Any:
    import pynvml

    return pynvml


def detect_gpus() -> list[GpuInfo]:
    """The devices this process may use (CUDA_VISIBLE_DEVICES applied); [] without NVML.

    Each keeps the name a child process must be given in CUDA_VISIBLE_DEVICES (`ident`).
    """
    try:
        gpus = query_gpus(import_nvml())
    except Exception:  # no NVML library, no driver: no GPU to schedule
        return []
    env = os.environ
    return [
        g for _, g in visible(gpus, env.get("CUDA_VISIBLE_DEVICES"), env.get("CUDA_DEVICE_ORDER"))
    ]
