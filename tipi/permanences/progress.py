"""ProgressManager: nested, named progress bars on the run's one live display (or plain log
lines when there is no terminal)."""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, TypeVar

from rich.console import Console

from tipi.permanence import Permanence
from tipi.report.live import LiveProgress, interactive

T = TypeVar("T")
F = TypeVar("F", bound=Callable[..., Any])


@dataclass
class _Task:
    name: str
    total: float | None
    depth: int
    completed: float = 0
    status: str = ""
    rich_id: Any = None
    last_log: float = field(default_factory=time.monotonic)


class ProgressManager(Permanence):
    """Named progress bars. Names are exact: no fuzzy matching, a typo is an error.

    Use `track()` like tqdm, `task()` as a context manager, `progress_task()` as a
    decorator, and `advance()`/`update()` by name. Bars nest under a `parent`. In a terminal
    they join the run's live display; elsewhere (CI, a pipe) each task writes a plain line
    every `log_interval` seconds and when it ends.

    Args:
        enabled: False draws nothing (as NullProgressManager).
        log_interval: seconds between plain log lines when not interactive.
    """

    affects_results = False

    def __init__(self, enabled: bool = True, log_interval: float = 10.0) -> None:
        self.enabled = enabled
        self.log_interval = log_interval
        self._tasks: dict[str, _Task] = {}
        self._progress: Any = None
        self._console = Console(stderr=True, soft_wrap=True)
        self._live = False

    def initialize(self) -> None:
        self._live = self.enabled and interactive(self._console)
        if self._live:
            self._progress = LiveProgress.acquire(self._console)

    def cleanup(self) -> None:
        for name in list(self._tasks):
            self.remove(name)
        if self._live:
            LiveProgress.release()
            self._live = False
            self._progress = None

    @property
    def names(self) -> list[str]:
        """Names of the open tasks."""
        return list(self._tasks)

    def add(self, name: str, total: float | None = None, parent: str | None = None) -> str:
        """Open a task; `parent` nests it under another open task."""
        if name in self._tasks:
            raise ValueError(f"a progress task named '{name}' is already open")
        depth = self._get(parent).depth + 1 if parent is not None else 0
        task = _Task(name, total, depth)
        if self._live:
            task.rich_id = self._progress.add_task("  " * depth + name, total=total, status="")
        self._tasks[name] = task
        return name

    def advance(self, name: str, amount: float = 1) -> None:
        task = self._get(name)
        task.completed += amount
        if self._live:
            self._progress.advance(task.rich_id, amount)
        else:
            self._maybe_log(task)

    def update(
        self,
        name: str,
        *,
        completed: float | None = None,
        total: float | None = None,
        status: str | None = None,
    ) -> None:
        """Set a task's position, total or status text (e.g. "loss 0.31")."""
        task = self._get(name)
        if completed is not None:
            task.completed = completed
        if total is not None:
            task.total = total
        if status is not None:
            task.status = status
        if self._live:
            self._progress.update(
                task.rich_id, completed=task.completed, total=task.total, status=task.status
            )
        else:
            self._maybe_log(task)

    def remove(self, name: str) -> None:
        """Close a task (its last state is logged in plain mode)."""
        task = self._tasks.pop(name, None)
        if task is None:
            return
        if self._live:
            self._progress.remove_task(task.rich_id)
        elif self.enabled:
            self._log(task)

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

    def _maybe_log(self, task: _Task) -> None:
        now = time.monotonic()
        if self.enabled and now - task.last_log >= self.log_interval:
            task.last_log = now
            self._log(task)

    def _log(self, task: _Task) -> None:
        if task.total is None and not task.completed:
            return  # a pure container (a step's bar holding its loops' bars)
        if task.total:
            where = f"{task.completed:g}/{task.total:g} ({task.completed / task.total:.0%})"
        else:
            where = f"{task.completed:g}"
        status = f" {task.status}" if task.status else ""
        self._console.print(
            f"[progress] {'  ' * task.depth}{task.name}: {where}{status}",
            markup=False,
            highlight=False,
        )


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
