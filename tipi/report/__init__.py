"""Reporter events (step started, skipped with reasons, failed...) for people or for tests."""

from tipi.report.events import ListReporter, NullReporter, Reporter, RunSummary, StepResult
from tipi.report.rich_reporter import RichReporter, WarningsReporter

__all__ = [
    "ListReporter",
    "NullReporter",
    "Reporter",
    "RichReporter",
    "RunSummary",
    "StepResult",
    "WarningsReporter",
]
