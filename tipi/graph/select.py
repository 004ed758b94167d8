"""Which steps a make considers: the targets and everything they need. Pure Python over the
plan's edges, so that a no-op make never imports networkx."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path

from tipi.errors import UsageError
from tipi.suggest import did_you_mean


def resolve_target(
    target: str,
    steps: Sequence[str],
    producers: Mapping[str, str],
    root: Path,
    cwd: Path | None = None,
) -> str:
    """Map a target (a step name or an output path) to a step name.

    Raises:
        UsageError: neither a step nor a produced path; the hint suggests close names.
    """
    if target in steps:
        return target
    candidates = [target]
    path = Path(target)
    base = cwd or Path.cwd()
    full = Path(os.path.normpath(path if path.is_absolute() else base / path))
    if full.is_relative_to(root):
        candidates.append(full.relative_to(root).as_posix())
    for candidate in candidates:
        if candidate in producers:
            return producers[candidate]
    raise UsageError(
        f"unknown target '{target}': not a step nor an output of one",
        hint=did_you_mean(target, [*steps, *producers], n=3) or f"steps: {', '.join(steps)}",
    )


def resolve_targets(
    target: str,
    steps: Sequence[str],
    producers: Mapping[str, str],
    root: Path,
    cwd: Path | None = None,
) -> list[str]:
    """The steps a target names, in `steps`' order: one step or the producer of a path
    (`resolve_target`), or instances of a matrix step (config/instances.py): `train` names
    all of them, `train[seed=0]` those with that value (of any other keys).

    Raises:
        UsageError: no step, path or instance matches; the hint suggests close names, keys
            or values.
    """
    if target in steps:
        return [target]
    from tipi.config.instances import group_instances, matches, split_instance

    found = [name for name in steps if matches(name, target)]
    if found:
        return found
    try:
        base, wanted = split_instance(target)
    except ValueError:
        base, wanted = target, {}
    instances = group_instances(steps).get(base)
    if not wanted or not instances or instances == [base]:
        return [resolve_target(target, steps, producers, root, cwd)]
    known: dict[str, list[str]] = {}
    for name in instances:
        for key, value in split_instance(name)[1].items():
            known.setdefault(key, []).extend([] if value in known.get(key, []) else [value])
    for key in wanted:
        if key not in known:
            raise UsageError(
                f"unknown target '{target}': step '{base}' has no matrix key '{key}'",
                hint=did_you_mean(key, known) or f"keys: {', '.join(known)}",
            )
    raise UsageError(
        f"unknown target '{target}': no instance of '{base}' has these values",
        hint="; ".join(f"{k} = {', '.join(v)}" for k, v in known.items() if k in wanted),
    )


def needed(targets: Sequence[str], predecessors: Mapping[str, Sequence[str]]) -> set[str]:
    """The targets and all their ancestors."""
    seen: set[str] = set()
    stack = list(targets)
    while stack:
        name = stack.pop()
        if name not in seen:
            seen.add(name)
            stack.extend(predecessors.get(name, ()))
    return seen


def descendants(start: str, predecessors: Mapping[str, Sequence[str]]) -> set[str]:
    """Every step that depends, directly or not, on `start`."""
    successors: dict[str, list[str]] = {}
    for name, preds in predecessors.items():
        for pred in preds:
            successors.setdefault(pred, []).append(name)
    seen: set[str] = set()
    stack = list(successors.get(start, ()))
    while stack:
        name = stack.pop()
        if name not in seen:
            seen.add(name)
            stack.extend(successors.get(name, ()))
    return seen
