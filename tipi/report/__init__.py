"""Reporter events (step started, skipped with reasons, failed...) for people or for tests.

The names below are imported from their modules on first use (PEP 562), so that importing
a module of this package (lines.py, by the no-op fast path) imports neither Rich nor the
others.
"""

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing
if TYPE_CHECKING:
    from tipi.report.events import ListReporter, NullReporter, Reporter, RunSummary, StepResult
    from tipi.report.rich_reporter import RichReporter, WarningsReporter

_EXPORTS = {
    "ListReporter": "tipi.report.events",
    "NullReporter": "tipi.report.events",
    "Reporter": "tipi.report.events",
    "RunSummary": "tipi.report.events",
    "StepResult": "tipi.report.events",
    "RichReporter": "tipi.report.rich_reporter",
    "WarningsReporter": "tipi.report.rich_reporter",
}


def __getattr__(name: str) -> object:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'tipi.report' has no attribute '{name}'")
    from importlib import import_module

    value = getattr(import_module(module), name)
    globals()[name] = value  # later lookups find it directly
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_EXPORTS})


__all__ = [
    "ListReporter",
    "NullReporter",
    "Reporter",
    "RichReporter",
    "RunSummary",
    "StepResult",
    "WarningsReporter",
]
