"""What one Python file defines and references, read from its AST: the units a code closure
is made of.

A *unit* is the smallest piece of code whose edit reruns a step: a module-level function, a
class's header (bases, decorators, class-level statements) or one of its methods, a
module-level assignment, or the module's other top-level statements taken together (calls,
`if`/`try` blocks: they run whenever the module is imported). Each unit has the digest of its
normalized AST (normalize.py: no docstrings, comments, formatting or line numbers) and the name
chains it loads (`helpers.scale`, `Net`), which closure.py resolves through the module's bindings.

What runs when a module is imported counts for every step that imports it, and for every
step of the pipeline where tipi imports the module itself (*eager* units): the units whose
execution at import may do more than bind their own name. That is top-level statements that call
something, assign to an attribute or an item (`models.Net.describe = _describe`) or augment a
name; functions and classes whose decorators may register them somewhere (`@register`, whole);
assignments and class headers that call something (`MEAN = torch.tensor(...)`: a call may
change anything). Calls known to only build a value (`int`, `os.environ.get`, `field`) and
decorators known to only wrap or describe (`@dataclass`, `@property`) do not make a unit eager
(effects.py holds these rules).
A unit that imports a module by a computed name (`importlib.import_module("m" + x)`) is marked:
the module it loads cannot be known (closure.py counts every module of the pipeline folder).
Everything here is iterative (a 1,000-branch `elif` chain, a 10,000-term sum).
"""

from __future__ import annotations

import ast
import io
import re
import tokenize
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from tipi.identity.effects import (
    PLAIN_METACLASSES,
    Scope,
    computed_import,
    dotted,
    has_effect,
    module_scope,
    name_chain,
    pure,
)
from tipi.identity.hashing import hash_bytes
from tipi.identity.normalize import ast_digest, is_docstring, strip_docstrings

MODULE_UNIT = "<module>"
# A unit calling one of these may reach any name of its module by a string.
DYNAMIC_CALLS = frozenset({"getattr", "exec", "eval", "globals", "vars", "locals", "__import__"})
DYNAMIC_METHODS = frozenset({"import_module"})  # importlib.import_module(name)
MODULE_LIKE = re.compile(r"\.{0,3}[A-Za-z_]\w*(\.\w+)*(:[A-Za-z_][\w.]*)?\Z")


@dataclass(frozen=True)
class Binding:
    """What a module-level name stands for.

    `kind` is "unit" (defined here: `target` is the unit's name), "module" (`import a.b as
    c`: `module` is ("a", "b") and `level` 0), or "from" (`from .m import x`: `module` is
    ("m",), `level` 1, `attr` "x").
    """

    kind: str
    target: str = ""
    module: tuple[str, ...] = ()
    level: int = 0
    attr: str = ""


@dataclass(frozen=True)
class Unit:
    """One function, class part, constant or group of module-level statements.

    Attributes:
        digest: hash of its normalized AST.
        refs: the name chains it loads, e.g. ("helpers", "scale"), ("Net",).
        dynamic: it reaches names by string (getattr, exec, ...): its whole module counts.
        local: names bound by imports inside it (`def f(): from helpers import g`).
        strings: its string constants that could name a module (`"losses:focal"`,
            `".impl"`), followed where its module imports by name (importlib).
        computed: it imports a module by a computed name (`import_module("m" + x)`,
            `__import__(name)`): which module cannot be read from the code.
    """

    digest: str
    refs: tuple[tuple[str, ...], ...]
    dynamic: bool = False
    local: tuple[tuple[str, Binding], ...] = ()
    strings: tuple[str, ...] = ()
    computed: bool = False


@dataclass
class ModuleSource:
    """The units and module-level bindings of one file.

    Attributes:
        units: unit name → Unit ("f", "Net", "Net.forward", "SCALE", "<module>").
        classes: class name → the names of its units (header first).
        bindings: module-level name → every Binding it gets, in order (`try: from fast
            import f` / `except: from slow import f`, or `f = cache(f)` after an import).
        stars: modules imported with `from m import *`, as (module parts, level).
        imports: every module-level import (importing a module runs it).
        eager: units whose execution at import may change more than their own name.
        headers: the classes among `eager` that are eager for their header only (a call in
            a class attribute); the others (a registering decorator) count whole.
        bases: class name → the name chains of its bases (a base defined in the project may
            register its subclasses: closure.py looks).
        registrars: classes that may register their subclasses (`__init_subclass__`, a
            metaclass other than the standard ones).
        imports_by_name: some unit imports modules by name at run time.
    """

    units: dict[str, Unit] = field(default_factory=dict)
    classes: dict[str, list[str]] = field(default_factory=dict)
    bindings: dict[str, list[Binding]] = field(default_factory=dict)
    stars: list[tuple[tuple[str, ...], int]] = field(default_factory=list)
    imports: list[Binding] = field(default_factory=list)
    eager: list[str] = field(default_factory=list)
    headers: set[str] = field(default_factory=set)
    bases: dict[str, tuple[tuple[str, ...], ...]] = field(default_factory=dict)
    registrars: set[str] = field(default_factory=set)
    imports_by_name: bool = False

    def bind(self, name: str, binding: Binding) -> None:
        found = self.bindings.setdefault(name, [])
        if binding not in found:
            found.append(binding)


def decode(raw: bytes) -> str:
    """A source file's text, decoded as Python does (coding cookie, BOM; else UTF-8)."""
    encoding, _ = tokenize.detect_encoding(io.BytesIO(raw).readline)
    return raw.decode(encoding)


def read_module(text: str) -> ModuleSource:
    """Parse a module's text into units and bindings (raises SyntaxError)."""
    return read_tree(ast.parse(text))


def read_tree(tree: ast.Module, known: Any = None) -> ModuleSource:
    """A parsed module's units and bindings (strips the tree's docstrings in place). A
    function's unit and whether it is eager come from `known` (statements.py) when it holds
    them (`get(node, scope)`), and go to it when computed (`put`)."""
    module = ModuleSource()
    scope = module_scope(tree)  # a `dataclass` of the project's own is no pure decorator
    loose: list[ast.stmt] = []
    for node in tree.body:
        if is_docstring(node):
            continue
        if _is_main_guard(node):  # runs only as a script; its `else:` on every import
            loose += node.orelse  # type: ignore[attr-defined]
            continue
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            found = known.get(node, scope) if known is not None else None
            if found is None:
                found = (_unit([node], scope), has_effect([node], scope))
                if known is not None:
                    known.put(node, scope, *found)
            _add(module, node.name, [node], scope, found[0])
            if found[1]:
                module.eager.append(node.name)
        elif isinstance(node, ast.ClassDef):
            _add_class(module, node, scope)
            if not pure(node.decorator_list, scope):
                module.eager.append(node.name)  # a registry may hold it: all of it counts
            elif has_effect([node], scope):
                module.eager.append(node.name)
                module.headers.add(node.name)
        elif isinstance(node, ast.Import | ast.ImportFrom):
            _bind_imports(module, node)
        elif isinstance(node, ast.Assign | ast.AnnAssign | ast.AugAssign) and (
            names := _assigned(node)
        ):
            _add(module, names[0], [node], scope)
            for name in names[1:]:
                module.bind(name, Binding("unit", names[0]))
            if has_effect([node], scope) and names[0] not in module.eager:
                module.eager.append(names[0])
        else:
            loose.append(node)
    if loose:
        _add(module, MODULE_UNIT, loose, scope)
        if has_effect(loose, scope):
            module.eager.append(MODULE_UNIT)
        for node in loose:  # names bound inside `if`/`try`/`with` blocks
            for inner in _walk_shallow(node):
                if isinstance(inner, ast.Import | ast.ImportFrom):
                    _bind_imports(module, inner)
                elif isinstance(inner, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
                    module.bind(inner.name, Binding("unit", MODULE_UNIT))
                elif isinstance(inner, ast.Assign | ast.AnnAssign | ast.AugAssign):
                    for name in _assigned(inner):
                        module.bind(name, Binding("unit", MODULE_UNIT))
    module.imports_by_name = any(u.dynamic for u in module.units.values())
    return module


def _add(
    module: ModuleSource, name: str, nodes: list[ast.stmt], scope: Scope, unit: Unit | None = None
) -> None:
    unit = unit or _unit(nodes, scope)
    old = module.units.get(name)
    if old is not None:  # `X = 1` then `X += 1`: one unit, both statements
        unit = Unit(
            hash_bytes((old.digest + unit.digest).encode()),
            old.refs + unit.refs,
            old.dynamic or unit.dynamic,
            old.local + unit.local,
            old.strings + unit.strings,
            computed=old.computed or unit.computed,
        )
    module.units[name] = unit
    module.bind(name, Binding("unit", name))


def _add_class(module: ModuleSource, node: ast.ClassDef, scope: Scope) -> None:
    header: list[ast.stmt] = []
    names = [node.name]
    body = [s for s in node.body if not is_docstring(s)]
    for statement in body:
        if isinstance(statement, ast.FunctionDef | ast.AsyncFunctionDef):
            member = f"{node.name}.{statement.name}"
            module.units[member] = _unit([statement], scope)
            names.append(member)
        else:
            header.append(statement)
    shell = ast.ClassDef(
        name=node.name,
        bases=node.bases,
        keywords=node.keywords,
        body=header or [ast.Pass()],
        decorator_list=node.decorator_list,
        type_params=getattr(node, "type_params", []),
    )
    module.units[node.name] = _unit([shell], scope)
    module.classes[node.name] = names
    module.bind(node.name, Binding("unit", node.name))
    module.bases[node.name] = tuple(
        chain for base in node.bases if (chain := name_chain(base)) is not None
    )
    metaclass = [k.value for k in node.keywords if k.arg == "metaclass"]
    if any(
        dotted(m) not in PLAIN_METACLASSES or scope.hides(dotted(m).split(".")[0])
        for m in metaclass
    ) or any(f"{node.name}.__init_subclass__" == n for n in names):
        module.registrars.add(node.name)


def _bind_imports(module: ModuleSource, node: ast.Import | ast.ImportFrom) -> None:
    for name, binding in import_bindings(node):
        module.imports.append(binding)
        if name == "*":
            module.stars.append((binding.module, binding.level))
        elif name:
            module.bind(name, binding)


def import_bindings(node: ast.Import | ast.ImportFrom) -> list[tuple[str, Binding]]:
    """(bound name, Binding) for each name an import statement binds ("*" for a star)."""
    if isinstance(node, ast.Import):
        found = []
        for alias in node.names:
            parts = tuple(alias.name.split("."))
            if alias.asname:
                found.append((alias.asname, Binding("module", module=parts)))
            else:  # `import a.b` binds `a` (and runs a.b, bound to no name: "")
                found.append((parts[0], Binding("module", module=parts[:1])))
                if len(parts) > 1:
                    found.append(("", Binding("module", module=parts)))
        return found
    parts = tuple(node.module.split(".")) if node.module else ()
    return [
        (
            alias.asname or alias.name,
            Binding("from", module=parts, level=node.level, attr=alias.name),
        )
        for alias in node.names
    ]


def _unit(nodes: list[ast.stmt], scope: Scope) -> Unit:
    for node in nodes:
        strip_docstrings(node)
    refs, local, dynamic, strings = _references(nodes)
    return Unit(
        ast_digest(nodes),
        tuple(sorted(refs)),
        dynamic,
        tuple(local),
        tuple(strings),
        computed=any(computed_import(n, scope) for n in _walk(nodes)),
    )


def _references(
    nodes: list[ast.stmt],
) -> tuple[set[tuple[str, ...]], list[tuple[str, Binding]], bool, list[str]]:
    """The longest name chains the nodes load (`a.b.c`, not also `a`), the imports inside
    them, whether they reach names by string, and their module-like string constants."""
    refs: set[tuple[str, ...]] = set()
    local: list[tuple[str, Binding]] = []
    strings: list[str] = []
    dynamic = False
    consumed: set[int] = set()
    for node in _walk(nodes):
        if isinstance(node, ast.Attribute) and id(node) not in consumed:
            chain, inner = _chain(node)
            if chain is not None:
                refs.add(chain)
                consumed.update(inner)
        elif isinstance(node, ast.Name) and id(node) not in consumed:
            if isinstance(node.ctx, ast.Load):
                refs.add((node.id,))
        elif isinstance(node, ast.AugAssign) and isinstance(node.target, ast.Name):
            refs.add((node.target.id,))  # `X += 1` reads X
        elif isinstance(node, ast.Import | ast.ImportFrom):
            local += [(n, b) for n, b in import_bindings(node) if n != "*"]  # "" too: it runs
        elif isinstance(node, ast.Call):
            func = node.func
            if (isinstance(func, ast.Name) and func.id in DYNAMIC_CALLS) or (
                isinstance(func, ast.Attribute) and func.attr in DYNAMIC_METHODS
            ):
                dynamic = True
        elif _module_like(node):
            strings.append(node.value)  # type: ignore[attr-defined]
    return refs, local, dynamic, strings


def _module_like(node: ast.AST) -> bool:
    value = getattr(node, "value", None)
    return (
        isinstance(node, ast.Constant)
        and isinstance(value, str)
        and len(value) < 200
        and MODULE_LIKE.match(value) is not None
    )


def _walk(nodes: Iterable[ast.AST]) -> Iterator[ast.AST]:
    """Every node, parents before children (breadth first; no recursion)."""
    for node in nodes:
        yield from ast.walk(node)


def _chain(node: ast.Attribute) -> tuple[tuple[str, ...] | None, list[int]]:
    parts: list[str] = []
    inner: list[int] = []
    current: ast.expr = node
    while isinstance(current, ast.Attribute):
        parts.append(current.attr)
        inner.append(id(current))
        current = current.value
    if not isinstance(current, ast.Name):
        return None, []
    inner.append(id(current))
    return (current.id, *reversed(parts)), inner


def _assigned(node: ast.Assign | ast.AnnAssign | ast.AugAssign) -> list[str]:
    targets = node.targets if isinstance(node, ast.Assign) else [node.target]
    names: list[str] = []
    for target in targets:
        for inner in ast.walk(target):
            if isinstance(inner, ast.Name):
                names.append(inner.id)
            elif isinstance(inner, ast.Attribute | ast.Subscript):
                return []  # `obj.x = ...` changes something else: a module-level statement
    return names


def _walk_shallow(node: ast.AST) -> list[ast.AST]:
    """Every node below `node`, not descending into functions and classes."""
    found: list[ast.AST] = []
    stack = list(ast.iter_child_nodes(node))
    while stack:
        child = stack.pop()
        found.append(child)
        if not isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            stack.extend(ast.iter_child_nodes(child))
    return found


def _is_main_guard(node: ast.stmt) -> bool:
    """`if __name__ == "__main__":` runs only as a script, never when a step imports it."""
    test = getattr(node, "test", None)
    return (
        isinstance(node, ast.If)
        and isinstance(test, ast.Compare)
        and isinstance(test.left, ast.Name)
        and test.left.id == "__name__"
        and len(test.comparators) == 1
        and isinstance(test.comparators[0], ast.Constant)
        and test.comparators[0].value == "__main__"
    )
