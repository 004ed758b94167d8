"""The units of module-level functions kept by their text, so that an edit of one function of
a big module reads that one function again, not its 5,000 neighbours.

A module-level function's unit (its digest, the names it loads, its imports: source.py) and
whether it is eager are a function of its AST and of its module's Scope (effects.py) alone,
and its AST is a function of its text: from the line of its first decorator (or of `def`) to
its last line. Top-level statements start a line, and what follows a function's last token on
its line can only be a comment, so those whole lines hold the function and nothing else
(comments included: a comment edited inside a function reads it again, which is only slower).
The key is the digest of that text and of the Scope; the memo (memo.py) keeps the units
across makes (and is invalid whole when tipi's closure rules change). A file with a carriage
return (where Python's line numbers and a split on newlines could disagree) is read in full.
"""

from __future__ import annotations

import ast
import dataclasses

from tipi.identity.effects import Scope
from tipi.identity.hashing import hash_bytes
from tipi.identity.memo import CodeMemo
from tipi.identity.source import Unit


class StatementMemo:
    """What source.py's `read_tree` asks for one file's text (`known`), backed by a CodeMemo."""

    def __init__(self, text: str, memo: CodeMemo) -> None:
        self._lines = None if "\r" in text else text.split("\n")
        self._memo = memo
        self._scope: tuple[Scope, str] | None = None

    def get(self, node: ast.stmt, scope: Scope) -> tuple[Unit, bool] | None:
        key = self._key(node, scope)
        return None if key is None else self._memo.statement(key)

    def put(self, node: ast.stmt, scope: Scope, unit: Unit, eager: bool) -> None:
        key = self._key(node, scope)
        if key is not None:
            self._memo.keep_statement(key, unit, eager)

    def _key(self, node: ast.stmt, scope: Scope) -> str | None:
        end = node.end_lineno
        if self._lines is None or end is None:
            return None
        decorators = getattr(node, "decorator_list", [])
        first = min([node.lineno, *(d.lineno for d in decorators)])
        head = self._lines[first - 1] if 0 < first <= len(self._lines) else ""
        if not head.startswith(("@", "def", "async")):
            return None  # not the shape above: read it in full
        text = "\n".join(self._lines[first - 1 : end])
        return hash_bytes(f"{self._scope_text(scope)}\0{text}".encode())

    def _scope_text(self, scope: Scope) -> str:
        """The Scope as text that does not depend on the process (its sets sorted)."""
        if self._scope is None or self._scope[0] is not scope:
            values = (getattr(scope, f.name) for f in dataclasses.fields(scope))
            text = repr([sorted(v) if isinstance(v, frozenset) else v for v in values])
            self._scope = (scope, text)
        return self._scope[1]
