"""The string versions of paths.py's `relative` and resolve's `_absolute` give what the
pathlib versions gave (kept here as the reference), on every kind of path written."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tipi.config.resolve import _absolute
from tipi.paths import relative

WRITTEN = [
    *("a", "/r/o", "/r/o/x", "/r/ox", "/r/o/../x", "x/../y", "", ".", "./a", "a//b", "//x"),
    *("~/x", "/", "/r", "a/", "../a", "~", "/r/o/./x/", "///x", "//", "//r/x", "//r"),
]


def _relative(path: Path, root: Path) -> str:
    try:
        return path.relative_to(root).as_posix()
    except ValueError:
        return str(path)


def _absolute_pathlib(root: Path, text: str) -> Path:
    path = Path(os.path.expanduser(text))
    return Path(os.path.normpath(path if path.is_absolute() else root / path))


@pytest.mark.parametrize("root", ["/r/o", "/", "/r", "//r", "//"])
def test_same_answers_as_pathlib(root: str) -> None:
    for written in WRITTEN:
        assert relative(Path(written), Path(root)) == _relative(Path(written), Path(root))
        assert str(_absolute(Path(root), written)) == str(_absolute_pathlib(Path(root), written))
