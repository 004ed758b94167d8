"""`tipi runs`' table: a row per run, a column per metric, as many metric columns as fit the
terminal (all of them in a pipe) so that no cell wraps; `--metrics` picks them."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from rich.console import Console, Group, RenderableType
from rich.table import Table
from rich.text import Text

from tipi.cli.runs_view import (
    MAX_METRICS,
    _commit,
    _params,
    _pipeline,
    _ran,
    _spread,
    _status,
    _value,
    key_metrics,
    when,
)
from tipi.redact import printable
from tipi.report.groups import instance_key
from tipi.report.width import WIDE
from tipi.runs.record import RunRecord

FIXED = ("id", "pipeline", "when", "status", "commit", "ran", "params changed")
DROPPED = ("commit", "ran", "when")  # when a terminal is too narrow even for the fixed columns


def runs_table(
    records: Sequence[RunRecord],
    previous: dict[str, RunRecord | None],
    console: Console | None = None,
    metrics: Sequence[str] = (),
) -> RenderableType:
    """id, when, status, commit, what ran, params changed since the pipeline's run before,
    then a column per metric (the pipeline too when the runs are of several, or of sweep
    variants). `metrics`: the names or patterns (`evaluate.*`, `accuracy`) to show; by
    default the key ones first (KEY_WORDS), as many as fit `console`'s width, so that no
    cell wraps or is cut (in a narrow terminal commit, when and ran go first); a line below
    says what was left out and how to see it."""
    from tipi.runs.diff import changed_since

    several = len({r.pipeline for r in records}) > 1 or any(r.variant for r in records)
    cells: dict[str, list[Any]] = {name: [] for name in FIXED if name != "pipeline" or several}
    for record in records:
        changes = changed_since(previous.get(record.id), record)
        row = {
            "id": Text(printable(record.id), style="cyan"),
            "pipeline": _pipeline(record),
            "when": when(record.started),
            "status": _status(record),
            "commit": _commit(record),
            "ran": _ran(record),
            "params changed": _params(changes, previous.get(record.id) is None),
        }
        for name, column in cells.items():
            column.append(row[name])
    values = [_by_step(record.metrics()) for record in records]
    names = metric_columns(records, values, metrics)
    headers = _headers(names)
    for name in names:
        cells[headers[name]] = [
            Text(_spread(metric[name]) if name in metric else _value(None)) for metric in values
        ]
    fixed = len(cells) - len(names)
    kept = _fitting(cells, fixed, console, bool(metrics)) if console else list(cells)
    table = Table(header_style="bold", box=None, pad_edge=False)
    for column in kept:
        right = column not in FIXED
        table.add_column(column, no_wrap=True, justify="right" if right else "left")
    for index in range(len(records)):
        table.add_row(*(cells[column][index] for column in kept))
    dropped = [column for column in cells if column not in kept]
    left = [column for column in dropped if column not in FIXED]
    if not dropped:
        return table
    width = console.width if console is not None else 0
    parts = []
    if left:
        parts.append(f"{len(left)} more metric{'s' if len(left) > 1 else ''}")
    parts += [column for column in dropped if column in FIXED]
    # A grid folds the note at words within the width, where a plain line would run on.
    note = Table.grid()
    note.add_column(overflow="fold")
    note.add_row(
        Text(
            f"… not shown in {width} columns: {', '.join(parts)} (--metrics NAME,… picks "
            "metrics: a name, step.name or a pattern such as 'evaluate.*'; --json has all)",
            style="yellow",
        )
    )
    return Group(table, note)


def _by_step(metrics: dict[str, Any]) -> dict[str, list[Any]]:
    """A step matrix's metric is one column, `evaluate.accuracy`, whatever the number of its
    instances in each run: its instances' values (shown lowest…highest)."""
    out: dict[str, list[Any]] = {}
    for key, value in metrics.items():
        found = instance_key(key)
        out.setdefault(f"{found[0]}.{found[1]}" if found else key, []).append(value)
    return out


def metric_columns(
    records: Sequence[RunRecord], values: Sequence[dict[str, Any]], chosen: Sequence[str] = ()
) -> list[str]:
    """The metrics' `step.key` names, key ones first (as key_metrics ranks them); with
    `chosen`, those that match one of its names or patterns, in its order."""
    from fnmatch import fnmatchcase

    every: dict[str, float] = {}
    for metric in values:
        every.update(dict.fromkeys(metric, 0.0))
    ranked = [name for name, _ in key_metrics(records[0], len(every), every)] if records else []
    if not chosen:
        return ranked
    picked: list[str] = []
    for pattern in chosen:
        for name in ranked:
            if name not in picked and (
                fnmatchcase(name, pattern) or fnmatchcase(name.split(".", 1)[-1], pattern)
            ):
                picked.append(name)
    return picked


def _fitting(
    cells: dict[str, list[Any]], fixed: int, console: Console, chosen: bool = False
) -> list[str]:
    """The columns that fit the console's width: the fixed ones, less those DROPPED first
    where they leave no room for the first MAX_METRICS metrics, then metrics in order while
    they fit (every one when they were `chosen`)."""
    from rich.measure import Measurement

    def width(columns: list[str]) -> int:
        trial = Table(box=None, pad_edge=False)
        for column in columns:
            trial.add_column(column, no_wrap=True)
        for index in range(len(next(iter(cells.values())))):
            trial.add_row(*(cells[column][index] for column in columns))
        # Measured without the console's bound: the width the table wants, not the one it gets.
        return Measurement.get(console, console.options.update(max_width=WIDE), trial).maximum

    names = list(cells)
    kept, metrics = names[:fixed], names[fixed:]
    wanted = metrics if chosen else metrics[:MAX_METRICS]  # what runs are compared by
    for column in DROPPED:
        if column not in kept or width(kept + wanted) <= console.width:
            continue
        kept.remove(column)
    if chosen:
        return kept + metrics
    for column in metrics:
        if width([*kept, column]) > console.width:
            break
        kept.append(column)
    return kept


def _headers(names: list[str]) -> dict[str, str]:
    """Each metric's column title: its key alone where no other step has one so named."""
    keys = [name.split(".", 1)[-1] for name in names]
    return {
        name: printable(key if keys.count(key) == 1 and key not in FIXED else name)
        for name, key in zip(names, keys, strict=True)
    }
