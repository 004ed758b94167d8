"""Finds the line each TOML key was written on, since tomllib reports values, not positions."""

from __future__ import annotations

import re

_BARE_OR_QUOTED = r'(?:[A-Za-z0-9_-]+|"[^"]*"|\'[^\']*\')'
_DOTTED = rf"{_BARE_OR_QUOTED}(?:\s*\.\s*{_BARE_OR_QUOTED})*"
_HEADER = re.compile(rf"^\s*\[\[?\s*({_DOTTED})\s*\]\]?")
_ASSIGN = re.compile(rf"(?:^|[{{,])\s*({_DOTTED})\s*=")
_PART = re.compile(_BARE_OR_QUOTED)


def _split(dotted: str) -> tuple[str, ...]:
    return tuple(p.strip("\"'") for p in _PART.findall(dotted))


def key_lines(text: str) -> dict[tuple[str, ...], int]:
    """Map each key path to the 1-based line where it first appears.

    Handles table headers, dotted keys and one level of inline tables on a line
    (``params = { lr = 0.1 }`` gives both ``(..., "params")`` and ``(..., "params", "lr")``).
    Multi-line values are not followed; their inner keys fall back to the enclosing key.
    """
    lines: dict[tuple[str, ...], int] = {}
    table: tuple[str, ...] = ()
    for number, raw in enumerate(text.splitlines(), start=1):
        line = _strip_comment(raw)
        header = _HEADER.match(line)
        if header:
            table = _split(header.group(1))
            for n in range(1, len(table) + 1):
                lines.setdefault(table[:n], number)
            continue
        outer: tuple[str, ...] | None = None
        for match in _ASSIGN.finditer(line):
            key = _split(match.group(1))
            before = line[: match.start(1)]
            inline = outer is not None and "{" in before
            path = (outer + key) if inline and outer is not None else table + key
            if outer is None:
                outer = table + key
            for n in range(len(table) + 1, len(path) + 1):
                lines.setdefault(path[:n], number)
    return lines


def _strip_comment(line: str) -> str:
    if "#" not in line:  # most lines: no character-by-character walk
        return line
    quote = None
    for i, ch in enumerate(line):
        if quote:
            if ch == quote:
                quote = None
        elif ch in "\"'":
            quote = ch
        elif ch == "#":
            return line[:i]
    return line
