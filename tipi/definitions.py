"""Checks that a class named in `type` can be built and run the way the engine does it."""

from __future__ import annotations

import ast
import functools
import inspect
import linecache
import textwrap
import types
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from tipi.errors import DefinitionError, Location
from tipi.permanence import Permanence
from tipi.process import PipelineProcess
from tipi.suggest import close_matches

# The one method each kind must write: (kind, why it is needed, stub, what the body does).
_REQUIRED = {
    "cleanup": (
        "permanence",
        "it is always called, even after a failure",
        "def cleanup(self) -> None:",
        "releasing what initialize() acquired (`pass` if nothing)",
    ),
    "execute": (
        "process",
        "it does the step's work",
        "def execute(self) -> None:",
        "reading self.inputs and writing self.outputs",
    ),
}
# Names people give the required method under another habit; suggested as "meant to be".
_HABITS = {
    "cleanup": ("close", "teardown", "release", "shutdown", "clean_up", "dispose"),
    "execute": ("run", "process", "forward", "main", "__call__", "call"),
}
_ENGINE_CALL = "{name}(controller, force=..., **params)"
_SUPER_CALL = "super().__init__(controller, force)"
_P = inspect.Parameter


def definition_problem(cls: type, fallback: Location | None = None) -> DefinitionError | None:
    """What stops the engine from building or running `cls`, as an error to raise; else None.

    Checked: a permanence or process that leaves ``cleanup()`` or ``execute()`` (or another
    abstract method) unwritten; a process whose ``__init__`` does not take ``controller`` first
    and ``force`` as a keyword, as the engine passes them, or never calls
    ``super().__init__(controller, force)`` (read from its source; unreadable source passes);
    a permanence whose ``__init__`` requires ``controller`` or ``force``, which it is never given.
    The error points at the class or its ``__init__``; at `fallback` where that has no source.
    """
    if inspect.isabstract(cls):
        return _abstract(cls, fallback)
    init = inspect.unwrap(cls.__init__)
    if init in (PipelineProcess.__init__, object.__init__) or hasattr(cls, "__tipi_function__"):
        return None  # tipi's own constructors (a @pipeline_process class's included)
    if issubclass(cls, PipelineProcess):
        return _process_signature(cls, init, fallback) or _missing_super(cls, init, fallback)
    if issubclass(cls, Permanence):
        return _permanence_signature(cls, init, fallback)
    return None


def check_constructed(process: PipelineProcess) -> None:
    """The run-time guard behind the source check: `process`, just built, has its base state.

    Raises:
        DefinitionError: ``controller`` or ``force`` is unset: its ``__init__`` skipped
            ``super().__init__`` in a way its source did not show.
    """
    missing = [attr for attr in ("controller", "force") if not hasattr(process, attr)]
    if missing:
        cls = type(process)
        raise _super_error(cls, inspect.unwrap(cls.__init__), missing, None)


def _abstract(cls: type, fallback: Location | None) -> DefinitionError:
    name, missing = cls.__name__, sorted(getattr(cls, "__abstractmethods__", ()))
    location = _class_location(cls) or fallback
    for method, (kind, why, stub, body) in _REQUIRED.items():
        if method in missing:
            meant = _meant(cls, method)
            return DefinitionError(
                f"class {name} has no {method}(): a {kind} must define {method}() ({why})",
                hint=f"add to {name}: `{stub}` {body}"
                + (
                    f"; or, if {meant}() is meant to be it, rename it to {method}()"
                    if meant
                    else ""
                ),
                location=location,
            )
    methods = ", ".join(f"{m}()" for m in missing)
    owners = {_declaring(cls, m) for m in missing} - {name}
    declared = f", declared abstract in {', '.join(sorted(owners))}" if owners else ""
    return DefinitionError(
        f"class {name} is abstract: it does not define {methods}{declared}",
        hint=f"define {methods} in {name}, or name a subclass that does in `type`",
        location=location,
    )


def _meant(cls: type, method: str) -> str | None:
    """A method of `cls` that looks like `method` under another name (`run` for `execute`)."""
    own = {
        attr
        for klass in cls.__mro__
        if klass not in (Permanence, PipelineProcess, object) and klass.__module__ != "abc"
        for attr, value in vars(klass).items()
        if callable(value) and not (attr.startswith("__") and attr != "__call__")
    }
    close = close_matches(method, sorted(own), cutoff=0.7)
    habits = [h for h in _HABITS[method] if h in own]
    return (close or habits or [None])[0]


def _declaring(cls: type, method: str) -> str:
    for klass in cls.__mro__:
        if getattr(vars(klass).get(method), "__isabstractmethod__", False):
            return klass.__name__
    return cls.__name__


def _process_signature(
    cls: type, init: Callable[..., Any], fallback: Location | None
) -> DefinitionError | None:
    params = _parameters(init)
    if params is None:
        return None
    first = params[0] if params else None
    takes_controller = first is not None and (
        first.kind is _P.VAR_POSITIONAL
        or (
            first.kind in (_P.POSITIONAL_ONLY, _P.POSITIONAL_OR_KEYWORD)
            and first.name == "controller"
        )
    )
    takes_force = any(
        p.kind is _P.VAR_KEYWORD
        or (p.name == "force" and p.kind in (_P.POSITIONAL_OR_KEYWORD, _P.KEYWORD_ONLY))
        for p in params
    )
    if takes_controller and takes_force:
        return None
    if takes_controller:
        found, wanted = "does not accept force", _wanted(params[1:])
    else:
        if first is None:
            found = "takes no controller"
        elif first.name == "controller":
            found = "takes controller only by keyword"
        else:
            found = f"takes `{first.name}` first, not controller"
        wanted = "def __init__(self, controller, force: bool = False, ...)"
    return DefinitionError(
        f"{cls.__name__}.__init__{_from(cls, init)} {found}: "
        f"the engine constructs a process as {_ENGINE_CALL.format(name=cls.__name__)}"
        + ("" if takes_controller else " and reads every other parameter as a param"),
        hint=f"declare `{wanted}` and call `{_SUPER_CALL}` first",
        location=_function_location(init) or fallback,
    )


def _wanted(params: list[inspect.Parameter]) -> str:
    """The user's own `__init__` with `controller` and `force` in front of its params."""
    head = [
        _P("self", _P.POSITIONAL_OR_KEYWORD),
        _P("controller", _P.POSITIONAL_OR_KEYWORD),
        _P("force", _P.POSITIONAL_OR_KEYWORD, default=False, annotation=_Text("bool")),
    ]
    rest = [
        p.replace(annotation=_Text(p.annotation)) if isinstance(p.annotation, str) else p
        for p in params
    ]
    try:
        return f"def __init__{inspect.Signature(head + rest, return_annotation=_Text('None'))}"
    except ValueError:  # a required param would follow force's default: keep it short
        return "def __init__(self, controller, force: bool = False, ...)"


class _Text(str):
    """An annotation written as text (`from __future__ import annotations`), shown unquoted."""

    def __repr__(self) -> str:
        return str(self)


def _missing_super(
    cls: type, init: Callable[..., Any], fallback: Location | None
) -> DefinitionError | None:
    text = _function_text(init)
    unset = [] if text is None else _unset_in(text)
    return _super_error(cls, init, list(unset), fallback) if unset else None


@functools.lru_cache(maxsize=1024)
def _unset_in(text: str) -> tuple[str, ...]:
    """`_left_unset` of the function written as `text`, read once per text in a process:
    step classes often share one `__init__` written alike (a plan of 500 read it 500 times)."""
    try:
        tree = ast.parse(text)
    except (SyntaxError, ValueError):
        return ()
    node = tree.body[0] if tree.body else None
    if not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
        return ()
    return tuple(_left_unset(node))


def _super_error(
    cls: type, init: Callable[..., Any], missing: list[str], fallback: Location | None
) -> DefinitionError:
    unset = " and ".join(f"self.{attr}" for attr in missing)
    owner = getattr(init, "__qualname__", f"{cls.__name__}.__init__")
    return DefinitionError(
        f"{cls.__name__}.__init__{_from(cls, init)} never calls {_SUPER_CALL}, "
        f"so {unset} {'is' if len(missing) == 1 else 'are'} never set",
        hint=f"add `{_SUPER_CALL}` at the top of {owner}",
        location=_function_location(init) or fallback,
    )


def _left_unset(node: ast.FunctionDef | ast.AsyncFunctionDef) -> list[str]:
    """The base attributes `__init__`'s source leaves unset: none where it calls a base
    `__init__`, sets them itself, or may do so in a way a reading cannot follow (handing
    the controller to a call, `setattr`, `__dict__`: the run-time guard covers those)."""
    positional = [a.arg for a in node.args.posonlyargs + node.args.args]
    this = positional[0] if positional else None
    controller = positional[1] if len(positional) > 1 else None
    stored: set[str] = set()
    for sub in ast.walk(node):
        if isinstance(sub, ast.Call):
            func = sub.func
            if isinstance(func, ast.Attribute) and func.attr == "__init__":
                return []  # super().__init__(...), Base.__init__(self, ...)
            if isinstance(func, ast.Name) and func.id == "setattr":
                return []
            passed = [*sub.args, *(k.value for k in sub.keywords)]
            if controller and any(isinstance(a, ast.Name) and a.id == controller for a in passed):
                return []
        elif isinstance(sub, ast.Attribute):
            if sub.attr == "__dict__":
                return []
            if (
                isinstance(sub.ctx, ast.Store)
                and isinstance(sub.value, ast.Name)
                and sub.value.id == this
            ):
                stored.add(sub.attr)
    return [attr for attr in ("controller", "force") if attr not in stored]


def _permanence_signature(
    cls: type, init: Callable[..., Any], fallback: Location | None
) -> DefinitionError | None:
    params = _parameters(init) or []
    engine = [p.name for p in params if p.name in ("controller", "force") and p.default is _P.empty]
    if not engine:
        return None
    name = engine[0]
    why = (
        "self.controller is set before initialize()"
        if name == "controller"
        else "force is a process's"
    )
    return DefinitionError(
        f"{cls.__name__}.__init__{_from(cls, init)} requires {name}, which a permanence "
        f"is never given: the engine constructs it as {cls.__name__}(**params)",
        hint=f"remove {name} from its parameters ({why})",
        location=_function_location(init) or fallback,
    )


def _parameters(init: Callable[..., Any]) -> list[inspect.Parameter] | None:
    """`init`'s parameters after `self`, or None where it has no readable signature."""
    try:
        params = list(inspect.signature(init).parameters.values())
    except (TypeError, ValueError):
        return None
    return params[1:] if params and params[0].kind is not _P.VAR_POSITIONAL else params


def _from(cls: type, init: Callable[..., Any]) -> str:
    """' (inherited from Base)' when `cls` uses a base class's `__init__`."""
    owner = getattr(init, "__qualname__", "").rpartition(".")[0]
    return f" (inherited from {owner})" if owner and owner != cls.__qualname__ else ""


def _function_text(func: Callable[..., Any]) -> str | None:
    """The source of `func` (dedented), read from the lines its code spans, or None.

    Not `inspect.getsource`: its tokenizer costs a planning run tens of milliseconds on first
    use, and the line span is in the code object already.
    """
    code = getattr(func, "__code__", None)
    if code is None:
        return None
    linecache.checkcache(code.co_filename)  # an edited file must not be read from memory
    lines = linecache.getlines(code.co_filename)
    last = max(
        (end for part in _codes(code) for _, end, _, _ in part.co_positions() if end), default=0
    )
    return textwrap.dedent("".join(lines[code.co_firstlineno - 1 : last]))


def _codes(code: types.CodeType) -> Iterator[types.CodeType]:
    """`code` and the code nested in it (its lambdas, comprehensions and inner functions)."""
    yield code
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            yield from _codes(const)


def _function_location(func: Callable[..., Any]) -> Location | None:
    code = getattr(func, "__code__", None)
    if code is None or not Path(code.co_filename).is_file():
        return None
    return Location(file=Path(code.co_filename), line=code.co_firstlineno)


def _class_location(cls: type) -> Location | None:
    try:
        file = inspect.getsourcefile(cls)
    except TypeError:
        return None
    if file is None:
        return None
    try:
        line: int | None = inspect.getsourcelines(cls)[1]
    except (OSError, TypeError):
        line = None
    return Location(file=Path(file), line=line)
