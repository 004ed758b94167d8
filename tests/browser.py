"""Headless Chromium and Graphviz for the graph/report tests (installed by scripts/test-deps.sh)."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

REPO = Path(__file__).parent.parent
MERMAID = REPO / ".cache/mermaid/12.3.0/mermaid.min.js"


def chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None:
        pytest.skip("headless Chromium is not installed (scripts/test-deps.sh installs it)")
    return found


def _profile() -> tempfile.TemporaryDirectory:
    """A profile of its own for each Chromium: two at once (pytest -n 2) sharing the default
    one would meet its lock, or the second would hand its page to the first."""
    return tempfile.TemporaryDirectory(prefix="tipi-chromium-")


def dump_dom(page: Path) -> str:
    """The page's DOM after its scripts ran."""
    with _profile() as profile:
        done = subprocess.run(
            [
                chromium(),
                f"--user-data-dir={profile}",
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--virtual-time-budget=10000",
                "--dump-dom",
                page.as_uri(),
            ],
            capture_output=True,
            text=True,
            timeout=120,
        )
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


def screenshot(page: Path, png: Path, size: str = "1300,1000") -> Path:
    with _profile() as profile:
        subprocess.run(
            [
                chromium(),
                f"--user-data-dir={profile}",
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--hide-scrollbars",
                f"--window-size={size}",
                f"--screenshot={png}",
                page.as_uri(),
            ],
            capture_output=True,
            timeout=120,
            check=True,
        )
    return png


def dot() -> str:
    found = shutil.which("dot")
    if found is None:
        pytest.skip("Graphviz's dot is not installed (scripts/test-deps.sh installs it)")
    return found
