"""`python -m tipi` runs the CLI (through its fast path, like the `tipi` command)."""

from tipi._fastpath import main

main()
