"""The steps that failed in their last run, with the error, for `status`, `graph` and `report`.

Stored as ``pipelines/<name>/failures.msgpack`` (a versioned msgpack document): step name →
{"error": str, "at": seconds since the epoch, "seconds": float}. A step leaves it when it next
succeeds. The error is kept with its secrets hidden (tipi.redact.hide_secrets), and hidden again
when read: a file written before, or with a variable set since, shows none either.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from tipi.redact import hide_secrets
from tipi.state.statefile import fields_problem, map_problem, number_problem, text_problem
from tipi.state.store import read_document, read_document_flagged, write_document

KIND = "failures"


def load_failures(path: Path, warn: Callable[[str], None]) -> dict[str, dict[str, Any]]:
    failures = read_document(path, KIND, warn, _failures_problem) or {}
    return {step: {**f, "error": hide_secrets(f["error"])} for step, f in failures.items()}


def update_failures(
    path: Path,
    failed: Iterable[tuple[str, str, float, float]],
    succeeded: Iterable[str],
    warn: Callable[[str], None],
) -> None:
    """Record (step, error, at, seconds) failures and forget steps that succeeded."""
    current, broken = read_document_flagged(path, KIND, warn, _failures_problem)
    current = current or {}
    before = dict(current)
    for step in succeeded:
        current.pop(step, None)
    for step, error, at, seconds in failed:
        current[step] = {"error": error, "at": at, "seconds": seconds}
    # Every entry, not only the new ones: a file written before hid nothing.
    current = {step: {**f, "error": hide_secrets(f["error"])} for step, f in current.items()}
    if current != before or broken:
        write_document(path, KIND, current)


def _failures_problem(data: Any) -> str | None:
    return map_problem(data, lambda failure: fields_problem(failure, _FIELDS))


_FIELDS = {
    "error": (True, text_problem),
    "at": (True, number_problem),
    "seconds": (True, number_problem),
}
