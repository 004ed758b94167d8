"""Every tipi module imports when it is the first one imported: an import cycle through a
package's __init__ (which grimp's graph in test_layers.py does not show) fails here."""

from __future__ import annotations

import subprocess
import sys

import pytest

pytestmark = pytest.mark.slow

# One interpreter: for each module, forget every tipi module, then import it first.
# Third-party modules stay imported, so each round costs only tipi's own modules.
SCRIPT = """
import importlib, pkgutil, sys, traceback
import tipi
names = sorted(m.name for m in pkgutil.walk_packages(tipi.__path__, "tipi.") if not m.name.endswith("__main__"))
failed = []
for name in names:
    for loaded in [m for m in sys.modules if m == "tipi" or m.startswith("tipi.")]:
        del sys.modules[loaded]
    try:
        importlib.import_module(name)
    except ImportError as exc:
        if "cannot import name" in str(exc) or "partially initialized" in str(exc):
            failed.append(f"{name}: {exc}")
        # a missing optional dependency (s3fs, onnx, ...) is not this test's business
print("\\n".join(failed))
"""


def test_every_module_imports_first():
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip() == ""
