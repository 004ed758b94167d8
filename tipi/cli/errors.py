"""Shows an error the way its kind deserves: config errors in one line, process failures with
the user's frames only, engine bugs with everything."""

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


def render_error(error: TipiError, console: Console, debug: bool = False) -> None:
    """Print `error` to `console`: message, hint, and for failures the user's traceback."""
    if isinstance(error, BuildFailed):
        for _, failure in error.failures:
            _render_failure(failure, console, debug)
    else:
        _render_failure(error, console, debug)
        return
    console.print(f"[bold red]error:[/] {escape(str(error))}", highlight=False)
    if error.hint:
        console.print(f"[dim]hint:[/] {escape(error.hint)}", highlight=False)


def _render_failure(error: TipiError, console: Console, debug: bool) -> None:
    cause = error.error if isinstance(error, ProcessFailure | PermanenceFailure) else None
    if cause is not None:
        console.print(user_traceback(cause, full=debug), markup=False, highlight=False, end="")
    elif isinstance(error, WorkerFailure) and error.details:
        console.print(error.details, markup=False, highlight=False, end="")
    elif debug and error.__cause__ is not None:
        console.print(
            user_traceback(error.__cause__, full=True), markup=False, highlight=False, end=""
        )
    console.print(f"[bold red]error:[/] {escape(str(error))}", highlight=False)
    if error.hint:
        console.print(f"[dim]hint:[/] {escape(error.hint)}", highlight=False)


def render_bug(error: BaseException, console: Console) -> None:
    """An exception tipi did not expect: everything, and where to report it."""
    console.print(user_traceback(error, full=True), markup=False, highlight=False, end="")
    console.print(
        f"[bold red]internal error:[/] {escape(type(error).__name__)}: {escape(str(error))}\n"
        "[dim]hint:[/] this is a bug in tipi; please report it with the traceback above",
        highlight=False,
    )
