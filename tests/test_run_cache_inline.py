"""Small file outputs are kept inside their run's record (format version 2), not as objects
of their own: one file a step in the store. Their bytes are checked like an object's; a
record of version 1 (an older tipi's, or a big output's) is read as before."""

from __future__ import annotations

from pathlib import Path

import msgpack
import xxhash

from tests.pack_helpers import unpack
from tests.test_run_cache import PIPELINE, STEPS, outcomes
from tipi.engine import Engine
from tipi.report import ListReporter
from tipi.runcache.collect import collect
from tipi.runcache.content import ContentStore
from tipi.runcache.packs import PackEntry
from tipi.runcache.record import INLINE_MAX, CachedRun


def xxh(data: bytes) -> str:
    return xxhash.xxh3_128_hexdigest(data)


def digest_of(path: str) -> str:
    return xxh(Path(path).read_bytes())


def keep(store: ContentStore, tmp_path: Path, key: str, data: bytes) -> CachedRun:
    out = tmp_path / f"{key[:4]}.bin"
    out.write_bytes(data)
    return store.save(key, "s", {}, {"out": out}, digest_of, 1.0)


def test_a_small_output_is_held_by_its_record_and_a_big_one_is_an_object(tmp_path):
    store = ContentStore(tmp_path / ".tipi_cache")
    small = keep(store, tmp_path, "a" * 32, b"x" * INLINE_MAX)
    big = keep(store, tmp_path, "b" * 32, b"y" * (INLINE_MAX + 1))
    assert small.outputs["out"] == {"hash": xxh(b"x" * INLINE_MAX), "data": b"x" * INLINE_MAX}
    assert (small.version, list(small.objects())) == (2, [])
    assert (big.version, list(big.objects())) == (1, [xxh(b"y" * (INLINE_MAX + 1))])
    assert [d for d, _ in store.all_objects()] == list(big.objects())
    # Read back from disk, each is the very record that was written, and restores its bytes.
    for record, data in ((small, b"x" * INLINE_MAX), (big, b"y" * (INLINE_MAX + 1))):
        [read] = store.records(record.key)
        assert read == record and read.to_bytes() == record.to_bytes()
        target = tmp_path / "restored" / record.key
        target.parent.mkdir(exist_ok=True)
        store.restore(read, {"out": target})
        assert target.read_bytes() == data


def test_a_make_restores_inline_outputs_and_reruns_on_lying_inline_bytes(project):
    project.pipeline("rc", PIPELINE, steps=STEPS)
    Engine("rc").make()
    store = ContentStore(project.root / ".tipi_cache")
    unpack(store)  # a record file (an older layout, still read) to rewrite
    [(path, scale)] = [(p, r) for p, r in store.all_records() if r.step == "scale"]
    assert scale.outputs["out"]["data"] == b"3"
    (project.root / "out" / "value.txt").unlink()
    reporter = ListReporter()
    Engine("rc", reporter=reporter).make()
    assert outcomes(reporter) == {"scale": "restored", "expand": "skipped"}
    assert (project.root / "out" / "value.txt").read_text() == "3"

    # Someone rewrites the record: bytes that do not hash to the output's hash, under a
    # name that matches the record's bytes. It is dropped, with a warning; the step runs.
    raw = msgpack.unpackb(path.read_bytes())
    raw["outputs"]["out"]["data"] = b"4"
    data = msgpack.packb(raw, use_bin_type=True)
    path.unlink()
    lying = store.record_path(scale.key, xxh(data) + ".msgpack")
    lying.write_bytes(data)
    (project.root / "out" / "value.txt").unlink()
    reporter = ListReporter()
    Engine("rc", reporter=reporter).make()
    assert outcomes(reporter)["scale"] == "ran"
    warnings = [text for kind, text in reporter.events if kind == "warning"]
    assert any("do not hash to" in w for w in warnings), warnings
    assert not lying.exists()
    assert (project.root / "out" / "value.txt").read_text() == "3"


def test_a_version_mismatch_is_refused_and_version_1_records_still_restore(tmp_path):
    store = ContentStore(tmp_path / ".tipi_cache", warn=lambda _: None)
    digest = store.object_path(xxh(b"old"))
    digest.parent.mkdir(parents=True)
    digest.write_bytes(b"old")
    old = {
        "v": 1,
        "key": "c" * 32,
        "step": "s",
        "permanences": {},
        "outputs": {"out": {"hash": xxh(b"old")}},
        "finished": 1_700_000_000.0,
        "seconds": 1.0,
    }
    mislabelled = {**old, "key": "d" * 32, "outputs": {"out": {"hash": xxh(b"n"), "data": b"n"}}}
    for raw in (old, mislabelled):
        data = msgpack.packb(raw, use_bin_type=True)
        path = store.record_path(raw["key"], xxh(data) + ".msgpack")
        path.parent.mkdir(parents=True)
        path.write_bytes(data)
    [record] = store.records("c" * 32)
    store.restore(record, {"out": tmp_path / "out.txt"})
    assert (tmp_path / "out.txt").read_bytes() == b"old"
    assert store.records("d" * 32) == []  # version 1 holding bytes inline: dropped


def test_gc_counts_the_bytes_a_record_holds(tmp_path):
    store = ContentStore(tmp_path / ".tipi_cache")
    keep(store, tmp_path, "a" * 32, b"x" * 1000)
    newer = keep(store, tmp_path, "b" * 32, b"y" * 1000)
    assert newer.finished >= store.records("a" * 32)[0].finished
    done = collect(store, keep_last=None, max_size=1500)
    assert (done.records, done.kept_records, done.kept_bytes) == (1, 1, 1000)


def test_records_are_filed_by_the_keys_first_digits_and_an_older_layout_is_read(tmp_path):
    store = ContentStore(tmp_path / ".tipi_cache")
    new = keep(store, tmp_path, "ab" + "1" * 30, b"new")
    [(where, _)] = store.all_records()  # in this make's pack
    assert isinstance(where, PackEntry) and where.pack.parent == store.root / "packs"
    unpack(store)  # the layout before packs: still read
    assert [p.relative_to(store.records_dir).as_posix() for p, _ in store.all_records()] == [
        f"ab/{new.key}.{new.name}"
    ]
    # A record an older tipi filed in a folder of its own key: found, listed, collected.
    data = CachedRun(
        "ab" + "2" * 30, "old", {}, {"out": {"hash": xxh(b"o"), "data": b"o"}}, 1.0, 1.0
    )
    old = store.records_dir / data.key / data.name
    old.parent.mkdir()
    old.write_bytes(data.to_bytes())
    assert store.records(data.key) == [data] and store.has_record(data.key, data.name)
    assert {r.step for _, r in store.all_records()} == {"s", "old"}
    done = collect(store, keep_last=None, max_size=3)  # the newer run's 3 bytes fit
    assert (done.records, done.kept_records) == (1, 1)
    assert not old.exists() and not old.parent.exists() and store.records(new.key) == [new]


def test_a_first_build_restores_a_step_from_a_twin_that_ran_before_it(project):
    """A first build looks up no folder (the store was empty), except under the keys it
    filed: a step with the same fingerprint as an earlier one of the make is restored."""
    twins = PIPELINE.replace("[processes.expand]", "[processes.twin]").replace(
        'type = "Folder"\ninputs = { value = "out/value.txt" }\noutputs = { folder = "out/folder" }',
        'type = "Scale"\nparams = { factor = 1 }\noutputs = { out = "out/twin.txt" }',
    )
    project.pipeline("rc", twins, steps=STEPS)
    reporter = ListReporter()
    Engine("rc", reporter=reporter).make()
    assert outcomes(reporter) == {"scale": "ran", "twin": "restored"}
    assert (project.root / "out" / "twin.txt").read_text() == "3"
