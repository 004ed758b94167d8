"""The normalized AST of a unit and its digest: no docstrings, comments, formatting or positions."""

from __future__ import annotations

import ast
from collections.abc import Iterable

import xxhash


class _Mark(str):
    """A structural marker in `ast_digest`'s stack (never confused with a string value)."""


def ast_digest(nodes: Iterable[ast.AST]) -> str:
    """xxh3_128 of the nodes' fields, depth first, without positions (iterative)."""
    h = xxhash.xxh3_128()
    stack: list[object] = list(reversed(list(nodes)))
    while stack:
        item = stack.pop()
        if isinstance(item, _Mark):
            h.update(item.encode())
        elif isinstance(item, ast.AST):
            h.update(b"(" + type(item).__name__.encode())
            stack.append(_Mark(")"))
            for name in reversed(item._fields):
                stack.append(getattr(item, name, None))
                stack.append(_Mark(f" {name}="))
        elif isinstance(item, list):
            h.update(f"[{len(item)}".encode())
            stack.append(_Mark("]"))
            stack.extend(reversed(item))
        else:
            h.update(repr(item).encode() + b",")
    return h.hexdigest()


def is_docstring(node: ast.stmt) -> bool:
    """Whether a statement is only a string: a docstring (wherever it stands, it does nothing)."""
    return (
        isinstance(node, ast.Expr)
        and isinstance(node.value, ast.Constant)
        and isinstance(node.value.value, str)
    )


def strip_docstrings(tree: ast.AST) -> None:
    """Drop the docstrings of `tree` and of every function and class in it, in place."""
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if (
            isinstance(node, ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef | ast.Module)
            and body
            and is_docstring(body[0])
        ):
            node.body = body[1:] or [ast.Pass()]
