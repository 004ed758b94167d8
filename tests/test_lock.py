"""The project lock: taken whatever is found at its path, never through a link, never blocked
by a FIFO; another user's lock is refused in one line, never taken over."""

from __future__ import annotations

import errno
import json
import os
import signal
import stat

import pytest

from tipi.errors import TipiError
from tipi.state.lock import ProjectLock


@pytest.fixture(autouse=True)
def _never_hang():
    def stop(signum, frame):
        raise TimeoutError("blocked")

    previous = signal.signal(signal.SIGALRM, stop)
    signal.alarm(10)
    yield
    signal.alarm(0)
    signal.signal(signal.SIGALRM, previous)


@pytest.fixture
def cache(tmp_path):
    folder = tmp_path / ".tipi_cache"
    folder.mkdir()
    return folder


def take(cache) -> tuple[ProjectLock, list[str]]:
    said: list[str] = []
    lock = ProjectLock(cache, warn=said.append)
    assert lock.acquire() is False
    assert lock.held
    return lock, said


@pytest.mark.parametrize("form", ["link", "dangling", "folder", "fifo", "link-to-zero"])
def test_a_lock_path_that_is_not_a_file_is_replaced_with_one_warning(cache, tmp_path, form):
    victim = tmp_path / "victim"
    victim.write_text("precious")
    path = cache / "lock"
    make = {
        "link": lambda: os.symlink(victim, path),
        "dangling": lambda: os.symlink(tmp_path / "nothing", path),
        "folder": lambda: (path.mkdir(), (path / "inside").write_text("x")),
        "fifo": lambda: os.mkfifo(path),
        "link-to-zero": lambda: os.symlink("/dev/zero", path),
    }
    make[form]()
    lock, said = take(cache)
    assert stat.S_ISREG(os.lstat(path).st_mode)
    assert victim.read_text() == "precious"  # never truncated through the link
    assert len(said) == 1 and said[0].startswith(f"{path} (the project lock) is a"), said
    lock.release()
    assert take(cache)[1] == []  # repaired once for all


def test_a_lock_file_without_permissions_gets_them_back(cache):
    path = cache / "lock"
    path.write_text("")
    inode = path.stat().st_ino
    path.chmod(0)
    lock, said = take(cache)
    assert stat.S_IMODE(path.stat().st_mode) & 0o600 == 0o600
    assert path.stat().st_ino == inode  # the same file: a make holding it keeps its lock
    assert len(said) == 1 and "had mode 000" in said[0]
    lock.release()


def test_a_lock_that_cannot_be_opened_is_refused_in_one_line(cache, monkeypatch):
    """Another user's lock file: taking over (replacing) it would let two makes run."""
    path = cache / "lock"
    path.write_text("")
    real = os.open

    def refuse(p, flags, *args, **kwargs):
        if os.fspath(p) == str(path):
            raise PermissionError(errno.EACCES, "Permission denied", str(p))
        return real(p, flags, *args, **kwargs)

    monkeypatch.setattr(os, "open", refuse)
    with pytest.raises(TipiError) as caught:
        ProjectLock(cache).acquire()
    assert caught.value.exit_code == 2
    assert "cannot take the project lock" in str(caught.value)
    assert "Permission denied" in str(caught.value)
    assert path.exists()


@pytest.mark.parametrize("form", ["link", "fifo", "folder", "garbage"])
def test_the_holder_note_is_replaced_never_written_through(cache, tmp_path, form):
    victim = tmp_path / "victim"
    victim.write_text("precious")
    note = cache / "lock.holder"
    {
        "link": lambda: os.symlink(victim, note),
        "fifo": lambda: os.mkfifo(note),
        "folder": lambda: note.mkdir(),
        "garbage": lambda: note.write_bytes(b"\xff\x00"),
    }[form]()
    lock, said = take(cache)
    assert json.loads(note.read_text())["pid"] == os.getpid()
    assert victim.read_text() == "precious"
    assert len(said) == (0 if form == "garbage" else 1), said
    lock.release()
    assert not os.path.lexists(note)


@pytest.mark.parametrize("form", ["fifo", "garbage", "list", "folder"])
def test_a_broken_holder_note_names_another_process(cache, form):
    note = cache / "lock.holder"
    {
        "fifo": lambda: os.mkfifo(note),
        "garbage": lambda: note.write_bytes(b"\xff\x00"),
        "list": lambda: note.write_text("[1, 2]"),
        "folder": lambda: note.mkdir(),
    }[form]()
    assert ProjectLock(cache).describe_holder() == "another tipi process"


def test_the_holder_note_names_the_holder(cache):
    lock, _ = take(cache)
    assert ProjectLock(cache).describe_holder().startswith(f"pid {os.getpid()} (tipi")
    assert ProjectLock(cache).acquire(wait=False) is False
    lock.release()


def test_whoever_takes_the_lock_removes_what_killed_runs_left(cache):
    temp = cache / "pipelines/p/.traces.log.abcdefgh.tmp"
    temp.parent.mkdir(parents=True)
    temp.write_text("half")
    (cache / "staging").write_text("not a folder")
    lock, said = take(cache)
    assert not temp.exists()
    assert not (cache / "staging").exists()
    assert len(said) == 1 and "staging" in said[0]
    lock.release()
