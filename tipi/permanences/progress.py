"""ProgressManager: nested, named progress bars on the run's one live display, or plain lines
when there is no terminal (a pipe, CI, a worker's log)."""

from __future__ import annotations

import functools
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import IO, Any, TypeVar

from tipi import context
from tipi.permanence import Permanence
from tipi.report import channel
from tipi.report.live import LiveProgress, interactive, silenced
from tipi.report.meter import format_meter

T = TypeVar("T")
F = TypeVar("F", bound=Callable[..., Any])
PREFIX = "[progress] "


@dataclass
class _Task:
    name: str
    label: str
    total: float | None
    parent: str | None
    depth: int
    leave: bool
    completed: float = 0
    status: str = ""
    unit: str = "it"
    unit_scale: bool | float = False
    unit_divisor: float = 1000
    slot: Any = None
    colour: str | None = None
    line: Callable[[], str] | None = None  # the plain line's text (a progress_bar's own)
    stream: Any = None  # where plain lines go (None: stderr)
    apart: bool = False  # its stream is not the display's: plain lines, not forwarded
    interval: float | None = None  # seconds between plain lines (None: log_interval)
    announce: bool = False  # a plain line when it opens
    ends: bool = False  # a plain line when it ends, even when it does not stay
    live: bool = False
    row: Any = None
    outer: bool = False  # a bar has been nested under it: a line at each of its steps
    started: float = field(default_factory=lambda: time.monotonic())
    last_log: float = field(default_factory=lambda: time.monotonic())
    logged: tuple[Any, ...] | None = None  # (completed, total, status, label) of the last line
    titled: str = ""  # the label when it opened or wrote its last line


class ProgressManager(Permanence):
    """Named progress bars. Names are exact: no fuzzy matching, a typo is an error.

    Use `track()` like tqdm, `task()` as a context manager, `progress_task()` as a
    decorator, and `advance()`/`update()` by name. Bars nest under a `parent`; inside a step,
    top-level bars nest under the step's row. In a terminal they join the run's live display;
    elsewhere (CI, a pipe, `TIPI_NO_LIVE=1`) each bar writes a plain `[progress]` line (tqdm's
    text) at most every `log_interval` seconds, one at each step of a bar that has bars
    nested under it (an epoch), and a last one when a bar that stays (`leave`) ends.

    Args:
        enabled: False draws nothing (as NullProgressManager).
        log_interval: seconds between plain lines of a bar when not interactive.
    """

    affects_results = False

    def __init__(self, enabled: bool = True, log_interval: float = 10.0) -> None:
        self.enabled = enabled
        self.log_interval = log_interval
        self._tasks: dict[str, _Task] = {}
        self._live = False
        self._progress: Any = None

    def initialize(self) -> None:
        self._live = self.enabled and not silenced() and interactive()
        if self._live:
            self._progress = LiveProgress.acquire()

    def cleanup(self) -> None:
        for name in list(self._tasks):
            self.remove(name)
        out = channel.writer()
        if out is not None:
            out.flush(force=True)
        if self._live:
            LiveProgress.release()
            self._live = False
            self._progress = None

    @property
    def names(self) -> list[str]:
        """Names of the open tasks."""
        return list(self._tasks)

    def add(
        self,
        name: str,
        total: float | None = None,
        parent: str | None = None,
        *,
        label: str | None = None,
        completed: float = 0,
        leave: bool | None = None,
        unit: str = "it",
        unit_scale: bool | float = False,
        unit_divisor: float = 1000,
        slot: Any = None,
        colour: str | None = None,
        line: Callable[[], str] | None = None,
        stream: IO[str] | None = None,
        apart: bool | None = None,
        interval: float | None = None,
        announce: bool = False,
        ends: bool = False,
    ) -> str:
        """Open a task; `parent` nests it under another open task.

        Args:
            label: the text shown (default: `name`); `update(label=...)` changes it.
            leave: keep it on screen with its final count when it ends (default: for a
                top-level task, not for a nested one).
            unit, unit_scale, unit_divisor: how counts are written (as tqdm's).
            slot: its place among its siblings; a kept task in the same slot gives it up.
            colour: the bar's colour in a terminal (a Rich colour name or `#rrggbb`).
            line: returns the text of its plain lines (default: tqdm's line of its counts).
            stream: where its plain lines go (default: stderr).
            apart: its stream is not the terminal of the display (default: when a stream
                is given): plain lines there even in a terminal, never forwarded.
            interval: seconds between its plain lines (default: `log_interval`).
            announce: write a plain line as it opens.
            ends: write a plain line as it ends, even when it does not stay (a log keeps
                tqdm's lines whatever `leave` says).
        """
        if name in self._tasks:
            raise ValueError(f"a progress task named '{name}' is already open")
        above = self._get(parent) if parent is not None else None
        if above is not None:
            above.outer = True
        depth = above.depth + 1 if above is not None else int(context.current() is not None)
        task = _Task(
            name, label if label is not None else name, total, parent, depth,
            leave if leave is not None else parent is None, completed, "",
            unit, unit_scale, unit_divisor, slot, colour, line, stream,
            apart if apart is not None else stream is not None, interval, announce, ends,
        )  # fmt: skip
        task.live = self._live and not task.apart
        task.titled = task.label
        if task.live:
            board = self._progress
            task.row = board.add_row(
                task.label,
                total=total,
                completed=completed,
                parent=above.row if above is not None else board.step_row(_step()),
                slot=slot if slot is not None else task.label,
                unit=unit,
                unit_scale=unit_scale,
                unit_divisor=unit_divisor,
                colour=colour,
            )
        self._tasks[name] = task
        self._forward(task, force=True)
        self._emit(task, "open")
        return name

    def advance(self, name: str, amount: float = 1) -> None:
        task = self._get(name)
        task.completed += amount
        if task.live:
            self._progress.set_row(task.row, advance=amount)
        else:
            self._emit(task, "progress")
        self._forward(task)

    def update(
        self,
        name: str,
        *,
        completed: float | None = None,
        total: float | None = None,
        status: str | None = None,
        label: str | None = None,
        visible: bool | None = None,
    ) -> None:
        """Set a task's position, total, status text (e.g. "loss 0.31") or label."""
        task = self._get(name)
        if completed is not None:
            task.completed = completed
        if total is not None:
            task.total = total
        if status is not None:
            task.status = status
        if label is not None:
            task.label = label
        if task.live:
            changes: dict[str, Any] = {"completed": task.completed, "status": task.status}
            if total is not None:
                changes["total"] = total
            if label is not None:
                changes["description"] = label
            if visible is not None:
                changes["visible"] = visible
            self._progress.set_row(task.row, **changes)
        else:
            self._emit(task, "progress")
        self._forward(task)

    def refresh(self, name: str) -> None:
        """Show a task's state now. A plain line is written now when its label changed since
        the last one (a new phase); otherwise lines keep their pace."""
        task = self._get(name)
        if not task.live:
            self._emit(task, "refresh")
        self._forward(task, force=True)

    def remove(self, name: str, leave: bool | None = None) -> None:
        """Close a task; one that stays (`leave`, default: as opened) keeps its final count
        on screen, or writes its last plain line."""
        task = self._tasks.pop(name, None)
        if task is None:
            return
        if leave is not None:
            task.leave = leave
        if task.live:
            self._progress.close_row(task.row, keep=task.leave)
        elif self.enabled:
            self._emit(task, "close")
        out = channel.writer() if not task.apart else None
        if out is not None:
            if task.leave:
                out.put(self._key(task.name), {**self._row(task), "done": True}, force=True)
            else:
                out.drop(self._key(task.name))

    def task(self, name: str, total: float | None = None, parent: str | None = None) -> _TaskScope:
        """`with progress.task("epochs", total=3) as t: ... t.advance()`"""
        return _TaskScope(self, name, total, parent)

    def track(
        self,
        iterable: Iterable[T],
        name: str,
        total: float | None = None,
        parent: str | None = None,
    ) -> Iterator[T]:
        """Iterate and advance the task `name` once per item; close it at the end."""
        if total is None and hasattr(iterable, "__len__"):
            total = len(iterable)  # type: ignore[arg-type]
        with self.task(name, total, parent) as scope:
            for item in iterable:
                yield item
                scope.advance()

    def progress_task(
        self, name: str, total: float | None = None, parent: str | None = None
    ) -> Callable[[F], F]:
        """Decorator: the function runs inside task `name` (it may advance it by name)."""

        def decorate(function: F) -> F:
            @functools.wraps(function)
            def wrapper(*args: Any, **kwargs: Any) -> Any:
                with self.task(name, total, parent):
                    return function(*args, **kwargs)

            return wrapper  # type: ignore[return-value]

        return decorate

    def _get(self, name: str) -> _Task:
        try:
            return self._tasks[name]
        except KeyError:
            open_ = ", ".join(self._tasks) or "none"
            raise KeyError(f"no progress task named '{name}' (open: {open_})") from None

    def _emit(self, task: _Task, why: str) -> None:
        """Write the task's plain line when `why` (open, progress, refresh, close) calls for it."""
        if task.live or not self.enabled or silenced():
            return
        now = time.monotonic()
        state = (task.completed, task.total, task.status, task.label)
        if why == "open":
            due = task.announce
        elif why == "close":
            due = (task.leave or task.ends) and state != task.logged
        elif why == "refresh" and task.label != task.titled:
            due = True
        else:
            interval = self.log_interval if task.interval is None else task.interval
            stepped = task.outer and (task.logged is None or task.completed != task.logged[0])
            due = stepped or now - task.last_log >= interval
        if not due:
            return
        task.last_log, task.logged, task.titled = now, state, task.label
        if task.line is not None:
            text = task.line()
        else:
            text = format_meter(
                task.completed,
                task.total,
                now - task.started,
                prefix=task.label,
                unit=task.unit,
                unit_scale=task.unit_scale,
                unit_divisor=task.unit_divisor,
                postfix=task.status,
            )
        stream = task.stream if task.stream is not None else sys.stderr
        # A stream of the user's own (tqdm's `file=`) gets tqdm's line as it is, in its ncols.
        lead = "" if task.apart else f"{PREFIX}{'  ' * task.depth}"
        try:
            stream.write(f"{lead}{text}\n")
            stream.flush()
        except (ValueError, OSError, AttributeError):
            pass  # a closed or missing stream: a progress line is not worth an error

    def _key(self, name: str) -> str:
        return f"{id(self):x}:{name}"

    def _row(self, task: _Task) -> dict[str, Any]:
        parent = self._key(task.parent) if task.parent is not None else None
        return {
            "parent": parent,
            "label": task.label,
            "n": task.completed,
            "total": task.total,
            "status": task.status,
            "unit": task.unit,
            "unit_scale": task.unit_scale,
            "unit_divisor": task.unit_divisor,
            "slot": task.slot if task.slot is not None else task.label,
            "colour": task.colour,
            "done": False,
        }

    def _forward(self, task: _Task, force: bool = False) -> None:
        if not task.apart and self.enabled and not silenced():
            out = channel.writer()
            if out is not None:
                out.put(self._key(task.name), self._row(task), force)


def _step() -> str | None:
    run = context.current()
    return run.step if run is not None else None


class NullProgressManager(ProgressManager):
    """The same API, drawing and logging nothing (for quiet runs and tests)."""

    def __init__(self, enabled: bool = False, log_interval: float = 10.0) -> None:
        super().__init__(enabled=False, log_interval=log_interval)


class _TaskScope:
    def __init__(
        self, manager: ProgressManager, name: str, total: float | None, parent: str | None
    ) -> None:
        self.manager, self.name, self.total, self.parent = manager, name, total, parent

    def __enter__(self) -> _TaskScope:
        self.manager.add(self.name, self.total, self.parent)
        return self

    def __exit__(self, *exc: object) -> None:
        self.manager.remove(self.name)

    def advance(self, amount: float = 1) -> None:
        self.manager.advance(self.name, amount)

    def update(self, **fields: Any) -> None:
        self.manager.update(self.name, **fields)
