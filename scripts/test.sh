#!/usr/bin/env bash
# The full check on a fresh machine: set up .venv, then lint, check layers, run the tests.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash scripts/setup.sh
bash scripts/test-deps.sh
echo "== ruff" >&2
.venv/bin/ruff check .
.venv/bin/ruff format --check --quiet .
echo "== import-linter (layers of ARCHITECTURE.md)" >&2
.venv/bin/lint-imports --no-cache
echo "== pytest" >&2
# One test process per core (pytest-xdist), each taking whole modules, so that a module's
# fixtures are built once (--dist loadfile). Arguments go on: `-m "not slow"` is the fast
# tier, `-n 0` runs in this one process.
exec .venv/bin/python -m pytest -q -n auto --dist loadfile "$@"
