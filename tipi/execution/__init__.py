"""Executors run one step's process; staging keeps half-written outputs away from their paths."""

from tipi.execution.base import Executor, Job, JobResult
from tipi.execution.sequential import SequentialExecutor

__all__ = ["Executor", "Job", "JobResult", "SequentialExecutor"]
