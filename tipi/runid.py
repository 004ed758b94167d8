"""Run ids: one per make (shared by its steps) or per `logger.init` in a script."""

from __future__ import annotations

import secrets
import threading
import time

_FORMAT = "%Y%m%d-%H%M%S"
_TICKS = 1 << 16  # a second in 65,536 ticks (about 15 µs): four hex digits
_lock = threading.Lock()
_last = (0, -1)  # (second, tick) of the last id made by this process


def new_run_id(now: float | None = None) -> str:
    """A short id that sorts by start time: UTC `YYYYMMDD-HHMMSS` and 6 hex digits, e.g.
    `20250301-142233-9f3a0c`: four for the fraction of the second (ids of one second sort by
    time too: `tipi runs`, the report and run-cache sources take the newest run by its id),
    two random ones to tell apart ids that processes make in the same tick. Ids one process
    makes always increase. Safe in file names and as a W&B group."""
    global _last
    t = time.time() if now is None else now
    second = int(t)
    tick = min(int((t - second) * _TICKS), _TICKS - 1)
    with _lock:
        if now is None and _last[0] == second and tick <= _last[1]:
            tick = _last[1] + 1
            if tick >= _TICKS:  # 65,536 ids in one second: the next second's first ticks
                second, tick = second + 1, 0
        if now is None:
            _last = (second, tick)
    stamp = time.strftime(_FORMAT, time.gmtime(second))
    return f"{stamp}-{tick:04x}{secrets.token_hex(1)}"
