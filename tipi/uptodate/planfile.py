"""The plan file (`plan.msgpack`, state/layout.py): its format, its two readers and when a cached
plan may be used instead of a new one.

This module alone knows the file's format. planning.Planner writes it (`write_plan_file`) and
reads it back whole (`read_plan_file`), then asks `is_current` (behind `Planner.key` and
`Planner.is_current`); the no-op fast path (tipi/_fastpath.py) reads what the up-to-date question
needs (`peek_plan`) and asks the same `is_current`, without importing the planner, whose
dataclasses would cost it more than the whole check. So this module defines no dataclass and
imports nothing it can do without.

The document's data (state/store.py format, kind PLAN_KIND): ``{"key": plan_key(...), "deps":
[[path, mtime_ns, size, inode], ...] of every file the plan was made from (config/planned.py
`stat_dep`), "absent": [paths that would shadow a module the plan's imports used], "summary":
{"paths": step_paths(steps), "always_run": always_run(steps)}, "digest": the SHA-1 of the
summary's encoding then the plan's, "plan": Plan.to_data()}``. The summary is what the
up-to-date question needs of every step, readable without decoding the steps (~20x as costly).
The digest ties it and the plan to what `write_plan_file` wrote, from Plan.to_data: a plan whose
digest matches and whose first step has PlannedStep's fields loads, every step of it (they were
written together, alike), which `peek_plan` checks in a fraction of what decoding them costs.
A document without a summary or digest (of an earlier tipi) is not current for `peek_plan`.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterable, Mapping, Sequence
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
        "globs",
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
    "base",
    "values",
}


def write_plan_file(path: Path, key: Sequence[Any], absent: Iterable[str], plan: Any) -> None:
    """Save `plan` (a planning.Plan) made for `key`, with its summary and digest."""
    import msgpack

    from tipi.state.store import write_document

    steps = list(plan.steps.values())
    summary = {"paths": step_paths(steps), "always_run": always_run(steps)}
    data = plan.to_data()
    # store.write_document encodes each entry as these do: the digest is of those bytes.
    digest = _digest(
        msgpack.packb(summary, use_bin_type=True), msgpack.packb(data, use_bin_type=True)
    )
    document = {"key": key, "deps": plan.deps, "absent": sorted(absent), "globs": plan.globs}
    document |= {"summary": summary, "digest": digest, "plan": data}
    write_document(path, PLAN_KIND, document)


def read_plan_file(path: Path, warn: Callable[[str], None]) -> Any:
    """The plan file's data, every entry decoded (for Plan.from_data); None, with a warning
    when the file is unusable, when there is none."""
    from tipi.state.store import read_document

    return read_document(path, PLAN_KIND, warn)


def warn_once(path: Path, warn: Callable[[str], None], said: set[Any]) -> Callable[[str], None]:
    """`warn`, saying each message about the plan file at `path` as it is now (its stat
    signature) once: a command that plans twice (`tipi status`: the table, then the question)
    reads an unusable file twice, unchanged, as nothing was saved in between."""

    def once(message: str) -> None:
        key = (message, tuple(stat_dep(str(path)) or ()))
        if key not in said:
            said.add(key)
            warn(message)

    return once


def step_paths(steps: Iterable[Any]) -> dict[str, list[str]]:
    """Each step's input paths, then its output paths, by name, as the plan spells them
    (planning.PlannedStep's `inputs` and `outputs`; relative to the root unless absolute)."""
    return {step.name: [*step.inputs.values(), *step.outputs.values()] for step in steps}


def always_run(steps: Iterable[Any]) -> list[str]:
    """The steps (planning.PlannedStep) that run at every make: volatile or forced by their
    definition."""
    return [step.name for step in steps if step.volatile or step.force]


def peek_plan(path: Path, edges: bool) -> dict[str, Any] | None:
    """The plan file's data as `is_current` and the up-to-date question read it: every entry
    decoded but the plan itself, of which only the pipeline and the order (with `edges`, also
    the producers and predecessors) are. None, silently, when the file is missing or unusable,
    or when Plan.from_data would not load its plan (the full make then warns and plans
    again)."""
    import msgpack

    from tipi.state.statefile import BrokenState, state_bytes
    from tipi.state.store import FORMAT_VERSION

    try:  # never blocks on a FIFO nor reads /dev/zero: the full make then warns
        raw = state_bytes(path)
    except BrokenState:
        return None
    if not raw:
        return None
    unpacker = msgpack.Unpacker(raw=False, strict_map_key=False, max_buffer_size=len(raw) + 1)
    unpacker.feed(raw)
    wanted = {"pipeline", "order"} | ({"producers", "predecessors"} if edges else set())
    spans: dict[str, tuple[int, int]] = {}

    def spanned(key: str, read: Callable[[], Any]) -> Callable[[], Any]:
        def reader() -> Any:
            start = unpacker.tell()
            value = read()
            spans[key] = (start, unpacker.tell())
            return value

        return reader

    def read_plan() -> dict[str, Any]:
        return _read_map(unpacker, {"steps": read_steps}, skip=lambda key: key not in wanted)

    def read_steps() -> tuple[int, Any]:
        count = unpacker.read_array_header()
        first = unpacker.unpack() if count else None
        for _ in range(count - 1):
            unpacker.skip()
        return count, first

    def read_data() -> dict[str, Any]:
        readers = {
            "summary": spanned("summary", unpacker.unpack),
            "plan": spanned("plan", read_plan),
        }
        return _read_map(unpacker, readers)

    try:
        document = _read_map(unpacker, {"data": read_data})
    except (ValueError, TypeError, msgpack.UnpackException):
        return None  # not msgpack, or not the maps a plan file is made of
    if unpacker.tell() != len(raw):
        return None  # trailing bytes: msgpack.unpackb, and with it the full make, refuses
    if document.get("tipi") != PLAN_KIND or document.get("version") != FORMAT_VERSION:
        return None
    data = document.get("data")
    if not isinstance(data, dict) or not _loadable(data.get("plan")) or len(spans) != 2:
        return None
    view = memoryview(raw)
    if data.get("digest") != _digest(*(view[slice(*spans[k])] for k in ("summary", "plan"))):
        return None  # not as write_plan_file wrote it: the planner would read it whole
    return data


def _digest(*parts: Any) -> bytes:
    """The SHA-1 of `parts` (bytes) one after the other: whether a plan file's summary and
    plan are as written. (Not a defence: whoever can write the file can write its digest.)"""
    import hashlib  # imported already (config/planned.py)

    digest = hashlib.sha1(usedforsecurity=False)
    for part in parts:
        digest.update(part)
    return digest.digest()


_SKIPPED = object()  # an entry of the plan that peek_plan did not decode


def _read_map(
    unpacker: Any,
    readers: Mapping[str, Callable[[], Any]],
    skip: Callable[[Any], bool] = lambda key: False,
) -> dict[str, Any]:
    """A msgpack map: each value read by its key's reader, else skipped when `skip(key)`,
    else decoded. (msgpack has no length-prefixed maps: skipping is what saves the time.)"""
    found: dict[str, Any] = {}
    for _ in range(unpacker.read_map_header()):
        key = unpacker.unpack()
        if key in readers:
            found[key] = readers[key]()
        elif skip(key):
            unpacker.skip()
            found[key] = _SKIPPED
        else:
            found[key] = unpacker.unpack()
    return found


def _loadable(plan: Any) -> bool:
    """Whether Plan.from_data would load this plan, its digest matching: every field of Plan
    present, the order a list, and the first step a map of PlannedStep's fields (`steps` is
    their count and the first; the others were written with it, alike)."""
    if not isinstance(plan, dict) or not plan.keys() >= PLAN_FIELDS:
        return False
    if not isinstance(plan["order"], list) or not isinstance(plan["steps"], tuple):
        return False
    count, first = plan["steps"]
    return count == 0 or (type(first) is dict and STEP_REQUIRED <= first.keys() <= STEP_FIELDS)


# The shape of the plan this tipi writes (PLAN_FIELDS, STEP_FIELDS, what each holds): part of
# the key, so that a plan file of another shape, written by an earlier or later tipi of the
# same version number, is not current and is replanned silently (a cache, not damage). Bump
# it with any change of Plan.to_data's shape (tests/test_attack_fixes_planfile.py asks).
PLAN_FORMAT = 2


def plan_key(
    file: Path, overrides: Sequence[str], root: Path, variant: Mapping[str, Any] | None
) -> list[Any]:
    """What a cached plan must have been made for: the pipeline file, the `--set` strings,
    this tipi and the plan's format, the project root, the sweep variant (its to_data()) and
    this Python."""
    version = f"{__version__}/plan-{PLAN_FORMAT}"
    return [str(file), list(overrides), version, str(root), variant, python_version()]


def is_current(cached: Mapping[str, Any], key: Sequence[Any], folder: Path) -> bool:
    """Whether a plan file's data is a plan for `key` made from files that are all unchanged:
    the same modules beside the pipeline file (`folder`), none of the paths that would shadow
    an import, and every file it was made from with its stat signature.

    Raises:
        KeyError, TypeError, ValueError, AttributeError, IndexError: the data is malformed.
    """
    if cached.get("key") != key:
        return False
    deps = cached.get("deps", [])
    if sorted(str(p) for p in folder.glob("*.py")) != sorted(
        d[0] for d in deps if d[0].endswith(".py") and Path(d[0]).parent == folder
    ):
        return False
    if any(os.path.lexists(path) for path in cached.get("absent", [])):
        return False  # a new module or package now shadows one the plan's imports used
    globs = cached.get("globs", [])
    if globs:  # a glob matrix: a file added, removed or renamed changes the instances
        from tipi.config.instances import glob_matches

        if any(glob_matches(pattern) != list(matched) for pattern, matched in globs):
            return False
    return all(stat_dep(path) == [path, *sig] for path, *sig in deps)


def python_version() -> str:
    """platform.python_version() (`3.11.7`), without importing `platform` (~1.5 ms per
    command): the first word of sys.version, with a patch level when it has none."""
    version = sys.version.split(maxsplit=1)[0]
    return f"{version}.0" if version.count(".") == 1 else version
