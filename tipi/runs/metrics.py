"""Metrics tipi knows: the numbers in a step's declared metrics files (JSON, like DVC's
`metrics:`), flat.

A metrics file is a JSON map of numbers, flat or nested: ``{"accuracy": 0.97, "val":
{"loss": 0.1}}`` gives ``accuracy`` and ``val.loss``. Anything else in it (text, lists,
booleans, NaN and infinities) is left out. A file that is missing, too large or not JSON is
one warning, never a crash: the run is recorded without its numbers.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from tipi.runs.record import is_number

Warn = Callable[[str], None]
# A metrics file is a handful of numbers; a bigger one is not read (a mistake, a data file).
MAX_METRICS_BYTES = 16 << 20


def flatten(data: Any, prefix: str = "") -> dict[str, float]:
    """The numbers in `data` by their keys' path, joined with "." (`val.loss`)."""
    found: dict[str, float] = {}
    _flatten(data, prefix, found)
    return found


def _flatten(data: Any, prefix: str, into: dict[str, float]) -> None:
    if isinstance(data, dict):
        for key, value in data.items():
            _flatten(value, f"{prefix}.{key}" if prefix else str(key), into)
    elif is_number(data) and prefix:
        into[prefix] = data


def read_metrics(step: str, files: Mapping[str, Path], warn: Warn) -> dict[str, float]:
    """The numbers in `step`'s metrics files (name → path), flat, in the files' order.

    Keys of all files are merged; a key an earlier file already gave is kept from this file
    as `NAME.key` (NAME: the metrics file's name in the step's declaration).
    """
    metrics: dict[str, float] = {}
    for name, path in files.items():
        data = read_json(path, f"metrics file {path} of step '{step}'", warn)
        if data is None:
            continue
        for key, value in flatten(data).items():
            metrics[f"{name}.{key}" if key in metrics else key] = value
    return metrics


def read_json(path: Path, what: str, warn: Warn) -> Any | None:
    """The JSON map in `path`; None, with one warning naming `what`, when there is none."""
    try:
        with open(path, "rb") as handle:
            raw = handle.read(MAX_METRICS_BYTES + 1)
    except OSError as exc:
        warn(f"{what} cannot be read ({exc.strerror or exc}); its metrics are not recorded")
        return None
    if len(raw) > MAX_METRICS_BYTES:
        warn(f"{what} is larger than {MAX_METRICS_BYTES >> 20} MiB; its metrics are not recorded")
        return None
    try:
        data = json.loads(raw)
    except (ValueError, RecursionError) as exc:
        warn(f"{what} is not valid JSON ({exc}); its metrics are not recorded")
        return None
    if not isinstance(data, dict):
        warn(f"{what} holds no JSON object of numbers; its metrics are not recorded")
        return None
    return data
