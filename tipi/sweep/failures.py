"""How a sweep's variants fail: the errors and the hint that the sweep and -j N share."""

from __future__ import annotations

from tipi.errors import TipiError

SWEEP_AGAIN = "run the sweep again: finished variants and steps will not run again"


def sweep_again(command: str | None) -> str:
    """The hint after a sweep stopped: the command that continues it (`tipi sweep ...` as the
    user typed it) when known, else "the sweep"."""
    if command is None:
        return SWEEP_AGAIN
    return f"run `{command}` again: finished variants and steps will not run again"


class VariantFailed(TipiError):
    """A variant's make failed (exit 1); the local sweep goes on with the next one."""

    exit_code = 1


class SweepFailed(TipiError):
    """Some variants failed; the others' results were written (exit 1)."""

    exit_code = 1
