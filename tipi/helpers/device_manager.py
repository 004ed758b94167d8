"""get_device(): the best torch device; inside a pipeline, the pipeline's Device permanence."""

from __future__ import annotations

import sys
from typing import Any

from tipi import context
from tipi.permanences.device import Device

_standalone: Device | None = None


def get_device() -> Any:
    """A `torch.device`: the pipeline's Device in a running step, else picked once per
    process like the Device permanence (the CUDA device with the most free memory, or the
    CPU with one message)."""
    global _standalone
    run = context.current()
    if run is not None:
        device = run.find(Device)
        if device is not None:
            return device.device
    if _standalone is None:
        _standalone = Device()
        _standalone.initialize()
        if _standalone.message:
            sys.stderr.write(f"tipi: {_standalone.message}\n")
    return _standalone.device
