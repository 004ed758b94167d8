"""tipi.atomic: a target is replaced whole or not at all, whatever happens to its writer, and
every temp file it makes is one the leftover sweep recognises."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from tipi import atomic
from tipi.atomic import atomic_path, atomic_write, temp_path
from tipi.state.leftovers import TEMP_NAME


def names(folder: Path) -> list[str]:
    return sorted(os.listdir(folder))


@pytest.mark.parametrize("data", [b"new\x00bytes", "new text, ünïcode"])
def test_a_write_replaces_the_content_and_leaves_no_temp_file(tmp_path, data):
    target = tmp_path / "state"
    target.write_bytes(b"old")
    atomic_write(target, data)
    expected = data.encode() if isinstance(data, str) else data
    assert target.read_bytes() == expected
    assert names(tmp_path) == ["state"]


def test_a_link_at_the_target_is_replaced_never_written_through(tmp_path):
    victim = tmp_path / "victim"
    victim.write_text("precious")
    os.symlink(victim, tmp_path / "state")
    atomic_write(tmp_path / "state", "new", durable=False)
    assert not (tmp_path / "state").is_symlink()
    assert (tmp_path / "state").read_text() == "new"
    assert victim.read_text() == "precious"


@pytest.mark.parametrize("error", [RuntimeError("writer failed"), KeyboardInterrupt()])
def test_a_writer_that_dies_inside_atomic_path_leaves_the_old_content(tmp_path, error):
    target = tmp_path / "checkpoint.pt"
    target.write_bytes(b"old and whole")
    with pytest.raises(type(error)), atomic_path(target) as tmp:
        tmp.write_bytes(b"half writ")
        raise error
    assert target.read_bytes() == b"old and whole"
    assert names(tmp_path) == ["checkpoint.pt"]


def test_a_write_that_fails_half_way_leaves_the_old_content(tmp_path, monkeypatch):
    target = tmp_path / "state"
    target.write_bytes(b"old")

    def full_disk(fd):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", full_disk)
    with pytest.raises(OSError, match="No space"):
        atomic_write(target, b"new" * 1000)
    assert target.read_bytes() == b"old"
    assert names(tmp_path) == ["state"]


def test_atomic_path_renames_what_the_block_wrote(tmp_path):
    target = tmp_path / "results.csv"
    with atomic_path(target) as tmp, tmp.open("w", newline="") as handle:
        assert tmp.parent == tmp_path and tmp.exists()  # beside it: a rename, not a copy
        assert not target.exists()  # nothing shows before the block ends
        handle.write("a,b\r\n")
    assert target.read_bytes() == b"a,b\r\n"
    assert names(tmp_path) == ["results.csv"]


@pytest.mark.slow
def test_a_process_killed_mid_write_leaves_the_old_content_and_a_recognised_temp(tmp_path):
    target = tmp_path / "state"
    target.write_bytes(b"old")
    code = (
        "import os, sys\n"
        "from tipi.atomic import atomic_path\n"
        f"with atomic_path({str(target)!r}) as tmp:\n"
        "    tmp.write_bytes(b'half')\n"
        "    os._exit(9)\n"  # a kill: no exception handler runs
    )
    subprocess.run([sys.executable, "-c", code], check=False)
    assert target.read_bytes() == b"old"
    left = [n for n in names(tmp_path) if n != "state"]
    assert len(left) == 1 and TEMP_NAME.fullmatch(left[0]), left


def test_a_durable_write_fsyncs_the_file_and_its_folder(tmp_path, monkeypatch):
    synced: list[str] = []
    real = os.fsync

    def counting(fd):
        synced.append("dir" if stat.S_ISDIR(os.fstat(fd).st_mode) else "file")
        return real(fd)

    monkeypatch.setattr(os, "fsync", counting)
    atomic_write(tmp_path / "state", b"new")
    if os.name != "nt":
        assert synced == ["file", "dir"]
    synced.clear()
    with atomic_path(tmp_path / "checkpoint") as tmp:
        tmp.write_bytes(b"weights")
    assert synced[0] == "file" and len(synced) == (1 if os.name == "nt" else 2)


def test_a_cheap_write_never_waits_for_the_disk(tmp_path, monkeypatch):
    synced: list[int] = []
    monkeypatch.setattr(os, "fsync", synced.append)
    atomic_write(tmp_path / "cache", b"rebuilt if lost", durable=False)
    with atomic_path(tmp_path / "other", durable=False) as tmp:
        tmp.write_bytes(b"x")
    assert synced == []
    assert (tmp_path / "cache").read_bytes() == b"rebuilt if lost"


def test_a_folder_that_refuses_fsync_does_not_fail_the_write(tmp_path, monkeypatch):
    real = os.fsync

    def files_only(fd):
        if stat.S_ISDIR(os.fstat(fd).st_mode):
            raise OSError(22, "Invalid argument")
        return real(fd)

    monkeypatch.setattr(os, "fsync", files_only)
    atomic_write(tmp_path / "state", b"new")
    assert (tmp_path / "state").read_bytes() == b"new"


def test_concurrent_writers_end_with_one_whole_content(tmp_path):
    target = tmp_path / "shared"
    contents = [bytes([65 + i]) * (256 * 1024 + i) for i in range(8)]
    seen: list[bytes] = []
    start = threading.Barrier(len(contents) + 1)

    def writer(data: bytes) -> None:
        start.wait()
        for _ in range(20):
            atomic_write(target, data, durable=False)

    def reader() -> None:
        start.wait()
        for _ in range(200):
            if target.exists():
                seen.append(target.read_bytes())

    threads = [threading.Thread(target=writer, args=(c,)) for c in contents]
    threads.append(threading.Thread(target=reader))
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert target.read_bytes() in contents
    assert all(s in contents for s in seen)  # never a mix, never a torn file
    assert names(tmp_path) == ["shared"]


def test_temp_names_are_unique_and_what_the_leftover_sweep_removes(tmp_path):
    made = {temp_path(tmp_path / "resume.pt").name for _ in range(1000)}
    # 32 random bits: two of 1,000 names alike happens about once in 8,600 runs (it did in CI),
    # and is harmless: a taken name is never written through (the test below).
    assert len(made) >= 998
    for name in made:
        assert name.startswith(".resume.pt.tipi-") and name.endswith(".tmp")
        assert TEMP_NAME.fullmatch(name)
    for target in ("traces.log", ".tipi-binding", "rank3.json", "a name with spaces.json"):
        assert TEMP_NAME.fullmatch(temp_path(tmp_path / target).name)


def test_a_name_already_taken_is_never_written_through(tmp_path, monkeypatch):
    victim = tmp_path / "victim"
    victim.write_text("precious")
    planted = tmp_path / ".state.tipi-00000000.tmp"
    os.symlink(victim, planted)
    picks = iter([planted, tmp_path / ".state.tipi-11111111.tmp"])
    monkeypatch.setattr(atomic, "temp_path", lambda target: next(picks))
    atomic_write(tmp_path / "state", b"new")
    assert victim.read_text() == "precious"
    assert (tmp_path / "state").read_bytes() == b"new"


@pytest.mark.slow
def test_the_helpers_import_nothing_slow():
    code = (
        "import sys; import tipi.atomic, tipi.suggest; "
        "print(sorted({'difflib', 'tempfile'} & set(sys.modules)))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
