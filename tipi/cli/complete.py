"""Shell completion of what matters (`tipi --install-completion`): `-p` completes the
project's pipelines, targets the chosen pipeline's steps (or the only pipeline's), and `--set`
its params as `step.param=` then, after the `=`, the value the TOML gives it.

Completion reads the pipeline's TOML only: it imports no step (no torch), so a TAB answers in
the time Python starts. A param the TOML leaves at its default is not offered (only importing
the step's class would tell it). Anything that goes wrong completes nothing, silently: a
completion must never print an error into the user's command line.
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import typer


def pipelines(incomplete: str) -> list[str]:
    """The pipelines of the project around the working directory."""
    from tipi.config.project import find_project_root, list_pipelines

    root = find_project_root()
    names = list_pipelines(root) if root is not None else []
    return [name for name in names if name.startswith(incomplete)]


def targets(ctx: typer.Context, incomplete: str) -> list[str]:
    """The steps of the pipeline `-p` names (or of the only one)."""
    steps = _processes(ctx)
    # Bash splits `--set KEY=VALUE` at its `=` (COMP_WORDBREAKS): KEY is taken as --set's
    # value, and the `=` is the word under the cursor (bash inserts after it), or the word
    # before it.
    given, sets = ctx.params.get("targets") or [], ctx.params.get("set_") or []
    under = _bash_word()  # Click hands a lone "=" over as ""
    if sets and (under == "=" or (given and given[-1] == "=")):
        value = dict(_params(steps)).get(sets[-1])
        if value is None:
            return []
        return [value] if under == "=" or value.startswith(incomplete) else []
    return [name for name in steps if name.startswith(incomplete)]


def _bash_word() -> str | None:
    """The word under the cursor as bash gave it (`COMP_WORDS`, `COMP_CWORD`), else None."""
    words, index = os.environ.get("COMP_WORDS"), os.environ.get("COMP_CWORD", "")
    if words is None or not index.isdigit():
        return None
    split = words.split()
    return split[int(index)] if int(index) < len(split) else ""


def overrides(ctx: typer.Context, incomplete: str) -> list[str]:
    """`step.param=` for each param the TOML sets; past the `=`, its value there (none for a
    secret's, nor for a value the shell would need quoted)."""
    keys = dict(_params(_processes(ctx)))
    if "=" in incomplete:
        key = incomplete.partition("=")[0]
        value = keys.get(key)
        return [f"{key}={value}"] if value is not None else []
    return [f"{key}=" for key in keys if key.startswith(incomplete)]


def _processes(ctx: typer.Context) -> dict[str, Any]:
    """The `[processes]` tables of the pipeline chosen on the command line so far."""
    try:
        data = tomllib.loads(_pipeline_file(ctx).read_text(encoding="utf-8"))
    except (OSError, ValueError, UnicodeError):
        return {}
    processes = data.get("processes")
    return processes if isinstance(processes, dict) else {}


def _pipeline_file(ctx: typer.Context) -> Path:
    from tipi.config.project import PIPELINE_FILE, PIPELINES_DIR, find_project_root, list_pipelines

    root = find_project_root()
    if root is None:
        raise OSError("no project here")
    name = ctx.params.get("pipeline")
    if not name:
        found = list_pipelines(root)
        if len(found) != 1:
            raise OSError("which pipeline?")
        name = found[0]
    folder = root / PIPELINES_DIR / str(name)
    config = ctx.params.get("config")
    file = folder / (str(config) if config else PIPELINE_FILE)
    if not file.resolve().is_relative_to(folder.resolve()):
        raise OSError("outside the pipeline folder")
    return file


def _params(processes: dict[str, Any]) -> Iterator[tuple[str, str | None]]:
    """(`step.param`, value as TOML) of each param, nested tables' keys dotted."""
    for step, table in processes.items():
        params = table.get("params") if isinstance(table, dict) else None
        if isinstance(params, dict):
            yield from _flat(step, params)


def _flat(prefix: str, params: dict[str, Any]) -> Iterator[tuple[str, str | None]]:
    from tipi.redact import is_secret_name

    for key, value in params.items():
        if isinstance(value, dict):
            yield from _flat(f"{prefix}.{key}", value)
        else:
            yield f"{prefix}.{key}", None if is_secret_name(key) else _shown(value)


def _shown(value: Any) -> str | None:
    """`value` as typed after `--set KEY=` (parsed as TOML; a bare word is a string), or None
    when the shell would need it quoted."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    if isinstance(value, str) and _WORD.fullmatch(value) and value not in _KEYWORDS:
        return value
    return None


_WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_./-]*")
_KEYWORDS = ("true", "false", "inf", "nan")


# Typer's bash script lets bash add a space after every completion: after `train.lr=` that
# would end the word before its value. Bash splits words at `=` (COMP_WORDBREAKS), so the
# value is then completed as a word of its own (`targets` above sees the `=`).
_NOSPACE = (
    "    if [[ ${#COMPREPLY[@]} -eq 1 && ${COMPREPLY[0]} == *= ]]; then compopt -o nospace; fi\n"
)


def bash_keeps_the_word_open_after_equals() -> None:
    """Make the bash script that `tipi --install-completion` writes (and `--show-completion`
    prints) add no space after a single completion ending in `=`. Typer keeps the script in
    private modules: if they change shape, this does nothing and bash adds its space."""
    try:
        from typer import _completion_classes, _completion_shared
    except ImportError:
        return
    script = _completion_shared._completion_scripts.get("bash", "")
    if "    return 0\n" in script and _NOSPACE not in script:
        script = script.replace("    return 0\n", _NOSPACE + "    return 0\n", 1)
        _completion_shared._completion_scripts["bash"] = script
        _completion_classes.BashComplete.source_template = script
