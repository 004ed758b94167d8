"""Resolves a `type` name to a class: built-ins, classes beside pipeline.toml, `module:Class`."""

from __future__ import annotations

import ast
import difflib
import importlib
import importlib.abc
import importlib.machinery
import importlib.util
import inspect
import multiprocessing
import re
import sys
import traceback
import types
import warnings
import zlib
from collections.abc import Iterator, Mapping
from pathlib import Path

from tipi.errors import DefinitionError, Location
from tipi.permanence import Permanence
from tipi.process import PipelineProcess

# Built-in types, by name → "module:attribute". Imported only when a pipeline names them, so
# that planning a pipeline never imports torch through a built-in it does not use.
BUILTIN_TYPES: dict[str, str] = {
    "Device": "tipi.permanences.device:Device",
    "ProgressManager": "tipi.permanences.progress:ProgressManager",
    "NullProgressManager": "tipi.permanences.progress:NullProgressManager",
    "BasicLogger": "tipi.permanences.loggers:BasicLogger",
    "TensorBoardLogger": "tipi.permanences.loggers:TensorBoardLogger",
    "WandBLogger": "tipi.permanences.loggers:WandBLogger",
    "MultiLogger": "tipi.permanences.loggers:MultiLogger",
    "Network": "tipi.permanences.network:Network",
    "Data": "tipi.permanences.data:Data",
    "Hyperparameters": "tipi.permanences.hyperparameters:Hyperparameters",
    "PrepareDigits": "tipi.processes.digits:PrepareDigits",
    "Train": "tipi.processes.training:Train",
    "Evaluate": "tipi.processes.evaluation:Evaluate",
    "Predict": "tipi.processes.evaluation:Predict",
    "Export": "tipi.processes.export:Export",
    "Profile": "tipi.processes.profiling:Profile",
}

_LOCAL_PACKAGE = "_tipi_pipelines"
Component = type[Permanence] | type[PipelineProcess]


def unwrap(obj: object) -> object:
    """The step class behind a @pipeline_process function, else `obj` itself."""
    return getattr(obj, "__tipi_process__", obj)


def is_component(obj: object) -> bool:
    """True for concrete Permanence or PipelineProcess subclasses."""
    obj = unwrap(obj)
    return (
        inspect.isclass(obj)
        and issubclass(obj, (Permanence, PipelineProcess))
        and obj not in (Permanence, PipelineProcess)
        and not inspect.isabstract(obj)
    )


def kind_of(cls: type) -> str:
    """'permanence' or 'process', for messages."""
    return "permanence" if issubclass(cls, Permanence) else "process"


class Registry:
    """The classes a pipeline may name in `type`, resolved lazily.

    Local modules (every ``*.py`` beside ``pipeline.toml``) are imported on the first lookup,
    as submodules of a synthetic package so that siblings import each other with relative
    imports (``from .models import Net``) and two pipelines' same-named files never collide.
    Script-style imports (``from models import Net``, ``import nets.resnet``) reach the same
    module objects through `_SiblingFinder`, for the registry that imported last; so do
    packages at the project root (``import mylib``). A new registry imports both afresh.
    """

    def __init__(
        self,
        pipeline_dir: Path | None = None,
        project_root: Path | None = None,
        builtins: Mapping[str, str] | None = None,
    ) -> None:
        self.pipeline_dir = pipeline_dir
        self.project_root = project_root
        self.builtins = dict(BUILTIN_TYPES if builtins is None else builtins)
        self._local: dict[str, Component] | None = None
        self._fresh = False

    def resolve(self, name: str, expected: type, location: Location | None = None) -> Component:
        """Return the class named `name`, which must subclass `expected`.

        Raises:
            DefinitionError: the name is unknown (with close matches), cannot be imported, or
                names a class of the wrong kind.
        """
        cls = unwrap(self._lookup(name, location))
        if not (inspect.isclass(cls) and issubclass(cls, expected)):
            wanted = "permanence" if expected is Permanence else "process"
            found = kind_of(cls) if is_component(cls) else f"{type(cls).__name__} object"
            section = {"permanence": "[permanences.NAME]", "process": "[processes.NAME]"}.get(found)
            raise DefinitionError(
                f"type '{name}' is a {found}, but a {wanted} is declared here",
                hint=f"declare it under {section}"
                if section
                else f"point `type` at a {wanted} class",
                location=location,
            )
        return cls

    def names(self) -> list[str]:
        """Every name a `type` may use without a module path, local names first."""
        return sorted(self.local()) + sorted(set(self.builtins) - set(self.local()))

    def components(self) -> Iterator[tuple[str, Component]]:
        """Yield (name, class) for every local and built-in type, importing the built-ins."""
        for name in self.names():
            yield name, unwrap(self._lookup(name, None))  # type: ignore[misc]

    def local(self) -> dict[str, Component]:
        """Classes defined in the ``*.py`` files beside pipeline.toml, imported once."""
        if self._local is None:
            self._local = self._import_local()
        return self._local

    def _lookup(self, name: str, location: Location | None) -> Component:
        if ":" in name:
            return self._import_dotted(name, location)
        if name in self.local():
            return self.local()[name]
        if name in self.builtins:
            return self._import_dotted(self.builtins[name], location)
        close = difflib.get_close_matches(name, self.names(), n=3, cutoff=0.6)
        hint = (
            f"did you mean {' or '.join(repr(c) for c in close)}?"
            if close
            else "run `tipi list` to see the available types, or use a `module:Class` path"
        )
        raise DefinitionError(f"unknown type '{name}'", hint=hint, location=location)

    def _import_dotted(self, path: str, location: Location | None) -> Component:
        module_name, _, attr = path.partition(":")
        if not module_name or not attr:
            raise DefinitionError(
                f"type '{path}' is not of the form 'package.module:Class'", location=location
            )
        self._activate()
        if self.project_root is not None and str(self.project_root) not in sys.path:
            sys.path.insert(0, str(self.project_root))
        try:
            module = importlib.import_module(module_name)
        except ImportError as exc:
            raise DefinitionError(
                f"cannot import module '{module_name}' for type '{path}': {exc}",
                hint="check the module path and that its package is installed",
                location=location,
            ) from exc
        obj = module
        for part in attr.split("."):
            if not hasattr(obj, part):
                close = difflib.get_close_matches(part, dir(obj), n=3)
                hint = f"did you mean {' or '.join(repr(c) for c in close)}?" if close else None
                raise DefinitionError(
                    f"module '{module_name}' has no attribute '{attr}'",
                    hint=hint,
                    location=location,
                )
            obj = getattr(obj, part)
        return obj  # type: ignore[return-value]

    def _activate(self) -> None:
        """Point script-style imports at this registry's pipeline folder and project root.

        The first time, the files are imported afresh: in a long-lived process (a notebook, a
        test session) an edited steps.py or models.py must not keep running its old classes.
        """
        if _SIBLINGS.owner is self or (self.pipeline_dir is None and self.project_root is None):
            return
        package = None if self.pipeline_dir is None else _local_package(self.pipeline_dir)
        _SIBLINGS.activate(self, package, self.pipeline_dir, self.project_root)
        if not self._fresh and package is not None:
            for name in [m for m in sys.modules if m.startswith(package + ".")]:
                del sys.modules[name]
        self._fresh = True
        importlib.invalidate_caches()

    def _import_local(self) -> dict[str, Component]:
        if self.pipeline_dir is None:
            return {}
        self._activate()
        package = _local_package(self.pipeline_dir)
        _warn_unreachable_siblings(self.pipeline_dir)
        found: dict[str, Component] = {}
        origin: dict[str, Path] = {}
        for file in sorted(self.pipeline_dir.glob("*.py")):
            module = _import_file(package, file)
            for name, obj in vars(module).items():
                if not is_component(obj) or obj.__module__ != module.__name__:
                    continue
                obj = unwrap(obj)
                if name in found:
                    raise DefinitionError(
                        f"type '{name}' is defined twice: in {origin[name].name} and {file.name}",
                        hint="rename one of them",
                        location=Location(file=file),
                    )
                found[name] = obj
                origin[name] = file
        return found


def _local_package(pipeline_dir: Path) -> str:
    """Create (once) the synthetic package that holds one pipeline folder's modules."""
    slug = re.sub(r"\W", "_", pipeline_dir.name)
    digest = zlib.crc32(str(pipeline_dir.resolve()).encode())
    name = f"{_LOCAL_PACKAGE}.{slug}_{digest}"
    if _LOCAL_PACKAGE not in sys.modules:
        root = types.ModuleType(_LOCAL_PACKAGE)
        root.__path__ = []
        sys.modules[_LOCAL_PACKAGE] = root
    if name not in sys.modules:
        package = types.ModuleType(name)
        package.__path__ = [str(pipeline_dir)]
        sys.modules[name] = package
    return name


class SiblingShadowWarning(UserWarning):
    """A sibling is imported script-style under a name that stays another module's."""


class _SiblingFinder(importlib.abc.MetaPathFinder):
    """Script-style imports of one pipeline's siblings, as `python train.py` would see them.

    ``from models import Net`` in a pipeline folder must give the module the registry imported
    as ``_tipi_pipelines.<slug>.models``, not a second copy of models.py (two ``Net`` classes;
    ``isinstance`` would fail between them). So a top-level name with a sibling ``NAME.py`` or
    ``NAME/__init__.py`` is answered with an alias of the synthetic module, registered in
    ``sys.modules`` under the top-level name; its submodules (``nets.resnet``) likewise.

    Next come packages at the project root (``mylib/__init__.py``, ``mylib.py``), found by
    the path finder but recorded, so that the next registry imports them afresh too.

    First on ``sys.meta_path``, so siblings come before installed packages, as the script's
    folder comes first on ``sys.path``; but the standard library is never shadowed, and a name
    already in ``sys.modules`` never reaches a finder. Only the registry that imported last is
    answered for; another one drops the previous one's aliases and project-root modules.
    """

    def __init__(self) -> None:
        self.owner: object = None
        self.package: str | None = None
        self.folder: Path | None = None
        self.root: Path | None = None
        self.aliases: set[str] = set()
        self.rooted: set[str] = set()

    def activate(
        self, owner: object, package: str | None, folder: Path | None, root: Path | None
    ) -> None:
        """Answer for `folder` and `root` from now on, forgetting the previous owner's."""
        if self not in sys.meta_path:
            sys.meta_path.insert(0, self)
        for name in self.aliases:
            module = sys.modules.get(name)
            if getattr(module, "__name__", "").startswith(_LOCAL_PACKAGE + "."):
                del sys.modules[name]
        for name in [m for m in sys.modules if m.partition(".")[0] in self.rooted]:
            del sys.modules[name]
        self.aliases.clear()
        self.rooted.clear()
        self.owner, self.package = owner, package
        self.folder = None if folder is None else folder.resolve()
        self.root = None if root is None else root.resolve()

    def find_spec(
        self, fullname: str, path: object = None, target: object = None
    ) -> importlib.machinery.ModuleSpec | None:
        top, dot, _ = fullname.partition(".")
        real = f"{self.package}.{fullname}"
        if dot:  # a submodule of an aliased sibling package
            if top not in self.aliases or (
                real not in sys.modules and importlib.util.find_spec(real) is None
            ):
                return None
        elif fullname in sys.stdlib_module_names:
            return None
        elif self.folder is None or not _is_sibling(self.folder, fullname):
            return self._at_root(fullname)
        self.aliases.add(fullname)
        return importlib.machinery.ModuleSpec(fullname, _AliasLoader(real))

    def _at_root(self, name: str) -> importlib.machinery.ModuleSpec | None:
        if self.root is None or not _is_sibling(self.root, name):
            return None
        spec = importlib.machinery.PathFinder.find_spec(name, [str(self.root)])
        if spec is not None:
            self.rooted.add(name)
        return spec


class _AliasLoader(importlib.abc.Loader):
    """Loads a sibling's top-level name as its synthetic module itself: one object, two names."""

    def __init__(self, real: str) -> None:
        self.real = real
        self.spec: importlib.machinery.ModuleSpec | None = None

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> types.ModuleType:
        module = importlib.import_module(self.real)
        self.spec = module.__spec__
        return module

    def exec_module(self, module: types.ModuleType) -> None:
        # The import system set __spec__ to the alias's spec (it overwrites it whatever the
        # module holds); the module's own spec keeps reload() and __spec__.name truthful.
        module.__spec__ = self.spec


_SIBLINGS = _SiblingFinder()


def _is_sibling(folder: Path, name: str) -> bool:
    return (folder / f"{name}.py").is_file() or (folder / name / "__init__.py").is_file()


def _warn_unreachable_siblings(folder: Path) -> None:
    """Warn where a sibling is imported script-style under a name the finder must not take."""
    names = {p.stem for p in folder.glob("*.py")} | {
        p.parent.name for p in folder.glob("*/__init__.py")
    }
    taken = {n for n in names if n in sys.stdlib_module_names or n in sys.modules}
    if not taken or multiprocessing.parent_process() is not None:
        return  # a worker process: the driver, which loaded the pipeline first, has warned
    for file in sorted(folder.glob("*.py")):
        for name, line in _script_imports(file):
            if name not in taken or name == file.stem:
                continue
            other = "standard-library" if name in sys.stdlib_module_names else "already imported"
            sibling = f"{name}.py" if (folder / f"{name}.py").is_file() else f"{name}/"
            warnings.warn_explicit(
                f"this script-style import of '{name}' gets the {other} module, not "
                f"{sibling} beside pipeline.toml (a sibling never shadows the standard library "
                "or a module imported before the pipeline); for the sibling, import it "
                f"relatively (`from . import {name}`, `from .{name} import ...`) or rename it",
                SiblingShadowWarning,
                str(file),
                line,
            )


def _script_imports(file: Path) -> Iterator[tuple[str, int]]:
    """(top-level name, line) of every absolute import in `file`, nested ones included."""
    try:
        tree = ast.parse(file.read_bytes(), filename=str(file))
    except (SyntaxError, ValueError):
        return  # importing the file reports it
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name.partition(".")[0], node.lineno
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            yield node.module.partition(".")[0], node.lineno


def _import_file(package: str, file: Path) -> types.ModuleType:
    module_name = f"{package}.{file.stem}"
    if module_name in sys.modules:  # imported already by a sibling's relative import
        return sys.modules[module_name]
    try:
        return importlib.import_module(module_name)
    except SyntaxError as exc:
        raise DefinitionError(
            f"syntax error: {exc.msg}",
            hint="fix the Python file beside pipeline.toml",
            location=Location(file=file, line=exc.lineno),
        ) from exc
    except Exception as exc:
        line = _line_in(file, exc)
        raise DefinitionError(
            f"importing {file.name} failed: {type(exc).__name__}: {exc}",
            hint="every *.py beside pipeline.toml is imported; it must import cleanly",
            location=Location(file=file, line=line),
        ) from exc


def _line_in(file: Path, exc: BaseException) -> int | None:
    """The deepest line of `file` in the traceback of `exc`, if any."""
    line = None
    for frame in traceback.extract_tb(exc.__traceback__):
        if Path(frame.filename) == file:
            line = frame.lineno
    return line
