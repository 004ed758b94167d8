"""Run ids: one per make (shared by its steps) or per `logger.init` in a script."""

from __future__ import annotations

import secrets
import time

_FORMAT = "%Y%m%d-%H%M%S"


def new_run_id(now: float | None = None) -> str:
    """A short id that sorts by start time: UTC `YYYYMMDD-HHMMSS` and 6 random hex digits,
    e.g. `20250301-142233-9f3a0c` (ids of one second sort at random among themselves). Safe
    in file names and as a W&B group."""
    stamp = time.strftime(_FORMAT, time.gmtime(time.time() if now is None else now))
    return f"{stamp}-{secrets.token_hex(3)}"
