"""What module-level code may do at import: more than bind names, or load code named at run time."""

from __future__ import annotations

import ast
import builtins
from collections.abc import Iterable
from dataclasses import dataclass

# Calls that load code by a name (a computed one: which module, the code cannot tell) ...
BY_NAME = frozenset({"import_module", "__import__", "exec"})
# ... or from a file by its path, whatever the path.
BY_PATH = frozenset(
    {"run_path", "run_module", "spec_from_file_location", "SourceFileLoader", "load_source"}
)
# Decorators that only wrap or describe what they decorate (no registry holds it).
PURE_DECORATORS = frozenset(
    {
        "dataclass", "property", "staticmethod", "classmethod", "cached_property", "cache",
        "lru_cache", "wraps", "total_ordering", "abstractmethod", "overload", "final",
        "contextmanager", "asynccontextmanager", "no_grad", "inference_mode", "enable_grad",
        "singledispatch", "singledispatchmethod", "override", "setter", "getter", "deleter",
        # tipi's own: it makes a step class that tipi's registry finds by name; no step reads it
        "pipeline_process",
    }
)  # fmt: skip
# Calls that only build a value from their arguments: a constant made with one is inert.
PURE_CALLS = PURE_DECORATORS | frozenset(
    {
        "int", "float", "str", "bytes", "bool", "complex", "dict", "list", "set", "tuple",
        "frozenset", "range", "len", "min", "max", "abs", "round", "sum", "sorted", "reversed",
        "zip", "enumerate", "isinstance", "object", "slice", "repr", "format", "ord", "chr",
        "os.environ.get", "os.getenv", "os.path.join", "os.path.dirname", "os.path.abspath",
        "Path", "pathlib.Path", "PurePath", "re.compile", "field", "dataclasses.field",
        "TypeVar", "typing.TypeVar", "NewType", "typing.NewType", "namedtuple",
        "collections.namedtuple", "NamedTuple", "TypedDict", "logging.getLogger",
        "defaultdict", "OrderedDict", "Counter", "deque", "partial", "functools.partial",
    }
)  # fmt: skip
# Metaclasses that register nothing a step could read.
PLAIN_METACLASSES = frozenset({"type", "ABCMeta", "abc.ABCMeta", "EnumMeta", "EnumType"})
# Where the names above come from. The same name bound otherwise (defined in the module,
# imported from the project: a `dataclass` of one's own that registers) is judged like any
# other call or decorator.
PURE_ORIGINS = frozenset(
    {
        "builtins", "abc", "collections", "contextlib", "dataclasses", "enum", "functools",
        "logging", "os", "pathlib", "re", "typing", "typing_extensions", "torch", "tipi",
    }
)  # fmt: skip


@dataclass(frozen=True)
class Scope:
    """What a module binds that changes the rules above: names of PURE_CALLS it rebinds
    (`shadowed`), whether a star import from elsewhere may rebind any (`star`, then only
    `standard` names, imported from PURE_ORIGINS, and builtins keep their meaning), and
    whether annotations wait (`from __future__ import annotations`: not evaluated at import)."""

    shadowed: frozenset[str] = frozenset()
    star: bool = False
    standard: frozenset[str] = frozenset()
    lazy_annotations: bool = False
    loaders: frozenset[tuple[str, str]] = frozenset()

    def loader(self, name: str) -> str:
        """What loader of BY_NAME or BY_PATH `name` is bound to (`from importlib import
        import_module as load`, `fetch = importlib.import_module`); "" for none."""
        return next((original for alias, original in self.loaders if alias == name), "")

    def hides(self, root: str) -> bool:
        """Whether the name `root` may not be what PURE_CALLS means by it."""
        if root in self.shadowed:
            return True
        return self.star and root not in self.standard and not hasattr(builtins, root)


PLAIN = Scope()
_PROPERTY_PARTS = frozenset({"setter", "getter", "deleter"})


def module_scope(tree: ast.Module) -> Scope:
    """The Scope of a module: its module-level bindings (in `if`/`try` blocks too)."""
    shadowed: set[str] = set()
    standard: set[str] = set()
    loaders: set[tuple[str, str]] = set()
    star = lazy = False
    stack: list[ast.AST] = list(tree.body)
    while stack:
        node = stack.pop()
        if isinstance(node, ast.ImportFrom) and node.module == "__future__":
            lazy = lazy or any(a.name == "annotations" for a in node.names)
        elif isinstance(node, ast.Import | ast.ImportFrom):
            for alias in node.names:
                origin = alias.name if isinstance(node, ast.Import) else node.module or ""
                known = getattr(node, "level", 0) == 0 and origin.split(".")[0] in PURE_ORIGINS
                if alias.name == "*":
                    star = star or not known
                    continue
                bound = alias.asname or alias.name.split(".")[0]
                (standard if known else shadowed).add(bound)
                if isinstance(node, ast.ImportFrom) and alias.name in BY_NAME | BY_PATH:
                    loaders.add((bound, alias.name))
        elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            shadowed.add(node.name)
        else:
            if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
                shadowed.add(node.id)
            if isinstance(node, ast.Assign):  # `fetch = importlib.import_module`
                chain = name_chain(node.value)
                names = [t.id for t in node.targets if isinstance(t, ast.Name)]
                if chain and chain[-1] in BY_NAME | BY_PATH:
                    loaders.update((name, chain[-1]) for name in names)
            stack.extend(ast.iter_child_nodes(node))
    return Scope(
        frozenset(shadowed), star, frozenset(standard - shadowed), lazy, frozenset(loaders)
    )


def has_effect(nodes: Iterable[ast.AST], scope: Scope = PLAIN) -> bool:
    """Whether executing `nodes` at module level may change anything but the names they
    bind: a call (other than PURE_CALLS; a decorator is one), a store into an attribute or
    an item, an augmented assignment, `del`, `global`. Function bodies do not run then; their
    decorators, defaults and annotations do (unless postponed), and so does a class body."""
    stack: list[ast.AST] = list(nodes)
    while stack:
        node = stack.pop()
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda):
            if not isinstance(node, ast.Lambda) and not pure(node.decorator_list, scope):
                return True
            args = node.args
            stack += [*getattr(node, "decorator_list", []), *args.defaults]
            stack += [d for d in args.kw_defaults if d is not None]
            if not scope.lazy_annotations:
                every = [*args.posonlyargs, *args.args, *args.kwonlyargs]
                every += [a for a in (args.vararg, args.kwarg) if a is not None]
                stack += [a.annotation for a in every if a.annotation is not None]
                stack += [r for r in [getattr(node, "returns", None)] if r is not None]
            continue
        if isinstance(node, ast.ClassDef) and not pure(node.decorator_list, scope):
            return True
        if isinstance(node, ast.Call) and not _pure_call(node.func, scope):
            return True
        if isinstance(node, ast.Attribute | ast.Subscript) and isinstance(
            node.ctx, ast.Store | ast.Del
        ):
            return True
        if isinstance(
            node, ast.AugAssign | ast.Delete | ast.Global | ast.Nonlocal | ast.Await | ast.Yield
        ):
            return True
        stack.extend(ast.iter_child_nodes(node))
    return False


def computed_import(node: ast.AST, scope: Scope = PLAIN) -> bool:
    """`importlib.import_module(x)`, `__import__(x)` or `exec(x)` with a name or code that is
    not a literal (under another name too: `from importlib import import_module as load`),
    `sys.modules[x]` with a computed `x`; or code run from a file by its path
    (`runpy.run_path`, a loader)."""
    if isinstance(node, ast.Subscript) and dotted(node.value) == "sys.modules":
        key = node.slice
        return not (isinstance(key, ast.Constant) and isinstance(key.value, str))
    if not isinstance(node, ast.Call):
        return False
    func = node.func
    name = func.id if isinstance(func, ast.Name) else getattr(func, "attr", "")
    method = isinstance(func, ast.Attribute)
    if not method and scope.loader(name):
        name = scope.loader(name)
    if name in BY_PATH:
        return True
    if name not in BY_NAME or (method and name != "import_module"):
        return False
    what = node.args[0] if node.args else next((k.value for k in node.keywords), None)
    return not (isinstance(what, ast.Constant) and isinstance(what.value, str))


def name_chain(node: ast.AST) -> tuple[str, ...] | None:
    """`a.b.C` → ("a", "b", "C"); None for anything but a dotted name."""
    parts: list[str] = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if not isinstance(node, ast.Name):
        return None
    return (node.id, *reversed(parts))


def _pure_call(func: ast.expr, scope: Scope) -> bool:
    chain = name_chain(func)
    if chain is not None and scope.hides(chain[0]):
        return False
    return dotted(func) in PURE_CALLS or pure([func], scope)


def dotted(node: ast.AST) -> str:
    """`a.b.C` → "a.b.C"; "" for anything but a dotted name."""
    chain = name_chain(node)
    return ".".join(chain) if chain is not None else ""


def pure(decorators: list[ast.expr], scope: Scope = PLAIN) -> bool:
    """Whether every decorator only wraps or describes (PURE_DECORATORS): none may register."""
    for decorator in decorators:
        target = decorator.func if isinstance(decorator, ast.Call) else decorator
        name = target.attr if isinstance(target, ast.Attribute) else getattr(target, "id", "")
        chain = name_chain(target)
        # `@x.setter`: x is the property just defined in the class, whatever a module binds.
        rebound = chain is not None and name not in _PROPERTY_PARTS and scope.hides(chain[0])
        if name not in PURE_DECORATORS or rebound:
            return False
    return True
