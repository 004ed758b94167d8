"""Where modules are: the file an import finds in a folder, the name a file was imported
under, and the strings that name code (`module:attr`)."""

from __future__ import annotations

import sys
from collections.abc import Iterable
from pathlib import Path

from tipi.identity.source import MODULE_LIKE


def module_refs(values: Iterable[object]) -> list[str]:
    """The strings among `values` (nested in lists and tables too) that name code as
    `module:attr` ("losses:focal"): a step that imports them by name depends on them."""
    found: list[str] = []
    stack = list(values)
    while stack:
        value = stack.pop()
        if isinstance(value, dict):
            stack.extend(value.values())
        elif isinstance(value, list | tuple):
            stack.extend(value)
        elif isinstance(value, str) and ":" in value and MODULE_LIKE.match(value):
            found.append(value)
    return sorted(set(found))


def module_file(base: Path, parts: tuple[str, ...], absent: set[str] | None = None) -> Path | None:
    """The file of module `parts` under `base`: a package's __init__.py before a module of
    the same name, as Python's finder does. Candidates not found go to `absent`."""
    if not parts:
        init = base / "__init__.py"
        return init if init.is_file() else None
    path = base.joinpath(*parts)
    for candidate in (path / "__init__.py", path.with_name(path.name + ".py")):
        if candidate.is_file():
            return candidate.resolve()
        if absent is not None:
            absent.add(str(candidate))
    return None


def module_name(file: Path) -> str:
    """The dotted name of a file in sys.modules, else its path."""
    for name, module in list(sys.modules.items()):
        if getattr(module, "__file__", None) and Path(module.__file__).resolve() == file:
            return name
    return str(file)
