"""The run cache: outputs of successful runs kept by content, found again by fingerprint.

Layout (locally, in `.tipi_cache/store/`; a remote files its records as an older tipi did,
`runs/<key>/<record hash>.msgpack`, and push and pull copy files and never merge them; the
names are state/layout.py's):

    objects/<2 hex>/<hash>            a file's bytes, named by their xxh3-128 hash (32 hex)
    packs/<host>.<pid>.<random>.pack  the records one make filed, one after the other, and
    packs/<...>.idx                   their index (packs.py); a record of an older tipi lies in
    runs/<2 hex>/<key>.<record hash>.msgpack
                                      one successful run of a step whose type, code, params
                                      and input contents hash to <key> (32 hex), filed by
                                      the key's first two hex digits (an older tipi's
                                      `runs/<key>/<record hash>.msgpack` is read too)
    tmp/.<host>.<pid>.<random>.tmp    a file being written; renamed into place when whole

A run record says which permanence configs the run used and what each output was (a file's
hash, with its bytes when it has at most INLINE_MAX of them, or a directory's files and
their hashes). Every name is a hash of what it holds, so a file is never rewritten,
concurrent writers of the same name write the same bytes, and a
record is written after its objects: a reader never finds a record whose files are missing.
Nothing here depends on where the project is checked out.

Nothing read from a store is trusted (a remote may be writable by others, a disk may rot): a
record is used only when its bytes hash to its file name, it says the key of its folder, and
every digest and tree path in it is well formed (`CachedRun.from_bytes`); an object's bytes
are checked against its name whenever they are copied (restored, pulled, pushed). What fails
is a `CorruptCache` (an OSError, so the engine warns and runs the step) or a warning, and is
deleted where it is ours to delete (this store).
"""

from __future__ import annotations

import os
import stat
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path, PurePosixPath
from typing import Any, BinaryIO

import xxhash

from tipi.identity.hashing import hash_bytes
from tipi.runcache.files import (
    copy_hashing,
    create,
    drop,
    open_regular,
    temporary_name,
)
from tipi.runcache.filing import all_records, legacy_records, listing, read_record, sweep
from tipi.runcache.packs import PackEntry, Packs
from tipi.runcache.record import (
    INLINE_MAX,
    BadRecord,
    CachedRun,
    CorruptCache,
    is_digest,
    is_record_name,
    safe_relative,
    show,
)
from tipi.state.layout import OBJECTS_DIR, RECORDS_DIR, TMP_DIR, store_dir

_CHUNK = 1 << 20
_FILED: dict[str, set[str]] = {}  # store → the keys this process filed records under
KEEP_INLINE_MAX = INLINE_MAX  # the largest file output a record holds (tests of objects: -1)


class ContentStore:
    """The local run cache under `.tipi_cache/store/`."""

    def __init__(self, cache_dir: Path, warn: Callable[[str], None] = lambda _: None) -> None:
        self.cache_dir = cache_dir
        self.root = store_dir(cache_dir)
        self.warn = warn
        self._swept = False
        self._runs, self._tmp = self.root / RECORDS_DIR, self.root / TMP_DIR
        self._empty: bool | None = None  # no record at all when first looked up
        self._added = _FILED.setdefault(str(self.root), set())
        self._packs = Packs(self.root, warn)

    def close(self) -> None:  # stop filing into this make's pack, and index it
        self._packs.close()

    @property
    def records_dir(self) -> Path:
        """The records: `<2 hex>/<key>.<name>` (and an older tipi's `<key>/<name>`)."""
        return self._runs

    def object_path(self, digest: str) -> Path:
        if not is_digest(digest):
            raise CorruptCache(f"{show(digest)} is not an object name")
        return self.root / OBJECTS_DIR / digest[:2] / digest

    def record_path(self, key: str, name: str) -> Path:
        """Where this tipi writes record `name` of `key`: in the folder of the key's first
        two hex digits (made once for 256 keys, not once a key, as before)."""
        if not is_digest(key) or not is_record_name(name):
            raise CorruptCache(f"{show(key)}/{show(name)} is not a run record name")
        return self.records_dir / key[:2] / f"{key}.{name}"

    def has_record(self, key: str, name: str) -> bool:
        """Whether record `name` of `key` is here (where this tipi or an older one put it)."""
        path = self.record_path(key, name)
        old = path.exists() or (self.records_dir / key / name).exists()
        return old or self._packs.has(key, name)

    def has_object(self, digest: str) -> bool:
        """Whether the object is here as a plain file (its bytes are checked when copied)."""
        try:
            return stat.S_ISREG(self.object_path(digest).lstat().st_mode)
        except OSError:
            return False

    def object_size(self, digest: str) -> int | None:
        """The object's size, if it is here as a plain file."""
        try:
            info = self.object_path(digest).lstat()
        except FileNotFoundError:
            return None
        return info.st_size if stat.S_ISREG(info.st_mode) else None

    def records(self, key: str) -> list[CachedRun]:
        """The runs recorded under `key`, newest first (bad ones are dropped, with a warning)."""
        return [record for _, record in self._records(key)]

    def _records(self, key: str) -> list[tuple[Path | PackEntry, CachedRun]]:
        if not is_digest(key):
            return []
        found: list[tuple[Path | PackEntry, CachedRun]] = [*self._packs.records(key)]
        found += legacy_records(self._runs, key, self.warn)
        prefix = key + "."
        for entry in listing(os.path.join(self._runs, key[:2])):  # a string: once a step
            if entry.startswith(prefix):
                path = self._runs / key[:2] / entry
                found += read_record(path, key, entry[len(prefix) :], self.warn)
        return sorted(found, key=lambda item: -item[1].finished)

    def lookup(
        self, key: str, configs: Mapping[str, Any], names: Iterable[str] | None = None
    ) -> CachedRun | None:
        """The newest run under `key` whose permanences match, whose outputs are `names`
        (when given) and whose objects are here."""
        if self._fresh(key):
            return None
        wanted = None if names is None else set(names)
        for record in self.records(key):
            if wanted is not None and set(record.outputs) != wanted:
                continue
            # lexists: whatever stands there is checked (and dropped) when restored.
            if record.matches(configs) and all(
                os.path.lexists(self.object_path(h)) for h in record.objects()
            ):
                return record
        return None

    def _fresh(self, key: str) -> bool:
        """Whether `key` has no record for sure: there was none at all when this store was
        first looked up in (a first build) and none was added under `key` since by this
        process (a sweep's variant makes included; another process's is at most a run that
        could have been restored). A first build of N steps lists no folder N times."""
        if self._empty is None:
            self._empty = not listing(self._runs) and not self._packs.any()
        return self._empty and key not in self._added

    def save(
        self,
        key: str,
        step: str,
        permanences: Mapping[str, Any],
        outputs: Mapping[str, Path],
        hash_file: Callable[[str], str | None],
        seconds: float,
    ) -> CachedRun:
        """Keep `outputs` (name → final path) of a run that just succeeded.

        Raises:
            OSError: an output vanished or changed while it was kept, cannot be recorded (a
                file name no record may hold), or the disk is full; nothing half-written stays.
        """
        entries: dict[str, dict[str, Any]] = {}
        for name, path in outputs.items():
            if path.is_dir():
                tree = {}
                for folder, dirs, files in os.walk(path):
                    dirs.sort()
                    for file in sorted(files):
                        full = os.path.join(folder, file)
                        relative = Path(os.path.relpath(full, path)).as_posix()
                        tree[relative] = self._keep(Path(full), hash_file(full))
                entries[name] = {"hash": hash_file(str(path)), "tree": tree}
            else:
                entries[name] = self._keep_file(path, hash_file(str(path)))
        record = CachedRun(key, step, dict(permanences), entries, time.time(), seconds)
        try:
            record.check()
        except BadRecord as exc:
            raise OSError(f"the run cannot be recorded: {exc}") from None
        self.add_record(record)
        return record

    def restore(self, record: CachedRun, staged: Mapping[str, Path]) -> None:
        """Copy the record's outputs to `staged` (name → fresh staging path), checking every
        object's bytes on the way.

        Raises:
            CorruptCache: an object is not what its name says; it is deleted from the store,
                and so is every other bad object of the run.
        """
        try:
            self._restore(record, staged)
        except CorruptCache:
            self.verify(record)  # drop the rest of the damage now, not one rerun at a time
            raise

    def _restore(self, record: CachedRun, staged: Mapping[str, Path]) -> None:
        for name, path in staged.items():
            entry = record.outputs[name]
            tree = entry.get("tree")
            if "data" in entry:  # checked against its hash when the record was read
                with create(path) as out:
                    out.write(entry["data"])
                continue
            if tree is None:
                self._copy_out(record, entry["hash"], path)
                continue
            path.mkdir(parents=True, exist_ok=True)
            for relative, digest in tree.items():
                if not safe_relative(relative):  # checked when read; never write elsewhere
                    raise CorruptCache(f"{record.describe()} names {show(relative)}")
                target = path.joinpath(*relative.split("/"))
                target.parent.mkdir(parents=True, exist_ok=True)
                self._copy_out(record, digest, target)

    def _copy_out(self, record: CachedRun, digest: str, target: Path) -> None:
        source = self.object_path(digest)
        try:
            src = open_regular(source)
        except CorruptCache as exc:
            drop(source)
            raise CorruptCache(f"object {digest} of {record.describe()}: {exc}; dropped") from None
        with src, create(target) as out:
            actual, _ = copy_hashing(src, out)
        if actual != digest:
            drop(source)
            raise CorruptCache(
                f"object {digest} of {record.describe()} is corrupt (its bytes hash to "
                f"{actual}); dropped"
            )

    def verify(self, record: CachedRun) -> list[str]:
        """Check every object of `record` that is here; drop and return the bad ones."""
        bad = []
        for digest in sorted(set(record.objects())):
            try:
                with self.open_object(digest) as f:
                    actual = xxhash.xxh3_128()
                    while chunk := f.read(_CHUNK):
                        actual.update(chunk)
                if actual.hexdigest() != digest:
                    self.drop_object(digest)
                    bad.append(digest)
            except CorruptCache:  # not a file: open_object dropped it
                bad.append(digest)
            except FileNotFoundError:
                pass
        return bad

    def open_object(self, digest: str) -> BinaryIO:
        """The object's file, for reading; a non-file standing in its place is dropped.

        Raises:
            CorruptCache: it was not a plain file.
        """
        path = self.object_path(digest)
        try:
            return open_regular(path)
        except CorruptCache:
            drop(path)
            raise

    def drop_object(self, digest: str) -> None:
        drop(self.object_path(digest))

    def ingest(self, source: BinaryIO, digest: str, what: str) -> int:
        """Copy `source` in as object `digest`, atomically; returns its size.

        Raises:
            CorruptCache: the bytes do not hash to `digest` (`what` names them); nothing is kept.
        """
        target = self.object_path(digest)
        tmp = self._temporary()
        try:
            with open(tmp, "xb") as out:
                actual, size = copy_hashing(source, out)
            if actual != digest:
                raise CorruptCache(f"{what} is corrupt (its bytes hash to {actual}); refused")
            target.parent.mkdir(parents=True, exist_ok=True)
            if os.path.lexists(target) and not self.has_object(digest):
                drop(target)  # a folder or link where the file belongs
            os.replace(tmp, target)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        return size

    def add_record(self, record: CachedRun) -> None:
        """File `record` (after its objects) at the end of this make's pack (packs.py).

        Nothing in the store is fsynced: every record is checked against its name when
        read, so what a power cut leaves half-written costs a warning and a rerun, never a
        wrong output, and a make does not wait for the disk once per record."""
        if not is_digest(record.key):
            raise CorruptCache(f"{show(record.key)} is not a run key")
        self._added.add(record.key)
        self._packs.append(record.key, record.to_bytes())

    def all_records(self) -> Iterator[tuple[Path | PackEntry, CachedRun]]:
        yield from self._packs.all_records()
        yield from all_records(self.records_dir, self.warn)

    def forget(self, dropped: Iterable[Path | PackEntry]) -> int:
        """Remove these records (gc): files are unlinked, packs rewritten without them."""
        dropped = list(dropped)
        entries = [d for d in dropped if isinstance(d, PackEntry)]
        for path in dropped:
            if isinstance(path, Path):
                path.unlink(missing_ok=True)
        return self._packs.forget(entries)

    def all_objects(self) -> Iterator[tuple[str, Path]]:
        """(name, path) of everything in `objects/` but temporary files (an older tipi's)."""
        objects = self.root / OBJECTS_DIR
        if not objects.is_dir():
            return
        for prefix in os.listdir(objects):
            try:
                names = os.listdir(objects / prefix)
            except NotADirectoryError:
                yield prefix, objects / prefix
                continue
            for name in names:
                if not name.startswith("."):
                    yield name, objects / prefix / name

    def sweep(self, everywhere: bool = False) -> int:
        """Remove temporary files left by writers that died (see `stale_temporary`); with
        `everywhere`, also an older tipi's `.<name>.tmp` files in `objects/` and `runs/`."""
        return sweep(self.root, everywhere)

    def _keep_file(self, source: Path, digest: str | None) -> dict[str, Any]:
        """The record's entry of the file output `source`: its bytes inline when they are
        few (one file less to create), else kept as an object."""
        if digest is None:
            raise FileNotFoundError(f"{source} vanished before it could be kept")
        with open(source, "rb") as f:
            data = f.read(KEEP_INLINE_MAX + 1)
            if len(data) > KEEP_INLINE_MAX:
                if not self.has_object(digest):
                    f.seek(0)
                    self.ingest(f, digest, f"{source} (changed while it was kept)")
                return {"hash": digest}
        if hash_bytes(data) != digest:
            raise CorruptCache(f"{source} changed while it was kept; not kept")
        return {"hash": digest, "data": data}

    def _keep(self, source: Path, digest: str | None) -> str:
        if digest is None:
            raise FileNotFoundError(f"{source} vanished before it could be kept")
        if not self.has_object(digest):
            with open(source, "rb") as f:
                self.ingest(f, digest, f"{source} (changed while it was kept)")
        return digest

    def _temporary(self) -> Path:
        """A fresh temporary name in `tmp/`; the first one sweeps what dead writers left."""
        folder = self._tmp
        if not self._swept:
            folder.mkdir(parents=True, exist_ok=True)
            self.sweep()
            self._swept = True
        return folder / temporary_name()


def run_key(
    type_name: str,
    code: str,
    params: Mapping[str, Any],
    inputs: Mapping[str, Any],
    outputs: Mapping[str, str] | None = None,
) -> str:
    """What a run cache entry is filed under: the fingerprint without the permanences (which
    a step's record lists, since which ones it uses is known only after it ran), plus each
    output's name and suffix: two steps of one class writing `table.json` and `table.csv`
    make different bytes from the same fingerprint."""
    from tipi.identity.fingerprint import step_fingerprint

    shapes = {name: "".join(PurePosixPath(path).suffixes) for name, path in (outputs or {}).items()}
    return step_fingerprint(type_name, code, params, {"inputs": inputs, "outputs": shapes}, {})
