"""The walk that computes one closure: from a start, each reached unit and what it loads."""

from __future__ import annotations

import inspect
import sys
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

from tipi.identity.modules import module_file
from tipi.identity.source import Binding, ModuleSource

# Bases from these modules are what a step is written in, not code of the step.
_VOCABULARY = ("builtins", "abc", "typing", "tipi.process", "tipi.permanence")
TIPI = Path(__file__).resolve().parent.parent  # tipi's own package


class Scanner(Protocol):
    """What a walk asks of the scanner that reads the files (closure.py's CodeScanner)."""

    folder: Path
    absent: set[str]

    def module(self, file: Path) -> ModuleSource | None: ...

    def raw_digest(self, file: Path) -> str: ...

    def in_project(self, file: Path) -> bool: ...

    def label(self, file: Path) -> str: ...

    def find(self, parts: tuple[str, ...], level: int, origin: Path) -> Path | None: ...

    def base_registers(
        self, file: Path, module: ModuleSource, name: str, depth: int = 0
    ) -> bool: ...


class Walk:
    """One closure computation: a worklist of what to look at (no recursion: a chain of
    thousands of helpers is fine).

    A walk's result is the union of what every action it reaches adds, whatever the order, so
    what a lookup in another module reaches (`_in_module`: `from .helpers import f`, then `f`)
    is computed once per scanner by a walk of its own and merged into each walk that gets
    there (`shared`): 500 classes that reach one helper of 5,000 functions walk it once.
    """

    def __init__(
        self, scanner: Scanner, at_load: bool = False, shared: dict[Any, Walk] | None = None
    ) -> None:
        self.scanner = scanner
        self.at_load = at_load  # what an import runs, not what a module defines
        self._shared = shared  # (at_load, file, chain) → its walk; None inside such a walk
        self.units: dict[str, str] = {}
        self.files: set[Path] = set()
        self.counted: set[Path] = set()  # the files units were taken from
        self.computed: set[Path] = set()  # files whose reached code imports by computed name
        self.imports: set[str] = set()
        # files taken whole because a module star-imports them → "importer: from .x import *"
        self.via: dict[Path, str] = {}
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
                self._later(self._star, file, parts, level)
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
            if unit.computed and not file.is_relative_to(TIPI):  # tipi names what it loads
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

    def _star(self, file: Path, parts: tuple[str, ...], level: int) -> None:
        """`from parts import *` in `file`: the module it names counts whole, and its units
        say why (the reason for an edit there names the import)."""
        target = self.scanner.find(parts, level, file)
        if target is not None and target not in self.via:
            names = "." * level + ".".join(parts)
            self.via[target] = f"{self.scanner.label(file)}: from {names} import *"
        self._module_ref(file, parts, level, ())

    def _in_module(self, file: Path, chain: tuple[str, ...]) -> None:
        """`chain` looked up in the module `file`; the whole module when it is empty."""
        if ("in", file, chain) in self._seen:
            return
        if self._shared is not None:
            key = (self.at_load, file, chain)
            alone = self._shared.get(key)
            if alone is None:
                alone = self._shared[key] = Walk(self.scanner, self.at_load)
                alone._in_module(file, chain)
                alone._drain()
                # in key order once: merged into many closures, it is one long sorted run
                # for each closure's digest to sort (closure.py `code_digest`)
                alone.units = dict(sorted(alone.units.items()))
            self._merge(alone)
            return
        self._seen.add(("in", file, chain))
        module = self._module(file)
        if module is None:
            return
        if not chain:
            self._later(self._whole, file)
        elif chain[0] in module.bindings:
            self._later(self._name, file, module, chain[0], chain[1:])
        elif file.name == "__init__.py" and (
            sub := module_file(file.parent, chain[:1], self.scanner.absent)
        ):
            if self.scanner.in_project(sub):
                self._later(self._in_module, sub, chain[1:])
        elif not module.stars:
            self._later(self._whole, file)  # an attribute we cannot see: assume anything

    def _merge(self, other: Walk) -> None:
        """What `other` reached joins (with the actions it took: they are done here too)."""
        self.units.update(other.units)
        self.files |= other.files
        self.counted |= other.counted
        self.computed |= other.computed
        self.imports |= other.imports
        self.via = {**other.via, **self.via}
        self._seen |= other._seen

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
