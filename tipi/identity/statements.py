"""The units of module-level functions, and the meaning of module-level definitions, kept by
their text: an edit of one function of a big module reads that one function again, not its
5,000 neighbours, and a comment added to the module dumps none of them.

A module-level function's unit (its digest, the names it loads, its imports: source.py) and
whether it is eager are a function of its AST and of its module's Scope (effects.py) alone;
the meaning of a module (memo.py: what it is to a closure, without positions or comments) is
the digest of its statements' ASTs dumped without positions, in order. The AST of a
module-level function or class is a function of its text: from the line of its first
decorator (or of `def`, `class`) to its last line. Top-level statements start a line, and
what follows a definition's last token on its line can only be a comment, so those whole
lines hold the definition and nothing else (comments included: a comment edited inside a
function reads it again, which is only slower). The keys are digests of that text (and of
the Scope, for a unit); the memo keeps the values across makes (and is invalid whole when
tipi's closure rules change). A file with a carriage return (where Python's line numbers and
a split on newlines could disagree) is read in full.
"""

from __future__ import annotations

import ast
import dataclasses
from typing import Any, Protocol

from tipi.identity.effects import Scope
from tipi.identity.hashing import hash_bytes
from tipi.identity.source import Binding, Unit

_DEFINITIONS = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)


class Store(Protocol):
    """Where the values are kept (memo.py's CodeMemo)."""

    def statement(self, key: str) -> tuple[Unit, bool] | None: ...

    def keep_statement(self, key: str, unit: Unit, eager: bool) -> None: ...

    def dumped(self, key: str) -> str | None: ...

    def keep_dumped(self, key: str, digest: str) -> None: ...


class StatementMemo:
    """What source.py's `read_tree` asks for one file's text (`known`), and its meaning."""

    def __init__(self, text: str, store: Store) -> None:
        self._lines = None if "\r" in text else text.split("\n")
        self._store = store
        self._scope: tuple[Scope, str] | None = None

    def get(self, node: ast.stmt, scope: Scope) -> tuple[Unit, bool] | None:
        key = self._key(node, scope)
        return None if key is None else self._store.statement(key)

    def put(self, node: ast.stmt, scope: Scope, unit: Unit, eager: bool) -> None:
        key = self._key(node, scope)
        if key is not None:
            self._store.keep_statement(key, unit, eager)

    def meaning(self, tree: ast.Module) -> str:
        """The module's meaning: the digests of its statements dumped, in order (before
        read_tree strips their docstrings)."""
        parts = []
        for node in tree.body:
            text = self._text(node) if isinstance(node, _DEFINITIONS) else None
            key = None if text is None else hash_bytes(f"dump\0{text}".encode())
            found = None if key is None else self._store.dumped(key)
            if found is None:
                found = hash_bytes(ast.dump(node).encode())
                if key is not None:
                    self._store.keep_dumped(key, found)
            parts.append(found)
        return hash_bytes("\0".join(parts).encode())

    def _key(self, node: ast.stmt, scope: Scope) -> str | None:
        text = self._text(node)
        return None if text is None else hash_bytes(f"{self._scope_text(scope)}\0{text}".encode())

    def _text(self, node: ast.stmt) -> str | None:
        """The whole lines of a module-level definition, or None where that is not its shape."""
        end = node.end_lineno
        if self._lines is None or end is None:
            return None
        decorators = getattr(node, "decorator_list", [])
        first = min([node.lineno, *(d.lineno for d in decorators)])
        head = self._lines[first - 1] if 0 < first <= len(self._lines) else ""
        if not head.startswith(("@", "def", "async", "class")):
            return None  # not the shape above: read it in full
        return "\n".join(self._lines[first - 1 : end])

    def _scope_text(self, scope: Scope) -> str:
        """The Scope as text that does not depend on the process (its sets sorted)."""
        if self._scope is None or self._scope[0] is not scope:
            values = (getattr(scope, f.name) for f in dataclasses.fields(scope))
            text = repr([sorted(v) if isinstance(v, frozenset) else v for v in values])
            self._scope = (scope, text)
        return self._scope[1]


def pack_unit(u: Unit) -> list[Any]:
    """A Unit as msgpack-able data (unpack_unit reads it back; memo.py stores both)."""
    local = [[n, pack_binding(b)] for n, b in u.local]
    return [u.digest, [list(r) for r in u.refs], u.dynamic, local, list(u.strings), u.computed]


def unpack_unit(data: list[Any]) -> Unit:
    digest, refs, dynamic, local, strings, computed = data
    return Unit(
        digest,
        tuple(tuple(r) for r in refs),
        dynamic,
        tuple((n, unpack_binding(b)) for n, b in local),
        tuple(strings),
        computed=computed,
    )


def pack_binding(b: Binding) -> list[Any]:
    return [b.kind, b.target, list(b.module), b.level, b.attr]


def unpack_binding(data: list[Any]) -> Binding:
    kind, target, module, level, attr = data
    return Binding(kind, target, tuple(module), level, attr)
