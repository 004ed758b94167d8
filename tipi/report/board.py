"""Board: the shared live display (live.py) as a tree of rows drawn with Rich.

Each row is a Rich task whose fields say where it goes: `parent` (a row id or None), `slot`
(its place among its siblings: a tqdm position, a name), `header` (a step's row: its name,
time and status, no bar), `kept` (finished, left on screen), `status`, and how to count it
(`unit`, `unit_scale`, `unit_divisor`, `colour`). An `eta` field that is callable gives the
row's remaining seconds itself (the make's overall bar, estimated by time).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    Progress,
    ProgressBar,
    ProgressColumn,
    Task,
    TaskID,
    TimeElapsedColumn,
)
from rich.table import Table
from rich.text import Text

from tipi.redact import printable
from tipi.report.meter import format_interval, format_sizeof

# One palette for every bar tipi draws.
PALETTE = {
    "description": "bold cyan",
    "bar": "cyan",
    "finished": "green",
    "pulse": "magenta",
    "status": "magenta",
    "dim": "dim",
}


class Board(Progress):
    """The rows of the live display, drawn depth first (see the module's docstring)."""

    def __init__(self, console: Console) -> None:
        self._screen = console  # Progress's console is its Live's, made after a first draw
        super().__init__(
            _Label(),
            _Bar(
                style=PALETTE["dim"],
                complete_style=PALETTE["bar"],
                finished_style=PALETTE["finished"],
                pulse_style=PALETTE["pulse"],
            ),
            _Count(),
            TimeElapsedColumn(),
            _Eta(),
            _Rate(),
            _Status(),
            console=console,
            transient=False,
        )
        self.steps: dict[str, TaskID] = {}

    def make_tasks_table(self, tasks: Iterable[Task]) -> Table:
        """The rows as a grid that never wraps a row onto a second line: in a narrow
        terminal the fields fold (FOLD), the bar shortens, and labels and status end in …"""
        shown = [task for task in tasks if task.visible]
        columns = list(self.columns)
        bar = next(c for c in columns if isinstance(c, _Bar))
        cells = {id(c): [c(t) for t in shown] for c in columns if c is not bar}
        needed = {
            key: max((Text.from_markup(x).cell_len if isinstance(x, str) else _len(x))
                     for x in values) if values else 0
            for key, values in cells.items()
        }  # fmt: skip
        plan = _fold(columns, bar, needed, self._screen.width)
        bar.bar_width = plan.pop(id(bar), BAR_WIDTH)
        cells[id(bar)] = [bar(t) for t in shown]
        kept = [c for c in columns if id(c) in plan or c is bar]
        table = Table.grid(padding=(0, 1))
        for column in kept:
            table.add_column(no_wrap=True, overflow="ellipsis", max_width=plan.get(id(column)))
        for index in range(len(shown)):
            table.add_row(*(cells[id(c)][index] for c in kept))
        return table

    def get_renderables(self) -> Iterable[Any]:
        with self._lock:
            rows = self.ordered()
        yield self.make_tasks_table(rows)

    def ordered(self, rows: Iterable[TaskID] | None = None) -> list[Task]:
        """The rows depth first, each under its parent, siblings by slot then by age; sets
        each row's `depth`. `rows`: only those (still in the same order)."""
        with self._lock:
            tasks = dict(self._tasks)
        children: dict[Any, list[Task]] = {}
        for task in tasks.values():
            parent = task.fields.get("parent")
            children.setdefault(parent if parent in tasks else None, []).append(task)
        ordered: list[Task] = []

        def visit(parent: Any, depth: int) -> None:
            kids = children.get(parent, [])
            kids.sort(key=lambda t: (t.fields.get("slot") is None, _slot_key(t), t.id))
            for kid in kids:
                kid.fields["depth"] = depth
                ordered.append(kid)
                visit(kid.id, depth + 1)

        visit(None, 0)
        if rows is not None:
            wanted = set(rows)
            ordered = [t for t in ordered if t.id in wanted]
        return ordered

    def add_row(
        self,
        label: str,
        *,
        total: float | None = None,
        completed: float = 0,
        parent: TaskID | None = None,
        slot: Any = None,
        header: bool = False,
        status: str = "",
        **fields: Any,
    ) -> TaskID:
        """A new row under `parent`; a kept row in the same slot gives its place up."""
        with self._lock:
            if slot is not None:
                for task in list(self._tasks.values()):
                    f = task.fields
                    if f.get("kept") and f.get("parent") == parent and f.get("slot") == slot:
                        self.drop(task.id)
        # Outside the lock: add_task refreshes the display, which takes the Live's lock, and
        # the refresh thread holds that one while it waits for ours.
        return self.add_task(
            label,
            total=total,
            completed=completed,
            parent=parent,
            slot=slot,
            header=header,
            kept=False,
            status=status,
            depth=0,
            **fields,
        )

    def set_row(self, row: TaskID, **changes: Any) -> None:
        """Update a row (Progress.update's arguments); a row gone already is ignored."""
        with self._lock:
            if row in self._tasks:
                self.update(row, **changes)

    def close_row(self, row: TaskID, keep: bool) -> None:
        """A bar ended: frozen in place with its final count (`keep`), or removed."""
        with self._lock:
            task = self._tasks.get(row)
            if task is None:
                return
            if not keep:
                self.drop(row)
                return
            self.stop_task(row)
            task.fields["kept"] = True
            if task.total is None:
                task.total = max(task.completed, 1)
                task.completed = task.total

    def drop(self, row: TaskID) -> list[Task]:
        """Remove `row` with its kept rows under it; open rows under it move up to its parent.
        Returns the kept rows removed (`row` too when kept), in display order."""
        with self._lock:
            if row not in self._tasks:
                return []
            order = self.ordered()
            up = self._tasks[row].fields.get("parent")
            gone: set[TaskID] = set()

            def remove(tid: TaskID) -> None:
                gone.add(tid)
                for task in list(self._tasks.values()):
                    if task.fields.get("parent") == tid:
                        if task.fields.get("kept"):
                            remove(task.id)
                        else:
                            task.fields["parent"] = up

            remove(row)
            for tid in gone:
                self.remove_task(tid)
        return [t for t in order if t.id in gone and t.fields.get("kept")]

    def open_step(self, step: str, status: str = "") -> TaskID:
        """The header row of a step that started (bars opened inside it nest under it)."""
        row = self.steps.get(step)
        if row is None:  # the make's thread alone opens steps
            row = self.steps[step] = self.add_row(step, header=True, status=status)
        return row

    def step_row(self, step: str | None) -> TaskID | None:
        return self.steps.get(step) if step is not None else None

    def close_step(self, step: str) -> list[Task]:
        """Remove a step's rows; returns those kept (`leave`), for the reporter to print."""
        row = self.steps.pop(step, None)
        return [t for t in self.drop(row) if t.id != row] if row is not None else []

    def fraction(self, step: str) -> float | None:
        """How far a step is (0 to 1), by its outermost open bar with a total; None if none."""
        with self._lock:
            row = self.steps.get(step)
            if row is None:
                return None
            inside = {row}
            for task in self.ordered():  # parents before their children
                if task.fields.get("parent") in inside:
                    inside.add(task.id)
                    if task.total and not task.fields.get("kept"):
                        return min(task.completed / task.total, 1.0)
        return None

    def print_rows(self, rows: list[Task]) -> None:
        """Print rows above the display, where they stay once the display moves on."""
        if rows:
            self.console.print(self.make_tasks_table(rows))


BAR_WIDTH = 40  # the bar's width where there is room (Rich's), MIN_BAR where there is not
HALF_BAR = 20
MIN_BAR = 8
SHORTEST = 12  # a label or status is cut (…) to no less than this, then the status goes


def _len(cell: Any) -> int:
    return cell.cell_len if isinstance(cell, Text) else 0


def _fold(columns: list[Any], bar: Any, needed: dict[int, int], width: int) -> dict[int, Any]:
    """Which columns to draw and how wide (None: as wide as their cells), so that a row fits
    `width`: the bar shortens to HALF_BAR, the rate goes, then the elapsed time, the bar
    shortens to MIN_BAR, the status and the label are cut to SHORTEST, the status goes, then
    the eta."""
    plan: dict[int, Any] = {id(c): None for c in columns if c is not bar and needed[id(c)]}
    plan[id(bar)] = BAR_WIDTH

    def total() -> int:
        sizes = [w if w is not None else needed[key] for key, w in plan.items()]
        return sum(sizes) + len(sizes) - 1  # a space between columns

    def kind(cls: type) -> int | None:
        return next((id(c) for c in columns if isinstance(c, cls) and id(c) in plan), None)

    label, status = kind(_Label), kind(_Status)
    for step in ("half", "rate", "elapsed", "bar", "status", "label", "no status", "eta"):
        excess = total() - width
        if excess <= 0:
            break
        if step in ("rate", "elapsed", "eta"):
            key = kind({"rate": _Rate, "elapsed": TimeElapsedColumn, "eta": _Eta}[step])
            if key is not None:
                del plan[key]
        elif step in ("half", "bar"):
            plan[id(bar)] = max(HALF_BAR if step == "half" else MIN_BAR, plan[id(bar)] - excess)
        elif step in ("status", "label"):
            key = status if step == "status" else label
            if key in plan:
                plan[key] = max(SHORTEST, min(needed[key], needed[key] - excess))
        elif status in plan:
            del plan[status]
    return plan


def _slot_key(task: Task) -> tuple[int, str]:
    slot = task.fields.get("slot")
    return (int(slot), "") if isinstance(slot, int) else (0, str(slot or ""))


class _Label(ProgressColumn):
    def render(self, task: Task) -> Text:
        f = task.fields
        mark = "▶ " if f.get("header") else ""
        return Text(  # a bar's label is a step's text: it must not drive the terminal
            "  " * f.get("depth", 0) + mark + printable(task.description),
            style=PALETTE["description"],
            no_wrap=True,
            overflow="ellipsis",
        )


class _Bar(BarColumn):
    def render(self, task: Task) -> Any:
        if task.fields.get("header"):
            return Text("")
        return ProgressBar(
            total=max(0, task.total) if task.total is not None else None,
            completed=max(0, task.completed),
            width=None if self.bar_width is None else max(1, self.bar_width),
            pulse=task.total is None,
            animation_time=task.get_time(),
            style=self.style,
            complete_style=task.fields.get("colour") or self.complete_style,
            finished_style=task.fields.get("colour") or self.finished_style,
            pulse_style=self.pulse_style,
        )


def _amount(task: Task, value: float) -> str:
    f = task.fields
    if f.get("unit_scale"):
        return format_sizeof(value, divisor=f.get("unit_divisor", 1000))
    return f"{value:g}" if isinstance(value, float) else str(value)


class _Count(ProgressColumn):
    def render(self, task: Task) -> Text:
        if task.fields.get("header"):
            return Text("")
        done = _amount(task, task.completed)
        text = f"{done}/{_amount(task, task.total)}" if task.total is not None else done
        return Text(text, style="progress.download")


class _Eta(ProgressColumn):
    """Time left: the row's own estimate when it has one (`eta`), else Rich's by speed."""

    def render(self, task: Task) -> Text:
        f = task.fields
        estimate = f.get("eta")
        if callable(estimate):
            left = estimate()
        elif f.get("header") or f.get("kept") or task.total is None:
            return Text("")
        else:
            left = task.time_remaining
        shown = format_interval(left) if left is not None else "--:--"
        if getattr(left, "at_least", False):  # a lower bound (rich_reporter.AtLeast)
            shown = "≥" + shown
        return Text(f"eta {shown}", style="progress.remaining")


class _Rate(ProgressColumn):
    def render(self, task: Task) -> Text:
        f = task.fields
        speed = task.finished_speed or task.speed
        if f.get("header") or f.get("eta") is not None or not speed:
            return Text("")
        unit = f.get("unit", "it")
        if speed >= 1:
            text = f"{format_sizeof(speed) if f.get('unit_scale') else f'{speed:.2f}'}{unit}/s"
        else:
            text = f"{1 / speed:.2f}s/{unit}"
        return Text(text, style="progress.data.speed")


class _Status(ProgressColumn):
    def render(self, task: Task) -> Text:
        status = printable(str(task.fields.get("status") or ""))
        return Text(status, style=PALETTE["status"], no_wrap=True)
