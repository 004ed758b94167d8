"""Resume binding: a step's crash-resume checkpoint belongs to the fingerprint it was made under.

A step's scratch folder (`PipelineProcess.scratch_dir`, where `Train` keeps `resume.pt`)
survives a crash so that the next make resumes it. Resuming is right only when that make would
run the same step: same type, code, params, input contents and permanence configs. So when a
step creates its scratch folder, it writes the binding below into ``.tipi-binding`` inside it,
and before the next run of that step the engine compares: the same binding resumes, any other
discards the folder with one line naming the difference
(``discarding the resume checkpoint of train: lr 0.05 → 0.003``).

The binding covers every result-relevant permanence the pipeline declares (which ones the
step uses is known only once it finished), so a change to any of them discards the checkpoint.

On disk (msgpack map): ``v`` (1), ``fp`` (hash of the rest), ``type``, ``code``, ``params``,
``inputs`` (path → content hash), ``permanences`` (name → canonical config),
``environment`` (package versions; part of ``fp`` where `rerun_on_env` is set), ``made``
(seconds since the epoch), ``names`` (input name → its key in ``inputs``: the step keys a
cache of its own by these facts, `PipelineProcess.cache_key`).
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import msgpack

from tipi.identity.fingerprint import digest
from tipi.identity.trace import Trace
from tipi.state.layout import BINDING_FILE
from tipi.uptodate.reasons import Reason
from tipi.uptodate.rebuilder import NAMES, StepFacts, changes, environment_changes


def _fingerprint(facts: StepFacts, configs: dict[str, Any]) -> str:
    """The step's fingerprint, with its environment where that reruns it."""
    fp = facts.fingerprint(sorted(configs))
    if facts.rerun_on_env:
        fp = digest([fp, dict(facts.environment)])
    return fp


def binding(facts: StepFacts, names: Mapping[str, str] | None = None) -> bytes:
    """The binding of a run of the step `facts` describe, as the bytes to write; `names`
    maps each input's name to its path (a key of `facts.inputs`)."""
    configs = {k: v for k, v in facts.permanences.items() if v is not None}
    return msgpack.packb(
        {
            "v": 1,
            "fp": _fingerprint(facts, configs),
            "type": facts.type,
            "code": facts.code,
            "params": dict(facts.params),
            "inputs": dict(facts.inputs),
            "permanences": configs,
            "environment": dict(facts.environment),
            "made": time.time(),
            "names": dict(names or {}),
        },
        use_bin_type=True,
    )


def read_binding(folder: Path) -> dict[str, Any] | None:
    """The binding a scratch folder was made under; None when it has none or it is unreadable."""
    try:
        data = msgpack.unpackb((folder / BINDING_FILE).read_bytes(), raw=False)
    except (OSError, ValueError, msgpack.UnpackException):
        return None
    return data if isinstance(data, dict) and data.get("v") == 1 else None


def mismatch(old: dict[str, Any] | None, facts: StepFacts) -> tuple[Reason, ...]:
    """Why a scratch folder made under `old` must not be resumed now; () when it may."""
    if old is None:
        return (Reason("fingerprint"),)
    try:
        configs = {k: v for k, v in facts.permanences.items() if v is not None}
        if old["fp"] == _fingerprint(facts, configs):
            return ()
        trace = Trace(
            fingerprint=old["fp"],
            type=old["type"],
            code=old["code"],
            params=old["params"],
            inputs=old["inputs"],
            permanences=old["permanences"],
            outputs={},
            environment=old.get("environment", {}),
            extra={NAMES: old["names"]} if "names" in old else {},
        )
    except (KeyError, TypeError):
        return (Reason("fingerprint"),)
    found = changes(facts, trace)
    if facts.rerun_on_env:
        found += environment_changes(facts, trace)
    return tuple(found) or (Reason("fingerprint"),)


def describe(reasons: Sequence[Reason]) -> str:
    """The reasons in one short clause: 'lr 0.05 → 0.003; input data/x.pt changed'."""
    return "; ".join(str(r).removeprefix("params changed: ") for r in reasons)


def last_checkpoint(folder: Path) -> float | None:
    """When the step last wrote into its scratch folder (None: nothing but the binding)."""
    newest = None
    for base, _dirs, files in os.walk(folder):
        for name in files:
            if name == BINDING_FILE and base == str(folder):
                continue
            try:
                mtime = os.stat(os.path.join(base, name)).st_mtime
            except OSError:
                continue
            newest = mtime if newest is None else max(newest, mtime)
    return newest
