"""A folder input covered by the clean record (uptodate/clean.py `folder_signature`): an
unchanged folder is answered by the fast path, and a change anywhere below it (added, deleted,
modified, renamed, replaced with the same size and mtime, in a nested sub-folder, through a
link) makes both doors see it: the fast path falls through and the full make (the door
TIPI_NO_FAST=1 takes, which asks the same question first) reruns the step."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from tipi._fastpath import Request, prove_noop
from tipi.engine import Engine
from tipi.uptodate.clean import folder_signature

STEPS = """
import os
from tipi import PipelineProcess


class Listing(PipelineProcess):
    def execute(self):
        with open("runs.log", "a") as log:
            log.write("ran\\n")
        root = str(self.inputs["data"])
        lines = []
        for folder, dirs, files in os.walk(root):
            dirs.sort()
            for name in sorted(files):
                path = os.path.join(folder, name)
                text = open(path).read() if os.path.exists(path) else "missing"
                lines.append(os.path.relpath(path, root) + "=" + text)
        self.outputs["out"].write_text("\\n".join(lines))
"""

PIPELINE = """
[processes.list]
type = "Listing"
inputs = { data = "data" }
outputs = { out = "out/list.txt" }
"""


def age(root: Path) -> None:
    """Every file a minute old: no record is written while a file is racy."""
    past = time.time() - 60
    for path in root.rglob("*"):
        if ".tipi_cache" not in path.parts and not path.is_symlink():
            os.utime(path, (past, past))


def fast_answers() -> bool:
    return prove_noop(Request(None, (), True, False)) is not None


def runs(root: Path) -> int:
    return (root / "runs.log").read_text().count("ran")


def settled(root: Path) -> None:
    for _ in range(3):
        Engine("p", root=root).make()
        if fast_answers():
            return
        age(root)
    raise AssertionError("the fast path never answered")


@pytest.fixture
def built(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    root = tmp_path / "project"
    (root / "pipelines/p").mkdir(parents=True)
    (root / "pipelines/p/pipeline.toml").write_text(PIPELINE)
    (root / "pipelines/p/steps.py").write_text(STEPS)
    (root / "data/sub/deeper").mkdir(parents=True)
    for rel in ("a.txt", "b.txt", "sub/c.txt", "sub/deeper/d.txt"):
        (root / "data" / rel).write_text(rel)
    (root / "outside.txt").write_text("target")
    (root / "data/link.txt").symlink_to(root / "outside.txt")
    monkeypatch.chdir(root)
    age(root)
    settled(root)
    return root


def _same_size_and_mtime_new_inode(root: Path) -> None:
    path = root / "data/sub/c.txt"
    st = path.stat()
    fresh = root / "data/sub/c.new"
    fresh.write_text("X" * st.st_size)  # as long, other bytes
    os.utime(fresh, ns=(st.st_atime_ns, st.st_mtime_ns))
    os.replace(fresh, path)
    assert path.stat().st_mtime_ns == st.st_mtime_ns and path.stat().st_ino != st.st_ino


def _retarget(root: Path) -> None:
    (root / "outside2.txt").write_text("other target")
    (root / "data/link.txt").unlink()
    (root / "data/link.txt").symlink_to(root / "outside2.txt")


CHANGES = {
    "added": lambda root: (root / "data/new.txt").write_text("new"),
    "added deep": lambda root: (root / "data/sub/deeper/new.txt").write_text("new"),
    "deleted": lambda root: (root / "data/a.txt").unlink(),
    "deleted deep": lambda root: (root / "data/sub/deeper/d.txt").unlink(),
    "modified": lambda root: (root / "data/b.txt").write_text("changed, longer"),
    "modified deep": lambda root: (root / "data/sub/deeper/d.txt").write_text("changed!"),
    "renamed": lambda root: (root / "data/a.txt").rename(root / "data/a2.txt"),
    "renamed folder": lambda root: (root / "data/sub").rename(root / "data/sub2"),
    "new sub-folder": lambda root: (
        (root / "data/fresh").mkdir(),
        (root / "data/fresh/e.txt").write_text("e"),
    ),
    "same size and mtime, new inode": _same_size_and_mtime_new_inode,
    "link target edited": lambda root: (root / "outside.txt").write_text("target, edited"),
    "link retargeted": _retarget,
    "link dangling": lambda root: (root / "outside.txt").unlink(),
}


def test_an_unchanged_folder_is_answered_by_the_fast_path(built):
    assert fast_answers()
    assert runs(built) == 1
    Engine("p", root=built).make()
    assert runs(built) == 1


@pytest.mark.parametrize("change", sorted(CHANGES))
def test_a_change_below_the_folder_reruns_the_step(built, change):
    before = (built / "out/list.txt").read_text()
    CHANGES[change](built)
    assert not fast_answers()
    Engine("p", root=built).make()
    assert runs(built) == 2, "the full make did not rerun the step"
    assert (built / "out/list.txt").read_text() != before
    settled(built)  # and once the full make recorded its result, the fast path is back
    assert runs(built) == 2


def test_a_touch_falls_through_and_the_full_make_finds_the_content_unchanged(built):
    later = time.time() - 30
    os.utime(built / "data/sub/deeper/d.txt", (later, later))
    assert not fast_answers()
    Engine("p", root=built).make()
    assert runs(built) == 1  # same bytes: up to date, by content


def test_no_record_vouches_for_a_folder_with_a_racy_file(built):
    (built / "data/sub/c.txt").write_text("just now")
    Engine("p", root=built).make()
    assert runs(built) == 2
    assert not fast_answers()  # c.txt may change again within its mtime's granularity


def test_folder_signature_is_none_for_a_file_or_nothing(tmp_path):
    (tmp_path / "f").write_text("x")
    assert folder_signature(str(tmp_path / "f")) is None
    assert folder_signature(str(tmp_path / "missing")) is None
    assert folder_signature(str(tmp_path))[0] == folder_signature(str(tmp_path))[0]


def test_an_unchanged_folder_is_hashed_from_the_stat_cache_without_reading(tmp_path):
    from tipi.identity.hashing import StatCache

    (tmp_path / "sub").mkdir()
    for i in range(20):
        (tmp_path / ("sub" if i % 2 else ".") / f"f{i}").write_text(str(i))
    age(tmp_path)
    cache = StatCache()
    first = cache.hash_path(tmp_path)
    assert cache.reads == 20
    again = StatCache(entries=dict(cache.entries))  # the next make's, loaded from stat.msgpack
    assert again.hash_path(tmp_path) == first and again.reads == 0
    (tmp_path / "sub/f1").write_text("changed")
    assert again.hash_path(tmp_path) != first and again.reads == 1
