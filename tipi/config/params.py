"""Validates a component's params against its `__init__` signature and type hints."""

from __future__ import annotations

import inspect
import typing
import weakref
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from tipi.config.types import TypeMismatch, coerce, describe_value, type_name
from tipi.errors import ConfigError, Location
from tipi.redact import HIDDEN, is_secret_name
from tipi.suggest import did_you_mean

# Constructor arguments the engine passes itself; never user params.
ENGINE_ARGUMENTS = frozenset({"self", "controller", "force"})


@dataclass(frozen=True)
class ParamInfo:
    """One constructor parameter as a user sees it in `tipi list`."""

    name: str
    hint: Any
    default: Any
    required: bool

    @property
    def type_label(self) -> str:
        return "any" if self.hint is inspect.Parameter.empty else type_name(self.hint)


def param_infos(cls: type) -> tuple[list[ParamInfo], bool]:
    """The user params of `cls.__init__`, and whether it also takes `**kwargs`.

    Read once per class object and `__init__` (signatures and type hints cost a make that
    runs a step milliseconds; a re-imported class is a new object and is read afresh). Hints
    that did not resolve (a forward reference to a name not defined yet) are read again.
    """
    init = cls.__init__
    known = _INFOS.get(id(cls))
    if known is not None and known[0]() is cls and known[1] is init:
        return list(known[2]), known[3]
    infos, var_keyword, resolved = _read_infos(init)
    if resolved:
        key = id(cls)
        forget = weakref.ref(cls, lambda _, key=key: _INFOS.pop(key, None))
        _INFOS[key] = (forget, init, tuple(infos), var_keyword)
    return infos, var_keyword


# id(class) → (weak reference to it, its __init__, infos, takes **kwargs): compared by
# identity, as a metaclass may make distinct classes equal.
_INFOS: dict[int, tuple[weakref.ref[type], Any, tuple[ParamInfo, ...], bool]] = {}


def _read_infos(init: Any) -> tuple[list[ParamInfo], bool, bool]:
    """(infos, takes **kwargs, whether the type hints resolved)."""
    signature = inspect.signature(init)
    try:
        hints, resolved = typing.get_type_hints(init, include_extras=True), True
    except Exception:
        # Unresolvable forward references: check presence of params, not their types.
        hints, resolved = {}, False
    infos: list[ParamInfo] = []
    var_keyword = False
    for name, parameter in signature.parameters.items():
        if parameter.kind is inspect.Parameter.VAR_KEYWORD:
            var_keyword = True
            continue
        if name in ENGINE_ARGUMENTS or parameter.kind is inspect.Parameter.VAR_POSITIONAL:
            continue
        hint = hints.get(name, parameter.annotation)
        required = parameter.default is inspect.Parameter.empty
        infos.append(ParamInfo(name, hint, parameter.default, required))
    return infos, var_keyword, resolved


def check_params(
    cls: type, params: Mapping[str, Any], locate: Callable[[str], Location]
) -> dict[str, Any]:
    """Return `params` coerced to the hints of `cls.__init__`, defaults filled in.

    Args:
        cls: the permanence or process class.
        params: the values from TOML (after `--set` overrides).
        locate: gives the location of one param key (or of the params table for "").

    Raises:
        ConfigError: a required param is missing, a key is unknown, or a value has the
            wrong type. The message names the key; the hint lists what is accepted.
    """
    infos, var_keyword = param_infos(cls)
    by_name = {info.name: info for info in infos}
    checked: dict[str, Any] = {}
    for key, value in params.items():
        info = by_name.get(key)
        if info is None:
            if var_keyword:
                checked[key] = value
                continue
            raise ConfigError(
                f"unknown param '{key}' for {cls.__name__}",
                hint=_unknown_hint(key, infos),
                location=locate(key),
            )
        if info.hint is inspect.Parameter.empty:
            checked[key] = value
            continue
        try:
            checked[key] = coerce(value, info.hint)
        except TypeMismatch as mismatch:
            found = describe_value(value)
            if is_secret_name(key):  # echoed to a terminal, a CI log: its type only
                found = f"{HIDDEN} ({type(value).__name__})"
            raise ConfigError(
                f"expected {mismatch}, found {found}",
                hint=f"{cls.__name__}.{key} is declared as `{info.type_label}`",
                location=locate(key),
            ) from None
    missing = [info for info in infos if info.required and info.name not in params]
    if missing:
        names = ", ".join(f"{m.name} ({m.type_label})" for m in missing)
        raise ConfigError(
            f"missing required param{'s' if len(missing) > 1 else ''} for {cls.__name__}: {names}",
            hint=f"add {', '.join(m.name for m in missing)} to the params table",
            location=locate(""),
        )
    for info in infos:
        checked.setdefault(info.name, info.default)
    return checked


def _unknown_hint(key: str, infos: list[ParamInfo]) -> str:
    names = [info.name for info in infos]
    accepted = f"accepted params: {', '.join(names) or 'none'}"
    close = did_you_mean(key, names)
    return f"{close} {accepted}" if close else accepted
