"""`python -m tipi` runs the CLI."""

from tipi.cli import main

main()
