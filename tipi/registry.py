"""Resolves a `type` name to a class: built-ins, classes beside pipeline.toml, `module:Class`."""

from __future__ import annotations

import contextlib
import importlib
import inspect
import sys
import types
import weakref
from collections.abc import Iterator, Mapping
from pathlib import Path

from tipi.definitions import definition_problem
from tipi.errors import DefinitionError, Location
from tipi.permanence import Permanence
from tipi.process import PipelineProcess
from tipi.siblings import (
    IMPORTED_MARK,
    SIBLINGS,
    SiblingShadowWarning,
    import_as_script,
    import_file,
    local_package,
    warn_unreachable_siblings,
)
from tipi.suggest import did_you_mean

__all__ = ["BUILTIN_TYPES", "Registry", "SiblingShadowWarning", "is_component", "kind_of", "unwrap"]

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
    "Compare": "tipi.processes.compare:Compare",
    "Export": "tipi.processes.export:Export",
    "Profile": "tipi.processes.profiling:Profile",
}

# Classes definition_problem() has passed, in this process: a class object does not change
# (an edited file, imported afresh, gives new ones), so each is checked once, not per make.
# Keyed by id and compared by identity: a metaclass may make two classes equal by name.
_SOUND: weakref.WeakValueDictionary[int, type] = weakref.WeakValueDictionary()

Component = type[Permanence] | type[PipelineProcess]


def unwrap(obj: object) -> object:
    """The step class behind a @pipeline_process function, else `obj` itself."""
    try:
        return getattr(obj, "__tipi_process__", obj)
    except Exception:  # an object whose __getattr__ raises KeyError (an AttrDict config)
        return obj


def is_component(obj: object) -> bool:
    """True for concrete Permanence or PipelineProcess subclasses."""
    return is_definition(obj) and not inspect.isabstract(unwrap(obj))


def is_definition(obj: object) -> bool:
    """True for Permanence or PipelineProcess subclasses, abstract ones included."""
    obj = unwrap(obj)
    return (
        inspect.isclass(obj)
        and issubclass(obj, (Permanence, PipelineProcess))
        and obj not in (Permanence, PipelineProcess)
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
    module objects through `tipi.siblings`, for the registry that imported last; so do
    packages at the project root (``import mylib``). A new registry imports both afresh.

    A local class left abstract is no type of its own (it may be a base), but naming it is
    answered with what it lacks, as is any class the engine could not build or run.
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
        self._abstract: dict[str, Component] = {}
        self._fresh = False

    def resolve(self, name: str, expected: type, location: Location | None = None) -> Component:
        """Return the class named `name`, which must subclass `expected`.

        Raises:
            DefinitionError: the name is unknown (with close matches), cannot be imported,
                names a class of the wrong kind, or one the engine cannot build or run (no
                ``cleanup()``/``execute()``, an ``__init__`` without ``controller``/``force``
                or without ``super().__init__``); then the error points at the class.
        """
        cls = unwrap(self._lookup(name, location))
        if not (inspect.isclass(cls) and issubclass(cls, expected)):
            wanted = "permanence" if expected is Permanence else "process"
            found = kind_of(cls) if is_definition(cls) else f"{type(cls).__name__} object"
            section = {"permanence": "[permanences.NAME]", "process": "[processes.NAME]"}.get(found)
            raise DefinitionError(
                f"type '{name}' is a {found}, but a {wanted} is declared here",
                hint=f"declare it under {section}"
                if section
                else f"point `type` at a {wanted} class",
                location=location,
            )
        if _SOUND.get(id(cls)) is not cls:
            problem = definition_problem(cls, location)
            if problem is not None:
                raise problem
            _SOUND[id(cls)] = cls
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
            self._local, self._abstract = self._import_local()
        return self._local

    def _lookup(self, name: str, location: Location | None) -> Component:
        if ":" in name:
            return self._import_dotted(name, location)
        if name in self.local():
            return self.local()[name]
        if name in self._abstract:  # named, so meant to run: resolve() says what it lacks
            return self._abstract[name]
        if name in self.builtins:
            return self._import_dotted(self.builtins[name], location)
        hint = (
            did_you_mean(name, self.names(), n=3)
            or "run `tipi list` to see the available types, or use a `module:Class` path"
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
            module = import_as_script(module_name)  # argv-safe, SystemExit one error
        except ImportError as exc:
            raise DefinitionError(
                f"cannot import module '{module_name}' for type '{path}': {exc}",
                hint="check the module path and that its package is installed",
                location=location,
            ) from exc
        obj = module
        for part in attr.split("."):
            if not hasattr(obj, part):
                raise DefinitionError(
                    f"module '{module_name}' has no attribute '{attr}'",
                    hint=did_you_mean(part, dir(obj), n=3),
                    location=location,
                )
            obj = getattr(obj, part)
        return obj  # type: ignore[return-value]

    def _activate(self) -> None:
        """Point script-style imports at this registry's pipeline folder and project root.

        The first time, the files are imported afresh: in a long-lived process (a notebook, a
        test session) an edited steps.py or models.py must not keep running its old classes.
        """
        if SIBLINGS.owner is self or (self.pipeline_dir is None and self.project_root is None):
            return
        package = None if self.pipeline_dir is None else local_package(self.pipeline_dir)
        SIBLINGS.activate(self, package, self.pipeline_dir, self.project_root)
        if not self._fresh and package is not None and _has_submodules(package):
            inside, parent = package + ".", sys.modules[package]
            for name in [m for m in sys.modules if m.startswith(inside)]:
                del sys.modules[name]
                with contextlib.suppress(AttributeError):
                    delattr(parent, name[len(inside) :])  # nested ones go with their parent
        self._fresh = True
        importlib.invalidate_caches()

    def _import_local(self) -> tuple[dict[str, Component], dict[str, Component]]:
        """The concrete classes beside pipeline.toml, and the abstract ones apart."""
        if self.pipeline_dir is None:
            return {}, {}
        self._activate()
        package = local_package(self.pipeline_dir)
        warn_unreachable_siblings(self.pipeline_dir)
        found: dict[str, Component] = {}
        abstract: dict[str, Component] = {}
        origin: dict[str, Path] = {}
        for file in sorted(self.pipeline_dir.glob("*.py")):
            module = import_file(package, file)
            for name, obj in vars(module).items():
                if not is_definition(obj) or obj.__module__ != module.__name__:
                    continue
                obj = unwrap(obj)
                if inspect.isabstract(obj):
                    abstract[name] = obj
                    continue
                if name in found:
                    raise DefinitionError(
                        f"type '{name}' is defined twice: in {origin[name].name} and {file.name}",
                        hint="rename one of them",
                        location=Location(file=file),
                    )
                found[name] = obj
                origin[name] = file
        return found, abstract


def _has_submodules(package: str) -> bool:
    """Whether anything may have been imported into the local `package` (tipi marks it
    before it imports a file there; the import system sets each direct child as an
    attribute): a test the make does instead of walking every module of the process."""
    module = sys.modules.get(package)
    return module is not None and (
        getattr(module, IMPORTED_MARK, False)
        or any(isinstance(value, types.ModuleType) for value in vars(module).values())
    )
