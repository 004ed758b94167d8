"""A tipi source tree under measurement, with its own copy of a generated project: the part
that code_closure.py and replan.py share (each runs `python -m tipi` of one tree or another
side by side, checking that the tree it names is the one imported)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path


class SourceTree:
    """`path`'s tipi, run in the project at `root` (PYTHONPATH points at the tree)."""

    def __init__(self, label: str, path: Path, root: Path) -> None:
        self.label, self.path, self.root = label, path, root
        self.env = dict(os.environ, PYTHONPATH=str(path))

    def check_import(self) -> None:
        """Exit unless `import tipi` in the project finds this tree's tipi."""
        done = subprocess.run(
            [sys.executable, "-c", "import tipi; print(tipi.__file__)"],
            cwd=self.root,
            env=self.env,
            capture_output=True,
            text=True,
            check=True,
        )
        found = Path(done.stdout.strip()).resolve()
        if not found.is_relative_to(self.path.resolve()):
            sys.exit(f"{self.label}: tipi imports from {found}, not from {self.path}")

    def make(self, *extra: str, profile: Path | None = None) -> float:
        """Seconds a `tipi make -q -p bench EXTRA...` took (exits when it failed); with
        `profile`, run under cProfile into that file."""
        run = [sys.executable]
        if profile is not None:
            run += ["-m", "cProfile", "-o", str(profile)]
        started = time.perf_counter()
        done = subprocess.run(
            [*run, "-m", "tipi", "make", "-q", "-p", "bench", *extra],
            cwd=self.root,
            env=self.env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        elapsed = time.perf_counter() - started
        if done.returncode != 0:
            sys.exit(f"{self.label}: tipi make {' '.join(extra)} failed:\n{done.stderr[-2000:]}")
        return elapsed
