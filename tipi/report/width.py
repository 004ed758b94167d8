"""How wide a command's output is: a terminal's own width (Rich measures it), `COLUMNS` when
set, and elsewhere (a pipe, a file: `tipi sweep ... > log`) the full line, so that a table is
never cut or wrapped at a terminal width it is not shown in."""

from __future__ import annotations

import os
from typing import Any

WIDE = 4096  # a table narrower than this is written whole; Rich lays out nothing wider


def output_width(stream: Any) -> int | None:
    """The width to give a Rich Console writing to `stream` (None: let Rich measure the
    terminal)."""
    columns = os.environ.get("COLUMNS", "")
    if columns.isdigit() and int(columns) > 0:
        return int(columns)
    try:
        if stream is not None and stream.isatty():
            return None
    except (AttributeError, ValueError, OSError):
        pass
    return WIDE
