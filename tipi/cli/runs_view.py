"""How `tipi runs`, `tipi diff` and `tipi show` render runs: Rich tables, and JSON for scripts.

A run file is data a step (its metrics file, its error) or anyone with the folder wrote: every
string of it is shown with its control characters escaped (`printable`), so that a metric
named with an escape sequence cannot write the clipboard or retitle the terminal, and a
failure's text with its secrets hidden.
"""

from __future__ import annotations

import datetime
import json
import time
from collections.abc import Callable, Iterable, Sequence
from itertools import islice
from typing import Any

from rich.console import Group, RenderableType
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from tipi.config.instances import group_instances
from tipi.redact import hide_secrets, printable, printable_json, secret_hider
from tipi.report.groups import base_name, fold_keyed, fold_names
from tipi.runs.diff import Change, RunDiff, fold_changes
from tipi.runs.record import RunRecord

STATUS_STYLES = {
    "ok": "green",
    "failed": "red",
    "interrupted": "yellow",
    "unfinished": "yellow",
    "running": "cyan",
}
# Metric names that say how good a run is: shown first in the table.
KEY_WORDS = ("accuracy", "f1", "score", "auc", "loss", "error", "precision", "recall", "mse")
MAX_NAMES = 4
MAX_PARAMS = 3
MAX_METRICS = 3


def to_json(record: RunRecord) -> dict[str, Any]:
    """A run for scripts: `params` and `metrics` flat (`step.param`, `step.key`)."""
    return {
        "id": record.id,
        "pipeline": record.pipeline,
        "variant": record.variant,
        "status": record.shown_status,
        "started": iso(record.started),
        "ended": iso(record.ended),
        "seconds": _seconds(record),
        "command": record.command,
        "commit": record.commit,
        "dirty": record.dirty,
        "ran": record.ran,
        "restored": record.restored,
        "failed": record.with_outcome("failed"),
        "steps": {name: step.outcome for name, step in record.steps.items()},
        "params": record.params(),
        "permanences": record.permanence_params(),
        "metrics": record.metrics(),
        "logged": record.logged(),
    }


def dumps(data: Any) -> str:
    """JSON for scripts, which may print it: secrets of free text hidden, and characters that
    are not printable (C1 controls like \\x9b, bidi overrides) written as `\\uXXXX` escapes,
    as JSON already writes ESC and the other C0 controls."""
    hidden = _hidden(data, secret_hider())
    return printable_json(json.dumps(hidden, indent=2, ensure_ascii=False))


def _hidden(data: Any, hide: Callable[[str], str]) -> Any:
    if isinstance(data, dict):
        return {hide(str(k)): _hidden(v, hide) for k, v in data.items()}
    if isinstance(data, list | tuple):
        return [_hidden(v, hide) for v in data]
    return hide(data) if isinstance(data, str) else data


def iso(seconds: float | None) -> str | None:
    """UTC ISO 8601 (`2026-03-01T14:22:33+00:00`) of a time, for scripts."""
    if seconds is None:
        return None
    return datetime.datetime.fromtimestamp(seconds, datetime.UTC).isoformat(timespec="seconds")


def runs_table(records: Sequence[RunRecord], previous: dict[str, RunRecord | None]) -> Table:
    """id, when, status, commit, what ran, params changed since the pipeline's run before,
    key metrics; the pipeline too when the runs are of several (or of sweep variants)."""
    from tipi.runs.diff import changed_since

    several = len({r.pipeline for r in records}) > 1 or any(r.variant for r in records)
    table = Table(header_style="bold", box=None, pad_edge=False)
    columns = ["id", *(["pipeline"] if several else []), "when", "status", "commit", "ran"]
    widths = {"metrics": 28, "params changed": 16, "ran": 9}  # what runs are compared by
    for column in [*columns, "params changed", "metrics"]:
        short = column in ("id", "when", "status", "commit")
        table.add_column(column, overflow="fold", no_wrap=short, min_width=widths.get(column))
    for record in records:
        changes = changed_since(previous.get(record.id), record)
        table.add_row(
            Text(printable(record.id), style="cyan"),
            *([_pipeline(record)] if several else []),
            when(record.started),
            _status(record),
            _commit(record),
            _ran(record),
            _params(changes, previous.get(record.id) is None),
            _metrics(record),
        )
    return table


def diff_view(diff: RunDiff, limit: int = 0) -> RenderableType:
    """Two tables, params and metrics: key, old, new, and the change of numbers; with a
    `limit`, each table's first `limit` rows and a line saying how many more there are."""
    old, new = diff.old, diff.new
    title = Text.from_markup(
        f"[cyan]{escape(printable(old.id))}[/] ({escape(printable(old.pipeline))}) → "
        f"[cyan]{escape(printable(new.id))}[/] ({escape(printable(new.pipeline))})"
    )
    parts: list[RenderableType] = [title]
    if not diff.params and not diff.metrics:
        parts.append(Text("no param or metric differs"))
    for label, changes in (("param", fold_changes(diff.params)), ("metric", diff.metrics)):
        if changes:
            parts.append(_changes_table(label, changes[: limit or None]))
            if limit and len(changes) > limit:
                parts.append(_hidden_line(len(changes) - limit, f"{label}s that differ", limit))
    return Group(*parts)


def _hidden_line(hidden: int, what: str, limit: int) -> Text:
    """What a `limit` left out, and how to see it: a terminal cannot show 20,000 rows, but
    nothing is dropped without saying so."""
    return Text(
        f"… {hidden:,} more {what} not shown (only the first {limit:,} are): "
        "--all shows every one, --limit N the first N, --json all as JSON",
        style="yellow",
    )


def outcome_counts(record: RunRecord) -> str:
    """How many steps ended each way: `18,000 ran, 2,000 up to date`, in OUTCOMES order."""
    from tipi.runs.record import OUTCOMES

    counts: dict[str | None, int] = {}
    for step in record.steps.values():
        counts[step.outcome] = counts.get(step.outcome, 0) + 1
    order = [*OUTCOMES, None, *(o for o in counts if o not in OUTCOMES and o is not None)]
    return ", ".join(
        f"{counts[o]:,} {printable(o or 'up to date')}" for o in order if counts.get(o)
    )


def show_view(record: RunRecord, limit: int = 0) -> RenderableType:
    """One run whole: when, how it ended, where (command, commit), then each step; with a
    `limit` below the run's steps, how many steps ended each way, then the first `limit`
    steps and a line saying how many more there are."""
    head = Table.grid(padding=(0, 2))
    head.add_column(style="bold")
    head.add_column(overflow="fold")
    head.add_row("run", Text(printable(record.id), style="cyan"))
    head.add_row("pipeline", _pipeline(record))
    head.add_row("status", _status(record))
    head.add_row("started", when(record.started, seconds=True))
    head.add_row("ended", when(record.ended, seconds=True) if record.ended else "-")
    if (seconds := _seconds(record)) is not None:
        head.add_row("took", f"{seconds:.1f}s")
    head.add_row("command", Text(printable(" ".join(record.command))))
    head.add_row("commit", Text(_commit(record, full=True)))
    hidden = len(record.steps) - limit if limit else 0
    if hidden > 0:
        head.add_row("steps", f"{len(record.steps):,}: {outcome_counts(record)}")
        shown = set(islice(record.steps, limit))
        for outcome in ("failed", "interrupted"):  # what a user looks for first, named
            names = [n for n in record.with_outcome(outcome) if n not in shown]
            if names:
                head.add_row(f"{outcome} (not shown)", Text(_names(names).replace("\n", ", ")))
    parts: list[RenderableType] = [head]
    groups = {
        base: names for base, names in group_instances(record.steps).items() if base not in names
    }
    for name, step in islice(record.steps.items(), limit or None):
        base = base_name(name)
        if len(groups.get(base, ())) > 1 and groups[base][0] == name:
            parts += [Text(""), _group_line(record, base, groups.pop(base))]
        parts.append(Text(""))
        outcome = printable(step.outcome or "up to date")
        took = f" in {step.seconds:.2f}s" if step.seconds is not None else ""
        line = Text(printable(name), style="bold")
        line.append(f" ({printable(step.type)}): {outcome}{took}")
        parts.append(line)
        if step.error:  # hidden again: a run recorded before, or a variable set since
            parts.append(Text(f"  error: {printable(hide_secrets(step.error))}", style="red"))
        rows = _step_rows(record, name)
        if rows.row_count:
            parts.append(rows)
    if hidden > 0:
        parts += [Text(""), _hidden_line(hidden, "steps", limit)]
    return Group(*parts)


def _group_line(record: RunRecord, base: str, names: list[str]) -> Text:
    """A step matrix's heading in `show`: how many instances and how each ended."""
    took = sum(record.steps[n].seconds or 0.0 for n in names)
    line = Text(f"{printable(base)} ×{len(names)}", style="bold underline")
    ended = outcome_counts(RunRecord("", "", 0.0, steps={n: record.steps[n] for n in names}))
    return line.append(f" ({printable(record.steps[names[0]].type)}): {ended}, {took:.2f}s")


def _step_rows(record: RunRecord, name: str) -> Table:
    from tipi.runs.record import flat_params

    step = record.steps[name]
    rows = Table.grid(padding=(0, 2))
    rows.add_column(style="dim")
    rows.add_column()
    rows.add_column(overflow="fold")
    sections: list[tuple[str, Iterable[tuple[str, Any]]]] = [
        ("param", flat_params(name, step.params).items()),
        (
            "permanence",
            (
                kv
                for perm, config in sorted(step.permanences.items())
                if isinstance(config, dict)
                for kv in flat_params(perm, config.get("params") or {}).items()
            ),
        ),
        ("metric", ((f"{name}.{k}", v) for k, v in step.metrics.items())),
        ("logged", ((f"{name}.{k}", v) for k, v in step.logged.items())),
    ]
    for label, items in sections:
        for key, value in items:
            rows.add_row(f"  {label}", Text(printable(key)), Text(_value(value)))
    return rows


def _changes_table(label: str, changes: list[Change]) -> Table:
    table = Table(header_style="bold", box=None, pad_edge=False)
    for column in (label, "old", "new", "change"):
        table.add_column(column, overflow="fold", justify="left" if column == label else "right")
    for change in changes:
        table.add_row(
            Text(printable(change.key)),
            Text(_value(change.old), style="red"),
            Text(_value(change.new), style="green"),
            Text(_delta(change)),
        )
    return table


def when(moment: float, seconds: bool = False) -> str:
    """A moment in local time: date, hours and minutes (and `seconds`)."""
    return time.strftime("%Y-%m-%d %H:%M" + (":%S" if seconds else ""), time.localtime(moment))


def _seconds(record: RunRecord) -> float | None:
    return round(record.ended - record.started, 3) if record.ended is not None else None


def _pipeline(record: RunRecord) -> Text:
    return Text(printable(record.pipeline + (f" @{record.variant}" if record.variant else "")))


def _status(record: RunRecord) -> Text:
    status = record.shown_status
    return Text(printable(status), style=STATUS_STYLES.get(status, ""))


def _commit(record: RunRecord, full: bool = False) -> str:
    if record.commit is None:
        return "-" if record.dirty is None else ("(no commit) dirty" if record.dirty else "-")
    commit = printable(record.commit if full else record.commit[:8])
    if record.dirty:
        return f"{commit} (dirty)" if full else f"{commit}*"
    return commit


def _names(names: list[str]) -> str:
    more = f" +{len(names) - MAX_NAMES}" if len(names) > MAX_NAMES else ""
    return "\n".join(printable(n) for n in names[:MAX_NAMES]) + more


def _ran(record: RunRecord) -> Text:
    """What ran, was restored, failed: a step matrix's instances as one `train ×6`."""
    text = Text(_names(fold_names(record.ran)))
    for outcome, style in (("restored", "blue"), ("failed", "red"), ("interrupted", "yellow")):
        names = fold_names(record.with_outcome(outcome))
        if names:
            text.append(("\n" if text else "") + f"{outcome}: {_names(names)}", style=style)
    return text or Text("-")


def _params(changes: list[Change], first: bool) -> Text:
    if first:
        return Text("-", style="dim")
    shown = [f"{printable(c.key)} {_value(c.old)}→{_value(c.new)}" for c in changes[:MAX_PARAMS]]
    if len(changes) > MAX_PARAMS:
        shown.append(f"+{len(changes) - MAX_PARAMS} more")
    return Text("\n".join(shown)) if shown else Text("same", style="dim")


def key_metrics(
    record: RunRecord, limit: int = MAX_METRICS, metrics: dict[str, float] | None = None
) -> list[tuple[str, float]]:
    """The run's metrics (`metrics`: record.metrics() already made) that say most: named like
    a score or a loss, in the order of KEY_WORDS (accuracy before loss), a later step's before
    an earlier one's."""
    items = list((record.metrics() if metrics is None else metrics).items())
    order = {name: i for i, name in enumerate(record.steps)}  # not list.index: O(steps) each

    def rank(item: tuple[str, float]) -> tuple[int, int]:
        name = item[0].rsplit(".", 1)[-1]
        word = next((i for i, w in enumerate(KEY_WORDS) if w in name), len(KEY_WORDS))
        step = item[0].split(".", 1)[0]
        return word, -order.get(step, 0)

    return sorted(items, key=rank)[:limit]


def _metrics(record: RunRecord) -> Text:
    """The key metrics; a step matrix's as one line each, its instances' lowest…highest."""
    folded = fold_keyed(record.metrics())
    first = {key: values[0] for key, values in folded.items()}
    shown = [f"{printable(k)} {_spread(folded[k])}" for k, _ in key_metrics(record, metrics=first)]
    more = len(folded) - len(shown)
    if more > 0:
        shown.append(f"+{more} more")
    return Text("\n".join(shown)) if shown else Text("-", style="dim")


def _spread(values: list[Any]) -> str:
    numbers = [v for v in values if isinstance(v, int | float)]
    if len(values) == 1 or len(numbers) != len(values):
        return _value(values[0]) if len(values) == 1 else f"{_value(values[0])}…"
    low, high = min(numbers), max(numbers)
    return _value(low) if low == high else f"{_value(low)}…{_value(high)}"


def _value(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, str):
        return printable(value)
    return printable(json.dumps(value, ensure_ascii=False))


def _delta(change: Change) -> str:
    delta = change.delta
    if delta is None:
        return ""
    text = f"{delta:+.4g}"
    if change.old:
        text += f" ({delta / abs(change.old):+.1%})"
    return text
