"""Run records filed in packs (tipi/runcache/packs.py): a torn tail, a pack without its
index, gc over packs, a record found by the make that filed it, older layouts beside."""

from __future__ import annotations

import contextlib
import random
from pathlib import Path

import xxhash

from tests.test_run_cache import PIPELINE, STEPS, outcomes
from tipi.engine import Engine
from tipi.report import ListReporter
from tipi.runcache.collect import collect
from tipi.runcache.content import ContentStore
from tipi.runcache.packs import PackEntry
from tipi.runcache.record import CachedRun


def run(key: str, step: str, data: bytes, finished: float) -> CachedRun:
    output = {"out": {"hash": xxhash.xxh3_128_hexdigest(data), "data": data}}
    return CachedRun(key, step, {}, output, finished, 1.0)


def filed(store: ContentStore, count: int, step: str = "s") -> list[CachedRun]:
    records = [run(f"{i:02x}" * 16, step, b"x%d" % i, 1.0 + i) for i in range(count)]
    for record in records:
        store.add_record(record)
    return records


def packs(store: ContentStore) -> list[Path]:
    return sorted((store.root / "packs").glob("*.pack"))


def test_a_record_is_found_by_the_make_that_filed_it_and_by_the_next(tmp_path):
    store = ContentStore(tmp_path / ".tipi_cache")
    assert store.records("ab" * 16) == []  # the index is read before the record is filed
    [record] = filed(store, 1)
    assert store.lookup(record.key, {}) == record and store.has_record(record.key, record.name)
    store.close()
    index = packs(store)[0].with_suffix(".idx")
    assert index.exists()
    again = ContentStore(tmp_path / ".tipi_cache")
    assert again.records(record.key) == [record] and again.has_record(record.key, record.name)


def test_a_torn_tail_loses_only_the_record_being_written(tmp_path):
    store = ContentStore(tmp_path / ".tipi_cache", warn=lambda _: None)
    records = filed(store, 6)
    [pack] = packs(store)  # not closed: a make killed while filing has no index
    whole = pack.read_bytes()
    ends = [e.offset + 4 + e.length + 8 for e in store._packs.entries(pack)]
    assert ends[-1] == len(whole)
    rng = random.Random(28)
    for cut in [0, 1, 3, *rng.sample(range(len(whole)), 20), len(whole) - 1]:
        pack.write_bytes(whole[:cut] + rng.randbytes(rng.choice([0, 0, 5])))
        reader = ContentStore(tmp_path / ".tipi_cache", warn=lambda _: None)
        kept = sum(end <= cut for end in ends)
        found = [r for r in records if reader.records(r.key)]
        assert found == records[:kept], cut
        assert sorted(r.key for _, r in reader.all_records()) == [r.key for r in records[:kept]]


def test_a_pack_without_index_is_scanned_and_indexed_once_its_writer_is_dead(tmp_path):
    cache = tmp_path / ".tipi_cache"
    store = ContentStore(cache)
    records = filed(store, 3)
    [pack] = packs(store)
    live = ContentStore(cache)  # the writer lives: scanned, not indexed
    assert [live.records(r.key) for r in records] == [[r] for r in records]
    assert not pack.with_suffix(".idx").exists()
    dead = pack.with_name(pack.name.replace(f".{pack.name.split('.')[1]}.", ".0.", 1))
    pack.rename(dead)  # as a killed make leaves it (pid 0: no process)
    reader = ContentStore(cache)
    assert [reader.records(r.key) for r in records] == [[r] for r in records]
    assert dead.with_suffix(".idx").exists()
    assert [ContentStore(cache).records(r.key) for r in records] == [[r] for r in records]


def test_gc_rewrites_packs_without_the_runs_it_drops(tmp_path):
    cache = tmp_path / ".tipi_cache"
    first = ContentStore(cache)
    old = filed(first, 3, step="s")
    first.close()
    [first_pack] = packs(first)
    second = ContentStore(cache)
    newer = [run("ee" * 16, "s", b"new", 100.0), run("ff" * 16, "t", b"t", 50.0)]
    for record in [newer[0], run("dd" * 16, "s", b"stale", 0.5), newer[1]]:
        second.add_record(record)
    second.close()
    [kept_pack] = [p for p in packs(second) if p != first_pack]
    gc = ContentStore(cache)
    done = collect(gc, keep_last=1, max_size=None)
    assert (done.records, done.kept_records) == (4, 2)
    # The first pack lost every record: removed; the second lost one: written anew.
    [rewritten] = packs(gc)
    assert rewritten != kept_pack and rewritten.with_suffix(".idx").exists()
    assert sorted(e.key for e in ContentStore(cache)._packs.entries(rewritten)) == [
        "ee" * 16,
        "ff" * 16,
    ]
    after = ContentStore(cache)
    assert sorted(r.key for _, r in after.all_records()) == [r.key for r in newer]
    assert all(after.records(r.key) == [] for r in old)
    assert after.records("ee" * 16) == [newer[0]]
    done = collect(ContentStore(cache), keep_last=0, max_size=None)
    assert done.records == 2 and packs(after) == []


def test_a_garbled_record_is_skipped_with_a_warning_and_gc_removes_it(tmp_path):
    cache = tmp_path / ".tipi_cache"
    store = ContentStore(cache)
    [record] = filed(store, 1)
    store.close()
    [pack] = packs(store)
    data = bytearray(pack.read_bytes())
    data[-9] ^= 1  # the record's last byte: its frame's checksum fails
    pack.write_bytes(bytes(data))
    warnings: list[str] = []
    reader = ContentStore(cache, warn=warnings.append)
    assert reader.records(record.key) == [] and warnings and "skipping" in warnings[0]
    collect(reader, keep_last=None, max_size=None)
    assert packs(reader) == []


def test_older_layouts_are_read_beside_packs(tmp_path):
    store = ContentStore(tmp_path / ".tipi_cache")
    key = "ab" * 16
    newest, older, oldest = (
        run(key, "s", b"1", 3.0),
        run(key, "s", b"2", 2.0),
        run(key, "s", b"3", 1.0),
    )
    store.add_record(newest)
    flat = store.record_path(key, older.name)  # runs/<2 hex>/<key>.<name>
    flat.parent.mkdir(parents=True)
    flat.write_bytes(older.to_bytes())
    own = store.records_dir / key / oldest.name  # runs/<key>/<name>
    own.parent.mkdir()
    own.write_bytes(oldest.to_bytes())
    assert store.records(key) == [newest, older, oldest]
    store.close()
    assert ContentStore(tmp_path / ".tipi_cache").records(key) == [newest, older, oldest]
    kinds = {type(w) for w, _ in ContentStore(tmp_path / ".tipi_cache").all_records()}
    assert kinds == {PackEntry, type(flat)}


def test_a_make_files_its_records_in_one_pack_and_the_next_restores_from_it(project):
    project.pipeline("rc", PIPELINE, steps=STEPS)
    Engine("rc").make()
    store = ContentStore(project.root / ".tipi_cache")
    [pack] = packs(store)
    assert pack.with_suffix(".idx").exists() and not (store.root / "runs").exists()
    (project.root / "out" / "value.txt").unlink()
    reporter = ListReporter()
    Engine("rc", reporter=reporter).make()
    assert outcomes(reporter) == {"scale": "restored", "expand": "skipped"}


def test_gc_keeps_the_good_records_behind_a_garbled_one(tmp_path):
    """A byte flipped inside one record of an indexed pack: gc drops that record only (it
    read past it from the index), never the good ones after it (engineer M's finding)."""
    cache = tmp_path / ".tipi_cache"
    store = ContentStore(cache)
    records = filed(store, 6)
    store.close()
    [pack] = packs(store)
    entries = ContentStore(cache)._packs.entries(pack)
    content = bytearray(pack.read_bytes())
    content[entries[2].offset + 4 + 20] ^= 0xFF
    pack.write_bytes(bytes(content))
    reader = ContentStore(cache, warn=lambda _: None)
    found = [r for r in records if reader.records(r.key)]
    assert found == [r for i, r in enumerate(records) if i != 2]
    collect(reader, keep_last=None, max_size=None)
    after = ContentStore(cache, warn=lambda _: None)
    assert [r for r in records if after.records(r.key)] == found


def test_a_damaged_index_is_not_used_and_never_crashes(tmp_path):
    """An index row with a negative length, an array for a key or a name, an offset past
    the end: the pack is scanned instead (make and gc both), every record still found."""
    import msgpack

    cache = tmp_path / ".tipi_cache"
    store = ContentStore(cache)
    records = filed(store, 3)
    store.close()
    [pack] = packs(store)
    index = pack.with_suffix(".idx")
    good = msgpack.unpackb(index.read_bytes())
    for row, at, value in [(0, 3, -5), (1, 0, [1, 2]), (2, 1, ["x"]), (1, 2, 10**9)]:
        bad = {**good, "entries": [list(r) for r in good["entries"]]}
        bad["entries"][row][at] = value
        index.write_bytes(msgpack.packb(bad))
        reader = ContentStore(cache, warn=lambda _: None)
        assert [reader.records(r.key) for r in records] == [[r] for r in records], (row, at)
        collect(ContentStore(cache, warn=lambda _: None), keep_last=None, max_size=None)
        assert [ContentStore(cache).records(r.key) for r in records] == [[r] for r in records]
        index = packs(ContentStore(cache))[0].with_suffix(".idx")
        good = msgpack.unpackb(index.read_bytes()) if index.exists() else good


def test_a_short_write_loses_only_its_own_record(tmp_path, monkeypatch):
    """A full disk writes part of one frame: that record is lost, the ones filed after it
    are found through the index (their offsets count the torn bytes)."""
    import os

    from tipi.runcache import packs as packs_module

    real = os.write
    calls = {"n": 0}

    def short_once(fd: int, data: bytes) -> int:
        calls["n"] += 1
        return real(fd, data[: len(data) // 2] if calls["n"] == 3 else data)

    cache = tmp_path / ".tipi_cache"
    store = ContentStore(cache, warn=lambda _: None)
    monkeypatch.setattr(packs_module.os, "write", short_once)
    records = [run(f"{i:02x}" * 16, "s", b"x%d" % i, 1.0 + i) for i in range(6)]
    for record in records:
        with contextlib.suppress(OSError):  # the short write's own record
            store.add_record(record)
    monkeypatch.setattr(packs_module.os, "write", real)
    store.close()
    reader = ContentStore(cache, warn=lambda _: None)
    assert [r for r in records if reader.records(r.key)] == [
        r for i, r in enumerate(records) if i != 2
    ]
