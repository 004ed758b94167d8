#!/usr/bin/env bash
# The main job on a fresh machine: set up .venv, then build the digits pipeline (prepare, train,
# evaluate, export, profile). A second run has nothing to do.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash scripts/setup.sh
exec .venv/bin/tipi make -p digits "$@"
