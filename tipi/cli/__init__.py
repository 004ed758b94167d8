"""The `tipi` command line: a Typer app that maps TipiError to a message, a hint and an exit code."""

from tipi.cli.app import app, main

__all__ = ["app", "main"]
