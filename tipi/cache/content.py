"""The run cache: outputs of successful runs kept by content, found again by fingerprint.

Layout (the same locally, in `.tipi_cache/store/`, and on a remote, so push and pull copy
files and never merge them):

    objects/<2 hex>/<hash>            a file's bytes, named by their xxh3-128 hash (32 hex)
    runs/<key>/<record hash>.msgpack  one successful run of a step whose type, code, params
                                      and input contents hash to <key> (32 hex)
    tmp/.<host>.<pid>.<random>.tmp    a file being written; renamed into place when whole

A run record says which permanence configs the run used and what each output was (a file's
hash, or a directory's files and their hashes). Every name is a hash of what it holds, so a
file is never rewritten, concurrent writers of the same name write the same bytes, and a
record is written after its objects: a reader never finds a record whose files are missing.
Nothing here depends on where the project is checked out.

Nothing read from a store is trusted (a remote may be writable by others, a disk may rot): a
record is used only when its bytes hash to its file name, it says the key of its folder, and
every digest and tree path in it is well formed (`RunRecord.from_bytes`); an object's bytes
are checked against its name whenever they are copied (restored, pulled, pushed). What fails
is a `CorruptCache` (an OSError, so the engine warns and runs the step) or a warning, and is
deleted where it is ours to delete (this store).
"""

from __future__ import annotations

import errno
import os
import re
import shutil
import socket
import stat
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any, BinaryIO

import msgpack
import xxhash

from tipi.cache.hashing import hash_bytes

STORE = "store"
TMP = "tmp"
# A record names every file of its outputs (~100 bytes each): this admits about two million.
MAX_RECORD_BYTES = 256 << 20
# A temporary file nobody has written for this long was left by a writer that died.
STALE_SECONDS = 3600.0
_LATEST = 10_000_000_000  # seconds since 1970 (year 2286): later timestamps are garbage
_CHUNK = 1 << 20
_DIGEST = re.compile(r"[0-9a-f]{32}")
_RECORD_NAME = re.compile(r"[0-9a-f]{32}\.msgpack")
_HOST = re.sub(r"[^A-Za-z0-9_-]", "-", socket.gethostname())[:64] or "host"


class CorruptCache(OSError):
    """A cache file that is not what its name says (or leads out of its store). An OSError,
    so the engine treats it as an unreadable cache: a warning, and the step runs."""


class BadRecord(ValueError):
    """A run record that is malformed or filed under the wrong name."""


class ForeignRecord(BadRecord):
    """A run record of another format version: skipped, but left for the tipi that wrote it."""


def is_digest(value: object) -> bool:
    """Whether `value` is an object name: an xxh3-128 hash as 32 lowercase hex digits."""
    return isinstance(value, str) and _DIGEST.fullmatch(value) is not None


def is_record_name(value: object) -> bool:
    return isinstance(value, str) and _RECORD_NAME.fullmatch(value) is not None


def safe_relative(path: object) -> bool:
    """Whether `path` is a plain relative POSIX path: no absolute, `..`, `.` or empty parts,
    no backslash or NUL; such a path is its own normal form and stays below its folder."""
    if not isinstance(path, str) or not path or len(path) > 4096 or "\\" in path or "\0" in path:
        return False
    return all(
        part not in ("", ".", "..") and len(part.encode("utf-8", "surrogatepass")) <= 255
        for part in path.split("/")
    )


def _show(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


@dataclass(frozen=True)
class RunRecord:
    """One successful run, restorable from the objects it names.

    Attributes:
        step: the step's name when it ran (for `gc --keep-last`, and for people).
        permanences: name → config of the result-relevant permanences it used.
        outputs: output name → {"hash": h} for a file, {"hash": "d" + h, "tree": {rel: h}}
            for a directory (rel: a POSIX path below it).
    """

    key: str
    step: str
    permanences: Mapping[str, Any]
    outputs: Mapping[str, Mapping[str, Any]]
    finished: float
    seconds: float

    def to_bytes(self) -> bytes:
        return msgpack.packb(
            {
                "v": 1,
                "key": self.key,
                "step": self.step,
                "permanences": dict(self.permanences),
                "outputs": {k: dict(v) for k, v in self.outputs.items()},
                "finished": self.finished,
                "seconds": self.seconds,
            },
            use_bin_type=True,
        )

    @classmethod
    def from_bytes(cls, data: bytes, key: str | None = None, name: str | None = None) -> RunRecord:
        """Parse and check a record read from `runs/<key>/<name>` (those checked when given).

        Raises:
            BadRecord: anything but a well-formed record with that key whose bytes hash to
                that name (ForeignRecord: one of another format version).
        """
        if len(data) > MAX_RECORD_BYTES:
            raise BadRecord(f"{len(data)} bytes is more than a run record holds")
        if name is not None and hash_bytes(data) + ".msgpack" != name:
            raise BadRecord("its bytes do not match its name (truncated or edited)")
        try:
            raw = msgpack.unpackb(data, raw=False, strict_map_key=False)
        except Exception as exc:  # msgpack raises several kinds on malformed input
            raise BadRecord(f"not msgpack ({type(exc).__name__})") from None
        if not isinstance(raw, dict):
            raise BadRecord(f"a {type(raw).__name__}, not a map")
        if raw.get("v") != 1:
            raise ForeignRecord(f"format version {_show(raw.get('v'))}; this tipi reads 1")
        record = cls(
            raw.get("key"),  # type: ignore[arg-type]
            raw.get("step"),  # type: ignore[arg-type]
            raw.get("permanences"),  # type: ignore[arg-type]
            raw.get("outputs"),  # type: ignore[arg-type]
            _seconds(raw, "finished"),
            _seconds(raw, "seconds"),
        )
        record.check()
        if key is not None and record.key != key:
            raise BadRecord(f"it says key {record.key}, but is filed under {key}")
        return record

    def check(self) -> None:
        """Raise BadRecord unless every field is well formed (see the class docstring)."""
        if not is_digest(self.key):
            raise BadRecord(f"key {_show(self.key)} is not 32 hex digits")
        if not isinstance(self.step, str) or not 0 < len(self.step) <= 1024:
            raise BadRecord(f"step {_show(self.step)} is not a step name")
        if not isinstance(self.permanences, dict) or not all(
            isinstance(k, str) for k in self.permanences
        ):
            raise BadRecord(f"permanences {_show(self.permanences)} is not a map of names")
        if not isinstance(self.outputs, dict):
            raise BadRecord(f"outputs {_show(self.outputs)} is not a map")
        for output, entry in self.outputs.items():
            _check_output(output, entry)

    @property
    def name(self) -> str:
        """The record's file name: the hash of its bytes."""
        return hash_bytes(self.to_bytes()) + ".msgpack"

    def describe(self) -> str:
        """How messages name the run: where it lies in a store, and its step."""
        return f"run {self.key}/{self.name} of '{self.step}'"

    def objects(self) -> Iterator[str]:
        """Every object hash the record needs."""
        for entry in self.outputs.values():
            tree = entry.get("tree")
            if tree is None:
                yield entry["hash"]
            else:
                yield from tree.values()

    def matches(self, configs: Mapping[str, Any]) -> bool:
        """Whether every permanence it used still has the same config."""
        return all(configs.get(name) == config for name, config in self.permanences.items())


def _seconds(raw: dict, field: str) -> float:
    value = raw.get(field)
    # `not 0 <= value` also rejects NaN; the bound keeps time.localtime from overflowing.
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= _LATEST:
        raise BadRecord(f"'{field}' is {_show(value)}, not a number of seconds")
    return value  # as it was: to_bytes() then gives back the very bytes that were read


def _check_output(output: object, entry: object) -> None:
    if not isinstance(output, str) or not 0 < len(output) <= 256:
        raise BadRecord(f"output name {_show(output)} is not a name")
    if not isinstance(entry, dict) or "hash" not in entry or not set(entry) <= {"hash", "tree"}:
        raise BadRecord(f"output '{output}' is {_show(entry)}, not {{hash[, tree]}}")
    digest = entry["hash"]
    if "tree" not in entry:
        if not is_digest(digest):
            raise BadRecord(f"output '{output}' has hash {_show(digest)}, not 32 hex digits")
        return
    if not (isinstance(digest, str) and digest[:1] == "d" and is_digest(digest[1:])):
        raise BadRecord(f"folder output '{output}' has hash {_show(digest)}, not d + 32 hex")
    tree = entry["tree"]
    if not isinstance(tree, dict):
        raise BadRecord(f"folder output '{output}' has tree {_show(tree)}, not a map")
    folders: set[str] = set()
    for relative, file_digest in tree.items():
        if not safe_relative(relative):
            raise BadRecord(
                f"folder output '{output}' names {_show(relative)}, not a path below it"
            )
        if not is_digest(file_digest):
            raise BadRecord(f"{relative} of output '{output}' has hash {_show(file_digest)}")
        parts = relative.split("/")
        folders.update("/".join(parts[:i]) for i in range(1, len(parts)))
    clash = folders & tree.keys()
    if clash:
        raise BadRecord(f"{_show(min(clash))} of output '{output}' is both a file and a folder")


class ContentStore:
    """The local run cache under `.tipi_cache/store/`."""

    def __init__(self, cache_dir: Path, warn: Callable[[str], None] = lambda _: None) -> None:
        self.root = cache_dir / STORE
        self.warn = warn
        self._swept = False

    def object_path(self, digest: str) -> Path:
        if not is_digest(digest):
            raise CorruptCache(f"{_show(digest)} is not an object name")
        return self.root / "objects" / digest[:2] / digest

    def record_path(self, key: str, name: str) -> Path:
        if not is_digest(key) or not is_record_name(name):
            raise CorruptCache(f"{_show(key)}/{_show(name)} is not a run record name")
        return self.root / "runs" / key / name

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

    def records(self, key: str) -> list[RunRecord]:
        """The runs recorded under `key`, newest first (bad ones are dropped, with a warning)."""
        return [record for _, record in self._records(key)]

    def _records(self, key: str) -> list[tuple[Path, RunRecord]]:
        if not is_digest(key):
            return []
        folder = self.root / "runs" / key
        try:
            names = os.listdir(folder)
        except (FileNotFoundError, NotADirectoryError):
            return []
        found = []
        for name in names:
            if name.startswith("."):  # an older tipi's temporary file
                continue
            path = folder / name
            try:
                with _open_regular(path) as f:
                    if os.fstat(f.fileno()).st_size > MAX_RECORD_BYTES:
                        raise BadRecord("larger than any run record")
                    data = f.read(MAX_RECORD_BYTES + 1)
                found.append((path, RunRecord.from_bytes(data, key, name)))
            except ForeignRecord as exc:
                self.warn(f"skipping the run record {path}: {exc}")
            except (BadRecord, CorruptCache) as exc:
                self.warn(f"dropping the run record {path}: {exc}")
                drop(path)
            except OSError as exc:
                self.warn(f"skipping unreadable run record {path}: {exc}")
        return sorted(found, key=lambda item: -item[1].finished)

    def lookup(
        self, key: str, configs: Mapping[str, Any], names: Iterable[str] | None = None
    ) -> RunRecord | None:
        """The newest run under `key` whose permanences match, whose outputs are `names`
        (when given) and whose objects are here."""
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

    def save(
        self,
        key: str,
        step: str,
        permanences: Mapping[str, Any],
        outputs: Mapping[str, Path],
        hash_file: Callable[[str], str | None],
        seconds: float,
    ) -> RunRecord:
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
                entries[name] = {"hash": self._keep(path, hash_file(str(path)))}
        record = RunRecord(key, step, dict(permanences), entries, time.time(), seconds)
        try:
            record.check()
        except BadRecord as exc:
            raise OSError(f"the run cannot be recorded: {exc}") from None
        self.add_record(record)
        return record

    def restore(self, record: RunRecord, staged: Mapping[str, Path]) -> None:
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

    def _restore(self, record: RunRecord, staged: Mapping[str, Path]) -> None:
        for name, path in staged.items():
            entry = record.outputs[name]
            tree = entry.get("tree")
            if tree is None:
                self._copy_out(record, entry["hash"], path)
                continue
            path.mkdir(parents=True, exist_ok=True)
            for relative, digest in tree.items():
                if not safe_relative(relative):  # checked when read; never write elsewhere
                    raise CorruptCache(f"{record.describe()} names {_show(relative)}")
                target = path.joinpath(*relative.split("/"))
                target.parent.mkdir(parents=True, exist_ok=True)
                self._copy_out(record, digest, target)

    def _copy_out(self, record: RunRecord, digest: str, target: Path) -> None:
        source = self.object_path(digest)
        try:
            src = _open_regular(source)
        except CorruptCache as exc:
            drop(source)
            raise CorruptCache(f"object {digest} of {record.describe()}: {exc}; dropped") from None
        with src, _create(target) as out:
            actual, _ = copy_hashing(src, out)
        if actual != digest:
            drop(source)
            raise CorruptCache(
                f"object {digest} of {record.describe()} is corrupt (its bytes hash to "
                f"{actual}); dropped"
            )

    def verify(self, record: RunRecord) -> list[str]:
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
            return _open_regular(path)
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

    def add_record(self, record: RunRecord) -> None:
        """Write `record` under its name, atomically (after its objects).

        Nothing in the store is fsynced: every file is checked against its name when read,
        so what a power cut leaves half-written costs a warning and a rerun, never a wrong
        output, and a make does not wait for the disk once per file."""
        data = record.to_bytes()
        path = self.record_path(record.key, hash_bytes(data) + ".msgpack")
        tmp = self._temporary()
        try:
            with open(tmp, "xb") as out:
                out.write(data)
            path.parent.mkdir(parents=True, exist_ok=True)
            os.replace(tmp, path)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise

    def all_records(self) -> Iterator[tuple[Path, RunRecord]]:
        runs = self.root / "runs"
        if not runs.is_dir():
            return
        for key in sorted(os.listdir(runs)):
            if key.startswith("."):
                continue
            if not is_digest(key):
                self.warn(f"ignoring {runs / key}: not a run key")
                continue
            yield from self._records(key)

    def all_objects(self) -> Iterator[tuple[str, Path]]:
        """(name, path) of everything in `objects/` but temporary files (an older tipi's)."""
        objects = self.root / "objects"
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
        folders = [self.root / TMP]
        if everywhere:
            folders += [p for f in ("objects", "runs") for p in _subfolders(self.root / f)]
        removed = 0
        now = time.time()
        for folder in folders:
            try:
                names = os.listdir(folder)
            except (FileNotFoundError, NotADirectoryError):
                continue
            for name in names:
                if folder.name != TMP and not (name.startswith(".") and name.endswith(".tmp")):
                    continue
                try:
                    age = now - (folder / name).lstat().st_mtime
                except FileNotFoundError:
                    continue
                if stale_temporary(name, age):
                    drop(folder / name)
                    removed += 1
        return removed

    def _keep(self, source: Path, digest: str | None) -> str:
        if digest is None:
            raise FileNotFoundError(f"{source} vanished before it could be kept")
        if not self.has_object(digest):
            with open(source, "rb") as f:
                self.ingest(f, digest, f"{source} (changed while it was kept)")
        return digest

    def _temporary(self) -> Path:
        """A fresh temporary name in `tmp/`; the first one sweeps what dead writers left."""
        folder = self.root / TMP
        if not self._swept:
            folder.mkdir(parents=True, exist_ok=True)
            self.sweep()
            self._swept = True
        return folder / temporary_name()


def temporary_name() -> str:
    """`.<host>.<pid>.<8 random hex>.tmp`: who writes it, so a sweep knows whether they live
    (and the form of every tipi temporary file, which a make holding the lock removes)."""
    return f".{_HOST}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp"


def stale_temporary(name: str, age: float) -> bool:
    """Whether the temporary file `name`, last written `age` seconds ago, is a dead writer's:
    one of this host whose process is gone, or anyone's idle for STALE_SECONDS."""
    if age > STALE_SECONDS:
        return True
    host, pid, _, suffix = [*name.removeprefix(".").split("."), "", "", ""][:4]
    if host != _HOST or suffix != "tmp" or not (pid.isascii() and pid.isdigit()):
        return False
    return not 0 < int(pid) < 1 << 22 or not _alive(int(pid))


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # EPERM: someone else's process
        return True
    return True


def copy_hashing(source: BinaryIO, target: BinaryIO) -> tuple[str, int]:
    """Copy `source` to `target` in 1 MiB chunks; the xxh3-128 hex of the bytes, and their count."""
    digest = xxhash.xxh3_128()
    size = 0
    while chunk := source.read(_CHUNK):
        digest.update(chunk)
        target.write(chunk)
        size += len(chunk)
    return digest.hexdigest(), size


def _open_regular(path: Path) -> BinaryIO:
    """`path` opened for reading, only if it is a plain file (never through a link; a FIFO
    does not block the open).

    Raises:
        CorruptCache: it is a link, a folder or another non-file.
    """
    flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0)
    try:
        fd = os.open(path, flags | getattr(os, "O_BINARY", 0))
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise CorruptCache(f"{path} is a symbolic link") from None
        raise
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise CorruptCache(f"{path} is not a file")
    return os.fdopen(fd, "rb")


def _create(path: Path) -> BinaryIO:
    """A new file at `path`: never through a link, never over something already there."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
    return os.fdopen(os.open(path, flags | getattr(os, "O_BINARY", 0), 0o666), "wb")


def drop(path: Path) -> None:
    """Delete `path` (a folder with what is in it; a link, never what it points to)."""
    try:
        if stat.S_ISDIR(path.lstat().st_mode):
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink()
    except FileNotFoundError:
        pass


def _subfolders(folder: Path) -> list[Path]:
    try:
        return [folder / name for name in os.listdir(folder)]
    except (FileNotFoundError, NotADirectoryError):
        return []


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
    from tipi.cache.fingerprint import step_fingerprint

    shapes = {name: "".join(PurePosixPath(path).suffixes) for name, path in (outputs or {}).items()}
    return step_fingerprint(type_name, code, params, {"inputs": inputs, "outputs": shapes}, {})
