"""The command that continues this make: what a hint after Ctrl-C or a failure tells to run.

It is the command as the user typed it, rebuilt from Click's parsed parameters (so `--set`,
targets, `-c`, `-j`, `-p`, `--remote`, ... are kept, whatever form they were written in) and
quoted for the shell (`shlex.join`), in the order tipi declares its options. Dropped:
`-f/--force` and `-F/--force-all`, which must not repeat: the forced steps that finished would
run again, while the ones that did not finish run anyway (a step without a successful run is
out of date).
"""

from __future__ import annotations

import shlex

# Typer runs its own copy of Click (typer._click): its context and parameters are those.
from typer._click.core import Context, Parameter, ParameterSource
from typer._click.globals import get_current_context
from typer.core import TyperArgument, TyperOption

# Options whose repetition would redo finished work (see the module docstring).
DROPPED = ("force", "force_all")


def continue_command(ctx: Context | None = None) -> str:
    """The shell command that continues the make `ctx` (default: the current command)."""
    ctx = ctx or get_current_context()
    words = ["tipi"]
    parent = ctx.parent
    if parent is not None and parent.params.get("debug"):
        words.append("--debug")
    words.append(ctx.info_name or "make")
    for param in ctx.command.params:
        name = param.name or ""
        source = ctx.get_parameter_source(name)
        if name in DROPPED or source is not ParameterSource.COMMANDLINE:
            continue
        words += _words(param, ctx.params.get(name))
    return shlex.join(words)


def _words(param: Parameter, value: object) -> list[str]:
    """How `param` with `value` is written on a command line."""
    values = list(value) if isinstance(value, list | tuple) else [value]
    if isinstance(param, TyperArgument):
        return [_text(v) for v in values if v is not None]
    assert isinstance(param, TyperOption)
    name = param.opts[0]  # as declared first: -p, -c, -j, --set
    if param.is_flag:
        if param.secondary_opts and not value:
            return [max(param.secondary_opts, key=len)]
        return [name] if value else []
    return [word for v in values if v is not None for word in (name, _text(v))]


def _text(value: object) -> str:
    return str(getattr(value, "value", value))  # an enum's value, a Path as written
