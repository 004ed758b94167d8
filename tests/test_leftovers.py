"""What killed runs leave: tipi's own temp files and old directory outputs are removed, and
nothing else; cache folders that are not folders are made folders again."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tipi.state.leftovers import remove_leftovers, remove_replaced_outputs, tidy_cache


@pytest.fixture
def cache(tmp_path) -> Path:
    folder = tmp_path / ".tipi_cache"
    folder.mkdir()
    return folder


def files(paths: list[Path], content: str = "x") -> None:
    for path in paths:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(content)


def test_temp_files_of_tipi_are_removed_and_nothing_else(cache, tmp_path):
    temps = [
        cache / ".stat.msgpack.tipi-0a1b2c3d.tmp",  # tipi.atomic, for every file it replaces
        cache / "pipelines/p/.traces.log.tipi-ffffffff.tmp",
        cache / "scratch/p/train/.resume.pt.tipi-12345678.tmp",
        cache / "scratch/p/train/.tipi-binding.tipi-9abcdef0.tmp",
        cache / "scratch/p/.ranks-train/.rank3.json.tipi-00000000.tmp",
        # tipi 0.2's names: a killed 0.2 make's leftovers are still removed
        cache / ".stat.msgpack.k1ll3d_x.tmp",  # statefile.atomic_write (mkstemp)
        cache / "pipelines/p/.traces.log.abcdefgh.tmp",
        cache / "pipelines/p/sweeps/s/v/.plan.msgpack.0a1b2c3d.tmp",
        cache / "scratch/p/train/.resume.pt.tmp",  # Train's checkpoint
        cache / "scratch/p/train/.tipi-binding.4242.tmp",  # process.py
        cache / "scratch/p/.ranks-train/.rank3.json.tmp",  # distributed.py
    ]
    kept = [
        cache / "stat.msgpack",
        cache / "notes.tmp",
        cache / ".foo.tmp",
        cache / "pipelines/p/.traces.log.short.tmp",
        cache / "scratch/p/train/mine/.x.abcdefgh.tmp",  # the step's own, below its folder
        cache / "scratch/p/train/checkpoint.tmp",
        cache / "pipelines/p/.traces.log.tipi-0A1B2C3D.tmp",  # not tipi.atomic's hex
        cache / "pipelines/p/.traces.log.tipi-abc.tmp",
        cache / "store/tmp/.host.123.0123abcd.tmp",  # the run cache sweeps its own
        cache / "staging/p/slot0/.out.abcdefgh.tmp",  # staging is emptied whole
    ]
    files(temps + kept)
    (cache / ".named.likeatmp.tmp").mkdir()  # a folder is never a temp file of tipi's
    outside = tmp_path / "outside"
    files([outside / ".theirs.abcdefgh.tmp", outside / "victim"])
    os.symlink(outside, cache / "linked")  # never walked into
    os.symlink(outside / "victim", cache / ".link.abcdefgh.tmp")  # the link goes, not its target

    removed = tidy_cache(cache)

    assert sorted(removed) == sorted(map(str, [*temps, cache / ".link.abcdefgh.tmp"]))
    assert [p for p in temps if os.path.lexists(p)] == []
    assert [p for p in kept if not p.exists()] == []
    assert (cache / ".named.likeatmp.tmp").is_dir()
    assert (outside / ".theirs.abcdefgh.tmp").exists() and (outside / "victim").exists()


def test_a_healthy_cache_is_left_alone_in_silence(cache):
    files(
        [
            cache / "pipelines/p/traces.log",
            cache / "scratch/p/train/.tipi-binding",
            cache / "scratch/p/train/resume.pt",
            cache / "logs/p/train.log",
            cache / "staging/p/slot0/out.txt",
        ]
    )
    said: list[str] = []
    assert tidy_cache(cache, said.append) == []
    assert said == []


@pytest.mark.parametrize(
    "where",
    ["staging", "scratch", "logs", "pipelines", "staging/p", "scratch/p", "scratch/p/train"],
)
@pytest.mark.parametrize("form", ["file", "fifo", "link", "dangling"])
def test_a_cache_folder_that_is_not_a_folder_is_removed_with_one_warning(
    cache, tmp_path, where, form
):
    outside = tmp_path / "outside"
    files([outside / "kept"])
    path = cache / where
    path.parent.mkdir(parents=True, exist_ok=True)
    if form == "file":
        path.write_text("x")
    elif form == "fifo":
        os.mkfifo(path)
    else:
        os.symlink(outside if form == "link" else tmp_path / "nothing", path)
    said: list[str] = []
    assert tidy_cache(cache, said.append) == [str(path)]
    assert not os.path.lexists(path)
    assert len(said) == 1 and said[0].startswith(f"{path} (") and "removed it" in said[0]
    assert sorted(p.name for p in outside.iterdir()) == ["kept"]


@pytest.mark.parametrize("form", ["fifo", "folder", "link"])
@pytest.mark.parametrize("where", ["scratch/p/train/.tipi-binding", "logs/p/train.log"])
def test_a_binding_or_log_that_is_not_a_file_is_removed(cache, tmp_path, where, form):
    victim = tmp_path / "victim"
    victim.write_text("precious")
    path = cache / where
    path.parent.mkdir(parents=True)
    {"fifo": os.mkfifo, "folder": os.mkdir, "link": lambda p: os.symlink(victim, p)}[form](path)
    said: list[str] = []
    assert tidy_cache(cache, said.append) == [str(path)]
    assert len(said) == 1 and "removed it" in said[0]
    assert victim.read_text() == "precious"


def test_old_directory_outputs_beside_declared_outputs_are_removed(tmp_path):
    out = tmp_path / "out"
    old = out / ".d.tipi-old-0123abcd"
    files([old / "deep/f.txt", out / "d/f.txt", out / "a+b.txt"])
    (out / ".a+b.txt.tipi-old-fedcba98").mkdir()  # a name with regex characters
    outside = tmp_path / "outside"
    files([outside / "kept"])
    os.symlink(outside, out / ".d.tipi-old-89abcdef")  # the link goes, never its target
    kept = [
        out / ".d.tipi-old-xyz",  # not tipi's suffix
        out / ".e.tipi-old-0123abcd",  # beside nothing declared
        out / ".d.tipi-old-0123abcd.extra",
        out / "d.tipi-old-0123abcd",
    ]
    for path in kept:
        path.mkdir()

    removed = remove_replaced_outputs([out / "d", out / "a+b.txt", tmp_path / "gone/x"])

    assert sorted(removed) == sorted(
        str(out / n)
        for n in (".d.tipi-old-0123abcd", ".d.tipi-old-89abcdef", ".a+b.txt.tipi-old-fedcba98")
    )
    assert [p for p in kept if not p.is_dir()] == []
    assert (out / "d/f.txt").exists() and (out / "a+b.txt").exists()
    assert (outside / "kept").exists()


def test_remove_leftovers_does_both(cache, tmp_path):
    files([cache / ".stat.msgpack.abcdefgh.tmp"])
    (tmp_path / "out/.d.tipi-old-0123abcd").mkdir(parents=True)
    removed = remove_leftovers(cache, [tmp_path / "out/d"])
    assert sorted(removed) == sorted(
        [str(cache / ".stat.msgpack.abcdefgh.tmp"), str(tmp_path / "out/.d.tipi-old-0123abcd")]
    )
