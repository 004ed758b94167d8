"""`paths.output_problem` on strings gives the answers the pathlib version gave (kept here as
the reference), on paths as written and through symlinks."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tipi.paths import PROTECTED, RealPaths, output_problem


def _reference(path: Path, root: Path) -> str | None:
    """The pathlib version output_problem had before it was written on strings."""
    root_real = Path(os.path.realpath(root))
    real = Path(os.path.realpath(path))
    for candidate, base in ((Path(os.path.normpath(path)), root), (real, root_real)):
        if candidate == base:
            return "it is the project root"
        if not candidate.is_relative_to(base):
            return f"it is outside the project root {root}"
        first = candidate.relative_to(base).parts[0]
        if first in PROTECTED:
            return f"it is inside {first}/, which holds {PROTECTED[first]}"
    return None


WRITTEN = [
    "out/a.txt",
    "a.txt",
    ".",
    "",
    "..",
    "../x",
    "out/../../x",
    "out/../a",
    ".tipi_cache/x",
    ".tipi_cache",
    "pipelines/p/x",
    "./pipelines",
    "out//b/./c",
    "link_out/x",
    "link_cache/x",
    "link_root",
    "link_root/x",
    "loop/x",
    ".tipi_cachex/y",
    "pipelinesx",
]


@pytest.mark.parametrize("written", WRITTEN)
def test_same_answer_as_the_pathlib_version(tmp_path: Path, written: str) -> None:
    root = tmp_path / "proj"
    (root / "out").mkdir(parents=True)
    (root / ".tipi_cache").mkdir()
    (tmp_path / "elsewhere").mkdir()
    (root / "link_out").symlink_to(tmp_path / "elsewhere")
    (root / "link_cache").symlink_to(root / ".tipi_cache")
    (root / "link_root").symlink_to(root)
    (root / "loop").symlink_to(root / "loop")
    path = root / written
    assert output_problem(path, root) == _reference(path, root)
    assert output_problem(path, Path(str(root) + "/")) == _reference(path, Path(str(root) + "/"))


def test_real_paths_resolve_as_realpath_does(tmp_path: Path, monkeypatch) -> None:
    """RealPaths (one realpath per folder) gives os.path.realpath's answer on every written
    path, links in the folder or as the last part, and output_problem the same answers."""
    root = tmp_path / "proj"
    (root / "out").mkdir(parents=True)
    (root / ".tipi_cache").mkdir()
    (tmp_path / "elsewhere").mkdir()
    (root / "link_out").symlink_to(tmp_path / "elsewhere")
    (root / "link_cache").symlink_to(root / ".tipi_cache")
    (root / "link_root").symlink_to(root)
    (root / "loop").symlink_to(root / "loop")
    (root / "out" / "last").symlink_to(tmp_path / "elsewhere")
    real = RealPaths()
    for written in [*WRITTEN, "out/last", "out/last/x", "link_out", "out/x/y/z"]:
        path = root / written
        for _ in range(2):  # the second time from the folders it keeps
            assert real(path) == os.path.realpath(path), written
            assert output_problem(path, root, real) == _reference(path, root), written
    monkeypatch.chdir(root)
    assert real("x") == os.path.realpath("x")
    assert real("out/x") == os.path.realpath("out/x")
