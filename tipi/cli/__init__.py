"""The `tipi` command line: a Typer app mapping TipiError to a message, hint and exit code."""

from tipi.cli.app import app, main

__all__ = ["app", "main"]
