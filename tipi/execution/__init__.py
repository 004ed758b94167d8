"""Executors run one step's process; staging keeps half-written outputs away from their paths."""

from tipi.execution.base import Executor
from tipi.execution.sequential import SequentialExecutor
from tipi.execution.types import Job, Result, Task

__all__ = ["Executor", "Job", "Result", "SequentialExecutor", "Task"]
