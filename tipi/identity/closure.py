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
computed name)". A unit a step reaches directly keeps its plain key; one of a file that a
reached module star-imports (which takes the file whole) says which import: "file: unit (via
models/__init__.py: from .vgg import *)".

The closure is a map "file: qualname" → digest of the unit's normalized AST; its fingerprint
is the hash of that map, and two maps tell which units changed ("pipelines/x/models.py:
Net.forward"; rebuilder.py). `absent` lists files whose appearance would change what an
import resolves to (a new `utils/` package beside pipeline.toml shadowing a root `utils.py`).
"""

from __future__ import annotations

import ast
import functools
import importlib.util
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgpack

from tipi.identity.hashing import hash_bytes
from tipi.identity.memo import CodeMemo, start_key
from tipi.identity.modules import module_file, module_name
from tipi.identity.source import ModuleSource, decode, read_tree
from tipi.identity.statements import StatementMemo
from tipi.identity.walk import TIPI, Walk

_OUTSIDE = ("site-packages", "dist-packages")
# tipi's built-in steps and permanences are code a result depends on when they lie in the
# project (working on tipi itself); the engine around them is not.
_TIPI_RESULT_CODE = (TIPI / "processes", TIPI / "permanences")
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
        digest: the fingerprint, for a closure reused from the memo (memo.py): it brings
            no `units` (the code table holds them under this fingerprint).
    """

    units: Mapping[str, str]
    files: frozenset[str]
    imports: frozenset[str]
    absent: frozenset[str] = frozenset()
    read: frozenset[str] = frozenset()
    digest: str = ""

    @property
    def reused(self) -> bool:
        return bool(self.digest)

    @functools.cached_property
    def fingerprint(self) -> str:
        # computed once: a closure of 5,000 units costs ~1 ms to sort and hash, and a plan
        # asks for it twice (the memo keeps it, the step gets it)
        return self.digest or code_digest(self.units)


def with_via(units: Mapping[str, str], via: Mapping[str, str]) -> dict[str, str]:
    """`units` with the key of each unit of a star-imported file saying so: "models/vgg.py:
    VGG (via models/__init__.py: from .vgg import *)" (such a file counts whole)."""
    if not via:
        return dict(units)
    labelled = {}
    for key, digest in units.items():
        why = via.get(key.partition(": ")[0])
        labelled[f"{key} (via {why})" if why else key] = digest
    return labelled


def code_digest(units: Mapping[str, str]) -> str:
    """The fingerprint of a closure map."""
    return hash_bytes(msgpack.packb(sorted(units.items()), use_bin_type=True))


class CodeScanner:
    """Computes closures for one pipeline; reads and parses each file once.

    Args:
        root: the project root.
        folder: the pipeline folder (its files are importable script-style by name).
        memo: closures kept across makes (memo.py); None computes every one.
    """

    def __init__(self, root: Path, folder: Path, memo: CodeMemo | None = None) -> None:
        self.root = root.resolve()
        self.folder = folder.resolve()
        self.memo = memo
        self._consulted: set[str] = set()  # files read outside a walk (bases that register)
        self.shared: dict[Any, Walk] | None = {}  # lookups walked once (walk.py); None: never
        self._modules: dict[Path, ModuleSource | None] = {}
        self._raw: dict[Path, str] = {}
        self._found: dict[tuple[tuple[str, ...], int, Path], Path | None] = {}
        self._closures: dict[Any, Closure] = {}
        self._labels: dict[Path, str] = {}
        self._load: Walk | None = None
        self._everything: Walk | None = None
        self._registers: dict[tuple[Path, str], bool] = {}
        self.absent: set[str] = set()

    def closure_of(
        self, obj: Any, extra: Iterable[Any] = (), step: bool = False, reuse: bool = True
    ) -> Closure:
        """The closure of a class or function (and of `extra`: objects, or `module:attr`
        strings such as factories); for a `step`, with the code tipi runs when it imports
        the pipeline's modules. `obj` None: that code alone (a step whose class declares
        its own `version`). With `reuse`, from the memo when its code is unchanged (then
        without `units`)."""
        extra = tuple(extra)
        key = (step, reuse, obj, *extra)
        if key not in self._closures:
            memo_key = self._memo_key(obj, extra, step)
            found = self.memo.lookup(memo_key, self.folder) if memo_key and reuse else None
            if found is not None:
                fp, (files, read, absent, imports) = found
                self._closures[key] = Closure({}, files, imports, absent, read, fp)
                return self._closures[key]
            walk = Walk(self, shared=self.shared)
            for item in (obj, *extra) if obj is not None else extra:
                walk.start(item)
            parts = [(AT_LOAD, self.load_walk())] if step else []
            computed = set(walk.computed).union(*(part.computed for _, part in parts))
            if computed:
                parts.append((self._computed_why(computed), self.everything_walk()))
            units = with_via(walk.units, {self.label(f): why for f, why in walk.via.items()})
            plain = set(walk.units)
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
            closure = self._closures[key]
            if memo_key and not computed:  # a computed import: any module may be the one
                assert self.memo is not None
                seen = closure.read | self._consulted
                parts = [closure.files, seen, closure.absent, closure.imports]
                self.memo.keep(memo_key, self.folder, closure.fingerprint, parts)
        return self._closures[key]

    def _memo_key(self, obj: Any, extra: tuple[Any, ...], step: bool) -> str | None:
        if self.memo is None:
            return None
        starts = [start_key(o) for o in ((obj, *extra) if obj is not None else extra)]
        if any(s is None for s in starts):
            return None
        return "\0".join([str(step), str(self.root), str(self.folder), *starts])  # type: ignore[list-item]

    def load_walk(self) -> Walk:
        """What runs when tipi imports the modules beside pipeline.toml (registry.py), and
        the project code that reaches; computed once per scanner."""
        if self._load is None:
            self._load = Walk(self, at_load=True, shared=self.shared)
            for file in sorted(self.folder.glob("*.py")):
                self._load.load(file.resolve())
        return self._load

    def everything_walk(self) -> Walk:
        """Every module under the pipeline folder, whole (a computed import may load any)."""
        if self._everything is None:
            self._everything = Walk(self, shared=self.shared)
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
            self._consulted.add(str(file))
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
                sub = module_file(target.parent, rest[:1], self.absent)
                if sub is None or rest[0] in (self.module(target) or ModuleSource()).bindings:
                    break
                target, rest = sub, rest[1:]
            if target is None or not rest or not self.in_project(target):
                return None
            loaded = self.module(target)
            self._consulted.add(str(target))
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
            content = hash_bytes(raw)
            kept = self.memo.source(content) if self.memo is not None else None
            if kept is not None:  # this content was parsed by an earlier make
                self._modules[file], meaning = kept
            else:
                try:
                    text = decode(raw)
                    early = self.memo.parsed(content) if self.memo is not None else None
                    if early is not None:
                        tree, meaning = early
                    else:
                        tree = ast.parse(text)
                        meaning = ""
                    known = StatementMemo(text, self.memo) if self.memo is not None else None
                    if early is None and known is not None:
                        meaning = known.meaning(tree)
                    self._modules[file] = read_tree(tree, known)
                except (SyntaxError, ValueError, LookupError, RecursionError, MemoryError):
                    self._modules[file], self._raw[file] = None, content
                    meaning = "raw:" + content
            if self.memo is not None:  # what the memo keeps is what was parsed
                self.memo.noted(file, content, meaning, self._modules[file])
        return self._modules[file]

    def raw_digest(self, file: Path) -> str:
        return self._raw.get(file, "")

    def in_project(self, file: Path) -> bool:
        """Whether the closure follows references into `file`."""
        if not file.is_relative_to(self.root) or any(p in _OUTSIDE for p in file.parts):
            return False
        if file.is_relative_to(TIPI):
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
