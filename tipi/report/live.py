"""The one live Rich display of a process, shared by the engine's reporter and the
ProgressManager permanences, so their bars stack in one place instead of fighting."""

from __future__ import annotations

import os
import sys
from typing import TYPE_CHECKING

from rich.console import Console

if TYPE_CHECKING:
    from rich.progress import Progress

# One palette for every bar tipi draws.
PALETTE = {
    "description": "bold cyan",
    "bar": "cyan",
    "finished": "green",
    "pulse": "magenta",
    "status": "magenta",
    "dim": "dim",
}


def interactive(console: Console | None = None) -> bool:
    """True when a live display makes sense: a terminal, and not CI."""
    if os.environ.get("CI") or os.environ.get("TIPI_NO_LIVE"):
        return False
    console = console or Console(stderr=True)
    return console.is_terminal and sys.stderr.isatty()


def new_progress(console: Console | None = None) -> Progress:
    """A Progress with tipi's columns: name, bar, count, elapsed, remaining, status."""
    # Imported here: rich.progress costs ~15 ms, and a no-op make draws no bars.
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    return Progress(
        TextColumn("{task.description}", style=PALETTE["description"]),
        BarColumn(
            style=PALETTE["dim"],
            complete_style=PALETTE["bar"],
            finished_style=PALETTE["finished"],
            pulse_style=PALETTE["pulse"],
        ),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        TextColumn("{task.fields[status]}", style=PALETTE["status"]),
        console=console or Console(stderr=True),
        transient=False,
    )


class LiveProgress:
    """Reference-counted access to the shared display: the first user starts it, the last
    one stops it."""

    _progress: Progress | None = None
    _users = 0

    @classmethod
    def acquire(cls, console: Console | None = None) -> Progress:
        if cls._progress is None:
            cls._progress = new_progress(console)
            cls._progress.start()
        cls._users += 1
        return cls._progress

    @classmethod
    def release(cls) -> None:
        cls._users = max(0, cls._users - 1)
        if cls._users == 0 and cls._progress is not None:
            cls._progress.stop()
            cls._progress = None

    @classmethod
    def current(cls) -> Progress | None:
        return cls._progress


def console() -> Console:
    """Where a step should print: above the live bars when they are shown, else stderr."""
    progress = LiveProgress.current()
    return progress.console if progress is not None else Console(stderr=True)
