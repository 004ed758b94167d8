"""Reading and writing one state file: whatever is found there, never a block, never a link
followed, never a crash; one warning per broken file."""

from __future__ import annotations

import errno
import os
import signal
import stat
from functools import partial
from pathlib import Path

import msgpack
import pytest

from tipi.identity.hashing import StatCache
from tipi.identity.trace import Trace
from tipi.state import statefile
from tipi.state.statefile import BrokenState, open_append, state_bytes, warn_broken, write_state
from tipi.state.store import TraceStore, load_stat_cache, read_document, write_document

TRACE = Trace("fp", "T", "code", {"lr": 0.1}, {"in.txt": "h1"}, {}, {"out.txt": "h2"}, 1.0, 0.5)


@pytest.fixture(autouse=True)
def _never_hang():
    """A read that blocks (on a FIFO, say) fails the test instead of hanging the run."""

    def stop(signum, frame):
        raise TimeoutError("blocked")

    previous = signal.signal(signal.SIGALRM, stop)
    signal.alarm(10)
    yield
    signal.alarm(0)
    signal.signal(signal.SIGALRM, previous)


@pytest.fixture(autouse=True)
def _fresh_reports(monkeypatch):
    monkeypatch.setattr(statefile, "_REPORTED", set())


def broken(path: Path) -> str:
    with pytest.raises(BrokenState) as caught:
        state_bytes(path)
    return str(caught.value)


def test_a_regular_file_is_read_and_a_missing_one_is_none(tmp_path):
    (tmp_path / "f").write_bytes(b"data")
    (tmp_path / "empty").write_bytes(b"")
    assert state_bytes(tmp_path / "f") == b"data"
    assert state_bytes(tmp_path / "empty") == b""
    assert state_bytes(tmp_path / "missing") is None


def test_anything_but_a_file_is_named_and_never_read(tmp_path):
    (tmp_path / "victim").write_bytes(b"precious")
    (tmp_path / "folder").mkdir()
    os.mkfifo(tmp_path / "fifo")
    for name, target in [
        ("to-file", tmp_path / "victim"),
        ("dangling", tmp_path / "nothing"),
        ("to-folder", tmp_path / "folder"),
        ("to-zero", Path("/dev/zero")),
    ]:
        os.symlink(target, tmp_path / name)
        assert "is a symbolic link" in broken(tmp_path / name)
    assert broken(tmp_path / "folder") == "is a folder, not a file"
    assert broken(tmp_path / "fifo") == "is a FIFO, not a file"  # opened without waiting


def test_a_file_that_cannot_be_opened_says_why(tmp_path, monkeypatch):
    path = tmp_path / "f"
    path.write_bytes(b"data")
    real = os.open

    def refuse(p, flags, *args):
        if os.fspath(p) == str(path):
            raise PermissionError(errno.EACCES, "Permission denied", str(p))
        return real(p, flags, *args)

    monkeypatch.setattr(os, "open", refuse)
    assert broken(path) == "cannot be read: Permission denied"


def test_a_file_far_too_big_is_not_read(tmp_path, monkeypatch):
    monkeypatch.setattr(statefile, "MAX_STATE_BYTES", 4)
    (tmp_path / "f").write_bytes(b"12345")
    assert "is larger than" in broken(tmp_path / "f")


@pytest.mark.parametrize("form", ["link", "folder", "fifo", "file"])
def test_writing_replaces_whatever_is_there_and_never_writes_through(tmp_path, form):
    victim = tmp_path / "victim"
    victim.write_bytes(b"precious")
    path = tmp_path / "state"
    if form == "link":
        os.symlink(victim, path)
    elif form == "folder":
        path.mkdir()
        (path / "inside").write_text("x")
    elif form == "fifo":
        os.mkfifo(path)
    else:
        path.write_bytes(b"old")
    write_state(path, b"new")
    assert stat.S_ISREG(os.lstat(path).st_mode)
    assert path.read_bytes() == b"new"
    assert victim.read_bytes() == b"precious"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["state", "victim"]  # no temp left


def test_a_temp_file_removed_before_its_rename_is_written_again(tmp_path, monkeypatch):
    """The make holding the lock removes temp files of killed runs; a make writing beside it
    without the lock (a no-op saving its stat cache) must not fail for that."""
    real = os.replace
    calls = []

    def remove_first(source, target):
        calls.append(source)
        if len(calls) == 1:
            os.unlink(source)
        return real(source, target)

    monkeypatch.setattr(os, "replace", remove_first)
    write_state(tmp_path / "state", b"new")
    assert (tmp_path / "state").read_bytes() == b"new"
    assert len(calls) == 2


def test_appending_opens_only_a_regular_file(tmp_path):
    (tmp_path / "victim").write_bytes(b"precious")
    os.symlink(tmp_path / "victim", tmp_path / "link")
    os.mkfifo(tmp_path / "fifo")
    (tmp_path / "folder").mkdir()
    for name in ("link", "fifo", "folder", "missing"):
        assert open_append(tmp_path / name) is None, name
    (tmp_path / "log").write_bytes(b"a")
    with open_append(tmp_path / "log") as handle:
        handle.write(b"b")
    assert (tmp_path / "log").read_bytes() == b"ab"


def test_a_broken_file_is_reported_once_until_it_changes(tmp_path):
    path = tmp_path / "state"
    path.write_bytes(b"x")
    said: list[str] = []
    for _ in range(3):
        warn_broken(said.append, path, "is corrupt", "plan")
    assert len(said) == 1
    assert said[0].endswith(
        "(the cached plan) is corrupt; starting over: the plan will be made again"
    )
    path.unlink()
    path.write_bytes(b"yy")  # broken again, differently
    warn_broken(said.append, path, "is corrupt", "plan")
    assert len(said) == 2


def test_a_sink_that_raises_has_reported_nothing(tmp_path):
    def refuse(message: str) -> None:
        raise RuntimeError(message)

    said: list[str] = []
    with pytest.raises(RuntimeError):
        warn_broken(refuse, tmp_path / "state", "is corrupt", "plan")
    warn_broken(said.append, tmp_path / "state", "is corrupt", "plan")
    assert len(said) == 1


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ([1, 2], "is malformed: is a list, not a map"),
        ({1: "x"}, None),  # the default check: a map, of anything
    ],
)
def test_documents_of_the_wrong_shape_are_reported(tmp_path, data, message):
    path = tmp_path / "doc.msgpack"
    write_document(path, "plan", data)
    said: list[str] = []
    found = read_document(path, "plan", said.append)
    if message is None:
        assert found == data and said == []
    else:
        assert found is None and message in said[0]


def test_a_check_names_what_is_wrong(tmp_path):
    path = tmp_path / "doc.msgpack"
    write_document(path, "failures", {"a": {"error": 5}})
    said: list[str] = []
    maps_of_maps = partial(statefile.map_problem, value=statefile.map_problem)
    assert read_document(path, "failures", said.append, maps_of_maps) == {"a": {"error": 5}}
    maps_of_text = partial(statefile.map_problem, value=statefile.text_problem)
    assert read_document(path, "failures", said.append, maps_of_text) is None
    assert "is malformed: ['a'] is a map, not text" in said[0]


@pytest.mark.parametrize("form", ["fifo", "folder", "link"])
def test_a_trace_log_that_is_not_a_file_starts_over_and_is_replaced(tmp_path, form):
    log = tmp_path / "traces.log"
    victim = tmp_path / "victim"
    victim.write_bytes(b"precious")
    {"fifo": os.mkfifo, "folder": os.mkdir, "link": lambda p: os.symlink(victim, p)}[form](log)
    said: list[str] = []
    with TraceStore(log, said.append) as store:
        assert store.traces == {}
        store.put("a", TRACE)
        store.put("b", TRACE)
    assert len(said) == 1 and "starting over: every step will run" in said[0]
    assert sorted(TraceStore(log).traces) == ["a", "b"]
    assert victim.read_bytes() == b"precious"


def test_a_trace_log_that_cannot_be_appended_to_is_written_whole(tmp_path, monkeypatch):
    log = tmp_path / "traces.log"
    with TraceStore(log) as store:
        store.put("a", TRACE)
    monkeypatch.setattr("tipi.state.store.open_append", lambda path: None)
    with TraceStore(log) as store:
        store.put("b", TRACE)
        store.put("c", TRACE)
    assert sorted(TraceStore(log).traces) == ["a", "b", "c"]


def test_malformed_records_are_reported_once_per_log(tmp_path):
    log = tmp_path / "traces.log"
    with TraceStore(log) as store:
        store.put("a", TRACE)
    entries = [["b", {"fp": 1}], ["c", {"no": "fields"}], ["d", "text"], {5: {}}]
    log.write_bytes(log.read_bytes() + b"".join(msgpack.packb(e) for e in entries))
    said: list[str] = []
    assert sorted(TraceStore(log, said.append).traces) == ["a"]
    assert len(said) == 1 and "malformed" in said[0], said


@pytest.mark.parametrize("form", ["file", "fifo", "dangling"])
def test_writing_under_something_that_should_be_a_folder_replaces_it(tmp_path, form):
    cache = tmp_path / ".tipi_cache"
    blocking = cache / "pipelines"
    cache.mkdir()
    {
        "file": lambda: blocking.write_text("x"),
        "fifo": lambda: os.mkfifo(blocking),
        "dangling": lambda: os.symlink(tmp_path / "nothing", blocking),
    }[form]()
    if form == "dangling":  # a link to nothing: nothing there
        assert state_bytes(blocking / "p/plan.msgpack") is None
    else:
        assert "a folder on its path is not a folder" in broken(blocking / "p/plan.msgpack")
    write_state(blocking / "p/plan.msgpack", b"new")
    assert (blocking / "p/plan.msgpack").read_bytes() == b"new"
    assert not (tmp_path / "nothing").exists()


@pytest.mark.parametrize(
    ("entries", "warned"),
    [
        ({"/p/a.txt": [1, 2, 3, "h"]}, False),
        ({"/p/a.txt": "x"}, True),
        ({"/p/a.txt": [1, 2.5, 3, "h"]}, True),
        ({7: [1, 2, 3, "h"]}, True),
        ([1, 2], True),
    ],
)
def test_a_stat_cache_of_the_wrong_shape_is_reported_and_written_back(tmp_path, entries, warned):
    path = tmp_path / "stat.msgpack"
    write_document(path, "stat-cache", entries)
    said: list[str] = []
    cache = load_stat_cache(path, said.append)
    assert len(said) == int(warned), said
    assert cache.dirty == warned
    assert cache.entries == ({} if warned else entries)


def test_entries_of_the_wrong_shape_never_crash_hashing(tmp_path):
    """Whatever was loaded (by a caller that did not check it), hashing rereads the file."""
    (tmp_path / "a.txt").write_text("a")
    key = str(tmp_path / "a.txt")
    cache = StatCache({key: "x", 7: [1], "other": None})
    assert cache.hash_path(key) == StatCache().hash_path(key)
    cache.forget(tmp_path)
    assert key not in cache.entries
