"""Checks a TOML value against a type hint, coercing what TOML cannot say (int→float, str→Path)."""

from __future__ import annotations

import collections.abc as cabc
import types
import typing
from pathlib import Path, PurePath
from typing import Any


class TypeMismatch(Exception):
    """The value does not fit the hint; `str()` says what was expected."""


def type_name(hint: Any) -> str:
    """A short, readable name for a type hint: `float`, `list[int]`, `int | None`."""
    if hint is type(None):
        return "None"
    if isinstance(hint, type) and not typing.get_args(hint):
        return hint.__name__
    return str(hint).replace("typing.", "").replace("pathlib.", "")


def coerce(value: Any, hint: Any) -> Any:
    """Return `value` as `hint` asks, or raise TypeMismatch.

    Unknown or unparameterized generic hints accept any value: the check must never reject
    what the class itself would accept.
    """
    if hint is Any or hint is typing.Any or hint is object:
        return value
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        return _coerce_union(value, hint, args)
    if origin is typing.Literal:
        if value in args:
            return value
        raise TypeMismatch(" | ".join(repr(a) for a in args))
    if origin is typing.Annotated:
        return coerce(value, args[0])
    if origin is not None:
        return _coerce_generic(value, hint, origin, args)
    return _coerce_plain(value, hint)


def _coerce_union(value: Any, hint: Any, args: tuple[Any, ...]) -> Any:
    for arg in args:
        try:
            return coerce(value, arg)
        except TypeMismatch:
            continue
    raise TypeMismatch(type_name(hint))


def _coerce_plain(value: Any, hint: Any) -> Any:
    if hint is None or hint is type(None):
        if value is None:
            return None
        raise TypeMismatch("None")
    if not isinstance(hint, type):
        return value
    if hint is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if hint is int and isinstance(value, bool):
        raise TypeMismatch("int")
    if issubclass(hint, PurePath) and isinstance(value, str):
        return hint(value)
    if hint is tuple and isinstance(value, list):
        return tuple(value)
    if isinstance(value, hint):
        return value
    raise TypeMismatch(type_name(hint))


def _coerce_generic(value: Any, hint: Any, origin: Any, args: tuple[Any, ...]) -> Any:
    if origin in (list, cabc.Sequence, cabc.MutableSequence, cabc.Iterable, cabc.Collection):
        if not isinstance(value, list):
            raise TypeMismatch(type_name(hint))
        return [coerce(v, args[0]) for v in value] if args else value
    if origin is tuple:
        if not isinstance(value, list | tuple):
            raise TypeMismatch(type_name(hint))
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(coerce(v, args[0]) for v in value)
        if args and len(args) != len(value):
            raise TypeMismatch(f"{type_name(hint)} (exactly {len(args)} items)")
        return (
            tuple(coerce(v, a) for v, a in zip(value, args, strict=False)) if args else tuple(value)
        )
    if origin in (dict, cabc.Mapping, cabc.MutableMapping):
        if not isinstance(value, dict):
            raise TypeMismatch(type_name(hint))
        if len(args) == 2:
            return {coerce(k, args[0]): coerce(v, args[1]) for k, v in value.items()}
        return value
    return value


def describe_value(value: Any) -> str:
    """`'abc' (str)`: a value and its TOML-ish type, for 'expected X, found Y' messages."""
    text = repr(value)
    if len(text) > 40:
        text = text[:37] + "..."
    return f"{text} ({type(value).__name__})"


__all__ = ["Path", "TypeMismatch", "coerce", "describe_value", "type_name"]
