"""One extensible canonical form for params and configs, and the fingerprint of a step."""

from __future__ import annotations

import enum
import functools
from collections.abc import Mapping
from pathlib import PurePath
from typing import Any

import msgpack

from tipi.identity.hashing import hash_bytes


@functools.singledispatch
def canonical(value: Any) -> Any:
    """A msgpack-able, order-independent form of `value`, for hashing and for diffs.

    Register more types with ``@canonical.register``. Unknown objects fall back to their
    ``repr`` (stable for the values TOML can hold and for most config objects).
    """
    return repr(value)


@canonical.register(type(None))
@canonical.register(bool)
@canonical.register(int)
@canonical.register(str)
@canonical.register(bytes)
def _(value: Any) -> Any:
    return value


@canonical.register(float)
def _(value: float) -> Any:
    return float(value)


@canonical.register(PurePath)
def _(value: PurePath) -> Any:
    return str(value)


@canonical.register(enum.Enum)
def _(value: enum.Enum) -> Any:
    return f"{type(value).__name__}.{value.name}"


@canonical.register(list)
@canonical.register(tuple)
def _(value: list | tuple) -> Any:
    return [canonical(v) for v in value]


@canonical.register(set)
@canonical.register(frozenset)
def _(value: set | frozenset) -> Any:
    return sorted((canonical(v) for v in value), key=repr)


@canonical.register(Mapping)
def _(value: Mapping) -> Any:
    return {str(k): canonical(v) for k, v in sorted(value.items(), key=lambda kv: str(kv[0]))}


def digest(value: Any) -> str:
    """xxh3_128 of the canonical msgpack encoding of `value`."""
    return hash_bytes(msgpack.packb(canonical(value), use_bin_type=True))


def step_fingerprint(
    type_name: str,
    code: str,
    params: Mapping[str, Any],
    inputs: Mapping[str, str | None],
    permanences: Mapping[str, Any],
    input_names: Mapping[str, str] | None = None,
) -> str:
    """The fingerprint of a step: everything that decides what its outputs contain.

    The parts are already canonical (params and configs were canonicalized when the plan was
    made; paths and hashes are strings), so they are packed as they are: this runs for every
    step of every make. `input_names` (input name → path) counts what the step sees its
    inputs as: the same files under another name, or one more name for a file it already
    reads, are another run (None: as a tipi that did not count them fingerprinted).
    """
    parts = [type_name, code, params, inputs, permanences]
    if input_names is not None:
        parts.append(dict(sorted(input_names.items())))
    return hash_bytes(msgpack.packb(parts, use_bin_type=True))
