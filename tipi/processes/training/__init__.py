"""Training (`type = "Train"`): the Train process and the modules it is made of.

train.py is the process; settings.py reads its params; build.py makes its phases' optimizers
and schedulers; loop.py and step.py run epochs and batches; checkpoints.py, ranks.py,
numerics.py, metrics.py, outputs.py and summary.py are what a run keeps, shares and reports.

`tipi.processes.training:Train` (and Callback, GateNotPassed, TrainingModule) are looked up
on first use: importing one of the package's modules (callbacks.py imports settings.py) must
not import train.py, which imports callbacks.py.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tipi.processes.training.train import Callback, GateNotPassed, Train, TrainingModule

__all__ = ["Callback", "GateNotPassed", "Train", "TrainingModule"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from tipi.processes.training import train

        return getattr(train, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
