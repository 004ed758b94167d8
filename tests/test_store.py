"""The trace log and cache documents: durable appends, torn tails, corruption, versions."""

from __future__ import annotations

import msgpack
import pytest

from tipi.identity.trace import Trace
from tipi.state.store import TraceStore, read_document, write_document

TRACE = Trace("fp", "T", "code", {"lr": 0.1}, {"in.txt": "h1"}, {}, {"out.txt": "h2"}, 1.0, 0.5)


@pytest.fixture
def log(tmp_path):
    return tmp_path / "traces.log"


def test_traces_survive_reopening_and_later_entries_win(log):
    with TraceStore(log) as store:
        store.put("a", TRACE)
        store.put("b", TRACE)
        store.put("a", None)
        store.put("c", TRACE)
    assert sorted(TraceStore(log).traces) == ["b", "c"]
    assert TraceStore(log).get("b") == TRACE


def test_a_torn_last_entry_is_ignored_with_a_warning(log):
    with TraceStore(log) as store:
        store.put("a", TRACE)
    full = msgpack.packb(["b", TRACE.to_record()])
    log.write_bytes(log.read_bytes() + full[: len(full) // 2])
    warnings: list[str] = []
    store = TraceStore(log, warnings.append)
    assert list(store.traces) == ["a"]
    assert "torn" in warnings[0]
    store.put("c", TRACE)  # rewrites the log: no append after garbage
    store.close()
    assert sorted(TraceStore(log).traces) == ["a", "c"]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"\xc1\xc1\xc1 not msgpack", "corrupt"),
        (msgpack.packb({"tipi": "something-else", "version": 1}), "not a tipi trace log"),
        (msgpack.packb({"tipi": "trace-log", "version": 999}), "format version 999"),
    ],
)
def test_unusable_logs_mean_starting_over(log, content, message):
    log.write_bytes(content)
    warnings: list[str] = []
    store = TraceStore(log, warnings.append)
    assert store.traces == {}
    assert message in warnings[0] and "starting over" in warnings[0]
    store.put("a", TRACE)
    store.close()
    assert list(TraceStore(log).traces) == ["a"]


def test_malformed_entries_are_skipped(log):
    with TraceStore(log) as store:
        store.put("a", TRACE)
    log.write_bytes(log.read_bytes() + msgpack.packb(["b", {"no": "fields"}]))
    warnings: list[str] = []
    assert list(TraceStore(log, warnings.append).traces) == ["a"]
    assert "malformed" in warnings[0]


def test_compaction_keeps_only_live_entries(log):
    with TraceStore(log) as store:
        for _ in range(200):
            store.put("a", TRACE)
        size = log.stat().st_size
        store.compact(force=False)
    assert log.stat().st_size < size / 50
    assert list(TraceStore(log).traces) == ["a"]


def test_documents_round_trip_and_reject_other_kinds(tmp_path):
    path = tmp_path / "doc.msgpack"
    write_document(path, "plan", {"x": [1, 2]})
    warnings: list[str] = []
    assert read_document(path, "plan", warnings.append) == {"x": [1, 2]}
    assert read_document(path, "stat-cache", warnings.append) is None
    assert "not a tipi stat-cache file" in warnings[0]
    assert read_document(tmp_path / "missing", "plan", warnings.append) is None


def test_cache_files_are_never_unpickled(tmp_path):
    import pickle

    path = tmp_path / "doc.msgpack"
    path.write_bytes(pickle.dumps({"tipi": "plan", "version": 1, "data": 1}))
    warnings: list[str] = []
    assert read_document(path, "plan", warnings.append) is None
    assert warnings
