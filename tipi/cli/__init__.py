"""The `tipi` command line: a Typer app mapping TipiError to a message, hint and exit code."""

from tipi.cli import cache as _cache  # noqa: F401 - registers `tipi cache ...`
from tipi.cli import runs as _runs  # noqa: F401 - registers `tipi runs`, `diff`, `show`
from tipi.cli import sweep as _sweep  # noqa: F401 - registers `tipi sweep`
from tipi.cli.app import app, main

__all__ = ["app", "main"]
