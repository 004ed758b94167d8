"""The run cache trusts nothing it reads: a remote edited by someone else, or a local store
that rotted, costs a warning and a rerun, never a file outside the project, a leaked private
file or a wrong output."""

from __future__ import annotations

import hashlib
import os
import shutil
from collections.abc import Callable
from pathlib import Path

import msgpack
import pytest
import xxhash

from tests.pack_helpers import unpack
from tests.test_run_cache import PIPELINE, STEPS, outcomes
from tipi.engine import Engine
from tipi.report import ListReporter
from tipi.runcache import content as content_store
from tipi.runcache.content import CachedRun, ContentStore
from tipi.runcache.remote import RemoteStore

SECRET = b"PRIVATE KEY of the victim: 7f3a9c"
PWNED = b"planted by another user"
EXPECTED = {"out/value.txt": "3", "out/folder/a.txt": "4", "out/folder/deep/b.txt": "5"}


@pytest.fixture(autouse=True)
def _objects_only(monkeypatch):
    """Every output kept as an object, the files these attacks poison (outputs held inline
    in a record: tests/test_run_cache_inline.py)."""
    monkeypatch.setattr(content_store, "KEEP_INLINE_MAX", -1)


def ran(root: Path) -> list[str]:
    """Steps executed in `root` since the last call (their log lines); resets the log."""
    log = root / "runs.log"
    lines = log.read_text().split() if log.exists() else []
    log.unlink(missing_ok=True)
    return lines


def xxh(data: bytes) -> str:
    return xxhash.xxh3_128_hexdigest(data)


def snapshot(root: Path, skip: tuple[Path, ...] = ()) -> dict[str, tuple[str, str]]:
    """Every entry below `root` (links not followed) → (kind, content digest or target)."""
    seen = {}
    for folder, dirs, files in os.walk(root):
        here = Path(folder)
        dirs[:] = [d for d in dirs if here / d not in skip]
        for name in dirs + files:
            path = here / name
            if path.is_symlink():
                seen[str(path)] = ("link", os.readlink(path))
            elif path.is_file():
                seen[str(path)] = ("file", hashlib.sha256(path.read_bytes()).hexdigest())
            elif name in dirs:
                seen[str(path)] = ("dir", "")
    return seen


def files_holding(root: Path, needle: bytes) -> list[Path]:
    return [
        p
        for p in root.rglob("*")
        if p.is_file() and not p.is_symlink() and needle in p.read_bytes()
    ]


def plant(remote: Path, key: str, content: object, name: str | None = None) -> Path:
    """Write a record (msgpack of `content`, or bytes) under runs/<key>/, named by its hash."""
    data = content if isinstance(content, bytes) else msgpack.packb(content, use_bin_type=True)
    path = remote / "runs" / key / (name or xxh(data) + ".msgpack")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def plant_object(remote: Path, data: bytes) -> str:
    digest = xxh(data)
    path = remote / "objects" / digest[:2] / digest
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return digest


def honest_records(remote: Path) -> dict[str, tuple[Path, dict]]:
    """step → (path, raw record) of the runs an honest make pushed (newest per step)."""
    found: dict[str, tuple[Path, dict]] = {}
    for path in sorted((remote / "runs").glob("*/*.msgpack")):
        raw = msgpack.unpackb(path.read_bytes(), raw=False)
        if raw["step"] not in found or raw["finished"] > found[raw["step"]][1]["finished"]:
            found[raw["step"]] = (path, raw)
    return found


def newer(raw: dict, offset: float = 0, **changes: object) -> dict:
    return {**raw, "finished": raw["finished"] + 100 + offset, **changes}


# Attacks: each edits the remote an honest make filled, and returns what the victim's
# warnings must mention and which steps must run (their honest runs are gone).


def escaping_tree(remote: Path, outside: Path) -> tuple[str, set[str]]:
    path, raw = honest_records(remote)["expand"]
    planted = plant_object(remote, PWNED)
    # From .tipi_cache/staging/rc/slot<k>/folder/ six `..` reach the folder all projects share.
    escapes = [
        "../../../../../../outside/escaped.txt",
        str(outside / "absolute.txt"),
        "deep/../../../../../../../outside/normalized.txt",
        "..\\..\\..\\outside\\backslash.txt",
        "./a.txt",
        "deep//b.txt",
        "",
    ]
    for age, bad in enumerate(escapes):  # the first is the newest: the one a lookup takes
        tree = {**raw["outputs"]["folder"]["tree"], bad: planted}
        folder = {**raw["outputs"]["folder"], "tree": tree}
        plant(remote, raw["key"], newer(raw, -age, outputs={"folder": folder}))
    clash = {"a.txt": planted, "a.txt/inner.txt": planted}
    folder = {"hash": "d" + "0" * 32, "tree": clash}
    plant(remote, raw["key"], newer(raw, -len(escapes), outputs={"folder": folder}))
    path.unlink()
    return "not a path below it", {"expand"}


def object_named_like_a_path(remote: Path, outside: Path) -> tuple[str, set[str]]:
    records = honest_records(remote)
    # objects/../../../../outside/secret.txt, seen from the victim's store: its private file.
    sneaky = "../../../outside/secret.txt"
    path, raw = records["scale"]
    plant(remote, raw["key"], newer(raw, outputs={"out": {"hash": sneaky}}))
    path.unlink()
    path, raw = records["expand"]
    tree = {name: sneaky for name in raw["outputs"]["folder"]["tree"]}
    plant(
        remote,
        raw["key"],
        newer(raw, outputs={"folder": {**raw["outputs"]["folder"], "tree": tree}}),
    )
    path.unlink()
    return "not 32 hex digits", {"scale", "expand"}


def lying_objects(remote: Path, outside: Path) -> tuple[str, set[str]]:
    objects = sorted((remote / "objects").glob("*/*"))
    for path in objects:
        path.write_bytes(PWNED)
    objects[-1].unlink()
    os.mkfifo(objects[-1])  # reading it would block forever
    return "is corrupt (its bytes hash to", {"scale", "expand"}


def misfiled_records(remote: Path, outside: Path) -> tuple[str, set[str]]:
    # The remote also holds factor=2's runs (see the test): filed under factor=1's keys,
    # they would restore 6, 7, 8 where 3, 4, 5 belong.
    by_step: dict[str, list[tuple[Path, dict]]] = {}
    for path in (remote / "runs").glob("*/*.msgpack"):
        raw = msgpack.unpackb(path.read_bytes(), raw=False)
        by_step.setdefault(raw["step"], []).append((path, raw))
    for found in by_step.values():
        (old, _), (new, _) = sorted(found, key=lambda item: item[1]["finished"])
        shutil.move(new, old.parent / new.name)
        old.unlink()
    return "but is filed under", {"scale", "expand"}


def malformed_records(remote: Path, outside: Path) -> tuple[str, set[str]]:
    for path, raw in honest_records(remote).values():
        key = raw["key"]
        bad = [
            b"\xc1\xc1 not msgpack at all",
            path.read_bytes()[:-7],  # truncated
            msgpack.packb([1, 2, 3]),
            msgpack.packb("a string"),
            b"\x91" * 200_000 + b"\xc0",  # nested two hundred thousand deep
            newer(raw, finished=2**64 - 1),
            newer(raw, finished=float("nan")),
            newer(raw, seconds=-1),
            newer(raw, key=12),
            newer(raw, step=None),
            newer(raw, permanences=[1, 2]),
            newer(raw, outputs=[raw["outputs"]]),
            newer(raw, outputs={name: "x" * 40 for name in raw["outputs"]}),
            newer(raw, outputs={name: {"hash": 2**63} for name in raw["outputs"]}),
            newer(
                raw,
                outputs={n: {**e, "extra": {"deep": [[[]]]}} for n, e in raw["outputs"].items()},
            ),
        ]
        for content in bad:
            plant(remote, key, content)
        plant(remote, key, newer(raw), name="0" * 32 + ".msgpack")  # name ≠ hash of bytes
        os.mkfifo(remote / "runs" / key / ("1" * 32 + ".msgpack"))
        (remote / "runs" / key / ("2" * 32 + ".msgpack")).mkdir()
        (remote / "runs" / key / ("3" * 32 + ".msgpack")).symlink_to(outside / "secret.txt")
        (remote / "runs" / key / "notes.txt").write_text("hello")
        path.unlink()
    (remote / "runs" / "not-a-key").mkdir()
    return "skipping the run record", {"scale", "expand"}


def linked_folders(remote: Path, outside: Path) -> tuple[str, set[str]]:
    drop = outside / "drop"
    drop.mkdir()
    for folder in [*(remote / "objects").iterdir()]:  # the object files move to `drop`
        for path in folder.iterdir():
            path.rename(drop / path.name)
        folder.rmdir()
        folder.symlink_to(drop, target_is_directory=True)
    for prefix in ("00", "ff", *(f"{i:02x}" for i in range(256))):
        link = remote / "objects" / prefix
        if not link.exists() and not link.is_symlink():
            link.symlink_to(drop, target_is_directory=True)
    (remote / "tmp").mkdir(exist_ok=True)
    shutil.rmtree(remote / "tmp")
    (remote / "tmp").symlink_to(drop, target_is_directory=True)
    return "leads out of the remote cache", {"scale", "expand"}


ATTACKS: list[Callable[[Path, Path], tuple[str, set[str]]]] = [
    escaping_tree,
    object_named_like_a_path,
    lying_objects,
    misfiled_records,
    malformed_records,
    linked_folders,
]


@pytest.mark.parametrize("attack", ATTACKS, ids=lambda a: a.__name__)
def test_a_poisoned_remote_costs_a_rerun_and_nothing_else(attack, tmp_path, monkeypatch, cli):
    honest, victim, remote, outside = (
        tmp_path / n for n in ("honest", "victim", "remote", "outside")
    )
    for project in (honest, victim):
        (project / "pipelines" / "rc").mkdir(parents=True)
        (project / "pipelines" / "rc" / "pipeline.toml").write_text(PIPELINE.lstrip())
        (project / "pipelines" / "rc" / "steps.py").write_text(STEPS.lstrip())
    outside.mkdir()
    (outside / "sentinel.txt").write_text("untouched")
    (outside / "secret.txt").write_bytes(SECRET)
    monkeypatch.chdir(honest)
    assert cli("make", "--remote", str(remote)).exit_code == 0
    if attack is misfiled_records:
        assert cli("make", "--remote", str(remote), "--set", "scale.factor=2").exit_code == 0
    expected_warning, poisoned = attack(remote, outside)

    before = snapshot(tmp_path, skip=(victim, remote))
    monkeypatch.chdir(victim)
    result = cli("make", "--remote", str(remote))
    assert result.exit_code == 0, result.stderr
    assert expected_warning in result.stderr
    assert set(ran(victim)) == poisoned  # the steps whose runs were poisoned ran
    for relative, text in EXPECTED.items():
        assert (victim / relative).read_text() == text
    assert sorted(p.name for p in (victim / "out" / "folder").rglob("*")) == [
        "a.txt",
        "b.txt",
        "deep",
    ]
    assert snapshot(tmp_path, skip=(victim, remote)) == before  # nothing written outside
    assert (outside / "sentinel.txt").read_text() == "untouched"
    assert not files_holding(victim, SECRET) and not files_holding(remote, SECRET)
    assert not files_holding(victim / "out", PWNED)
    assert not list((victim / ".tipi_cache" / "store" / "tmp").iterdir())
    # What the victim kept is sound, and the next make does nothing.
    for _, record in ContentStore(victim / ".tipi_cache").all_records():
        for digest in record.objects():
            data = ContentStore(victim / ".tipi_cache").object_path(digest).read_bytes()
            assert xxh(data) == digest
    again = cli("make", "--remote", str(remote))
    assert again.exit_code == 0 and not ran(victim)


# A local store that rotted: each corruption hits the runs of factor=1, which the last make
# would restore.


def flip_objects(store: ContentStore, records: list[CachedRun], outside: Path) -> None:
    for record in records:
        for digest in record.objects():
            path = store.object_path(digest)
            data = bytearray(path.read_bytes())
            data[0] ^= 0x01
            path.write_bytes(bytes(data))


def truncate_records(store: ContentStore, records: list[CachedRun], outside: Path) -> None:
    for record in records:
        path = store.record_path(record.key, record.name)
        path.write_bytes(path.read_bytes()[:-3])


def reshape_records(store: ContentStore, records: list[CachedRun], outside: Path) -> None:
    for record in records:
        store.record_path(record.key, record.name).unlink()
        raw = msgpack.unpackb(record.to_bytes(), raw=False)
        raw["outputs"] = {name: [entry] for name, entry in raw["outputs"].items()}
        plant(store.root, record.key, raw)


def folders_for_objects(store: ContentStore, records: list[CachedRun], outside: Path) -> None:
    for record in records:
        for digest in record.objects():
            path = store.object_path(digest)
            path.unlink()
            (path / "inside").mkdir(parents=True)


def links_for_objects(store: ContentStore, records: list[CachedRun], outside: Path) -> None:
    for record in records:
        for digest in record.objects():
            path = store.object_path(digest)
            path.unlink()
            path.symlink_to(outside / "secret.txt")


def fifos_for_objects(store: ContentStore, records: list[CachedRun], outside: Path) -> None:
    for record in records:
        for digest in record.objects():
            path = store.object_path(digest)
            path.unlink()
            os.mkfifo(path)


def fifos_for_records(store: ContentStore, records: list[CachedRun], outside: Path) -> None:
    for record in records:
        path = store.record_path(record.key, record.name)
        path.unlink()
        os.mkfifo(path)


@pytest.mark.parametrize(
    "corrupt",
    [
        flip_objects,
        truncate_records,
        reshape_records,
        folders_for_objects,
        links_for_objects,
        fifos_for_objects,
        fifos_for_records,
    ],
    ids=lambda c: c.__name__,
)
def test_a_corrupt_local_store_warns_and_reruns(corrupt, project, tmp_path):
    outside = tmp_path.parent / f"{tmp_path.name}-outside"
    outside.mkdir()
    (outside / "secret.txt").write_bytes(SECRET)
    project.pipeline("rc", PIPELINE, steps=STEPS)
    Engine("rc").make()
    store = ContentStore(project.root / ".tipi_cache")
    first = [record for _, record in store.all_records()]
    Engine("rc", overrides=["scale.factor=2"]).make()
    unpack(store)  # record files (an older layout, still read); packs: test_run_cache_packs
    corrupt(store, first, outside)

    reporter = ListReporter()
    summary = Engine("rc", reporter=reporter).make()
    assert summary.ok
    assert outcomes(reporter) == {"scale": "ran", "expand": "ran"}
    warnings = [e[1] for e in reporter.events if e[0] == "warning"]
    assert warnings and any("dropp" in w for w in warnings), warnings
    for relative, text in EXPECTED.items():
        assert project.read(relative) == text
    assert (outside / "secret.txt").read_bytes() == SECRET  # a link is dropped, not its target
    for _, record in store.all_records():  # what is left is sound
        for digest in record.objects():
            path = store.object_path(digest)
            assert not path.is_symlink() and xxh(path.read_bytes()) == digest
    # And it restores again from the repaired store.
    Engine("rc", overrides=["scale.factor=2"]).make()
    assert Engine("rc").make().of("restored")


def _valid() -> dict:
    digest = "0123456789abcdef0123456789abcdef"
    return {
        "v": 1,
        "key": "f" * 32,
        "step": "expand",
        "permanences": {"config": {"value": 1}},
        "outputs": {
            "folder": {"hash": "d" + digest, "tree": {"a.txt": digest, "deep/b.txt": digest}}
        },
        "finished": 1_700_000_000.5,
        "seconds": 1.25,
    }


def _with_tree(tree: object) -> dict:
    raw = _valid()
    raw["outputs"]["folder"]["tree"] = tree
    return raw


D = "0123456789abcdef0123456789abcdef"
MALFORMED = {
    "not msgpack": b"\xc1 nope",
    "truncated": msgpack.packb(_valid())[:-4],
    "a list": msgpack.packb([_valid()]),
    "nil": msgpack.packb(None),
    "deep nesting": b"\x91" * 100_000 + b"\xc0",
    "huge finished": {**_valid(), "finished": 2**64 - 1},
    "negative seconds": {**_valid(), "seconds": -0.5},
    "boolean finished": {**_valid(), "finished": True},
    "text finished": {**_valid(), "finished": "yesterday"},
    "no key": {k: v for k, v in _valid().items() if k != "key"},
    "short key": {**_valid(), "key": "f" * 31},
    "upper-case key": {**_valid(), "key": "F" * 32},
    "step not text": {**_valid(), "step": ["expand"]},
    "permanences a list": {**_valid(), "permanences": []},
    "permanence named by a number": {**_valid(), "permanences": {1: {}}},
    "outputs a list": {**_valid(), "outputs": []},
    "entry without hash": {**_valid(), "outputs": {"o": {"tree": {}}}},
    "entry with more": {**_valid(), "outputs": {"o": {"hash": D, "mode": 0o777}}},
    "file hash with d": {**_valid(), "outputs": {"o": {"hash": "d" + D}}},
    "file hash a path": {**_valid(), "outputs": {"o": {"hash": "../../etc/passwd"}}},
    "folder hash without d": _with_tree({"a": D}) | {"outputs": {"f": {"hash": D, "tree": {}}}},
    "tree a list": _with_tree([["a", D]]),
    "tree value a number": _with_tree({"a": 7}),
    "tree key a number": _with_tree({7: D}),
    "absolute": _with_tree({"/etc/passwd": D}),
    "dot-dot": _with_tree({"../x": D}),
    "dot-dot inside": _with_tree({"a/../../x": D}),
    "dot": _with_tree({"./x": D}),
    "empty part": _with_tree({"a//x": D}),
    "trailing slash": _with_tree({"a/": D}),
    "empty": _with_tree({"": D}),
    "backslash": _with_tree({"..\\x": D}),
    "nul": _with_tree({"a\0b": D}),
    "file and folder": _with_tree({"a": D, "a/b": D}),
    "long part": _with_tree({"x" * 300: D}),
}


@pytest.mark.parametrize("content", MALFORMED.values(), ids=MALFORMED.keys())
def test_malformed_records_are_dropped_with_a_warning(content, tmp_path):
    warnings: list[str] = []
    store = ContentStore(tmp_path, warnings.append)
    path = plant(store.root, "f" * 32, content)
    assert store.records("f" * 32) == []
    assert len(warnings) == 1 and "dropping the run record" in warnings[0]
    assert not path.exists()


def test_a_sound_record_is_read_and_checked_against_its_folder_and_name(tmp_path):
    warnings: list[str] = []
    store = ContentStore(tmp_path, warnings.append)
    plant(store.root, "f" * 32, _valid())
    [record] = store.records("f" * 32)
    assert record.to_bytes() == msgpack.packb(_valid())  # read back to the very same bytes
    moved = plant(store.root, "e" * 32, _valid())
    renamed = plant(store.root, "f" * 32, _valid(), name="a" * 32 + ".msgpack")
    assert store.records("e" * 32) == [] and not moved.exists()
    assert store.records("f" * 32) == [record] and not renamed.exists()
    assert "filed under" in warnings[0] and "do not match its name" in warnings[1]
    # A record of another format version is left for the tipi that wrote it.
    future = plant(store.root, "f" * 32, {**_valid(), "v": 3})
    assert store.records("f" * 32) == [record] and future.exists()
    assert "format version 3" in warnings[-1]


def test_push_checks_local_objects_and_pull_checks_remote_ones(project, tmp_path, cli, monkeypatch):
    project.pipeline("rc", PIPELINE, steps=STEPS)
    assert cli("make").exit_code == 0
    store = ContentStore(project.root / ".tipi_cache")
    scale = next(r for _, r in store.all_records() if r.step == "scale")
    bad = store.object_path(scale.outputs["out"]["hash"])
    bad.write_bytes(PWNED)
    remote = tmp_path / "remote"
    result = cli("cache", "push", "--remote", str(remote))
    assert result.exit_code == 0, result.stderr
    assert "pushed 1 run(s)" in result.stdout
    assert "not pushing the run" in result.stderr and "is corrupt" in result.stderr
    assert not bad.exists()  # dropped: the next make runs scale again
    assert not files_holding(remote, PWNED)

    # Another user rewrites the object of the run that did go up; a pull refuses it.
    for path in (remote / "objects").glob("*/*"):
        path.write_bytes(PWNED)
    third = tmp_path / "third"
    shutil.copytree(project.root / "pipelines", third / "pipelines")
    monkeypatch.chdir(third)
    result = cli("cache", "pull", "--remote", str(remote))
    assert result.exit_code == 0, result.stderr
    assert "pulled 0 run(s)" in result.stdout and "not pulling from the remote" in result.stderr
    assert not files_holding(third, PWNED)
    assert not list((third / ".tipi_cache" / "store" / "tmp").iterdir())
    assert RemoteStore(str(remote)).pull(ContentStore(third / ".tipi_cache")).records == 0


def test_gc_removes_non_files_and_dead_writers_temporaries(project, cli, tmp_path):
    project.pipeline("rc", PIPELINE, steps=STEPS)
    assert cli("make").exit_code == 0
    store = ContentStore(project.root / ".tipi_cache")
    target = tmp_path.parent / f"{tmp_path.name}-target"
    target.write_bytes(SECRET)
    folder = store.object_path("ab" * 16)
    (folder / "inside").mkdir(parents=True)
    link = store.object_path("cd" * 16)
    link.parent.mkdir(parents=True, exist_ok=True)
    link.symlink_to(target)
    legacy = store.root / "objects" / "ab" / ".abab.1234abcd.tmp"  # an older tipi's
    legacy.write_bytes(b"half")
    os.utime(legacy, (1, 1))
    (store.root / "runs").mkdir(exist_ok=True)
    (store.root / "runs" / ".DS_Store").write_bytes(b"")
    result = cli("cache", "gc", "--keep-last", "5")
    assert result.exit_code == 0, result.stderr
    assert "removed 0 run(s) and 2 file(s)" in result.stdout
    assert not os.path.lexists(folder) and not os.path.lexists(link) and not legacy.exists()
    assert target.read_bytes() == SECRET
    assert len(list(store.all_records())) == 2 and Engine("rc").make().ok
