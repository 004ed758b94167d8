#!/usr/bin/env bash
# Creates .venv with tipi and its dev tools, or refreshes it when pyproject.toml changed.
# Sourced by main.sh and test.sh; safe to run on its own.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

PYTHON=${PYTHON:-python3}
if ! "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
  echo "error: tipi needs Python 3.11 or newer; '$PYTHON' is $("$PYTHON" --version 2>&1 || echo missing)." >&2
  echo "hint: run with PYTHON=/path/to/python3.11 $0" >&2
  exit 2
fi

stamp=.venv/.tipi-installed
want=$(cat pyproject.toml | "$PYTHON" -c 'import hashlib,sys; print(hashlib.sha256(sys.stdin.buffer.read()).hexdigest())')
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  echo "Installing tipi and its dependencies into .venv (the first time takes about a minute)..." >&2
  # torch is pinned to 2.13.0 in pyproject.toml; pip takes the CPU build where one is on disk.
  .venv/bin/python -m pip install --quiet --disable-pip-version-check -e '.[dev]' 2>&1 \
    | grep -v "is ignored: it is neither a file nor a directory" >&2 || true
  .venv/bin/python -c 'import tipi, torch' || { echo "error: installation failed (see above)." >&2; exit 2; }
  echo "$want" > "$stamp"
fi
