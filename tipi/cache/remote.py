"""A remote run cache through fsspec: a directory, `file://`, `s3://`, `gs://`, ... with the
same layout as the local store (content.py), so push and pull only copy missing files.

Concurrent pushes are safe: every file is named by the hash of its content, is uploaded under
a temporary name in `tmp/` and then moved (a put is atomic on object stores), and a record is
uploaded after the objects it names. A push first removes the temporary files of pushes that
died (`files.stale_temporary`).

A remote may be writable by people the reader does not trust (a CI bucket), so nothing from it
is believed: records are checked as local ones are (`RunRecord.from_bytes`), every object's
bytes against its name while it is downloaded, and every path is built from checked names
under the remote's prefix; on a directory remote it must also stay there after resolving
symbolic links. A bad file is refused (a warning, or a `CorruptCache` the engine turns into
one) and never deleted: the remote is not ours to clean.
"""

from __future__ import annotations

import contextlib
import os
import posixpath
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from tipi.cache.content import (
    MAX_RECORD_BYTES,
    TMP,
    ContentStore,
    CorruptCache,
    RunRecord,
    copy_hashing,
    is_digest,
    is_record_name,
    stale_temporary,
    temporary_name,
)
from tipi.errors import UsageError


@dataclass
class Transfer:
    """What a push or pull copied."""

    records: int = 0
    objects: int = 0
    bytes: int = 0


class RemoteStore:
    """The run cache at `url`, opened with fsspec."""

    def __init__(self, url: str, warn: Callable[[str], None] = lambda _: None) -> None:
        try:
            import fsspec
            from fsspec.implementations.local import LocalFileSystem
        except ImportError:  # pragma: no cover - fsspec is a dependency
            raise UsageError("--remote needs fsspec", hint="pip install fsspec") from None
        try:
            self.fs, self.base = fsspec.core.url_to_fs(url)
        except (ImportError, ValueError) as exc:
            raise UsageError(
                f"cannot open the remote cache {url}: {exc}",
                hint="install the fsspec backend for it (s3fs for s3://, gcsfs for gs://)",
            ) from None
        self.url = url
        self.warn = warn
        self._local = isinstance(self.fs, LocalFileSystem)
        self._tmp_ready = False

    def _path(self, *parts: str) -> str:
        """A path under the remote's prefix (parts are checked names or literals)."""
        return self._confined(posixpath.join(self.base, *parts))

    def _confined(self, path: str) -> str:
        """`path`, after checking (on a directory remote) that no symbolic link someone
        planted there leads it out of the remote."""
        if self._local:
            base = os.path.realpath(self.base)
            real = os.path.realpath(path)
            if real != base and not real.startswith(base.rstrip(os.sep) + os.sep):
                raise CorruptCache(f"{path} leads out of the remote cache (to {real}); refused")
        return path

    def _object(self, digest: str) -> str:
        if not is_digest(digest):
            raise CorruptCache(f"{digest!r} is not an object name")
        return self._path("objects", digest[:2], digest)

    def _record(self, key: str, name: str) -> str:
        if not is_digest(key) or not is_record_name(name):
            raise CorruptCache(f"{key!r}/{name!r} is not a run record name")
        return self._path("runs", key, name)

    def keys_and_names(self) -> set[tuple[str, str]]:
        """(key, record name) of every record on the remote."""
        runs = self._path("runs")
        try:
            paths = self.fs.find(runs)
        except FileNotFoundError:
            return set()
        found = set()
        prefix = runs.rstrip("/") + "/"
        for path in paths:
            parts = path[len(prefix) :].split("/") if path.startswith(prefix) else []
            if len(parts) == 2 and parts[1].startswith("."):
                continue  # an older tipi's temporary file
            if len(parts) == 2 and is_digest(parts[0]) and is_record_name(parts[1]):
                found.add((parts[0], parts[1]))
            else:
                self.warn(f"ignoring {path} on the remote cache {self.url}: not a run record")
        return found

    def records(self, key: str) -> list[RunRecord]:
        """The well-formed runs recorded under `key`, newest first (others: a warning)."""
        if not is_digest(key):
            return []
        try:
            listed = self.fs.ls(self._path("runs", key), detail=True)
        except (FileNotFoundError, NotADirectoryError):
            return []
        found = []
        for info in sorted(listed, key=lambda i: i["name"]):
            name = info["name"].rstrip("/").rsplit("/", 1)[-1]
            if not name.startswith("."):  # an older tipi's temporary file
                found.append(self._read_record(key, name, info))
        return sorted((r for r in found if r is not None), key=lambda r: -r.finished)

    def _read_record(
        self, key: str, name: str, info: Mapping[str, Any] | None = None
    ) -> RunRecord | None:
        """The record at runs/<key>/<name> (`info`: its listing, if at hand), or None with a
        warning when it is anything but a well-formed record filed there."""
        where = f"runs/{key}/{name}"
        try:
            path = self._record(key, name)
            info = info or self.fs.info(path)
            kind, size = info.get("type"), info.get("size")
            if kind != "file" or not 0 <= _as_int(size, 0) <= MAX_RECORD_BYTES:
                raise CorruptCache(f"not a record file but a {kind} of {size} bytes")
            return RunRecord.from_bytes(self.fs.cat_file(path), key, name)
        except (OSError, ValueError) as exc:
            self.warn(f"skipping the run record {where} of the remote cache {self.url}: {exc}")
            return None

    def find(
        self, key: str, configs: Mapping[str, Any], names: Iterable[str] | None = None
    ) -> RunRecord | None:
        """The newest run under `key` whose permanence configs match and whose outputs are
        `names` (when given); nothing is copied."""
        wanted = None if names is None else set(names)
        return next(
            (
                r
                for r in self.records(key)
                if r.matches(configs) and (wanted is None or set(r.outputs) == wanted)
            ),
            None,
        )

    def fetch(
        self,
        key: str,
        configs: Mapping[str, Any],
        local: ContentStore,
        names: Iterable[str] | None = None,
    ) -> RunRecord | None:
        """Copy the newest matching run under `key` (record and objects) into `local`.

        Raises:
            CorruptCache: one of its objects is missing or not what its name says (what was
                already copied is sound; the record is not copied).
        """
        record = self.find(key, configs, names)
        if record is not None:
            self._download(record, local)
        return record

    def push(self, local: ContentStore, only: Iterable[RunRecord] | None = None) -> Transfer:
        """Upload local records (all, or `only`) the remote lacks, objects first; a run with a
        corrupt local object is not uploaded (a warning) and the object is dropped."""
        self.sweep()
        if only is None:  # everything: one listing of the remote beats a query per record
            have = self.keys_and_names()
            records = [r for _, r in local.all_records()]
            present = lambda r: (r.key, r.name) in have  # noqa: E731
        else:  # a make's few new runs: ask about each rather than list the whole remote
            records = list(only)
            present = lambda r: self.fs.exists(self._record(r.key, r.name))  # noqa: E731
        done = Transfer()
        for record in records:
            try:
                if present(record):
                    continue
                for digest in sorted(set(record.objects())):
                    target = self._object(digest)
                    size, here = self._size(target), local.object_size(digest)
                    if size is None or (here is not None and size != here):  # missing, mangled
                        done.bytes += self._upload_object(local, digest, target)
                        done.objects += 1
                self._upload_bytes(record.to_bytes(), self._record(record.key, record.name))
                done.records += 1
            except CorruptCache as exc:
                self.warn(f"not pushing the {record.describe()}: {exc}")
        return done

    def pull(self, local: ContentStore) -> Transfer:
        """Download every remote record (and its objects) that is not here; a bad one is
        skipped with a warning."""
        done = Transfer()
        for key, name in sorted(self.keys_and_names()):
            if local.record_path(key, name).exists():
                continue
            record = self._read_record(key, name)
            if record is None:
                continue
            try:
                objects, size = self._download(record, local)
            except CorruptCache as exc:
                self.warn(f"not pulling from the remote cache {self.url}: {exc}")
                continue
            done.records += 1
            done.objects += objects
            done.bytes += size
        return done

    def sweep(self) -> int:
        """Remove temporary files of pushes that died (this host's dead processes', and any
        idle for an hour); returns how many."""
        try:
            entries = self.fs.ls(self._path(TMP), detail=True)
        except (FileNotFoundError, NotADirectoryError):
            return 0
        removed = 0
        for info in entries:
            path = info["name"]
            age = time.time() - _modified(self.fs, info)
            if info.get("type") == "file" and stale_temporary(posixpath.basename(path), age):
                try:
                    self.fs.rm_file(path)
                    removed += 1
                except OSError:  # another push removed it first
                    pass
        return removed

    def _size(self, path: str) -> int | None:
        """The size of the file at `path`; None when there is none. (A push replaces an
        object of the wrong size: the cheap part of checking what it does not download.)"""
        try:
            info = self.fs.info(path)
        except FileNotFoundError:
            return None
        return _as_int(info.get("size"), -1) if info.get("type") == "file" else -1

    def _download(self, record: RunRecord, local: ContentStore) -> tuple[int, int]:
        count = size = 0
        for digest in sorted(set(record.objects())):
            if local.has_object(digest):
                continue
            what = f"object {digest} of the {record.describe()}"
            source = self._object(digest)
            try:
                info = self.fs.info(source)
            except FileNotFoundError:
                raise CorruptCache(f"{what} is missing") from None
            if info.get("type") != "file":
                raise CorruptCache(f"{what} is not a file; refused")
            with self.fs.open(source, "rb") as f:
                size += local.ingest(f, digest, what)
            count += 1
        local.add_record(record)
        return count, size

    def _upload_object(self, local: ContentStore, digest: str, target: str) -> int:
        """Stream a local object to the remote, checking its bytes on the way."""
        try:
            source = local.open_object(digest)
        except CorruptCache as exc:
            raise CorruptCache(f"the local object {digest}: {exc}; dropped") from None
        except FileNotFoundError:
            raise CorruptCache(f"the local object {digest} is missing") from None
        tmp = self._temporary()
        try:
            with source, self.fs.open(tmp, "wb") as out:
                actual, size = copy_hashing(source, out)
            if actual != digest:
                local.drop_object(digest)
                raise CorruptCache(
                    f"the local object {digest} is corrupt (its bytes hash to {actual}); dropped"
                )
            self._move(tmp, target)
        except BaseException:
            self._discard(tmp)
            raise
        return size

    def _upload_bytes(self, data: bytes, target: str) -> None:
        tmp = self._temporary()
        try:
            self.fs.pipe_file(tmp, data)
            self._move(tmp, target)
        except BaseException:
            self._discard(tmp)
            raise

    def _move(self, tmp: str, target: str) -> None:
        self.fs.makedirs(posixpath.dirname(target), exist_ok=True)
        self.fs.mv(tmp, self._confined(target))  # again: links may have changed meanwhile

    def _temporary(self) -> str:
        if not self._tmp_ready:
            self.fs.makedirs(self._path(TMP), exist_ok=True)
            self._tmp_ready = True
        return self._path(TMP, temporary_name())

    def _discard(self, tmp: str) -> None:
        with contextlib.suppress(OSError, ValueError):  # never written, or the remote is gone
            self.fs.rm_file(tmp)


def _as_int(value: Any, unknown: int) -> int:
    """A listed size as an int (some backends give text; `unknown` when there is none)."""
    if isinstance(value, int):
        return value
    return int(value) if isinstance(value, str) and value.isdigit() else unknown


def _modified(fs: Any, info: Mapping[str, Any]) -> float:
    """When a listed file was last written, in seconds since 1970 (now, when unknown)."""
    for field in ("mtime", "LastModified", "updated", "last_modified"):
        value = info.get(field)
        if isinstance(value, int | float):
            return float(value)
        if hasattr(value, "timestamp"):
            return value.timestamp()
    try:
        return fs.modified(info["name"]).timestamp()
    except Exception:  # backends without modification times: only the pid rule applies
        return time.time()


__all__ = ["RemoteStore", "Transfer"]
