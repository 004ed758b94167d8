"""One extensible canonical form for params and configs, and the fingerprint of code."""

from __future__ import annotations

import ast
import enum
import functools
import inspect
import textwrap
from collections.abc import Mapping
from pathlib import PurePath
from typing import Any

import msgpack

from tipi.cache.hashing import hash_bytes


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
) -> str:
    """The fingerprint of a step: everything that decides what its outputs contain.

    The parts are already canonical (params and configs were canonicalized when the plan was
    made; paths and hashes are strings), so they are packed as they are: this runs for every
    step of every make.
    """
    packed = msgpack.packb([type_name, code, params, inputs, permanences], use_bin_type=True)
    return hash_bytes(packed)


@functools.lru_cache(maxsize=1024)
def code_fingerprint(cls: type) -> str:
    """Hash of a class's code: its `version` attribute when set, else its normalized source.

    The source of the class and of each base class defined outside tipi's vocabulary is parsed
    and dumped without docstrings, comments or formatting, so reformatting or documenting a
    step never reruns it. Classes without retrievable source hash their qualified name.
    Cached per class object: a re-imported (edited) module makes new class objects.
    """
    version = getattr(cls, "version", None)
    if version is not None:
        return digest(["version", cls.__qualname__, str(version)])
    function = getattr(cls, "__tipi_function__", None)
    if function is not None:  # a @pipeline_process step: its code is the function's
        return digest([_normalized_source(function)])
    parts = []
    for klass in cls.__mro__:
        if klass.__module__ in ("builtins", "abc", "tipi.process", "tipi.permanence"):
            continue
        parts.append(_normalized_source(klass))
    return digest(parts)


def _normalized_source(klass: Any) -> str:
    try:
        source = textwrap.dedent(inspect.getsource(klass))
        tree = ast.parse(source)
    except (OSError, TypeError, SyntaxError):
        return f"{klass.__module__}.{klass.__qualname__}"
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if (
            isinstance(node, ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef | ast.Module)
            and body
            and isinstance(body[0], ast.Expr)
            and isinstance(body[0].value, ast.Constant)
            and isinstance(body[0].value.value, str)
        ):
            node.body = body[1:] or [ast.Pass()]
    return ast.dump(tree, annotate_fields=False, include_attributes=False)
