"""Shows an error the way its kind deserves: config errors in one line, process failures with
the user's frames only, engine bugs with everything; secrets hidden and control characters
escaped in all of it (tipi.redact.shown_text)."""

from __future__ import annotations

from rich.console import Console
from rich.markup import escape

from tipi.errors import (
    BuildFailed,
    PermanenceFailure,
    ProcessFailure,
    TipiError,
    WorkerFailure,
    user_traceback,
)
from tipi.redact import shown_text


def render_error(error: TipiError, console: Console, debug: bool = False) -> None:
    """Print `error` to `console`: message, hint, and for failures the user's traceback."""
    if isinstance(error, BuildFailed):
        for _, failure in error.failures:
            _render_failure(failure, console, debug)
    else:
        _render_failure(error, console, debug)
        return
    _message(error, console)


def _render_failure(error: TipiError, console: Console, debug: bool) -> None:
    cause = error.error if isinstance(error, ProcessFailure | PermanenceFailure) else None
    details = ""
    if cause is not None:
        details = user_traceback(cause, full=debug)
    elif isinstance(error, WorkerFailure) and error.details:
        details = error.details
    elif debug and error.__cause__ is not None:
        details = user_traceback(error.__cause__, full=True)
    if details:
        console.print(shown_text(details, lines=True), markup=False, highlight=False, end="")
    _message(error, console)


def _message(error: TipiError, console: Console) -> None:
    console.print(f"[bold red]error:[/] {escape(shown_text(str(error), True))}", highlight=False)
    if error.hint:
        console.print(f"[dim]hint:[/] {escape(shown_text(error.hint, True))}", highlight=False)


def render_bug(error: BaseException, console: Console) -> None:
    """An exception tipi did not expect: everything, and where to report it."""
    trace = shown_text(user_traceback(error, full=True), lines=True)
    console.print(trace, markup=False, highlight=False, end="")
    console.print(
        f"[bold red]internal error:[/] {escape(type(error).__name__)}: "
        f"{escape(shown_text(str(error), lines=True))}\n"
        "[dim]hint:[/] this is a bug in tipi; please report it with the traceback above",
        highlight=False,
    )
