"""`tipi list`: the project's pipelines and every type their TOML can name, with params."""

from __future__ import annotations

import inspect
from pathlib import PurePath

from rich.console import Console
from rich.table import Table

from tipi.config import find_project_root, list_pipelines, load_pipeline, locate_pipeline
from tipi.config.params import param_infos
from tipi.registry import Registry, kind_of


def show_listing(console: Console, only: str | None = None) -> None:
    """Print the pipelines table and, per pipeline, the types table."""
    root = find_project_root()
    names = list_pipelines(root) if root else []
    if only is not None and root is not None:
        names = [locate_pipeline(root, only)[0]]
    if names and root is not None:
        table = Table(title="pipelines", title_justify="left", header_style="bold")
        for column in ("pipeline", "steps", "description"):
            table.add_column(column)
        for name in names:
            _, file = locate_pipeline(root, name)
            spec = load_pipeline(file, name=name, root=root)
            table.add_row(name, str(len(spec.processes)), spec.description)
        console.print(table)
    registries = {name: Registry(root / "pipelines" / name, root) for name in names} if root else {}
    registries.setdefault("built-in", Registry(None, root))
    seen: set[type] = set()
    for where, registry in registries.items():
        rows = [(n, c) for n, c in registry.components() if c not in seen]
        if not rows:
            continue
        table = Table(title=f"types ({where})", title_justify="left", header_style="bold")
        for column in ("type", "kind", "params"):
            table.add_column(column)
        for name, cls in rows:
            seen.add(cls)
            table.add_row(name, kind_of(cls), _params_text(cls))
        console.print(table)


def _params_text(cls: type) -> str:
    infos, var_keyword = param_infos(cls)
    parts = []
    for info in infos:
        text = f"{info.name}: {info.type_label}"
        if not info.required and info.default is not inspect.Parameter.empty:
            default = str(info.default) if isinstance(info.default, PurePath) else info.default
            text += f" = {default!r}"
        parts.append(text)
    if var_keyword:
        parts.append("**kwargs")
    return "\n".join(parts) or "-"
