"""The code closure of a step: the code its result depends on, unit by unit.

Starting from a process class (with its bases) or a `@pipeline_process` function, every name
a reached unit loads is resolved through its module's bindings (all of them, when a name is
bound twice: `try: from fast import f` / `except ImportError: from slow import f`) and
followed into modules of the project: siblings beside pipeline.toml (imported relatively or
script-style), packages under the project root. Reaching a class takes all of it (any method
may run); reaching a function or constant takes just that, so an edit to a helper no step
reaches reruns nothing. Importing a module runs it: what runs on import (its other top-level
statements, registering decorators, the modules it imports in turn) counts for every step
that reaches the module. Where a name cannot be followed statically (getattr, exec, star
imports) the whole module counts, and where a module imports by name (importlib), the
module-like strings of its reached code are followed too. Modules outside the project
(site-packages, the standard library, tipi's own engine) are not followed: their top-level
names are collected as `imports`, whose versions are the step's environment.

Two rules make code count that no step reaches by name. tipi itself imports every `*.py`
beside pipeline.toml before any step runs, so what runs at that import (the eager units of
those modules, the modules they import and the project code all of it reaches) can change any
step's result: a step's closure takes it in (`step=True`), keyed "file: unit (imported by
tipi at load: module-level code)". And where reached code imports a module by a computed name
(`importlib.import_module("dyn" + name)`), any module of the pipeline folder may be the one:
all of them count whole, keyed "file: unit (counted because steps.py imports a module by
computed name)". A unit a step reaches directly keeps its plain key.

The closure is a map "file: qualname" → digest of the unit's normalized AST; its fingerprint
is the hash of that map, and two maps tell which units changed ("pipelines/x/models.py:
Net.forward"; rebuilder.py). `absent` lists files whose appearance would change what an
import resolves to (a new `utils/` package beside pipeline.toml shadowing a root `utils.py`).
"""

from __future__ import annotations

import importlib.util
import inspect
import sys
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgpack

from tipi.cache.hashing import hash_bytes
from tipi.cache.modules import module_file, module_name
from tipi.cache.source import Binding, ModuleSource, decode, read_module

_OUTSIDE = ("site-packages", "dist-packages")
_VOCABULARY = ("builtins", "abc", "typing", "tipi.process", "tipi.permanence")
_TIPI = Path(__file__).resolve().parent.parent
# tipi's built-in steps and permanences are code a result depends on when they lie in the
# project (working on tipi itself); the engine around them is not.
_TIPI_RESULT_CODE = (_TIPI / "processes", _TIPI / "permanences")
AT_LOAD = "imported by tipi at load: module-level code"
COMPUTED = "counted because {who} {verb} a module by computed name"


@dataclass(frozen=True)
class Closure:
    """What a step's code consists of.

    Attributes:
        units: "file: qualname" → digest (file project-relative; a module name outside it).
        files: absolute paths of the files read (a plan depends on them).
        imports: top-level names of modules outside the project that the code imports.
        absent: files that must stay absent for the imports to resolve as they did.
        read: files read besides `files` whose edit may change the closure (a module tipi
            imports at load that has no import-time effect yet): the plan depends on them,
            a running step does not.
    """

    units: Mapping[str, str]
    files: frozenset[str]
    imports: frozenset[str]
    absent: frozenset[str] = frozenset()
    read: frozenset[str] = frozenset()

    @property
    def fingerprint(self) -> str:
        return code_digest(self.units)


def code_digest(units: Mapping[str, str]) -> str:
    """The fingerprint of a closure map."""
    return hash_bytes(msgpack.packb(sorted(units.items()), use_bin_type=True))


class CodeScanner:
    """Computes closures for one pipeline; reads and parses each file once.

    Args:
        root: the project root.
        folder: the pipeline folder (its files are importable script-style by name).
    """

    def __init__(self, root: Path, folder: Path) -> None:
        self.root = root.resolve()
        self.folder = folder.resolve()
        self._modules: dict[Path, ModuleSource | None] = {}
        self._raw: dict[Path, str] = {}
        self._found: dict[tuple[tuple[str, ...], int, Path], Path | None] = {}
        self._closures: dict[Any, Closure] = {}
        self._labels: dict[Path, str] = {}
        self._load: _Walk | None = None
        self._everything: _Walk | None = None
        self._registers: dict[tuple[Path, str], bool] = {}
        self.absent: set[str] = set()

    def closure_of(self, obj: Any, extra: Iterable[Any] = (), step: bool = False) -> Closure:
        """The closure of a class or function (and of `extra`: objects, or `module:attr`
        strings such as factories); for a `step`, with the code tipi runs when it imports
        the pipeline's modules."""
        key = (step, obj, *extra)
        if key not in self._closures:
            walk = _Walk(self)
            for item in (obj, *extra):
                walk.start(item)
            parts = [(AT_LOAD, self.load_walk())] if step else []
            computed = set(walk.computed).union(*(part.computed for _, part in parts))
            if computed:
                parts.append((self._computed_why(computed), self.everything_walk()))
            units = dict(walk.units)
            plain = set(units)
            for why, part in parts:  # a unit reached in several ways says the first way
                units.update({f"{k} ({why})": d for k, d in part.units.items() if k not in plain})
                plain |= set(part.units)
            walks = [walk] + [part for _, part in parts]
            files = set(walk.files).union(*(part.counted for _, part in parts))
            read = set().union(*(w.files for w in walks)) - files
            self._closures[key] = Closure(
                units,
                frozenset(map(str, files)),
                frozenset().union(*(w.imports for w in walks)),
                frozenset(self.absent),
                frozenset(map(str, read)),
            )
        return self._closures[key]

    def load_walk(self) -> _Walk:
        """What runs when tipi imports the modules beside pipeline.toml (registry.py), and
        the project code that reaches; computed once per scanner."""
        if self._load is None:
            self._load = _Walk(self, at_load=True)
            for file in sorted(self.folder.glob("*.py")):
                self._load.load(file.resolve())
        return self._load

    def everything_walk(self) -> _Walk:
        """Every module under the pipeline folder, whole (a computed import may load any)."""
        if self._everything is None:
            self._everything = _Walk(self)
            for file in sorted(self.folder.rglob("*.py")):
                inside = file.relative_to(self.folder).parts[:-1]
                if any(p.startswith(".") or p in ("__pycache__", *_OUTSIDE) for p in inside):
                    continue  # a virtual environment or a tool's folder: nothing to import
                if self.in_project(file.resolve()):  # not through a link out of the project
                    self._everything.whole(file.resolve())
        return self._everything

    def _computed_why(self, files: set[Path]) -> str:
        names = sorted(
            f.relative_to(self.folder).as_posix()
            if f.is_relative_to(self.folder)
            else self.label(f)
            for f in files
        )
        return COMPUTED.format(
            who=", ".join(names), verb="imports" if len(names) == 1 else "import"
        )

    def registers(self, file: Path, name: str, depth: int = 0) -> bool:
        """Whether class `name` of `file` (or a base of it in the project) may register its
        subclasses: an `__init_subclass__` or a metaclass of its own."""
        key = (file, name)
        if key not in self._registers:
            self._registers[key] = False  # a cycle of bases registers nothing
            module = self.module(file)
            found = module is not None and (
                name in module.registrars
                or (depth < 50 and self.base_registers(file, module, name, depth + 1))
            )
            self._registers[key] = found
        return self._registers[key]

    def base_registers(self, file: Path, module: ModuleSource, name: str, depth: int = 0) -> bool:
        """Whether a base of class `name` defined in the project may register subclasses."""
        for chain in module.bases.get(name, ()):
            target = self._class_of(file, module, chain)
            if target is not None and self.registers(*target, depth=depth):
                return True
        return False

    def _class_of(
        self, file: Path, module: ModuleSource, chain: tuple[str, ...]
    ) -> tuple[Path, str] | None:
        """The project class a name chain in `file` stands for (its first binding), if any."""
        for _ in range(50):  # re-exports through packages, at most this deep
            bindings = module.bindings.get(chain[0], ())
            if not bindings:
                return None
            binding, rest = bindings[0], chain[1:]
            if binding.kind == "unit":
                found = not rest and binding.target in module.classes
                return (file, binding.target) if found else None
            parts = binding.module
            if binding.kind == "from":
                sub = self.find((*parts, binding.attr), binding.level, file)
                target = sub or self.find(parts, binding.level, file)
                rest = rest if sub else (binding.attr, *rest)
            else:
                target = self.find(parts, binding.level, file)
            while target is not None and rest and target.name == "__init__.py":
                sub = module_file(target.parent, rest[:1])
                if sub is None or rest[0] in (self.module(target) or ModuleSource()).bindings:
                    break
                target, rest = sub, rest[1:]
            if target is None or not rest or not self.in_project(target):
                return None
            loaded = self.module(target)
            if loaded is None:
                return None
            file, module, chain = target, loaded, rest
        return None

    def module(self, file: Path) -> ModuleSource | None:
        """The parsed file; None when it cannot be read or parsed (then its bytes count)."""
        if file not in self._modules:
            try:
                raw = file.read_bytes()
            except OSError:
                self._modules[file], self._raw[file] = None, "unreadable"
                return None
            try:
                self._modules[file] = read_module(decode(raw))
            except (SyntaxError, ValueError, LookupError, RecursionError, MemoryError):
                self._modules[file], self._raw[file] = None, hash_bytes(raw)
        return self._modules[file]

    def raw_digest(self, file: Path) -> str:
        return self._raw.get(file, "")

    def in_project(self, file: Path) -> bool:
        """Whether the closure follows references into `file`."""
        if not file.is_relative_to(self.root) or any(p in _OUTSIDE for p in file.parts):
            return False
        if file.is_relative_to(_TIPI):
            return any(file.is_relative_to(d) for d in _TIPI_RESULT_CODE)
        return True

    def label(self, file: Path) -> str:
        """How a file is named in unit keys and reasons."""
        if file not in self._labels:
            try:
                self._labels[file] = file.relative_to(self.root).as_posix()
            except ValueError:
                self._labels[file] = module_name(file)
        return self._labels[file]

    def find(self, parts: tuple[str, ...], level: int, origin: Path) -> Path | None:
        """The file of module `parts` imported from `origin` (level dots), when it lies in
        the project; None for modules outside it."""
        key = (parts, level, origin.parent if level else self.folder)
        if key not in self._found:
            self._found[key] = self._find(parts, level, origin)
        return self._found[key]

    def _find(self, parts: tuple[str, ...], level: int, origin: Path) -> Path | None:
        if level:
            base = origin.parent
            for _ in range(level - 1):
                base = base.parent
            return self._module_file(base, parts)
        if not parts or parts[0] in sys.stdlib_module_names:
            return None  # never shadowed by a sibling at run time either (siblings.py)
        for base in (self.folder, self.root):
            found = self._module_file(base, parts)
            if found is not None:
                return found if self.in_project(found) else None
        try:  # a package installed from the project (a src/ layout), found by its top level
            spec = importlib.util.find_spec(parts[0])
        except (ImportError, ValueError):
            return None
        if spec is None or not spec.origin or spec.origin in ("built-in", "frozen"):
            return None
        top = Path(spec.origin).resolve()
        base = top.parent.parent if top.name == "__init__.py" else top.parent
        found = module_file(base, parts)
        return found if found is not None and self.in_project(found) else None

    def _module_file(self, base: Path, parts: tuple[str, ...]) -> Path | None:
        """Like `module_file`, remembering the candidates that were absent."""
        return module_file(base, parts, self.absent)


class _Walk:
    """One closure computation: a worklist of what to look at (no recursion: a chain of
    thousands of helpers is fine)."""

    def __init__(self, scanner: CodeScanner, at_load: bool = False) -> None:
        self.scanner = scanner
        self.at_load = at_load  # what an import runs, not what a module defines
        self.units: dict[str, str] = {}
        self.files: set[Path] = set()
        self.counted: set[Path] = set()  # the files units were taken from
        self.computed: set[Path] = set()  # files whose reached code imports by computed name
        self.imports: set[str] = set()
        self._seen: set[Any] = set()
        self._todo: deque[tuple[Callable[..., None], tuple[Any, ...]]] = deque()

    def _later(self, action: Callable[..., None], *args: Any) -> None:
        self._todo.append((action, args))

    def _drain(self) -> None:
        while self._todo:
            action, args = self._todo.popleft()
            action(*args)

    def start(self, obj: Any) -> None:
        if isinstance(obj, str):  # "module:attr", e.g. a model factory
            self._start_ref(obj, self.scanner.folder / "__init__.py")
        else:
            function = getattr(obj, "__tipi_function__", None)
            if function is not None:  # a @pipeline_process step: its code is the function's
                obj = function
            if inspect.isclass(obj):
                for klass in obj.__mro__:
                    if klass.__module__ not in _VOCABULARY:
                        self._start_one(klass)
            else:
                self._start_one(obj)
        self._drain()

    def load(self, file: Path) -> None:
        """`file` is imported: what runs then joins (with what it reaches)."""
        self._module(file)
        self._drain()

    def whole(self, file: Path) -> None:
        """All of `file` joins."""
        self._whole(file)
        self._drain()

    def _start_ref(self, text: str, origin: Path) -> None:
        module, _, attr = text.partition(":")
        level = len(module) - len(module.lstrip("."))
        parts = tuple(p for p in module[level:].split(".") if p)
        target = self.scanner.find(parts, level, origin)
        if target is None:
            if not level and parts and parts[0] not in sys.stdlib_module_names:
                self.imports.add(parts[0])
            return
        self._later(self._in_module, target, tuple(attr.split(".")) if attr else ())

    def _start_one(self, obj: Any) -> None:
        try:
            file = Path(inspect.getsourcefile(obj) or "").resolve()
        except TypeError:
            file = None
        qualname = getattr(obj, "__qualname__", repr(obj))
        if file is None or not file.is_file():  # built in C, or defined in a notebook cell
            self.units[f"{getattr(obj, '__module__', '?')}: {qualname}"] = "no-source"
            return
        module = self._module(file)
        if module is None:
            return
        top = qualname.split(".")[0]
        if "<locals>" in qualname or top not in module.bindings:
            self._later(self._whole, file)  # defined inside a function: its whole module
        elif self.scanner.in_project(file):
            self._later(self._name, file, module, top, ())
        else:  # installed code: its own source counts, what it calls is its version's
            self._unit(file, module, top, follow=False)
            self._collect_imports(module)

    def _module(self, file: Path) -> ModuleSource | None:
        """`file`, read; the first time, what runs when it is imported joins the closure."""
        module = self.scanner.module(file)
        if file in self.files:
            return module
        self.files.add(file)
        if module is None:
            label = self.scanner.label(file)
            self.units[f"{label}: <unparsed>"] = self.scanner.raw_digest(file)
            self.counted.add(file)
        elif self.scanner.in_project(file):
            for name in module.eager:
                self._later(self._unit, file, module, name, True, name in module.headers)
            for name in module.bases:  # a base may register it (`__init_subclass__`)
                if self.scanner.base_registers(file, module, name):
                    self._later(self._unit, file, module, name)
            for parts, level in () if self.at_load else module.stars:  # at load: only run
                self._later(self._module_ref, file, parts, level, ())
            for binding in module.imports:  # importing runs them: their effects count
                self._later(self._imported, file, binding)
        return module

    def _imported(self, file: Path, binding: Binding) -> None:
        """An import statement ran: the module it names runs (its eager units count)."""
        parts = binding.module
        for n in range(1, len(parts)) if not binding.level else ():  # `import a.b` runs a too
            package = self.scanner.find(parts[:n], 0, file)
            if package is not None:
                self._module(package)
        if binding.kind == "from":
            submodule = self.scanner.find((*parts, binding.attr), binding.level, file)
            if submodule is not None:
                self._module(submodule)
        target = self.scanner.find(parts, binding.level, file)
        if target is not None:
            self._module(target)
        elif not binding.level and parts and parts[0] not in sys.stdlib_module_names:
            self.imports.add(parts[0])

    def _unit(
        self,
        file: Path,
        module: ModuleSource,
        name: str,
        follow: bool = True,
        header: bool = False,
    ) -> None:
        """Unit `name` joins (a class: all of it, or its `header` only), with what it
        reaches when `follow`."""
        label = self.scanner.label(file)
        for member in [name] if header else module.classes.get(name, [name]):
            if ("unit", file, member) in self._seen:
                continue
            self._seen.add(("unit", file, member))
            unit = module.units[member]
            self.units[f"{label}: {member}"] = unit.digest
            self.counted.add(file)
            if not follow:
                continue
            if unit.computed and not file.is_relative_to(_TIPI):  # tipi names what it loads
                self.computed.add(file)
            if unit.dynamic:
                self._later(self._whole, file)
            if unit.strings and module.imports_by_name:
                for text in unit.strings:
                    self._start_ref(text, file)
            local: dict[str, list[Binding]] = {}
            for bound, binding in unit.local:  # imports inside it run when it runs
                local.setdefault(bound, []).append(binding)
                self._later(self._imported, file, binding)
                if binding.kind == "from":  # the name it binds may be used unseen
                    self._later(self._binding, file, binding, ())
            for chain in unit.refs:
                for binding in local.get(chain[0], ()):
                    self._later(self._binding, file, binding, chain[1:])
                if chain[0] not in local:
                    self._later(self._name, file, module, chain[0], chain[1:])

    def _name(self, file: Path, module: ModuleSource, name: str, rest: tuple[str, ...]) -> None:
        for binding in module.bindings.get(name, ()):  # none: a builtin or a local variable
            if binding.kind == "unit":
                self._unit(file, module, binding.target)
            else:
                self._binding(file, binding, rest)

    def _binding(self, file: Path, binding: Binding, rest: tuple[str, ...]) -> None:
        if binding.kind == "module":
            self._module_ref(file, binding.module, binding.level, rest)
        elif binding.kind == "from":
            target = self.scanner.find((*binding.module, binding.attr), binding.level, file)
            if target is not None:  # `from pkg import submodule`
                self._in_module(target, rest)
            else:
                self._module_ref(file, binding.module, binding.level, (binding.attr, *rest))

    def _module_ref(
        self, file: Path, parts: tuple[str, ...], level: int, rest: tuple[str, ...]
    ) -> None:
        target = self.scanner.find(parts, level, file)
        if target is None:
            if not level and parts and parts[0] not in sys.stdlib_module_names:
                self.imports.add(parts[0])
            return
        self._in_module(target, rest)

    def _in_module(self, file: Path, chain: tuple[str, ...]) -> None:
        """`chain` looked up in the module `file`; the whole module when it is empty."""
        if ("in", file, chain) in self._seen:
            return
        self._seen.add(("in", file, chain))
        module = self._module(file)
        if module is None:
            return
        if not chain:
            self._later(self._whole, file)
        elif chain[0] in module.bindings:
            self._later(self._name, file, module, chain[0], chain[1:])
        elif file.name == "__init__.py" and (sub := module_file(file.parent, chain[:1])):
            if self.scanner.in_project(sub):
                self._later(self._in_module, sub, chain[1:])
        elif not module.stars:
            self._later(self._whole, file)  # an attribute we cannot see: assume anything

    def _whole(self, file: Path) -> None:
        if ("whole", file) in self._seen:
            return
        self._seen.add(("whole", file))
        module = self._module(file)
        if module is None:
            return
        for name in module.units:
            if "." not in name:
                self._later(self._unit, file, module, name)
        for bindings in module.bindings.values():
            for binding in bindings:
                if binding.kind != "unit":
                    self._later(self._binding, file, binding, ())

    def _collect_imports(self, module: ModuleSource) -> None:
        bindings = list(module.imports)
        bindings += [b for unit in module.units.values() for _, b in unit.local]
        for binding in bindings:
            if not binding.level and binding.module:
                top = binding.module[0]
                if top not in sys.stdlib_module_names and top != "tipi":
                    self.imports.add(top)
