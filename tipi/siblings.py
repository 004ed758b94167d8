"""Imports the ``*.py`` files beside pipeline.toml as one package, importable like a script."""

from __future__ import annotations

import ast
import contextlib
import importlib
import importlib.abc
import importlib.machinery
import importlib.util
import io
import multiprocessing
import re
import sys
import traceback
import types
import warnings
import zlib
from collections.abc import Iterator
from pathlib import Path

from tipi.errors import DefinitionError, Location, describe_error

LOCAL_PACKAGE = "_tipi_pipelines"


# Set on a local package before tipi imports anything into it: from then on a new registry
# drops the package's modules (a failed import can leave a nested one behind, unattached).
IMPORTED_MARK = "__tipi_imported__"


def mark_imported(module_name: str) -> None:
    """Mark the local package holding `module_name` (see IMPORTED_MARK)."""
    parts = module_name.split(".")
    package = sys.modules.get(".".join(parts[:2]))
    if package is not None and parts[0] == LOCAL_PACKAGE:
        setattr(package, IMPORTED_MARK, True)


def local_package(pipeline_dir: Path) -> str:
    """Create (once) the synthetic package that holds one pipeline folder's modules."""
    slug = re.sub(r"\W", "_", pipeline_dir.name)
    digest = zlib.crc32(str(pipeline_dir.resolve()).encode())
    name = f"{LOCAL_PACKAGE}.{slug}_{digest}"
    if LOCAL_PACKAGE not in sys.modules:
        root = types.ModuleType(LOCAL_PACKAGE)
        root.__path__ = []
        sys.modules[LOCAL_PACKAGE] = root
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
            if getattr(module, "__name__", "").startswith(LOCAL_PACKAGE + "."):
                del sys.modules[name]
        if self.rooted:  # a walk over every loaded module (thousands with torch): only if needed
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
        mark_imported(self.real)
        module = importlib.import_module(self.real)
        self.spec = module.__spec__
        return module

    def exec_module(self, module: types.ModuleType) -> None:
        # The import system set __spec__ to the alias's spec (it overwrites it whatever the
        # module holds); the module's own spec keeps reload() and __spec__.name truthful.
        module.__spec__ = self.spec


# The one finder on sys.meta_path; `Registry` activates it for the pipeline it imports.
SIBLINGS = _SiblingFinder()


def _is_sibling(folder: Path, name: str) -> bool:
    return (folder / f"{name}.py").is_file() or (folder / name / "__init__.py").is_file()


def warn_unreachable_siblings(folder: Path) -> None:
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


@contextlib.contextmanager
def script_argv(file: Path) -> Iterator[io.StringIO]:
    """`sys.argv` as `python file` with no arguments would see it (`[path]`), restored after.

    A script with a module-level `parser.parse_args()` (pytorch-cifar's main.py) must not
    read tipi's own command line at import (`tipi status -p c3` → `unrecognized arguments`).
    What it writes to stderr meanwhile is held back (yielded) and passed on after a normal
    import, so that argparse's usage lines do not precede tipi's one-line error.
    """
    before, held = sys.argv, io.StringIO()
    sys.argv = [str(file)]
    try:
        with contextlib.redirect_stderr(held):
            yield held
    except SystemExit:
        raise  # what it wrote goes into the error
    except BaseException:
        sys.stderr.write(held.getvalue())
        raise
    finally:
        sys.argv = before
    sys.stderr.write(held.getvalue())


def import_file(package: str, file: Path) -> types.ModuleType:
    """Import `file` as a submodule of `package` with the argv a script sees
    (`script_argv`), its failures as one-line DefinitionErrors."""
    module_name = f"{package}.{file.stem}"
    if module_name in sys.modules:  # imported already by a sibling's relative import
        return sys.modules[module_name]
    mark_imported(module_name)
    held = io.StringIO()
    try:
        with script_argv(file) as held:
            return importlib.import_module(module_name)
    except SystemExit as exc:  # argparse's parse_args() on missing arguments, sys.exit()...
        raise _exited(file, exc, held, "every *.py beside pipeline.toml is imported") from None
    except SyntaxError as exc:  # in this file, or in a module it imports
        where = Path(exc.filename) if exc.filename else file
        raise DefinitionError(
            f"syntax error: {exc.msg}",
            hint=f"fix {where.name}",
            location=Location(file=where, line=exc.lineno),
        ) from exc
    except Exception as exc:
        line = _line_in(file, exc)
        raise DefinitionError(
            f"importing {file.name} failed: {describe_error(exc)}",
            hint="every *.py beside pipeline.toml is imported; it must import cleanly",
            location=Location(file=file, line=line),
        ) from exc


def _exited(file: Path, exc: SystemExit, held: io.StringIO, why: str) -> DefinitionError:
    """The error for a module that exited while tipi imported it (what it printed last,
    the file and line, and the fix)."""
    said = [line for line in held.getvalue().splitlines() if line.strip()]
    last = f": {said[-1].strip()}" if said else ""
    return DefinitionError(
        f"importing {file.name} ran its command line and exited (SystemExit {exc.code!r}{last})",
        hint=f"{why}: in {file.name}, put the code that parses arguments and runs under "
        '`if __name__ == "__main__":`',
        location=Location(file=file, line=_line_in(file, exc)),
    )


def import_as_script(module_name: str) -> types.ModuleType:
    """`importlib.import_module(module_name)` for a `module:attr` that TOML names (a model
    factory, an optimizer, a callback): a module not imported yet runs with `script_argv`,
    and exiting at import is one DefinitionError naming its file and the fix."""
    found = sys.modules.get(module_name)
    if found is not None:
        return found
    held, file = io.StringIO(), Path(module_name.replace(".", "/") + ".py")
    try:
        with script_argv(file) as held:
            spec = importlib.util.find_spec(module_name)
            if spec is not None and spec.has_location and spec.origin:
                file = Path(spec.origin)
                sys.argv = [str(file)]
            return importlib.import_module(module_name)
    except SystemExit as exc:
        raise _exited(file, exc, held, f"'{module_name}' is named in the pipeline") from None


def _line_in(file: Path, exc: BaseException) -> int | None:
    """The deepest line of `file` in the traceback of `exc`, if any."""
    line = None
    for frame in traceback.extract_tb(exc.__traceback__):
        if Path(frame.filename) == file:
            line = frame.lineno
    return line
