"""Code fingerprints and environments of a pipeline's steps and permanences, and the code
table that lets a later make say which unit of code changed.

The code table, ``.tipi_cache/code.msgpack``, maps a code fingerprint to its closure (unit →
digest), for the newest TABLE_SIZE fingerprints planned in the project. A trace keeps only
the fingerprint; when it differs from the current one, both are looked up here to name the
units that changed. A fingerprint missing from the table (pruned, or the table was lost)
only makes the reason less precise ("code of Train changed").
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

from tipi.cache.closure import CodeScanner
from tipi.cache.environment import versions
from tipi.cache.fingerprint import digest
from tipi.cache.store import read_document, write_document

CODE_KIND = "code-table"
TABLE_SIZE = 2000


class PipelineCode:
    """Fingerprints the code of classes (with their closures) for one plan.

    Attributes:
        units: code fingerprint → its closure, for every fingerprint computed.
        files: every source file read (a plan depends on them).
    """

    def __init__(self, root: Path, folder: Path) -> None:
        self.scanner = CodeScanner(root, folder)
        self.units: dict[str, Mapping[str, str]] = {}
        self.files: set[str] = set()
        self._imports: dict[str, frozenset[str]] = {}
        self._environments: dict[frozenset[str], tuple[str, dict[str, str]]] = {}
        self.environments: dict[str, dict[str, str]] = {}

    def fingerprint(self, cls: type, refs: Iterable[str] = ()) -> str:
        """The code fingerprint of `cls` (and of the `module:attr` code it names in `refs`):
        its `version` attribute when set, else the hash of its closure."""
        version = getattr(cls, "version", None)
        if version is not None:
            return digest(["version", cls.__qualname__, str(version)])
        closure = self.scanner.closure_of(cls, tuple(refs))
        fp = closure.fingerprint
        self.units[fp] = closure.units
        self.files |= closure.files
        self._imports[fp] = closure.imports
        return fp

    def environment(self, fingerprints: Iterable[str]) -> str:
        """The id of the environment of code with these fingerprints (its versions are in
        `environments`)."""
        imports = frozenset(i for fp in fingerprints for i in self._imports.get(fp, ()))
        if imports not in self._environments:
            found, files = versions(imports)
            env_id = digest(found)[:16]
            self._environments[imports] = (env_id, found)
            self.environments[env_id] = found
            self.files.update(files)
        return self._environments[imports][0]


def save_code_table(path: Path, units: Mapping[str, Mapping[str, str]], warn: Callable) -> None:
    """Add closures to the project's code table, keeping the newest TABLE_SIZE."""
    table = read_document(path, CODE_KIND, warn)
    table = table if isinstance(table, dict) else {}
    new = {fp: dict(u) for fp, u in units.items() if fp not in table}
    if not new:
        return
    table.update(new)
    if len(table) > TABLE_SIZE:
        table = dict(list(table.items())[-TABLE_SIZE:])
    write_document(path, CODE_KIND, table)


class CodeTable(Mapping[str, Mapping[str, str]]):
    """The code table, read on first lookup (only a code change needs it)."""

    def __init__(self, path: Path, warn: Callable[[str], None]) -> None:
        self.path = path
        self.warn = warn
        self._table: dict[str, Any] | None = None

    def _load(self) -> dict[str, Any]:
        if self._table is None:
            table = read_document(self.path, CODE_KIND, self.warn)
            self._table = table if isinstance(table, dict) else {}
        return self._table

    def __getitem__(self, fp: str) -> Mapping[str, str]:
        units = self._load()[fp]
        if not isinstance(units, dict):
            raise KeyError(fp)
        return units

    def __iter__(self) -> Iterator[str]:
        return iter(self._load())

    def __len__(self) -> int:
        return len(self._load())
