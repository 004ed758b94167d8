"""Training (`type = "Train"`): the Train process and the modules it is made of.

train.py is the process; settings.py reads its params; build.py makes its phases' optimizers
and schedulers; loop.py and step.py run epochs and batches; checkpoints.py, ranks.py,
numerics.py, metrics.py, outputs.py and summary.py are what a run keeps, shares and reports.
"""

from tipi.processes.training.train import Callback, GateNotPassed, Train, TrainingModule

__all__ = ["Callback", "GateNotPassed", "Train", "TrainingModule"]
