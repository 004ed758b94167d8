"""Content hashes with a stat cache: unchanged files are not read again."""

from __future__ import annotations

import os
import time
from pathlib import Path

from tipi.identity.fingerprint import canonical, digest
from tipi.identity.hashing import StatCache
from tipi.identity.source import read_module
from tipi.identity.stepcode import PipelineCode


def age(path, seconds: float = 10) -> None:
    """Make a file look written `seconds` ago (older than the racy window)."""
    past = time.time() - seconds
    os.utime(path, (past, past))


def test_unchanged_files_are_hashed_from_the_stat_cache(tmp_path):
    files = [tmp_path / f"f{i}.txt" for i in range(5)]
    for f in files:
        f.write_text(f"content {f.name}")
        age(f)
    cache = StatCache()
    first = [cache.hash_path(f) for f in files]
    assert cache.reads == 5
    reloaded = StatCache(dict(cache.entries))
    assert [reloaded.hash_path(f) for f in files] == first
    assert reloaded.reads == 0


def test_a_changed_file_is_read_again_even_with_the_same_size(tmp_path):
    f = tmp_path / "a.txt"
    f.write_text("aaaa")
    age(f, 20)
    cache = StatCache()
    before = cache.hash_path(f)
    f.write_text("bbbb")
    age(f, 10)
    assert cache.hash_path(f) != before
    assert cache.reads == 2


def test_freshly_written_files_are_not_trusted_by_stat_alone(tmp_path):
    f = tmp_path / "a.txt"
    f.write_text("x")
    cache = StatCache()
    cache.hash_path(f)
    assert str(f) not in cache.entries


def test_directories_hash_their_files_and_names(tmp_path):
    d = tmp_path / "d"
    (d / "sub").mkdir(parents=True)
    (d / "a.txt").write_text("1")
    (d / "sub" / "b.txt").write_text("2")
    cache = StatCache()
    first = cache.hash_path(d)
    (d / "sub" / "b.txt").rename(d / "sub" / "c.txt")
    assert cache.hash_path(d) != first
    assert cache.hash_path(tmp_path / "missing") is None


def test_canonical_form_ignores_key_order_and_tuple_vs_list():
    assert digest({"a": 1, "b": [1, 2]}) == digest({"b": (1, 2), "a": 1})
    assert digest({"a": 1}) != digest({"a": 1.5})
    assert canonical({"p": tmp_path_like()}) == {"p": "x/y"}


def tmp_path_like():
    from pathlib import PurePosixPath

    return PurePosixPath("x/y")


def test_units_ignore_docstrings_comments_and_formatting():
    sources = {
        "plain": "class Step:\n    def run(self):\n        return 1\n",
        "documented": 'class Step:\n    """Doc."""\n\n    def run(self):  # why\n'
        '        """More doc."""\n        return (1)\n',
        "changed": "class Step:\n    def run(self):\n        return 2\n",
    }
    units = {name: read_module(text).units for name, text in sources.items()}
    assert {k: u.digest for k, u in units["plain"].items()} == {
        k: u.digest for k, u in units["documented"].items()
    }
    assert units["plain"]["Step"].digest == units["changed"]["Step"].digest  # the header
    assert units["plain"]["Step.run"].digest != units["changed"]["Step.run"].digest


def test_version_attribute_stands_for_the_code():
    class A:
        version = "1"

        def run(self):
            return 1

    class B:
        version = "1"

        def run(self):
            return 2

    B.__qualname__ = A.__qualname__
    code = PipelineCode(Path.cwd(), Path.cwd())
    assert code.fingerprint(A) == code.fingerprint(B)
