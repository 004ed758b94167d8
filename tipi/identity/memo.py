"""Code closures kept across makes, reused while the code they were computed from is unchanged.

Computing a step class's closure walks every unit it reaches; a param-only change (`--set`),
a sweep variant or a comment added to a helper would walk them all again. The memo
(``.tipi_cache/code_memo.msgpack``) keeps, per start (the class or function with its bases, the
`module:attr` strings it names, the pipeline folder, whether it is a step), the closure's
fingerprint, the files it read and what each of them *means*: the digest of the file's
statements dumped without positions (`ast.dump`, statements.py), so that an edit to comments
or formatting leaves it equal.
A closure is reused when every file it read means what it meant, every candidate file whose
appearance would change an import (`absent`) is still absent and the pipeline folder holds the
same `*.py` files (tipi imports them all at load). Everything the walk looks at is a function of
those: each module's units are a function of its AST (source.py), and where an import leads is
a function of which files exist. A closure that imports by computed name (any module may be
the one) is not kept. The file is read and written by state/codetable.py (versioned msgpack).

A file's meaning is memoized by its content hash, so an unchanged file costs one read and one
hash; its content is parsed again only when it changed. Its units and bindings (source.py's
ModuleSource) are kept by content hash too: a closure computed again (a class edited) reads
an unchanged 5,000-function helper from the memo instead of parsing it; and the unit of each
module-level function, and the dump of each definition, are kept by their text (statements.py):
a helper with one function edited is parsed again, but only that function is read and dumped.
The memo is invalid as a whole when tipi's closure rules or Python change (RULES). A damaged
memo is reported once and rebuilt; a lost one only makes the next plan slower. A reused
closure brings no unit map: the code table already holds it under the same fingerprint (or
pruned it: a reason is then less precise).
"""

from __future__ import annotations

import ast
import inspect
import os
import sys
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import msgpack

from tipi.identity.hashing import hash_bytes
from tipi.identity.source import ModuleSource, Unit, decode
from tipi.identity.statements import (
    StatementMemo,
    pack_binding,
    pack_unit,
    unpack_binding,
    unpack_unit,
)

MAX_CLOSURES = 5000  # entries kept: the newest, those used by this make first
MAX_MEANINGS = 5000
MAX_SOURCE_BYTES = 32 << 20  # packed units of files not read by the latest make
MAX_STATEMENTS = 50000  # function units by text (statements.py): this make's, then the newest
_RULES_FILES = (
    *("source", "walk", "closure", "effects", "normalize", "modules", "memo", "statements"),
)
_HERE = Path(__file__).resolve().parent
_rules: str | None = None


def rules() -> str:
    """What the memo's closures were computed by: tipi's closure code and Python's version."""
    global _rules
    if _rules is None:
        data = [sys.version.encode()]
        for name in _RULES_FILES:
            try:
                data.append((_HERE / f"{name}.py").read_bytes())
            except OSError:
                data.append(b"?")
        _rules = hash_bytes(b"\0".join(data))
    return _rules


def start_key(obj: Any) -> str | None:
    """How a closure's start is named across makes: each class of its MRO (or the function)
    by module, qualname and module file; None when it has no stable name."""
    if isinstance(obj, str):
        return "s:" + obj
    obj = getattr(obj, "__tipi_function__", None) or obj
    parts = []
    for item in obj.__mro__ if inspect.isclass(obj) else (obj,):
        module, qualname = getattr(item, "__module__", None), getattr(item, "__qualname__", None)
        if not isinstance(module, str) or not isinstance(qualname, str):
            return None
        file = getattr(sys.modules.get(module), "__file__", None)
        parts.append(f"{module}:{qualname}@{file}")
    return "|".join(parts)


class CodeMemo:
    """The memo of one make (read on first use, written by `save`).

    Args:
        read: the stored memo and whether it was damaged (None, False: there is none;
            state/codetable.py reads and checks the file, warning once); None keeps the
            memo in memory only.
        write: stores the memo.
    """

    def __init__(
        self,
        read: Callable[[], tuple[dict[str, Any] | None, bool]] | None = None,
        write: Callable[[dict[str, Any]], None] | None = None,
    ) -> None:
        self._read = read
        self._write = write
        self._doc: dict[str, Any] | None = None
        self._broken = False
        self._now: dict[str, str | None] = {}  # path → meaning, this make
        self._contents: dict[str, str] = {}  # content hash → meaning, used this make
        self._exists: dict[str, bool] = {}
        self._listings: dict[Path, str] = {}
        self._new: dict[str, list[Any]] = {}  # key → entry (paths, not groups)
        self._sources: dict[str, bytes] = {}  # content hash → packed ModuleSource, this make
        self._used: set[str] = set()
        self._trees: dict[str, ast.Module] = {}  # content hash → its tree, parsed for meaning
        self._statements: dict[str, bytes] = {}  # statements.py's key → packed unit, this make

    def _load(self) -> dict[str, Any]:
        if self._doc is None:
            doc = None
            if self._read is not None:
                doc, self._broken = self._read()
            if doc is None or doc.get("rules") != rules():
                doc = {"rules": rules(), "meanings": {}, "groups": [], "closures": {}}
            self._doc = doc
        return self._doc

    def noted(
        self, file: Path, content: str, meaning: str, module: ModuleSource | None = None
    ) -> None:
        """A file the scanner read this make (parsed into `module`, None when it could not
        be): its meaning needs no second parse, its units no second parse next make."""
        self._contents[content] = meaning
        self._now[str(file)] = meaning
        if module is not None and content not in self._sources:
            self._sources[content] = pack_module(module)

    def source(self, content: str) -> tuple[ModuleSource, str] | None:
        """The units and meaning of a file's content, when the memo holds them."""
        doc = self._load()
        packed, meaning = doc.get("sources", {}).get(content), doc["meanings"].get(content)
        if not isinstance(packed, bytes) or not isinstance(meaning, str):
            return None
        try:
            module = unpack_module(packed)
        except (TypeError, ValueError, IndexError, KeyError, AttributeError):
            return None  # damaged: parsed again
        self._sources[content] = packed
        return module, meaning

    def parsed(self, content: str) -> tuple[ast.Module, str] | None:
        """The tree (not yet stripped: read_tree's to change) and meaning of a file's
        content that `meaning` parsed this make, handed over once: an edited file is parsed
        and dumped once a make, not once to check the memo and again to walk it."""
        tree = self._trees.pop(content, None)
        return None if tree is None else (tree, self._contents[content])

    def statement(self, key: str) -> tuple[Unit, bool] | None:
        """A function's unit and whether it is eager, kept under `key` (statements.py)."""
        packed = self._statements.get(key)
        if packed is None:
            kept = self._load().get("statements")
            packed = kept.get(key) if isinstance(kept, dict) else None
        if not isinstance(packed, bytes):
            return None
        try:
            *fields, eager = msgpack.unpackb(packed, raw=False, strict_map_key=False)
            unit = unpack_unit(fields)
        except (TypeError, ValueError, IndexError, KeyError, AttributeError):
            return None  # damaged: read again
        self._statements[key] = packed
        return unit, bool(eager)

    def keep_statement(self, key: str, unit: Unit, eager: bool) -> None:
        """Keep a function's unit just computed (statements.py)."""
        self._statements[key] = msgpack.packb([*pack_unit(unit), eager], use_bin_type=True)

    def dumped(self, key: str) -> str | None:
        """The digest of a definition's dump, kept under `key` (statements.py)."""
        found = self._statements.get(key)
        if found is None:
            kept = self._load().get("statements")
            found = kept.get(key) if isinstance(kept, dict) else None
        if not isinstance(found, bytes):
            return None
        self._statements[key] = found
        return found.decode("ascii", "replace")

    def keep_dumped(self, key: str, digest: str) -> None:
        self._statements[key] = digest.encode()

    def forget_trees(self) -> None:
        """Drop the trees no walk took (the plan is made: they would only hold memory)."""
        self._trees.clear()

    def meaning(self, path: str) -> str | None:
        """What the file at `path` means now (None: it cannot be read)."""
        if path not in self._now:
            try:
                raw = Path(path).read_bytes()
            except OSError:
                self._now[path] = None
                return None
            content = hash_bytes(raw)
            found = self._contents.get(content) or self._load()["meanings"].get(content)
            if not isinstance(found, str):
                try:
                    text = decode(raw)
                    tree = ast.parse(text)
                    found = StatementMemo(text, self).meaning(tree)
                    self._trees[content] = tree  # the scanner's, when it reads the file
                except (SyntaxError, ValueError, LookupError, RecursionError, MemoryError):
                    found = "raw:" + content  # the walk counts its bytes
            self._contents[content] = found
            self._now[path] = found
        return self._now[path]

    def listing(self, folder: Path) -> str:
        """The `*.py` files beside pipeline.toml (tipi imports each at load)."""
        if folder not in self._listings:
            names = sorted(p.name for p in folder.glob("*.py"))
            self._listings[folder] = hash_bytes("\0".join(names).encode())
        return self._listings[folder]

    def _absent(self, path: str) -> bool:
        if path not in self._exists:
            self._exists[path] = os.path.exists(path)
        return not self._exists[path]

    def lookup(self, key: str, folder: Path) -> tuple[str, list[frozenset[str]]] | None:
        """(fingerprint, [files, read, absent, imports]) of the closure kept under `key`,
        when everything it was computed from is unchanged."""
        doc = self._load()
        entry = doc["closures"].get(key)
        try:
            fp, ids, listing, meanings = entry  # type: ignore[misc]
            groups = [doc["groups"][i] for i in ids]
            files, read, absent, _ = groups
            if not isinstance(fp, str) or listing != self.listing(folder):
                return None
            if len(meanings) != len(files) + len(read):
                return None
            for path, meant in zip([*files, *read], meanings, strict=True):
                if self.meaning(path) != meant:
                    return None
            if not all(self._absent(p) for p in absent):
                return None
            found = [frozenset(g) for g in groups]
        except (TypeError, ValueError, IndexError, KeyError, AttributeError):
            return None  # no entry, or a damaged one: computed again
        self._used.add(key)
        return fp, found

    def keep(
        self,
        key: str,
        folder: Path,
        fingerprint: str,
        parts: Iterable[frozenset[str]],
    ) -> None:
        """Keep a closure just computed: [files, read, absent, imports]."""
        files, read, absent, imports = (sorted(p) for p in parts)
        meanings = [self.meaning(p) for p in [*files, *read]]
        if any(m is None for m in meanings):
            return  # a file vanished meanwhile: nothing to trust
        groups = [files, read, absent, imports]
        self._new[key] = [fingerprint, groups, self.listing(folder), meanings]

    def save(self) -> None:
        """Write the memo: this make's closures first, then the newest older ones."""
        if self._write is None:
            return
        doc = self._load()  # (a damaged file is known once read)
        grown = any(c not in doc["meanings"] for c in self._contents)  # an edited file
        grown = grown or any(c not in doc.get("sources", {}) for c in self._sources)
        old_statements = doc.get("statements")
        old_statements = old_statements if isinstance(old_statements, dict) else {}
        grown = grown or any(k not in old_statements for k in self._statements)
        if not self._new and not self._broken and not grown:
            return
        old = doc["closures"]
        groups: list[list[str]] = []
        index: dict[tuple[str, ...], int] = {}

        def intern(group: list[str]) -> int:
            key = tuple(group)
            if key not in index:
                index[key] = len(groups)
                groups.append(group)
            return index[key]

        closures: dict[str, list[Any]] = {}
        ordered = [*self._new.items()]
        ordered += [(k, old[k]) for k in self._used if k in old and k not in self._new]
        ordered += [(k, e) for k, e in reversed(old.items()) if k not in self._new]
        for key, entry in ordered:
            if len(closures) >= MAX_CLOSURES or key in closures:
                continue
            try:
                fp, parts, listing, meanings = entry
                if key not in self._new:
                    parts = [doc["groups"][i] for i in parts]
                closures[key] = [fp, [intern(list(g)) for g in parts], listing, meanings]
            except (TypeError, ValueError, IndexError, KeyError):
                continue
        used = set(self._contents)
        meanings = {c: m for c, m in self._contents.items()}
        for content, meant in reversed(doc["meanings"].items()):
            if len(meanings) >= MAX_MEANINGS:
                break
            if content not in used:
                meanings[content] = meant
        self._write(
            {
                "rules": rules(),
                "meanings": meanings,
                "groups": groups,
                "closures": closures,
                "sources": self._kept_sources(doc, meanings),
                "statements": _newest(self._statements, old_statements, MAX_STATEMENTS),
            }
        )
        self._doc, self._new, self._broken = None, {}, False

    def _kept_sources(self, doc: dict[str, Any], meanings: dict[str, str]) -> dict[str, bytes]:
        """The files read this make, then older ones still known, within MAX_SOURCE_BYTES."""
        kept = dict(self._sources)
        size = sum(map(len, kept.values()))
        old = doc.get("sources", {})
        for content, packed in reversed(old.items()):
            if size >= MAX_SOURCE_BYTES:
                break
            if content in meanings and content not in kept and isinstance(packed, bytes):
                kept[content] = packed
                size += len(packed)
        return kept


def _newest(new: dict[str, bytes], old: dict[str, Any], limit: int) -> dict[str, bytes]:
    """`new`, then the newest entries of `old`, `limit` in all."""
    kept = dict(new)
    for key, packed in reversed(old.items()):
        if len(kept) >= limit:
            break
        if key not in kept and isinstance(packed, bytes):
            kept[key] = packed
    return kept


def pack_module(module: ModuleSource) -> bytes:
    """A ModuleSource as msgpack bytes (unpack_module reads it back)."""
    units = {name: pack_unit(u) for name, u in module.units.items()}
    data = [
        units,
        module.classes,
        {n: [pack_binding(b) for b in bs] for n, bs in module.bindings.items()},
        [[list(parts), level] for parts, level in module.stars],
        [pack_binding(b) for b in module.imports],
        module.eager,
        sorted(module.headers),
        {n: [list(c) for c in chains] for n, chains in module.bases.items()},
        sorted(module.registrars),
        module.imports_by_name,
    ]
    return msgpack.packb(data, use_bin_type=True)


def unpack_module(packed: bytes) -> ModuleSource:
    """The ModuleSource pack_module wrote (raises on damaged data)."""
    units, classes, bindings, stars, imports, eager, headers, bases, registrars, by_name = (
        msgpack.unpackb(packed, raw=False, strict_map_key=False)
    )
    return ModuleSource(
        units={name: unpack_unit(data) for name, data in units.items()},
        classes={n: list(names) for n, names in classes.items()},
        bindings={n: [unpack_binding(b) for b in bs] for n, bs in bindings.items()},
        stars=[(tuple(parts), level) for parts, level in stars],
        imports=[unpack_binding(b) for b in imports],
        eager=list(eager),
        headers=set(headers),
        bases={n: tuple(tuple(c) for c in chains) for n, chains in bases.items()},
        registrars=set(registrars),
        imports_by_name=bool(by_name),
    )
