#!/usr/bin/env bash
# System tools the graph, report and terminal tests use: Graphviz (to check DOT and draw
# svg/png), headless Chromium (to open the HTML report), tmux, mermaid.js from the npm registry
# (to render `tipi graph --format mermaid` in that browser), and tqdm's own tests. Installed
# when missing and possible; the tests that need one say so and skip when it could not be.
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

need=()
command -v dot >/dev/null 2>&1 || need+=(graphviz)
command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 || need+=(chromium)
command -v tmux >/dev/null 2>&1 || need+=(tmux)  # the terminal tests (tests/test_progress_terminal.py)
if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "Installing ${need[*]} for the graph and report tests..." >&2
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}") >/dev/null 2>&1 \
      || echo "warning: could not install ${need[*]}; the tests that need them will be skipped" >&2
  else
    echo "note: ${need[*]} missing and not installable here; the tests that need them will be skipped" >&2
  fi
fi

MERMAID_VERSION=12.3.0
target=.cache/mermaid/$MERMAID_VERSION/mermaid.min.js
if [ ! -f "$target" ] && command -v npm >/dev/null 2>&1; then
  mkdir -p "$(dirname "$target")"
  tmp=$(mktemp -d)
  if (cd "$tmp" && npm pack --silent "mermaid@$MERMAID_VERSION" >/dev/null 2>&1 && tar -xzf mermaid-*.tgz); then
    cp "$tmp/package/dist/mermaid.min.js" "$target"
  else
    echo "warning: could not fetch mermaid $MERMAID_VERSION; the Mermaid rendering test will be skipped" >&2
  fi
  rm -rf "$tmp"
fi

# tqdm's own tests (tests/test_progress_tqdm.py), fetched here once, before pytest: under
# `pytest -n 2` each test process collects that module, and both would fetch them.
.venv/bin/python -c 'import tests.test_progress_tqdm' >/dev/null 2>&1 || true
exit 0
