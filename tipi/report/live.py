"""The one live Rich display of a process, shared by the engine's reporter and the
ProgressManager permanences, so their bars stack in one place instead of fighting.

Its rows form a tree: the make's overall bar, a header row per running step, the step's bars
under it, their nested bars under them. A finished bar that is to stay on screen (tqdm's
`leave`) keeps its row, frozen, until a new bar takes its place (same parent, same slot) or its
step ends, when the reporter prints it for good above the display.
"""

from __future__ import annotations

import os
import sys
from typing import TYPE_CHECKING, Any

from rich.console import Console

if TYPE_CHECKING:
    from rich.progress import Progress

_quiet = False


def silence(quiet: bool) -> None:
    """`tipi make -q`: progress bars and lines stay silent until called with False."""
    global _quiet
    _quiet = quiet


def silenced() -> bool:
    return _quiet


def interactive(console: Console | None = None, file: Any = None) -> bool:
    """True when a live display makes sense: a terminal, not CI, not `TIPI_NO_LIVE=1`."""
    if os.environ.get("CI") or os.environ.get("TIPI_NO_LIVE"):
        return False
    if file is not None:
        return bool(getattr(file, "isatty", lambda: False)())
    console = console or Console(stderr=True)
    return console.is_terminal and sys.stderr.isatty()


def new_progress(console: Console | None = None) -> Progress:
    """The shared display: a Board with tipi's columns (label, bar, count, elapsed,
    remaining, rate, status)."""
    from tipi.report.board import Board  # rich.progress costs ~15 ms; a no-op make draws none

    return Board(console or Console(stderr=True))


class LiveProgress:
    """Reference-counted access to the shared display: the first user starts it, the last
    one stops it (what is left on it, the bars kept with `leave`, stays on the screen)."""

    _progress: Any = None
    _users = 0

    @classmethod
    def acquire(cls, console: Console | None = None) -> Any:
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
    def current(cls) -> Any:
        """The display (a Board) while one is shown, else None."""
        return cls._progress


def console() -> Console:
    """Where a step should print: above the live bars when they are shown, else stderr."""
    progress = LiveProgress.current()
    return progress.console if progress is not None else Console(stderr=True)
