"""What one Python file defines and references, read from its AST: the units a code closure
is made of.

A *unit* is the smallest piece of code whose edit reruns a step: a module-level function, a
class's header (bases, decorators, class-level statements) or one of its methods, a
module-level assignment, or the module's other top-level statements taken together (calls,
`if`/`try` blocks: they run whenever the module is imported). Each unit has the digest of its
normalized AST (no docstrings, comments, formatting or line numbers) and the name chains it
loads (`helpers.scale`, `Net`), which closure.py resolves through the module's bindings.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass, field

from tipi.cache.hashing import hash_bytes

MODULE_UNIT = "<module>"
# A unit calling one of these may reach any name of its module by a string.
DYNAMIC_CALLS = frozenset(
    {"getattr", "exec", "eval", "globals", "vars", "locals", "__import__", "import_module"}
)


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
    """

    digest: str
    refs: tuple[tuple[str, ...], ...]
    dynamic: bool = False
    local: tuple[tuple[str, Binding], ...] = ()


@dataclass
class ModuleSource:
    """The units and module-level bindings of one file.

    Attributes:
        units: unit name → Unit ("f", "Net", "Net.forward", "SCALE", "<module>").
        classes: class name → the names of its units (header first).
        bindings: module-level name → Binding.
        stars: modules imported with `from m import *`, as (module parts, level).
    """

    units: dict[str, Unit] = field(default_factory=dict)
    classes: dict[str, list[str]] = field(default_factory=dict)
    bindings: dict[str, Binding] = field(default_factory=dict)
    stars: list[tuple[tuple[str, ...], int]] = field(default_factory=list)


def read_module(text: str) -> ModuleSource:
    """Parse a module's text into units and bindings (raises SyntaxError)."""
    tree = ast.parse(text)
    module = ModuleSource()
    loose: list[ast.stmt] = []
    for node in tree.body:
        if _is_docstring(node) or _is_main_guard(node):
            continue
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            _add(module, node.name, [node])
        elif isinstance(node, ast.ClassDef):
            _add_class(module, node)
        elif isinstance(node, ast.Import | ast.ImportFrom):
            _bind_imports(module, node)
        elif isinstance(node, ast.Assign | ast.AnnAssign | ast.AugAssign) and (
            names := _assigned(node)
        ):
            _add(module, names[0], [node])
            for name in names[1:]:
                module.bindings[name] = Binding("unit", names[0])
        else:
            loose.append(node)
    if loose:
        _add(module, MODULE_UNIT, loose)
        for node in loose:  # names bound inside `if`/`try`/`with` blocks
            for inner in _walk_shallow(node):
                if isinstance(inner, ast.Import | ast.ImportFrom):
                    _bind_imports(module, inner)
                elif isinstance(inner, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
                    module.bindings.setdefault(inner.name, Binding("unit", MODULE_UNIT))
                elif isinstance(inner, ast.Assign | ast.AnnAssign | ast.AugAssign):
                    for name in _assigned(inner):
                        module.bindings.setdefault(name, Binding("unit", MODULE_UNIT))
    return module


def _add(module: ModuleSource, name: str, nodes: list[ast.stmt]) -> None:
    unit = _unit(nodes)
    old = module.units.get(name)
    if old is not None:  # `X = 1` then `X += 1`: one unit, both statements
        unit = Unit(
            hash_bytes((old.digest + unit.digest).encode()),
            old.refs + unit.refs,
            old.dynamic or unit.dynamic,
            old.local + unit.local,
        )
    module.units[name] = unit
    module.bindings[name] = Binding("unit", name)


def _add_class(module: ModuleSource, node: ast.ClassDef) -> None:
    header: list[ast.stmt] = []
    names = [node.name]
    body = [s for s in node.body if not _is_docstring(s)]
    for statement in body:
        if isinstance(statement, ast.FunctionDef | ast.AsyncFunctionDef):
            member = f"{node.name}.{statement.name}"
            module.units[member] = _unit([statement])
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
    module.units[node.name] = _unit([shell])
    module.classes[node.name] = names
    module.bindings[node.name] = Binding("unit", node.name)


def _bind_imports(module: ModuleSource, node: ast.Import | ast.ImportFrom) -> None:
    for name, binding in import_bindings(node):
        if name == "*":
            module.stars.append((binding.module, binding.level))
        else:
            module.bindings[name] = binding


def import_bindings(node: ast.Import | ast.ImportFrom) -> list[tuple[str, Binding]]:
    """(bound name, Binding) for each name an import statement binds ("*" for a star)."""
    if isinstance(node, ast.Import):
        found = []
        for alias in node.names:
            parts = tuple(alias.name.split("."))
            if alias.asname:
                found.append((alias.asname, Binding("module", module=parts)))
            else:  # `import a.b` binds `a`; `a.b.f` is resolved from there
                found.append((parts[0], Binding("module", module=parts[:1])))
        return found
    parts = tuple(node.module.split(".")) if node.module else ()
    return [
        (
            alias.asname or alias.name,
            Binding("from", module=parts, level=node.level, attr=alias.name),
        )
        for alias in node.names
    ]


def _unit(nodes: list[ast.stmt]) -> Unit:
    refs: set[tuple[str, ...]] = set()
    local: list[tuple[str, Binding]] = []
    dynamic = False
    dumps = []
    for node in nodes:
        _strip_docstrings(node)
        dumps.append(ast.dump(node, annotate_fields=False, include_attributes=False))
        collector = _Refs()
        collector.visit(node)
        refs |= collector.refs
        local += collector.local
        dynamic = dynamic or collector.dynamic
    digest = hash_bytes("\n".join(dumps).encode())
    return Unit(digest, tuple(sorted(refs)), dynamic, tuple(local))


class _Refs(ast.NodeVisitor):
    """Collects the longest name chains a piece of code loads (`a.b.c`, not also `a`)."""

    def __init__(self) -> None:
        self.refs: set[tuple[str, ...]] = set()
        self.local: list[tuple[str, Binding]] = []
        self.dynamic = False

    def visit_Import(self, node: ast.Import) -> None:
        self.local += import_bindings(node)

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        self.local += import_bindings(node)

    def visit_Name(self, node: ast.Name) -> None:
        if isinstance(node.ctx, ast.Load):
            self.refs.add((node.id,))

    def visit_Attribute(self, node: ast.Attribute) -> None:
        chain = _chain(node)
        if chain is None:
            self.generic_visit(node)
        else:
            self.refs.add(chain)

    def visit_Call(self, node: ast.Call) -> None:
        func = node.func
        name = func.id if isinstance(func, ast.Name) else getattr(func, "attr", None)
        if name in DYNAMIC_CALLS:
            self.dynamic = True
        self.generic_visit(node)


def _chain(node: ast.expr) -> tuple[str, ...] | None:
    parts: list[str] = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if not isinstance(node, ast.Name):
        return None
    return (node.id, *reversed(parts))


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
    found = []
    for child in ast.iter_child_nodes(node):
        found.append(child)
        if not isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            found += _walk_shallow(child)
    return found


def _is_docstring(node: ast.stmt) -> bool:
    return (
        isinstance(node, ast.Expr)
        and isinstance(node.value, ast.Constant)
        and isinstance(node.value.value, str)
    )


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


def _strip_docstrings(tree: ast.AST) -> None:
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if (
            isinstance(node, ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef | ast.Module)
            and body
            and _is_docstring(body[0])
        ):
            node.body = body[1:] or [ast.Pass()]
