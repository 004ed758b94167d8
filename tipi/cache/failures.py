"""The steps that failed in their last run, with the error, for `status`, `graph` and `report`.

Stored as ``pipelines/<name>/failures.msgpack`` (a versioned msgpack document): step name →
{"error": str, "at": seconds since the epoch, "seconds": float}. A step leaves it when it next
succeeds.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from tipi.cache.store import read_document, write_document

KIND = "failures"


def load_failures(path: Path, warn: Callable[[str], None]) -> dict[str, dict[str, Any]]:
    data = read_document(path, KIND, warn)
    return data if isinstance(data, dict) else {}


def update_failures(
    path: Path,
    failed: Iterable[tuple[str, str, float, float]],
    succeeded: Iterable[str],
    warn: Callable[[str], None],
) -> None:
    """Record (step, error, at, seconds) failures and forget steps that succeeded."""
    current = load_failures(path, warn)
    before = dict(current)
    for step in succeeded:
        current.pop(step, None)
    for step, error, at, seconds in failed:
        current[step] = {"error": error, "at": at, "seconds": seconds}
    if current != before:
        write_document(path, KIND, current)
