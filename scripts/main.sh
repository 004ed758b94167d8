#!/usr/bin/env bash
# The main job on a fresh machine: set up .venv, then run the example pipeline.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash scripts/setup.sh
exec .venv/bin/tipi run example "$@"
