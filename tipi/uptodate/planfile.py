"""The plan file (`plan.msgpack`, state.py): when a cached plan may be used instead of a new one.

planning.Planner writes it and reads it back (`Planner.key`, `Planner.is_current` call these
functions); the no-op fast path (tipi/_fastpath.py) checks it with the same functions without
importing the planner, whose dataclasses would cost it more than the whole check. So this
module defines no dataclass and imports nothing it can do without.

The document's data (store.py format, kind PLAN_KIND): ``{"key": plan_key(...), "deps":
[[path, mtime_ns, size, inode], ...] of every file the plan was made from (config/planned.py
`stat_dep`), "absent": [paths that would shadow a module the plan's imports used], "paths":
{step: [its input paths, then its output paths]} (`step_paths`: what a clean record of the step
must name, read by the fast path without decoding the steps, ~20x as costly), "plan":
Plan.to_data()}``. A document without "paths" (of an earlier tipi) is not current.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from tipi._version import __version__
from tipi.config.planned import stat_dep

PLAN_KIND = "plan"

# The entries Plan.from_data reads (planning.Plan's fields), and those of each of its steps
# (PlannedStep's: the ones without a default, and all): what decides whether a plan file
# loads, for a reader that does not import the dataclasses. tests/test_fast_path.py checks
# that they are the dataclasses' fields.
PLAN_FIELDS = frozenset(
    {
        "pipeline",
        "steps",
        "order",
        "predecessors",
        "producers",
        "permanences",
        "source",
        "deps",
        "environments",
        "rerun_on_env",
        "code_files",
    }
)
STEP_REQUIRED = frozenset(
    {
        "name",
        "type",
        "code",
        "params",
        "inputs",
        "outputs",
        "after",
        "volatile",
        "force",
        "file",
        "line",
    }
)
STEP_FIELDS = STEP_REQUIRED | {
    "resources",
    "nproc",
    "launcher",
    "announces_resume",
    "env",
    "metrics",
    "inert",
}


def plan_key(
    file: Path, overrides: Sequence[str], root: Path, variant: Mapping[str, Any] | None
) -> list[Any]:
    """What a cached plan must have been made for: the pipeline file, the `--set` strings,
    this tipi, the project root, the sweep variant (its to_data()) and this Python."""
    return [str(file), list(overrides), __version__, str(root), variant, python_version()]


def is_current(cached: Mapping[str, Any], key: Sequence[Any], folder: Path) -> bool:
    """Whether a plan file's data is a plan for `key` made from files that are all unchanged:
    the same modules beside the pipeline file (`folder`), none of the paths that would shadow
    an import, and every file it was made from with its stat signature.

    Raises:
        KeyError, TypeError, ValueError, AttributeError, IndexError: the data is malformed.
    """
    if cached.get("key") != key or not isinstance(cached.get("paths"), dict):
        return False
    deps = cached.get("deps", [])
    if sorted(str(p) for p in folder.glob("*.py")) != sorted(
        d[0] for d in deps if d[0].endswith(".py") and Path(d[0]).parent == folder
    ):
        return False
    if any(os.path.lexists(path) for path in cached.get("absent", [])):
        return False  # a new module or package now shadows one the plan's imports used
    return all(stat_dep(path) == [path, *sig] for path, *sig in deps)


def step_paths(steps: Iterable[Any]) -> dict[str, list[str]]:
    """Each step's input paths, then its output paths, by name, as the plan spells them
    (planning.PlannedStep's `inputs` and `outputs`; relative to the root unless absolute)."""
    return {step.name: [*step.inputs.values(), *step.outputs.values()] for step in steps}


def python_version() -> str:
    """platform.python_version() (`3.11.7`), without importing `platform` (~1.5 ms per
    command): the first word of sys.version, with a patch level when it has none."""
    version = sys.version.split(maxsplit=1)[0]
    return f"{version}.0" if version.count(".") == 1 else version
