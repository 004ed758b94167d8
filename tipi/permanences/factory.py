"""Builds an object from a built-in name or a `module:factory` path, with a clear error."""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import Any

from tipi.errors import ConfigError
from tipi.siblings import import_as_script
from tipi.suggest import did_you_mean


def build(
    spec: str, builtins: Mapping[str, Callable[..., Any]], params: Mapping[str, Any], what: str
) -> Any:
    """Call the factory named `spec` (a built-in name or `module:function`) with `params`."""
    if ":" in spec:
        module_name, _, attr = spec.partition(":")
        try:
            factory = getattr(import_as_script(module_name), attr)
        except (ImportError, AttributeError) as exc:
            raise ConfigError(f"cannot load {what} factory '{spec}': {exc}") from exc
    elif spec in builtins:
        factory = builtins[spec]
    else:
        close = did_you_mean(spec, builtins)
        raise ConfigError(
            f"unknown {what} '{spec}'",
            hint=(f"{close} " if close else "")
            + f"built-in: {', '.join(builtins)}; or give 'package.module:function'",
        )
    try:
        return factory(**params)
    except TypeError as exc:
        raise ConfigError(f"{what} '{spec}' rejected its params {dict(params)}: {exc}") from exc


def require(module: str, extra: str, what: str) -> Any:
    """Import an optional dependency, or fail with the extra that installs it."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise ConfigError(
            f"{what} needs the '{module.split('.')[0]}' package, which is not installed ({exc})",
            hint=f"pip install 'tipi[{extra}]'",
        ) from exc
