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
exec .venv/bin/python -m pytest -q "$@"
